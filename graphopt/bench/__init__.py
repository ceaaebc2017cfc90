"""The benchmark machinery behind ``benchmarks/suite.py`` and ``graphopt bench``.

    harness   Entry, interleaved timing, medians, markdown, JSON, the ratio bar chart
    flops     FLOPs of a model, counted on graphopt's IR
    cases     the models (light CNNs, MLP, BERT, GPT-2) and user ONNX files as on-disk cases
    systems   graphopt, onnxruntime, OpenVINO, TVM from_onnx, torch eager, torch.compile
    workers   one process per system, driven over a pipe
    runner    the parent: machine peak, interleaved rounds, the report
"""
