"""How many of each fused op -O2 leaves in the transformer models (built from transformers
configs with random weights, traced with graphopt.trace): the counts onnxruntime's
transformers optimizer reports for its own fusions (GPT-2 small: 25 LayerNorm, 12 Gelu;
BERT-base: 25 LayerNorm, 12 Gelu), and the decomposed ops left over (Erf, Tanh, ReduceMean,
Sqrt, Reciprocal, Sigmoid), which would be missed fusions (or ops of their own: BERT's pooler ends in
a Tanh activation).

    .venv/bin/python -m benchmarks.fusion_counts [--models bert,gpt2,llama]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

FUSED = ("graphopt.Attention", "graphopt.RotaryEmbedding", "LayerNormalization", "Gelu", "graphopt.RMSNorm",
         "graphopt.SwiGLU", "graphopt.SiLU")
LEFT = ("Softmax", "Erf", "Tanh", "Sigmoid", "ReduceMean", "Sqrt", "Reciprocal", "Pow")


def _llama(seq: int = 16):
    """A Llama-style model: hidden 256, 4 layers, GQA 8/2 (random weights, norm weights
    other than ones so that their Mul is there to fuse)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=2, vocab_size=1000, max_position_embeddings=256)
    m = LlamaForCausalLM(cfg).eval()
    m.config.use_cache = False
    with torch.no_grad():
        for mod in m.modules():
            if type(mod).__name__ == "LlamaRMSNorm":
                mod.weight.uniform_(0.5, 1.5)
    return m, (torch.randint(0, cfg.vocab_size, (1, seq)),)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="bert,gpt2,llama")
    a = ap.parse_args(argv)

    import graphopt
    from graphopt.bench.cases import build_bert, build_gpt2

    builders = {"bert": ("BERT-base", lambda: build_bert(seq=16)), "gpt2": ("GPT-2 small", lambda: build_gpt2(seq=16)),
                "llama": ("Llama-style 4 layers, GQA 8/2", _llama)}
    print(f"{'model':<32}" + "".join(f"{c.removeprefix('graphopt.'):>19}" for c in FUSED) + "   left decomposed")
    for key in a.models.split(","):
        label, build = builders[key]
        model, args = build()
        g = graphopt.run_passes(graphopt.trace(model, args), "O2")
        c = Counter(n.qualified_op for n in g.nodes)
        left = ", ".join(f"{op} {c[op]}" for op in LEFT if c[op]) or "none"
        print(f"{label:<32}" + "".join(f"{c[op]:>19}" for op in FUSED) + f"   {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
