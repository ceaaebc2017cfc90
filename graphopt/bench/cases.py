"""The models the benchmark runs, as `Case`s: an ONNX file, its inputs and the oracle's
outputs on disk (so that every system's worker process reads the same data), the model's
FLOPs, and for torch models a builder that the torch systems' workers call to rebuild the
module (same seed, same weights; nothing is downloaded).

Suite models: the light CNNs from the onnx wheel with random weights; an MLP; BERT-base
(seq 128), GPT-2 small prefill (seq 128) and one GPT-2 decode step with 128 past tokens,
from transformers configs with random weights. Not in the default list (they take minutes
to export and compile): a ~336M-parameter Llama-style model (hidden 1024, 24 layers, GQA
16/4, intermediate 2816, vocab 32000, untied head) prefill 128 (``llama``) and one decode
step after 128 tokens (``llama-decode``). Any ONNX file becomes a case with
`onnx_file_case` (``graphopt bench``).
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

LIGHT = ["resnet50", "squeezenet", "shufflenet", "inception_v1", "densenet121"]
TORCH = ["mlp", "bert", "gpt2", "gpt2-decode"]
SUITE_MODELS = LIGHT + TORCH
LLM = ["llama", "llama-decode"]  # on request only (``--models llama,llama-decode``)


@dataclass
class Case:
    name: str
    onnx: str                              # path of the ONNX model every ONNX system loads
    inputs: str                            # .npz: arr_0, arr_1, ... in the model's input order
    input_names: list
    input_shapes: list = field(default_factory=list)
    ref: Optional[str] = None              # .npz of the oracle's outputs (onnxruntime, no optimizations)
    gflop: Optional[float] = None
    torch_builder: Optional[list] = None   # [module, function, kwargs] rebuilding (module, example_args)
    note: str = ""                         # how the case was made (export time, ...)
    prepare_s: dict = field(default_factory=dict)
    # for onnxruntime's transformers optimizer: {"model_type", "num_heads", "hidden_size"}
    transformer: Optional[dict] = None

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Case":
        return Case(**d)


def load_arrays(path: str) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def _save_arrays(path: Path, arrays) -> str:
    np.savez(path, *[np.asarray(a) for a in arrays])
    return str(path)


def _finish(name: str, workdir: Path, graph, model_proto, arrays, torch_builder=None, note="",
            reference: bool = True) -> Case:
    """Write the model, inputs and the oracle's outputs; count the FLOPs."""
    from ..testing.oracle import run_reference
    from .flops import bind_symbols, count_flops

    workdir.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    onnx_path = workdir / f"{safe}.onnx"
    data = model_proto.SerializeToString()
    if len(data) > 1.8e9:  # pragma: no cover - protobuf's 2 GB limit
        raise ValueError(f"{name}: model too large to serialize in one file")
    onnx_path.write_bytes(data)
    inputs = _save_arrays(workdir / f"{safe}.inputs.npz", arrays)
    fc = count_flops(graph, bind_symbols(graph, arrays))
    if fc.unknown:
        note = (note + "; " if note else "") + f"FLOPs not counted for {len(fc.unknown)} nodes (dynamic shapes)"
    ref = None
    if reference:
        t0 = time.perf_counter()
        outs = run_reference(graph, list(arrays))
        ref = _save_arrays(workdir / f"{safe}.ref.npz", outs)
        oracle_s = time.perf_counter() - t0
    case = Case(name, str(onnx_path), inputs, [v.name for v in graph.inputs],
                [list(np.shape(a)) for a in arrays], ref, fc.total / 1e9 or None, torch_builder, note)
    if reference:
        case.prepare_s["oracle"] = oracle_s
    return case


def light_case(name: str, workdir: Path) -> Case:
    """A light CNN from the onnx wheel with random weights (logits, the Softmax dropped)."""
    from ..frontend.onnx_import import import_onnx
    from ..testing.models import light_model_inputs, randomized_light_model

    m = randomized_light_model(name)
    feeds = light_model_inputs(m)
    g = import_onnx(m)
    return _finish(name, workdir, g, m, [feeds[v.name] for v in g.inputs])


def random_inputs(graph, seed: int = 0, default_dim: int = 1) -> list[np.ndarray]:
    """Inputs for a user model: floats uniform in [-1, 1], integers in [0, 10), booleans at
    random; symbolic dimensions become ``default_dim``."""
    rng = np.random.default_rng(seed)
    out = []
    for v in graph.inputs:
        shape = [d if isinstance(d, int) else default_dim for d in (v.type.shape or ())]
        dt = v.type.dtype.numpy
        if dt.kind == "f":
            out.append(rng.uniform(-1, 1, shape).astype(dt))
        elif dt.kind in "iu":
            out.append(rng.integers(0, 10, shape).astype(dt))
        elif dt.kind == "b":
            out.append(rng.integers(0, 2, shape).astype(bool))
        else:
            raise ValueError(f"input {v.name!r}: cannot make random data of type {v.type.dtype.name}")
    return out


def onnx_file_case(path, workdir: Path, inputs: Optional[str] = None, seed: int = 0, name: Optional[str] = None,
                   default_dim: int = 1) -> Case:
    """A user's ONNX model; ``inputs`` an .npz (by input name, or arr_0...) or random data."""
    from ..frontend.onnx_import import import_onnx, load_model

    proto, _ = load_model(str(path))
    g = import_onnx(str(path))
    if inputs:
        with np.load(inputs, allow_pickle=False) as z:
            if all(v.name in z.files for v in g.inputs):
                arrays = [z[v.name] for v in g.inputs]
            else:
                arrays = [z[f"arr_{i}"] for i in range(len(g.inputs))]
    else:
        arrays = random_inputs(g, seed, default_dim)
    return _finish(name or Path(path).stem, workdir, g, proto, arrays)


# ------------------------------------------------------------------------------ torch models
def _torch_models():
    """tests/torch/torch_models.py of the source tree (GPT2DecodeStep, gpt2_past)."""
    try:
        return importlib.import_module("torch_models")
    except ModuleNotFoundError:
        pass
    here = Path(__file__).resolve().parents[2] / "tests" / "torch"
    if not (here / "torch_models.py").is_file():
        raise ModuleNotFoundError("the GPT-2 decode case needs tests/torch/torch_models.py from graphopt's "
                                  "source tree", name="torch_models")
    sys.path.insert(0, str(here))
    return importlib.import_module("torch_models")


def build_mlp(batch: int = 32, d_in: int = 1024, hidden: int = 2048, d_out: int = 1024, layers: int = 3):
    """An MLP: Linear-GELU blocks, ``layers`` Linear layers in all."""
    import torch

    torch.manual_seed(0)
    dims = [d_in] + [hidden] * (layers - 1) + [d_out]
    mods = []
    for i in range(layers):
        mods.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if i < layers - 1:
            mods.append(torch.nn.GELU())
    model = torch.nn.Sequential(*mods).eval()
    return model, (torch.randn(batch, d_in),)


def _bert_config(small: bool):
    from transformers import BertConfig

    if small:
        return BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128,
                          vocab_size=1000)
    return BertConfig()


def _gpt2(small: bool):
    from transformers import GPT2Config, GPT2LMHeadModel

    if small:
        cfg = GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1000, bos_token_id=0, eos_token_id=0)
    else:
        cfg = GPT2Config(bos_token_id=0, eos_token_id=0)
    m = GPT2LMHeadModel(cfg).eval()
    m.config.use_cache = False
    return m


def build_bert(seq: int = 128, small: bool = False):
    """BERT-base encoder (or a 2-layer toy) from its config, random weights."""
    import torch
    from transformers import BertModel

    torch.manual_seed(0)
    m = BertModel(_bert_config(small)).eval()
    return m, (torch.randint(0, m.config.vocab_size, (1, seq)),)


def build_gpt2(seq: int = 128, small: bool = False):
    """GPT-2 small prefill (logits of ``seq`` tokens), random weights."""
    import torch

    torch.manual_seed(0)
    m = _gpt2(small)
    return m, (torch.randint(0, m.config.vocab_size, (1, seq)),)


def build_gpt2_decode(past: int = 128, small: bool = False):
    """One GPT-2 small decode step after ``past`` tokens (keys and values as inputs)."""
    import torch

    tm = _torch_models()
    torch.manual_seed(0)
    m = _gpt2(small)
    step = tm.GPT2DecodeStep(m).eval()
    keys, values = tm.gpt2_past(m, past)
    nxt = torch.randint(0, m.config.vocab_size, (1, 1))
    return step, (nxt, keys, values)


def _llama(small: bool):
    from transformers import LlamaConfig, LlamaForCausalLM

    if small:
        cfg = LlamaConfig(vocab_size=1000, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    else:  # ~336M parameters: the size the LLM issues measure
        cfg = LlamaConfig(vocab_size=32000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=24,
                          num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048,
                          tie_word_embeddings=False)
    m = LlamaForCausalLM._from_config(cfg, attn_implementation="sdpa").eval()
    m.config.use_cache = False
    return m


def build_llama(seq: int = 128, small: bool = False):
    """The Llama-style model's prefill (logits of ``seq`` tokens), random weights."""
    import torch

    torch.manual_seed(0)
    m = _llama(small)
    return m, (torch.randint(0, m.config.vocab_size, (1, seq)),)


def build_llama_decode(past: int = 128, small: bool = False):
    """One decode step of the Llama-style model after ``past`` tokens (keys and values as
    inputs, one per layer)."""
    import torch

    tm = _torch_models()
    torch.manual_seed(0)
    m = _llama(small)
    step = tm.GPT2DecodeStep(m).eval()  # generic: any causal LM taking a DynamicCache
    keys, values = tm.gpt2_past(m, past)
    nxt = torch.randint(0, m.config.vocab_size, (1, 1))
    return step, (nxt, keys, values)


def call_builder(spec) -> tuple:
    mod, fn, kwargs = spec
    return getattr(importlib.import_module(mod), fn)(**kwargs)


def torch_case(name: str, builder: list, workdir: Path, transformer: Optional[dict] = None) -> Case:
    """Build the torch module, trace it with graphopt's tracer (torch.export + torch.onnx)
    and write the traced graph as ONNX: the file every ONNX system (graphopt included) runs."""
    import torch
    from torch.utils import _pytree as pytree

    from ..frontend.onnx_export import export_onnx
    from ..frontend.torch_trace import trace_module

    model, args = call_builder(builder)
    t0 = time.perf_counter()
    traced = trace_module(model, args)
    export_s = time.perf_counter() - t0
    flat = [x.detach().numpy() for x in pytree.tree_flatten(args)[0] if isinstance(x, torch.Tensor)]
    proto = export_onnx(traced.graph)
    case = _finish(name, workdir, traced.graph, proto, flat, torch_builder=list(builder),
                   note=f"ONNX export {export_s:.0f} s")
    case.prepare_s["export"] = export_s
    case.transformer = transformer
    return case


def _hint(model_type: str, num_heads: int, hidden_size: int) -> dict:
    return {"model_type": model_type, "num_heads": num_heads, "hidden_size": hidden_size}


def suite_case(name: str, workdir: Path, small: bool = False) -> Case:
    """The suite's model ``name`` (see SUITE_MODELS); ``small`` uses toy sizes of the torch
    models (a quick check of the machinery)."""
    mod = __name__
    if name in LIGHT or name.removeprefix("light_") in LIGHT:
        return light_case(name.removeprefix("light_"), workdir)
    if name == "mlp":
        kw = {"batch": 8, "d_in": 64, "hidden": 128, "d_out": 32} if small else {}
        return torch_case("MLP" + (" (toy)" if small else " 1024-2048-2048-1024, batch 32"),
                          [mod, "build_mlp", kw], workdir)
    if name == "bert":
        seq = 32 if small else 128
        return torch_case(f"BERT-{'toy' if small else 'base'} seq {seq}", [mod, "build_bert", {"seq": seq, "small": small}],
                          workdir, _hint("bert", 2 if small else 12, 64 if small else 768))
    gpt2 = _hint("gpt2", 2 if small else 12, 64 if small else 768)
    if name == "gpt2":
        seq = 32 if small else 128
        return torch_case(f"GPT-2 {'toy' if small else 'small'} prefill seq {seq}",
                          [mod, "build_gpt2", {"seq": seq, "small": small}], workdir, gpt2)
    if name == "gpt2-decode":
        past = 32 if small else 128
        return torch_case(f"GPT-2 {'toy' if small else 'small'} decode, {past} past",
                          [mod, "build_gpt2_decode", {"past": past, "small": small}], workdir, gpt2)
    # onnxruntime's optimizer has no Llama type; its gpt2 type holds the generic fusions
    # (SimplifiedLayerNormalization, the decoder attention forms)
    llama = _hint("gpt2", 4 if small else 16, 64 if small else 1024)
    tag = "toy" if small else "336M"
    if name == "llama":
        seq = 32 if small else 128
        return torch_case(f"Llama-{tag} prefill seq {seq}", [mod, "build_llama", {"seq": seq, "small": small}],
                          workdir, llama)
    if name == "llama-decode":
        past = 32 if small else 128
        return torch_case(f"Llama-{tag} decode, {past} past",
                          [mod, "build_llama_decode", {"past": past, "small": small}], workdir, llama)
    p = Path(name)
    if p.suffix == ".onnx" and p.is_file():
        return onnx_file_case(p, workdir)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(SUITE_MODELS + LLM)} or an .onnx file")
