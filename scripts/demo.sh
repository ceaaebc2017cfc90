#!/usr/bin/env bash
# Sets everything up, then runs the main job on the model that ships in examples/:
# import it, run the -O1 pipeline with per-pass timing, verification and numeric checks,
# write the optimized ONNX, the IR text and the per-pass dumps, compile it through TVM
# for this CPU into an artifact folder, and run it against onnxruntime. All under out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out/demo
G=.venv/bin/graphopt
echo "== the imported IR (graphopt show examples/tiny_cnn.onnx)"
$G show examples/tiny_cnn.onnx
echo
echo "== graphopt opt -O1"
$G opt examples/tiny_cnn.onnx -O1 -o out/demo/tiny_cnn.opt.onnx \
    --verify-each --time-passes --check-numerics --dump-ir after-all --dump-dir out/demo/dumps
$G opt out/demo/tiny_cnn.opt.onnx -O0 -o out/demo/tiny_cnn.opt.ir
echo
echo "== the optimized IR (out/demo/tiny_cnn.opt.ir)"
$G show out/demo/tiny_cnn.opt.onnx
echo
echo "== graphopt compile (TVM, this CPU) and graphopt run"
rm -rf out/demo/tiny_cnn.artifact
$G compile examples/tiny_cnn.onnx -o out/demo/tiny_cnn.artifact
.venv/bin/python examples/check_demo.py examples/tiny_cnn.onnx out/demo/tiny_cnn.artifact out/demo/input.npy
$G run out/demo/tiny_cnn.artifact --input input=out/demo/input.npy
echo
echo "wrote: out/demo/tiny_cnn.opt.onnx, out/demo/tiny_cnn.opt.ir, out/demo/dumps/, out/demo/tiny_cnn.artifact/"
