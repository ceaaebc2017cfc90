"""Tiny transformers model families with random weights, and the fused ops -O2 should
leave in each (the survey benchmarks/family_fusions.py and tests/torch/test_families.py).

    built = build("llama", attn="sdpa")      # Built(module, args, expected, note)
    built.expected.counts()                  # {"graphopt.Attention": 2, "graphopt.RMSNorm": 5, ...}

Every family is 2 layers of hidden 64 and 4 heads (head dim 16), vocab 1000, 8 tokens (ViT:
a 32x32 image in 8x8 patches, 17 tokens), built with ``attn_implementation`` "eager" or
"sdpa". Llama, Qwen2 and Mistral use grouped-query attention (2 key/value heads for 4
query heads), Gemma multi-query (1). Causal LMs are built with ``use_cache=False`` unless
asked (the cache's outputs are what issue 15 is about). Norm weights (and biases) are drawn
away from ones (zeros for Gemma's 1 + w), so the weight Mul/Add is there to fold into the
fused norm. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
SEQ = 8
VOCAB = 1000
LAYERS = 2

# The qualified op name of each fused op, by Expected field.
FUSED_OPS = {
    "attention": "graphopt.Attention",
    "layer_norm": "LayerNormalization",
    "rms_norm": "graphopt.RMSNorm",
    "gelu": "Gelu",
    "swiglu": "graphopt.SwiGLU",
    "rotary": "graphopt.RotaryEmbedding",
}


@dataclass(frozen=True)
class Expected:
    """How many of each fused op the whole model should have after -O2 (+ fuse-rotary)."""
    attention: int = 0
    layer_norm: int = 0
    rms_norm: int = 0
    gelu: int = 0
    swiglu: int = 0
    rotary: int = 0

    def counts(self) -> dict[str, int]:
        return {FUSED_OPS[f.name]: getattr(self, f.name) for f in fields(self)}


@dataclass
class Built:
    module: object            # the torch module, in eval mode
    args: tuple               # example positional inputs
    expected: Expected
    note: str = ""            # what the family's layers hold (why the counts are what they are)


@dataclass(frozen=True)
class Family:
    name: str
    build: Callable[..., Built]   # build(attn="sdpa", use_cache=False) -> Built
    causal_lm: bool = False       # has a KV cache (use_cache means something)
    encoder_decoder: bool = False


def _randomize_norms(model, gemma: bool = False) -> None:
    """Norm weights away from ones (Gemma: away from zero, its scale is 1 + w) and biases
    away from zero, so the scale/bias Mul/Add is there to fold."""
    import torch

    with torch.no_grad():
        for mod in model.modules():
            name = type(mod).__name__
            if "Norm" not in name and not isinstance(mod, torch.nn.LayerNorm):
                continue
            w = getattr(mod, "weight", None)
            if isinstance(w, torch.Tensor):
                w.uniform_(-0.5, 0.5) if gemma else w.uniform_(0.5, 1.5)
            b = getattr(mod, "bias", None)
            if isinstance(b, torch.Tensor):
                b.uniform_(-0.1, 0.1)


def _finish(model_cls, cfg, attn: str, args_fn, expected: Expected, note: str, gemma: bool = False,
            use_cache: bool | None = None) -> Built:
    import torch

    torch.manual_seed(0)
    if use_cache is not None:
        cfg.use_cache = use_cache
    m = model_cls._from_config(cfg, attn_implementation=attn).eval()
    if use_cache is not None:
        m.config.use_cache = use_cache
    _randomize_norms(m, gemma)
    return Built(m, args_fn(), expected, note)


def _ids(seq: int = SEQ):
    import torch

    g = torch.Generator().manual_seed(1)
    # from 3: clear of the pad/bos/eos ids the configs use (RoBERTa's positions skip pads)
    return (torch.randint(3, VOCAB, (1, seq), generator=g),)


# --- encoders -------------------------------------------------------------------------

_ENC = Expected(attention=LAYERS, layer_norm=2 * LAYERS + 1, gelu=LAYERS)
_ENC_NOTE = "per layer: self-attention, 2 LayerNorm, GELU (erf); the embeddings' LayerNorm"


def bert(attn: str = "sdpa", use_cache=None) -> Built:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=64)
    return _finish(BertModel, cfg, attn, _ids, _ENC, _ENC_NOTE + "; the pooler's Tanh stays")


def roberta(attn: str = "sdpa", use_cache=None) -> Built:
    from transformers import RobertaConfig, RobertaModel

    cfg = RobertaConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64, pad_token_id=1)
    return _finish(RobertaModel, cfg, attn, _ids, _ENC, _ENC_NOTE + "; the pooler's Tanh stays")


def distilbert(attn: str = "sdpa", use_cache=None) -> Built:
    from transformers import DistilBertConfig, DistilBertModel

    cfg = DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=LAYERS, n_heads=4, hidden_dim=128,
                           max_position_embeddings=64)
    return _finish(DistilBertModel, cfg, attn, _ids, _ENC, _ENC_NOTE)


def albert(attn: str = "sdpa", use_cache=None) -> Built:
    from transformers import AlbertConfig, AlbertModel

    # ALBERT shares one layer's weights across the layers: still one attention site per layer
    cfg = AlbertConfig(vocab_size=VOCAB, embedding_size=32, hidden_size=64, num_hidden_layers=LAYERS,
                       num_attention_heads=4, intermediate_size=128, max_position_embeddings=64)
    return _finish(AlbertModel, cfg, attn, _ids, _ENC,
                   "per layer (weights shared): self-attention, 2 LayerNorm, GELU (tanh, gelu_new); the "
                   "embeddings' LayerNorm; the pooler's Tanh stays")


def vit(attn: str = "sdpa", use_cache=None) -> Built:
    import torch
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(hidden_size=64, num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=128,
                    image_size=32, patch_size=8, num_channels=3)

    def args():
        g = torch.Generator().manual_seed(1)
        return (torch.randn(1, 3, 32, 32, generator=g),)

    return _finish(ViTModel, cfg, attn, args, _ENC,
                   "per layer: self-attention, 2 LayerNorm, GELU (erf); the final LayerNorm; the pooler's Tanh stays")


# --- decoders (causal LMs) --------------------------------------------------------------


def gpt2(attn: str = "sdpa", use_cache: bool = False) -> Built:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=LAYERS, n_head=4, n_positions=64, bos_token_id=0,
                     eos_token_id=0)
    return _finish(GPT2LMHeadModel, cfg, attn, _ids, Expected(attention=LAYERS, layer_norm=2 * LAYERS + 1, gelu=LAYERS),
                   "per layer: causal self-attention, 2 LayerNorm, GELU (tanh, gelu_new); ln_f", use_cache=use_cache)


_LLAMA = Expected(attention=LAYERS, rms_norm=2 * LAYERS + 1, swiglu=LAYERS, rotary=2 * LAYERS)
_LLAMA_NOTE = "per layer: causal self-attention{}, 2 RMSNorm, SwiGLU MLP, rotary on q and k; the final RMSNorm"
_DECODER = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=LAYERS, num_attention_heads=4,
                max_position_embeddings=64)


def llama(attn: str = "sdpa", use_cache: bool = False) -> Built:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**_DECODER, num_key_value_heads=2)
    return _finish(LlamaForCausalLM, cfg, attn, _ids, _LLAMA, _LLAMA_NOTE.format(" (GQA 4/2)"), use_cache=use_cache)


def qwen2(attn: str = "sdpa", use_cache: bool = False) -> Built:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**_DECODER, num_key_value_heads=2)  # q/k/v projections with bias
    return _finish(Qwen2ForCausalLM, cfg, attn, _ids, _LLAMA, _LLAMA_NOTE.format(" (GQA 4/2, qkv bias)"),
                   use_cache=use_cache)


def mistral(attn: str = "sdpa", use_cache: bool = False) -> Built:
    from transformers import MistralConfig, MistralForCausalLM

    cfg = MistralConfig(**_DECODER, num_key_value_heads=2)  # sliding_window 4096 > seq: the causal mask
    return _finish(MistralForCausalLM, cfg, attn, _ids, _LLAMA, _LLAMA_NOTE.format(" (GQA 4/2, sliding window)"),
                   use_cache=use_cache)


def phi3(attn: str = "sdpa", use_cache: bool = False) -> Built:
    from transformers import Phi3Config, Phi3ForCausalLM

    # pad/bos/eos inside the tiny vocab (Phi-3's defaults are 32000)
    cfg = Phi3Config(**_DECODER, num_key_value_heads=4, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return _finish(Phi3ForCausalLM, cfg, attn, _ids, _LLAMA,
                   _LLAMA_NOTE.format(" (one qkv projection, sliced)") + "; gate and up come from one projection, split",
                   use_cache=use_cache)


def gemma(attn: str = "sdpa", use_cache: bool = False) -> Built:
    from transformers import GemmaConfig, GemmaForCausalLM

    cfg = GemmaConfig(**_DECODER, num_key_value_heads=1, head_dim=16)
    return _finish(GemmaForCausalLM, cfg, attn, _ids,
                   Expected(attention=LAYERS, rms_norm=2 * LAYERS + 1, gelu=LAYERS, rotary=2 * LAYERS),
                   "per layer: causal self-attention (MQA 4/1), 2 RMSNorm (scale 1 + w), GeGLU MLP (tanh GELU times up), "
                   "rotary on q and k; the final RMSNorm; embeddings scaled by sqrt(hidden)", gemma=True,
                   use_cache=use_cache)


# --- encoder-decoder ----------------------------------------------------------------------


def _t5_config():
    from transformers import T5Config

    return T5Config(vocab_size=VOCAB, d_model=64, d_kv=16, d_ff=128, num_layers=LAYERS, num_decoder_layers=LAYERS,
                    num_heads=4, relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0)


def t5_encoder(attn: str = "sdpa", use_cache=None) -> Built:
    from transformers import T5EncoderModel

    return _finish(T5EncoderModel, _t5_config(), attn, _ids, Expected(attention=LAYERS, rms_norm=2 * LAYERS + 1),
                   "per layer: self-attention (unscaled, relative position bias added), 2 RMSNorm (T5LayerNorm), "
                   "ReLU MLP; the final RMSNorm")


def _seq2seq(model):
    """T5Model called as model(input_ids, decoder_input_ids): its forward takes the decoder's
    ids as a keyword after attention_mask."""
    import torch

    class Seq2Seq(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.model = m
            self.config = m.config

        def forward(self, input_ids, decoder_input_ids):
            return self.model(input_ids=input_ids, decoder_input_ids=decoder_input_ids)

    return Seq2Seq(model).eval()


def t5(attn: str = "sdpa", use_cache: bool = False) -> Built:
    import torch
    from transformers import T5Model

    def args():
        g = torch.Generator().manual_seed(1)
        return (torch.randint(3, VOCAB, (1, SEQ), generator=g), torch.randint(3, VOCAB, (1, SEQ // 2), generator=g))

    built = _finish(T5Model, _t5_config(), attn, args,
                   Expected(attention=3 * LAYERS, rms_norm=(2 * LAYERS + 1) + (3 * LAYERS + 1)),
                   "encoder per layer: self-attention, 2 RMSNorm; decoder per layer: causal self-attention, "
                   "cross-attention, 3 RMSNorm; a final RMSNorm each; args (input_ids, decoder_input_ids)",
                   use_cache=use_cache)
    built.module = _seq2seq(built.module)
    return built


FAMILIES = {f.name: f for f in [
    Family("bert", bert), Family("roberta", roberta), Family("distilbert", distilbert), Family("albert", albert),
    Family("vit", vit),
    Family("gpt2", gpt2, causal_lm=True), Family("llama", llama, causal_lm=True), Family("qwen2", qwen2, causal_lm=True),
    Family("mistral", mistral, causal_lm=True), Family("phi3", phi3, causal_lm=True), Family("gemma", gemma, causal_lm=True),
    Family("t5-encoder", t5_encoder), Family("t5", t5, causal_lm=True, encoder_decoder=True),
]}


def build(name: str, attn: str = "sdpa", use_cache: bool = False) -> Built:
    """The family ``name`` (a key of FAMILIES) with attention implementation ``attn``."""
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    if attn not in ATTN_IMPLEMENTATIONS:
        raise ValueError(f"{name}: attn_implementation {attn!r}, not one of {ATTN_IMPLEMENTATIONS}")
    fam = FAMILIES[name]
    return fam.build(attn, use_cache) if fam.causal_lm else fam.build(attn)


def fused_counts(graph) -> dict[str, int]:
    """{qualified op: count} of the fused ops in ``graph``, every FUSED_OPS entry present."""
    from collections import Counter

    c = Counter(n.qualified_op for n in graph.nodes)
    return {op: c[op] for op in FUSED_OPS.values()}
