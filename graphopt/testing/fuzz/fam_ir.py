"""Truncated, bit-flipped and hand-corrupted `.ir` text files (graphs printed with
``print_ir(g, full_constants=True)``, then damaged), through `graphopt.io.load_graph` and
the CLI (show, opt)."""

from __future__ import annotations

import random
import re
from functools import lru_cache

from . import checks, models
from .case import case
from .outcome import ACCEPT, EITHER, ERROR, Obs

BASES = ["mlp", "elementwise", "gather", "tiny_cnn"]


@lru_cache(maxsize=None)
def ir_text(base: str) -> str:
    import graphopt

    return graphopt.print_ir(graphopt.import_onnx(models.model_bytes(base)), full_constants=True)


def _sub(pattern: str, repl: str, count: int = 1):
    return lambda t: re.sub(pattern, repl, t, count=count)


def _b64(fn):
    """Apply ``fn`` to the first base64 payload."""
    def edit(t):
        m = re.search(r'base64<"([^"]*)">', t)
        return t[:m.start(1)] + fn(m.group(1)) + t[m.end(1):]
    return edit


# name: (base, edit, expectation)
HAND = {
    "unchanged": ("elementwise", lambda t: t, ACCEPT),
    "unchanged-gather": ("gather", lambda t: t, ACCEPT),
    "extra-blank-lines": ("elementwise", lambda t: t.replace("\n", "\n\n"), EITHER),
    "b64-bad-char": ("gather", _b64(lambda p: p[:10] + "!" + p[11:]), ERROR),
    "b64-equals-inside": ("gather", _b64(lambda p: p[:12] + "=" + p[12:]), ERROR),
    "b64-equals-replaces": ("gather", _b64(lambda p: p[:12] + "==" + p[14:]), ERROR),
    "b64-short": ("gather", _b64(lambda p: p[:-8]), ERROR),
    "b64-long": ("gather", _b64(lambda p: "AAAA" + p), ERROR),
    "b64-empty": ("gather", _b64(lambda p: ""), ERROR),
    "b64-unicode": ("gather", _b64(lambda p: p[:8] + "\u00e9" + p[9:]), ERROR),
    "bad-json-escape": ("elementwise", _sub(r'opset\(""', r'opset("\\q"'), ERROR),
    "bad-unicode-escape": ("elementwise", _sub(r'opset\(""', r'opset("\\ud800"'), EITHER),
    "unterminated-string": ("elementwise", _sub(r'opset\(""', r'opset("'), ERROR),
    "string-for-ints": ("elementwise", _sub(r"perm=\[1, 0\]", 'perm="ab"'), ERROR),
    "float-for-ints": ("elementwise", _sub(r"perm=\[1, 0\]", "perm=[1.5, 0.5]"), ERROR),
    "perm-out-of-range": ("elementwise", _sub(r"perm=\[1, 0\]", "perm=[1, 7]"), ERROR),
    "int-too-big": ("elementwise", _sub(r"keepdims=0", "keepdims=99999999999999999999999999"), ERROR),
    "unknown-attr": ("elementwise", _sub(r"keepdims=0", "keepdims=0, bogus=3"), ERROR),
    "unknown-op": ("elementwise", _sub(r"Sigmoid\(", "Sigmoidx("), ERROR),
    "unknown-domain-op": ("elementwise", _sub(r"Sigmoid\(", "com.nowhere.Sigmoid("), ERROR),
    "dangling-use": ("elementwise", _sub(r"Add\(%a, %t\)", "Add(%a, %zz)"), ERROR),
    "duplicate-def": ("elementwise", _sub(r"%b: f32\[3, 4\] =", "%a: f32[3, 4] ="), ERROR),
    "use-before-def": ("elementwise", _sub(r"Mul\(%x, %s\)", "Mul(%x, %c)"), ERROR),
    "wrong-dtype": ("elementwise", _sub(r"%c: f32\[3, 4\]", "%c: i64[3, 4]"), ERROR),
    "wrong-shape": ("elementwise", _sub(r"%d: f32\[4, 3\]", "%d: f32[4, 4]"), ERROR),
    "wrong-rank": ("elementwise", _sub(r"%d: f32\[4, 3\]", "%d: f32[12]"), ERROR),
    "unknown-dtype": ("elementwise", _sub(r"%c: f32", "%c: f33"), ERROR),
    "negative-dim": ("elementwise", _sub(r"%x: f32\[3, 4\]", "%x: f32[-3, 4]"), ERROR),
    "huge-dim-input": ("elementwise", _sub(r"%x: f32\[3, 4\]", "%x: f32[1099511627776, 4]"), ERROR),
    "huge-const": ("gather", _sub(r"%table: f32\[10, 4\]", "%table: f32[1048576, 1048576]"), ERROR),
    "dense-extra": ("elementwise", _sub(r"dense<\[2, 6\]>", "dense<[2, 6, 7]>"), ERROR),
    "dense-short": ("elementwise", _sub(r"dense<\[2, 6\]>", "dense<[2]>"), ERROR),
    "dense-word": ("elementwise", _sub(r"dense<\[2, 6\]>", "dense<[2, x]>"), ERROR),
    "dense-float-in-int": ("elementwise", _sub(r"dense<\[2, 6\]>", "dense<[2.5, 6]>"), ERROR),
    "dense-nan": ("elementwise", _sub(r"dense<\[-?[0-9.e-]+,", "dense<[nan,"), EITHER),
    "dense-deep-nesting": ("elementwise", _sub(r"dense<\[2, 6\]>", "dense<" + "[" * 50000 + "2" + "]" * 50000 + ">"), ERROR),
    "return-undefined": ("elementwise", _sub(r"return %y", "return %q"), ERROR),
    "return-nothing": ("elementwise", _sub(r"return %y", "return"), ERROR),
    "missing-brace": ("elementwise", lambda t: t.rstrip().rstrip("}"), ERROR),
    "two-graphs": ("elementwise", lambda t: t + "\n" + t, ERROR),
    "opset-999": ("elementwise", _sub(r'opset\("": 21\)', 'opset("": 999)'), ERROR),
    "opset-word": ("elementwise", _sub(r'opset\("": 21\)', 'opset("": x)'), ERROR),
    "nul-byte": ("elementwise", _sub(r"Sigmoid", "Sig\0moid"), ERROR),
    "empty": ("elementwise", lambda t: "", ERROR),
    "only-header": ("elementwise", lambda t: t.splitlines()[0], ERROR),
    "const-rebinds-input": ("elementwise", _sub(r"const %s:", "const %x:"), ERROR),
    "op-arity": ("elementwise", _sub(r"Sigmoid\(%b\)", "Sigmoid(%b, %b)"), ERROR),
}


def _write(path, text_or_bytes) -> None:
    if isinstance(text_or_bytes, bytes):
        path.write_bytes(text_or_bytes)
    else:
        path.write_text(text_or_bytes, encoding="utf-8", errors="surrogatepass")


def damaged(base: str, kind: str, arg) -> tuple:
    """(file content, expectation) of the damaged text."""
    if kind == "hand":
        b, edit, expect = HAND[arg]
        return edit(ir_text(b)), expect
    raw = ir_text(base).encode()
    if kind == "truncate":
        cut = raw[:arg]
        # A cut after the closing brace leaves the graph whole.
        return cut, EITHER if cut.rstrip().endswith(b"}") else ERROR
    b = bytearray(raw)
    pos, bit = arg
    b[pos] ^= 1 << bit
    return bytes(b), EITHER


def run_ir(ctx, base: str, kind: str, arg, via: str) -> Obs:
    content, expect = damaged(base, kind, arg)
    obs = Obs(expect=expect)
    d = ctx.case_dir(f"ir-{base}-{kind}")
    path = d / "model.ir"
    _write(path, content)
    if via == "api":
        import graphopt
        from graphopt.io import load_graph

        with obs.call(f"graphopt.io.load_graph({path.name}) + verify + export_onnx + O1"):
            g = load_graph(path)
            graphopt.verify(g)
            m0 = graphopt.export_onnx(g)
            m1 = graphopt.export_onnx(graphopt.run_passes(g, "O1"))
            obs.wrong = _judge(m0, m1)
    elif via == "show":
        obs.cli(["show", path], timeout=90)
    else:
        out = d / "out.ir"
        c = obs.cli(["opt", path, "-O1", "-o", out], timeout=90)
        left = checks.leftovers(d, {"model.ir", "out.ir"})
        if left or (c.status != "ok" and out.exists()):
            obs.partial = f"left next to the output: {left or ['out.ir']}"
    return obs


def _judge(m0, m1):
    """A parsed graph is acceptable when its export passes onnx's full check and -O1 keeps
    its numbers on the oracle."""
    import onnx

    data = m0.SerializeToString()
    try:
        onnx.checker.check_model(m0, full_check=True)
    except Exception as e:  # noqa: BLE001
        return f"the parsed graph's export fails onnx's full check: {str(e).splitlines()[0][:200]}"
    feeds = checks.feeds_for(m0)
    if feeds is None:
        return None
    try:
        checks.run_ort(data, feeds)
    except Exception as e:  # noqa: BLE001
        return f"the parsed graph does not run on onnxruntime: {str(e).splitlines()[0][:200]}"
    return checks.exported_matches(data, m1, feeds)


def cases(seed: int) -> list:
    rng = random.Random(seed + 1)
    out = []
    vias = ["api", "api", "api", "show", "api", "api", "api", "opt", "api", "api", "api"]
    for i, name in enumerate(HAND):
        for via in ("api",) + (("show",), ("opt",), (), ())[i % 4]:
            out.append(case("ir-corrupt", f"{name}.{via}", run_ir, args=dict(base="", kind="hand", arg=name, via=via),
                            sample=via == "api" and i % 3 == 0, what=f"{via}: .ir file, {name}"))
    for base in BASES:
        n = len(ir_text(base).encode())
        for j in range(10):
            pos = rng.randrange(n) if j else n - 1
            via = vias[j % len(vias)]
            out.append(case("ir-truncated", f"{base}@{pos}", run_ir, args=dict(base=base, kind="truncate", arg=pos, via=via),
                            sample=j in (1, 2) and via == "api", what=f"{via}: .ir of {base} cut at byte {pos} of {n}"))
        for j in range(24):
            # Flips mostly outside the long base64 payloads, where the structure is.
            pos = rng.randrange(min(n, 1200)) if j % 4 else rng.randrange(n)
            bit = rng.randrange(8)
            via = "api" if j % 12 else ("show", "opt")[j // 12]
            out.append(case("ir-bitflip", f"{base}@{pos}.{bit}", run_ir,
                            args=dict(base=base, kind="flip", arg=(pos, bit), via=via),
                            sample=j in (1, 2) and via == "api",
                            what=f"{via}: .ir of {base} with bit {bit} of byte {pos} flipped"))
    return out
