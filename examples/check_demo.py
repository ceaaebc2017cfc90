"""Part of the demo: runs the compiled artifact and onnxruntime on the same random input,
prints both timings and the largest difference, and saves the input for `graphopt run`.

    python examples/check_demo.py MODEL.onnx ARTIFACT_DIR INPUT.npy
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

import graphopt


def median_ms(fn, n=50) -> float:
    fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def main(model_path: str, artifact: str, input_path: str) -> int:
    compiled = graphopt.load(artifact)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    np.save(input_path, x)
    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[0]
    got = compiled(x)
    err = float(np.abs(got - ref).max())
    print(f"graphopt (TVM) vs onnxruntime: max abs difference {err:.2e} over {ref.size} logits")
    print(f"median latency: graphopt {median_ms(lambda: compiled(x)):.3f} ms, "
          f"onnxruntime {median_ms(lambda: sess.run(None, {'input': x})):.3f} ms (50 runs each)")
    if err > 1e-4:
        print("error: the compiled model disagrees with onnxruntime", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
