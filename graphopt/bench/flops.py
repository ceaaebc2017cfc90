"""Floating-point operations of one inference, counted over graphopt's IR.

MatMul, Gemm, Conv and ConvTranspose count two FLOPs per multiply-accumulate (plus one per
output element for a bias); pooling counts one per window element; other compute ops count
one per output element (reductions: per input element); ops that only move or describe data
(Reshape, Transpose, Gather, Shape, Concat, ...) count nothing. The total is an estimate
good to a few percent on real networks, where the MAC-counted ops dominate.

Shapes must be static. Symbolic dimensions are bound from ``bindings`` (a symbol -> int map,
e.g. taken from example inputs with `bind_symbols`); a value whose shape stays unknown
counts nothing and is listed in ``FlopCount.unknown``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Optional

# Ops that move or describe data but compute nothing.
MOVEMENT = frozenset({
    "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
    "GatherElements", "GatherND", "Shape", "Size", "Identity", "Constant", "ConstantOfShape", "Expand",
    "Tile", "Pad", "Cast", "CastLike", "Range", "Dropout", "DepthToSpace", "SpaceToDepth", "ScatterND",
    "ScatterElements", "NonZero", "OneHot", "Trilu", "EyeLike", "Optional", "SequenceConstruct",
})
REDUCTIONS = frozenset({
    "ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
    "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "GlobalAveragePool", "GlobalMaxPool",
    "ArgMax", "ArgMin", "LpNormalization",
})
# Rough per-element costs of the normalizations and activations that do several operations.
PER_ELEMENT = {
    "Softmax": 5, "LogSoftmax": 5, "LayerNormalization": 8, "BatchNormalization": 2,
    "InstanceNormalization": 8, "GroupNormalization": 8, "LRN": 6, "Gelu": 8, "Erf": 4,
    "Tanh": 4, "Sigmoid": 4, "Exp": 2, "Log": 2, "Sqrt": 2, "Pow": 2, "HardSwish": 3, "Mish": 8,
}


@dataclass
class FlopCount:
    total: int = 0
    by_op: dict = field(default_factory=dict)
    unknown: list = field(default_factory=list)   # node names whose shapes were not static

    @property
    def gflop(self) -> float:
        return self.total / 1e9

    def add(self, op: str, n: int) -> None:
        if n:
            self.total += int(n)
            self.by_op[op] = self.by_op.get(op, 0) + int(n)


def _shape(v, bindings: Mapping[str, int]) -> Optional[tuple]:
    if v is None or v.type.shape is None:
        return None
    out = []
    for d in v.type.shape:
        if isinstance(d, str):
            if d not in bindings:
                return None
            d = bindings[d]
        out.append(int(d))
    return tuple(out)


def _numel(shape) -> int:
    return math.prod(shape) if shape is not None else 0


def node_flops(node, bindings: Mapping[str, int] = {}) -> Optional[int]:
    """FLOPs of one node, or None when its shapes are not known."""
    op = node.op_type
    if node.domain not in ("", "ai.onnx") and not node.subgraphs():
        return 0
    if op in MOVEMENT:
        return 0
    outs = [_shape(o, bindings) for o in node.outputs if o is not None]
    ins = [_shape(i, bindings) if i is not None else None for i in node.inputs]
    if not outs or outs[0] is None:
        return None
    out = outs[0]
    if op == "MatMul" or op == "MatMulInteger":
        a = ins[0]
        if a is None:
            return None
        k = a[-1] if len(a) >= 1 else 1
        return 2 * _numel(out) * k
    if op == "Gemm":
        a = ins[0]
        if a is None:
            return None
        k = a[0] if node.attr("transA", 0) else a[-1]
        return 2 * _numel(out) * k + (_numel(out) if len(ins) > 2 and ins[2] is not None else 0)
    if op == "Conv":
        w = ins[1]
        if w is None:
            return None
        macs_per_out = math.prod(w[1:])    # C_in / group * kernel
        return 2 * _numel(out) * macs_per_out + (_numel(out) if len(ins) > 2 and ins[2] is not None else 0)
    if op == "ConvTranspose":
        x, w = ins[0], ins[1]
        if x is None or w is None:
            return None
        # each input element multiplies C_out/group * kernel weights: w is [C_in, C_out/group, k...]
        return 2 * _numel(x) * math.prod(w[1:]) + (_numel(out) if len(ins) > 2 and ins[2] is not None else 0)
    if op in ("MaxPool", "AveragePool", "LpPool"):
        k = node.attr("kernel_shape", ())
        return _numel(out) * (math.prod(k) if k else 1)
    if op in REDUCTIONS:
        return _numel(ins[0]) if ins and ins[0] is not None else _numel(out)
    if op == "Einsum":
        return None if ins[0] is None else 2 * max(_numel(out), max(_numel(i) for i in ins if i is not None))
    subs = node.subgraphs()
    if subs:  # a fused group (or a control-flow body): count what is inside
        total = 0
        for sg in subs:
            c = count_flops(sg, bindings)
            if c.unknown:
                return None
            total += c.total
        return total
    return PER_ELEMENT.get(op, 1) * max(_numel(s) for s in outs if s is not None)


def count_flops(graph, bindings: Optional[Mapping[str, int]] = None) -> FlopCount:
    """FLOPs of one run of ``graph`` (see the module docstring for what counts)."""
    bindings = dict(bindings or {})
    fc = FlopCount()
    for node in graph.nodes:
        n = node_flops(node, bindings)
        if n is None:
            fc.unknown.append(node.name)
        else:
            fc.add(node.op_type, n)
    return fc


def bind_symbols(graph, inputs) -> dict:
    """Symbol -> size for the graph inputs' symbolic dimensions, from example arrays
    (a sequence in input order or a name -> array mapping)."""
    if isinstance(inputs, Mapping):
        arrays = [inputs.get(v.name) for v in graph.inputs]
    else:
        arrays = list(inputs)
    out: dict = {}
    for v, a in zip(graph.inputs, arrays):
        if a is None or v.type.shape is None:
            continue
        for d, n in zip(v.type.shape, getattr(a, "shape", ())):
            if isinstance(d, str):
                out[d] = int(n)
    return out


def model_flops(model, inputs=None) -> FlopCount:
    """FLOPs of an ONNX model (path, bytes or ModelProto) or a graphopt Graph, imported as is
    (no passes), with symbolic dimensions bound from ``inputs`` when given."""
    from ..ir import Graph

    if isinstance(model, Graph):
        g = model
    else:
        from ..frontend.onnx_import import import_onnx

        g = import_onnx(model)
    return count_flops(g, bind_symbols(g, inputs) if inputs is not None else None)
