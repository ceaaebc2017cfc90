#!/usr/bin/env bash
# Sets everything up, then runs the main job on the model that ships in examples/:
# import it, run the -O1 pipeline with per-pass timing, verification and numeric checks,
# and write the optimized ONNX, the IR dumps and a report under out/demo/.
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
echo "wrote: out/demo/tiny_cnn.opt.onnx, out/demo/tiny_cnn.opt.ir, out/demo/dumps/"
