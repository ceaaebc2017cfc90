"""Run-time inputs to compiled models: wrong dtype, rank, shape and count, odd memory
layouts, NaN and inf (the compiled result must keep NaN where the oracle has it), and
out-of-range indices into compiled Gather-like ops (a clean error, never a segfault)."""

from __future__ import annotations

import numpy as np

from . import checks, models
from .case import case
from .outcome import ACCEPT, EITHER, ERROR, Obs

# name: (fixture, how to make the arguments from a valid input x, expectation)
_X = lambda: np.random.default_rng(5).standard_normal((2, 8)).astype(np.float32)  # noqa: E731

BAD_INPUTS = {
    "float64": (lambda x: ((x.astype(np.float64),), {}), ERROR),
    "float16": (lambda x: ((x.astype(np.float16),), {}), ERROR),
    "int32": (lambda x: ((x.astype(np.int32),), {}), ERROR),
    "int64": (lambda x: ((x.astype(np.int64),), {}), ERROR),
    "bool": (lambda x: ((x > 0,), {}), ERROR),
    "complex64": (lambda x: ((x.astype(np.complex64),), {}), ERROR),
    "strings": (lambda x: ((x.astype(str),), {}), ERROR),
    "objects": (lambda x: ((x.astype(object),), {}), ERROR),
    "python-list": (lambda x: ((x.tolist(),), {}), EITHER),
    "python-float": (lambda x: ((1.5,), {}), ERROR),
    "none": (lambda x: ((None,), {}), ERROR),
    "rank-1": (lambda x: ((x.reshape(-1),), {}), ERROR),
    "rank-3": (lambda x: ((x.reshape(1, 2, 8),), {}), ERROR),
    "rank-0": (lambda x: ((np.float32(1.0).reshape(()),), {}), ERROR),
    "shape-2x7": (lambda x: ((x[:, :7].copy(),), {}), ERROR),
    "shape-3x8": (lambda x: ((np.vstack([x, x[:1]]),), {}), ERROR),
    "shape-0x8": (lambda x: ((x[:0].copy(),), {}), ERROR),
    "shape-8x2": (lambda x: ((x.reshape(8, 2),), {}), ERROR),
    "no-inputs": (lambda x: ((), {}), ERROR),
    "two-inputs": (lambda x: ((x, x), {}), ERROR),
    "unknown-name": (lambda x: ((), {"nope": x}), ERROR),
    "twice": (lambda x: ((x,), {"x": x}), ERROR),
    "by-name": (lambda x: ((), {"x": x}), ACCEPT),
    "transposed-view": (lambda x: ((np.ascontiguousarray(x.T).T,), {}), ACCEPT),
    "fortran-order": (lambda x: ((np.asfortranarray(x),), {}), ACCEPT),
    "strided-view": (lambda x: ((np.repeat(x, 2, axis=1)[:, ::2],), {}), ACCEPT),
    "read-only": (lambda x: ((_readonly(x),), {}), ACCEPT),
    "big-endian": (lambda x: ((x.astype(">f4"),), {}), EITHER),
    "unaligned": (lambda x: ((_unaligned(x),), {}), ACCEPT),
}


def _readonly(x):
    y = x.copy()
    y.flags.writeable = False
    return y


def _unaligned(x):
    buf = np.zeros(x.nbytes + 1, np.uint8)
    y = buf[1:].view(np.float32).reshape(x.shape)
    y[...] = x
    return y


def _oracle(base: str, feeds: dict) -> list:
    return checks.run_ort(models.model_bytes(base), {k: np.ascontiguousarray(v, dtype=v.dtype.newbyteorder("="))
                                                     for k, v in feeds.items()})


def run_bad_input(ctx, name: str) -> Obs:
    make, expect = BAD_INPUTS[name]
    x = _X()
    args, kwargs = make(x)
    obs = Obs(expect=expect)
    model = ctx.loaded("mlp")
    with obs.call(f"compiled_mlp({name} input)"):
        out = model.run(*args, **kwargs)
        obs.wrong = checks.compare(_oracle("mlp", {"x": x}), out, "the compiled model differs from the oracle")
    return obs


# Where NaN/inf go: a pattern on a [1, 2, 4, 4] input.
def _pattern(name: str) -> np.ndarray:
    x = np.random.default_rng(9).standard_normal((1, 2, 4, 4)).astype(np.float32)
    if name == "nan-one":
        x[0, 0, 1, 2] = np.nan
    elif name == "nan-row":
        x[0, 1, 2, :] = np.nan
    elif name == "nan-all":
        x[...] = np.nan
    elif name == "inf":
        x[0, 0, 0, 0] = np.inf
    elif name == "neg-inf":
        x[0, 1, 3, 3] = -np.inf
    elif name == "neg-inf-row":
        x[0, 0, 3, :] = -np.inf
    elif name == "inf-and-nan":
        x[0, 0, 0, 0], x[0, 1, 1, 1], x[0, 1, 2, 2] = np.inf, -np.inf, np.nan
    return x


PATTERNS = ["nan-one", "nan-row", "nan-all", "inf", "neg-inf", "neg-inf-row", "inf-and-nan"]


def run_numerics(ctx, pattern: str, output: str) -> Obs:
    x = _pattern(pattern)
    obs = Obs(expect=ACCEPT)
    model = ctx.loaded("numerics")
    names = model.output_names
    with obs.call(f"compiled_numerics(x with {pattern})[{output}]"):
        out = model.run(x)
        i = names.index(output)
        want = _oracle("numerics", {"x": x})[i]
        obs.wrong = checks.compare([want], [out[i]], f"output {output} with {pattern} input differs from the oracle")
    return obs


def run_mlp_nan(ctx, pattern: str) -> Obs:
    x = _X()
    if pattern == "nan":
        x[0, 3] = np.nan
    elif pattern == "inf":
        x[1, 0] = np.inf
    elif pattern == "neg-inf":
        x[1, 5] = -np.inf
    else:
        x[0, :] = np.nan
    obs = Obs(expect=ACCEPT)
    with obs.call(f"compiled_mlp(x with {pattern}) (MatMul+Add+Relu)"):
        obs.wrong = checks.compare(_oracle("mlp", {"x": x}), ctx.loaded("mlp").run(x), "the compiled MatMul+Add+Relu")
    return obs


# fixture: (index shape, the dim each index column addresses)
INDEXED = {"gather": ((3,), 10), "gather_elements": ((2, 4), 10), "gather_nd": ((3, 2), None), "scatter_nd": ((3, 2), None)}
BAD_INDEX = {"row-count": 10, "big": 100000000, "neg-beyond": -11, "int64-max": np.iinfo(np.int64).max,
             "int64-min": np.iinfo(np.int64).min, "valid-neg": -1, "valid": 1}


def run_index(ctx, fixture: str, which: str) -> Obs:
    shape, _ = INDEXED[fixture]
    idx = np.ones(shape, np.int64)
    idx.flat[-1 if fixture.endswith("nd") else 0] = BAD_INDEX[which]
    if which == "valid-neg" and fixture.endswith("nd"):
        idx[-1, -1] = -1   # the last column addresses the 4-wide dim: -1 is in range
    obs = Obs(expect=ACCEPT if which.startswith("valid") else ERROR)
    with obs.call(f"compiled_{fixture}(idx with {BAD_INDEX[which]})"):
        out = ctx.loaded(fixture).run(idx)
        obs.wrong = checks.compare(_oracle(fixture, {"idx": idx}), out, "the compiled lookup differs from the oracle")
    return obs


def run_cnn_input(ctx, kind: str) -> Obs:
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    feeds = {"ok": x, "nchw-swapped": x.transpose(0, 2, 3, 1).copy(), "batch-2": np.concatenate([x, x]),
             "nan": np.where(x > 2, np.nan, x).astype(np.float32), "float64": x.astype(np.float64)}[kind]
    obs = Obs(expect=ACCEPT if kind in ("ok", "nan") else ERROR)
    with obs.call(f"compiled_tiny_cnn({kind} input)"):
        out = ctx.loaded("tiny_cnn").run(feeds)
        obs.wrong = checks.compare(_oracle("tiny_cnn", {"input": feeds}), out, "the compiled tiny_cnn")
    return obs


def run_cli(ctx, fixture: str, kind: str) -> Obs:
    """`graphopt run ART --input ...` with a bad or odd .npy file."""
    d = ctx.case_dir(f"run-{kind}")
    x = _X() if fixture == "mlp" else None
    expect, args, arr = ERROR, None, None
    if kind == "float64":
        arr = x.astype(np.float64)
    elif kind == "big-endian":
        arr, expect = x.astype(">f4"), EITHER
    elif kind == "nan":
        arr, expect = x.copy(), ACCEPT
        arr[0, 2] = np.nan
    elif kind == "ok":
        arr, expect = x, ACCEPT
    elif kind == "index-big":
        arr = np.array([1, 100000000, 2], np.int64)
    elif kind == "index-neg":
        arr = np.array([1, -11, 2], np.int64)
    elif kind == "pickled":
        np.save(d / "in.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "not-npy":
        (d / "in.npy").write_bytes(b"not a numpy file at all")
    elif kind == "truncated-npy":
        np.save(d / "in.npy", x)
        (d / "in.npy").write_bytes((d / "in.npy").read_bytes()[:100])
    elif kind == "missing-file":
        pass
    elif kind == "unknown-name":
        np.save(d / "in.npy", x)
        args = ["-i", f"nope={d / 'in.npy'}"]
    elif kind == "too-many":
        np.save(d / "in.npy", x)
        args = ["-i", str(d / "in.npy"), "-i", str(d / "in.npy")]
    if arr is not None:
        np.save(d / "in.npy", arr)
    if args is None:
        name = "x" if fixture == "mlp" else "idx"
        args = ["-i", f"{name}={d / 'in.npy'}"]
    obs = Obs(expect=expect)
    out = d / "out"
    c = obs.cli(["run", ctx.artifact(fixture), *args, "-o", out], timeout=90)
    if c.status == "ok" and arr is not None and expect != ERROR:
        got = np.load(out / "y.npy")
        obs.wrong = checks.compare(_oracle(fixture, {"x": arr}), [got], "graphopt run's output differs from the oracle")
    return obs


def cases(seed: int) -> list:
    out = []
    for i, name in enumerate(BAD_INPUTS):
        out.append(case("runtime-inputs", name, run_bad_input, args=dict(name=name), needs=("mlp",), sample=i % 3 == 0,
                        what=f"CompiledModel(mlp).run({name} input)"))
    for p in ("nan", "inf", "neg-inf", "nan-row"):
        out.append(case("runtime-nan", f"mlp.{p}", run_mlp_nan, args=dict(pattern=p), needs=("mlp",), sample=p == "nan",
                        what=f"CompiledModel(MatMul+Add+Relu) on an input with {p}"))
    outputs = [o.name for o in models.load("numerics").graph.output]
    for p in PATTERNS:
        for o in outputs:
            out.append(case("runtime-nan", f"{o}.{p}", run_numerics, args=dict(pattern=p, output=o), needs=("numerics",),
                            sample=p == "nan-one" and o.startswith(("o4_", "o8_", "o_max", "o_clip", "o_mm")),
                            what=f"CompiledModel(numerics) output {o} on an input with {p}"))
    for fx in INDEXED:
        for which in BAD_INDEX:
            out.append(case("runtime-indices", f"{fx}.{which}", run_index, args=dict(fixture=fx, which=which), needs=(fx,),
                            sample=which in ("big", "valid") and fx == "gather",
                            what=f"CompiledModel({fx}) with index {BAD_INDEX[which]}"))
    for kind in ("ok", "nchw-swapped", "batch-2", "nan", "float64"):
        out.append(case("runtime-inputs", f"tiny_cnn.{kind}", run_cnn_input, args=dict(kind=kind), needs=("tiny_cnn",),
                        what=f"CompiledModel(tiny_cnn).run({kind} input)"))
    for fx, kind in [("mlp", k) for k in ("ok", "float64", "big-endian", "nan", "pickled", "not-npy", "truncated-npy",
                                           "missing-file", "unknown-name", "too-many")] + \
                    [("gather", "index-big"), ("gather", "index-neg")]:
        out.append(case("runtime-cli", f"{fx}.{kind}", run_cli, args=dict(fixture=fx, kind=kind), needs=(fx,),
                        timeout=120, what=f"graphopt run {fx}/ -i <{kind} .npy> -o out/"))
    return out + torch_cases()


def run_torch_embedding(ctx, index: int) -> Obs:
    """The issue's crash: a compiled nn.Embedding(10, 4) called with a bad index (torch
    raises IndexError; graphopt must refuse cleanly, not take the process down)."""
    import torch

    import graphopt

    torch.manual_seed(0)
    module = torch.nn.Embedding(10, 4).eval()
    example = torch.tensor([[1, 2, 3]])
    # torch's semantics (the module's): no negative indices, unlike ONNX's Gather.
    obs = Obs(expect=ACCEPT if 0 <= index < 10 else ERROR)
    with obs.call("graphopt.optimize(nn.Embedding(10, 4))"):
        fast = graphopt.optimize(module, (example,))
    if obs.status != "ok":
        obs.expect = ACCEPT  # compiling a valid module must work
        return obs
    idx = torch.tensor([[1, index, 3]])
    with obs.call(f"compiled_embedding(tensor([[1, {index}, 3]]))"):
        got = fast(idx)
        with torch.no_grad():
            want = module(idx)
        obs.wrong = checks.compare([want.numpy()], [got.detach().numpy()], "the compiled nn.Embedding differs from torch")
    return obs


def torch_cases() -> list:
    return [case("runtime-indices", f"torch-embedding.{i}", run_torch_embedding, args=dict(index=i), timeout=300,
                 what=f"graphopt.optimize(nn.Embedding(10, 4))(tensor([[1, {i}, 3]]))") for i in (100000000, -11, 10, 5)]
