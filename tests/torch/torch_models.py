"""Small torch modules and transformers configs shared by the torch tests (random weights,
never downloaded)."""

import torch


class MLP(torch.nn.Module):
    def __init__(self, d_in=16, d_hidden=32, d_out=8):
        super().__init__()
        self.fc1 = torch.nn.Linear(d_in, d_hidden)
        self.fc2 = torch.nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.fc2(torch.nn.functional.gelu(self.fc1(x)))


class SmallCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.head = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        x = torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x)


class Nested(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        y = self.fc(x)
        return {"logits": y, "extra": (x.relu(), y.sum(dim=-1))}


def bert_small():
    from transformers import BertConfig, BertModel

    cfg = BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128,
                     vocab_size=1000, max_position_embeddings=128)
    return BertModel(cfg).eval()


def gpt2_small():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1000, n_positions=128, use_cache=False,
                     bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


class GPT2DecodeStep(torch.nn.Module):
    """One GPT-2 decode step with the past keys and values as plain tensor inputs (one per
    layer), returning the logits and the updated keys and values."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, keys, values):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i, (k, v) in enumerate(zip(keys, values)):
            cache.update(k, v, i)
        out = self.model(input_ids, past_key_values=cache, use_cache=True)
        layers = out.past_key_values.layers
        return out.logits, [layer.keys for layer in layers], [layer.values for layer in layers]


def gpt2_past(model, past_len: int):
    """Keys and values of ``past_len`` random tokens, for a decode step."""
    ids = torch.randint(0, model.config.vocab_size, (1, past_len))
    with torch.no_grad():
        past = model(ids, use_cache=True).past_key_values
    return [layer.keys for layer in past.layers], [layer.values for layer in past.layers]
