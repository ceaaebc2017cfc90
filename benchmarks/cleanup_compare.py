"""Node counts after graphopt -O1 and -O2 against onnxsim and onnxoptimizer on the nine light
models, in one run (optional tools: `pip install onnxsim onnxoptimizer`).

    .venv/bin/python benchmarks/cleanup_compare.py [--random-weights]

Each tool gets the same input: the model converted to opset 21 (what graphopt imports).
Every output is checked against onnxruntime on the same random input; a tool whose output
fails to run or disagrees is marked. --random-weights uses the randomized light models
(real weights as initializers) instead of the shipped ones (weights built by
ConstantOfShape).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import onnx


def count(model: onnx.ModelProto) -> tuple[int, int]:
    return len(model.graph.node), len(model.graph.initializer)


def check(model, reference_out, feeds) -> str:
    from graphopt.testing.oracle import oracle_session

    try:
        out = oracle_session(model.SerializeToString()).run(None, feeds)[0]
    except Exception as e:
        return f"fails to run: {str(e).splitlines()[0][:60]}"
    if out.shape != reference_out.shape or not np.allclose(out, reference_out, rtol=1e-4, atol=1e-5):
        return "numbers differ"
    return "ok"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random-weights", action="store_true")
    args = ap.parse_args(argv)

    import graphopt
    from graphopt.frontend.onnx_import import TARGET_OPSET, _promote_initializer_inputs
    from graphopt.testing.models import LIGHT_MODELS, light_model_inputs, light_model_path, randomized_light_model
    from graphopt.testing.oracle import oracle_session

    tools = {}
    try:
        import onnxsim

        tools["onnxsim"] = lambda m: onnxsim.simplify(m)[0]
    except ImportError:
        pass
    try:
        import onnxoptimizer

        tools["onnxoptimizer"] = lambda m: onnxoptimizer.optimize(m)
    except ImportError:
        pass

    def graphopt_at(level):
        return lambda m: graphopt.export_onnx(graphopt.run_passes(graphopt.import_onnx(m), level))

    tools = {"graphopt -O1": graphopt_at("O1"), "graphopt -O2": graphopt_at("O2"), **tools}
    rows = []
    for name in LIGHT_MODELS:
        original = randomized_light_model(name) if args.random_weights else onnx.load(str(light_model_path(name)))
        _promote_initializer_inputs(original)
        base = onnx.version_converter.convert_version(original, TARGET_OPSET)
        feeds = light_model_inputs(base)
        ref = oracle_session(base.SerializeToString()).run(None, feeds)[0]
        row = {"model": name, "input": count(base)}
        for tool, fn in tools.items():
            m = onnx.ModelProto()
            m.CopyFrom(base)
            t0 = time.perf_counter()
            try:
                out = fn(m)
                row[tool] = (*count(out), time.perf_counter() - t0, check(out, ref, feeds))
            except Exception as e:
                row[tool] = (None, None, time.perf_counter() - t0, f"failed: {str(e).splitlines()[0][:60]}")
        rows.append(row)
        print(f"{name}: done", file=sys.stderr, flush=True)
    names = list(tools)
    print(f"| model | input nodes (initializers) | " + " | ".join(names) + " |")
    print("|---|---:|" + "---:|" * len(names))
    for r in rows:
        cells = []
        for t in names:
            n, i, secs, status = r[t]
            cell = f"{n} ({i}), {secs:.1f} s" if n is not None else "-"
            if status != "ok":
                cell += f" [{status}]"
            cells.append(cell)
        print(f"| {r['model']} | {r['input'][0]} ({r['input'][1]}) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
