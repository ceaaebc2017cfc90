"""Truncated and bit-flipped ONNX models: the expectation comes from the spec (onnx's
full check, then onnxruntime), acceptance is checked against the oracle's numbers."""

from __future__ import annotations

import random

from . import checks, models
from .case import case
from .outcome import Obs

BASES = ["tiny_cnn", "mlp", "elementwise", "gather", "numerics"]


def _structural_offsets(name: str) -> list:
    """Byte offsets outside the initializers' raw data: flips there hit the graph's
    structure (names, types, dims, attributes) rather than weights."""
    blob = models.model_bytes(name)
    taken = bytearray(len(blob))
    for t in models.load(name).graph.initializer:
        if len(t.raw_data) >= 8:
            at = blob.find(t.raw_data)
            if at >= 0:
                taken[at:at + len(t.raw_data)] = b"\x01" * len(t.raw_data)
    return [i for i, v in enumerate(taken) if not v]


def damaged(base: str, kind: str, pos: int, bit: int = 0) -> bytes:
    blob = models.model_bytes(base)
    if kind == "truncate":
        return blob[:pos]
    b = bytearray(blob)
    b[pos] ^= 1 << bit
    return bytes(b)


def run_damaged(ctx, base: str, kind: str, pos: int, bit: int = 0, via: str = "api") -> Obs:
    data = damaged(base, kind, pos, bit)
    expect, why = checks.spec_expect(data)
    obs = Obs(expect=expect, note=why)
    run_model_bytes(ctx, obs, data, via, f"{base}-{kind}-{pos}")
    return obs


def run_model_bytes(ctx, obs: Obs, data: bytes, via: str, tag: str, api_input: str = "path") -> None:
    """Feed ``data`` to graphopt through the API (import, O1, export) or the CLI (show, or
    opt -O1 -o OUT), and judge what it accepts."""
    import onnx

    import graphopt

    d = ctx.case_dir(tag)
    path = d / "model.onnx"
    path.write_bytes(data)
    if via == "api":
        with obs.call(f"import_onnx({'<bytes>' if api_input == 'bytes' else path}) + run_passes(O1) + export_onnx"):
            g = graphopt.import_onnx(data if api_input == "bytes" else str(path))
            g = graphopt.run_passes(g, "O1")
            exported = graphopt.export_onnx(g)
            obs.wrong = _judge(data, exported)
    elif via == "show":
        obs.cli(["show", path], timeout=90)
    else:
        out = d / "out.onnx"
        c = obs.cli(["opt", path, "-O1", "-o", out], timeout=90)
        if c.status == "ok":
            obs.wrong = _judge(data, onnx.load(str(out))) if out.is_file() else "exit 0 but no output file"
        left = checks.leftovers(d, {"model.onnx", "out.onnx"})
        if left or (c.status != "ok" and out.exists()):
            obs.partial = f"left next to the output: {left or ['out.onnx']}"


def _judge(data: bytes, exported):
    import onnx

    try:
        original = onnx.load_from_string(data)
    except Exception:  # noqa: BLE001 - onnx cannot parse what graphopt accepted
        return "graphopt accepted bytes onnx cannot parse"
    return checks.exported_matches(data, exported, checks.feeds_for(original))


def cases(seed: int) -> list:
    rng = random.Random(seed)
    out = []
    per_base_cut, per_base_flip = 12, 32
    for base in BASES:
        n = len(models.model_bytes(base))
        cuts = sorted({max(1, int(n * f)) for f in [rng.random() for _ in range(per_base_cut)]} | {0, n - 1})
        for j, pos in enumerate(cuts):
            via = "api" if pos % 5 else ("show" if pos % 2 else "opt")
            out.append(case("onnx-truncated", f"{base}@{pos}", run_damaged, sample=j == 1 and via == "api",
                            args=dict(base=base, kind="truncate", pos=pos, via=via),
                            what=_what(via, f"{base}.onnx truncated to {pos} of {n} bytes")))
        struct = _structural_offsets(base)
        for k in range(per_base_flip):
            pos = rng.choice(struct) if k % 3 else rng.randrange(n)
            bit = rng.randrange(8)
            via = "api" if k % 8 else ("show" if k % 16 else "opt")
            out.append(case("onnx-bitflip", f"{base}@{pos}.{bit}", run_damaged, sample=k in (1, 2),
                            args=dict(base=base, kind="flip", pos=pos, bit=bit, via=via),
                            what=_what(via, f"{base}.onnx with bit {bit} of byte {pos} flipped")))
    return out


def _what(via: str, model: str) -> str:
    return {"api": f"import_onnx + O1 + export_onnx of {model}", "show": f"graphopt show ({model})",
            "opt": f"graphopt opt -O1 -o out.onnx ({model})"}[via]
