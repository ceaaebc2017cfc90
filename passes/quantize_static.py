"""Static activation quantization (opt-in, in no -O level): the float32 activation A of
each MatMul or Gemm whose weight is already quantized (run quantize-weights first) is
quantized with a fixed u8 scale and zero point taken from a calibration table
(`graphopt.calibration`: the activation's range over sample inputs, stretched to hold 0):

    xq = QuantizeLinear(A, s, z)        # u8: clip(round(A / s) + z, 0, 255)
    A' = DequantizeLinear(xq, s, z)     # (xq - z) * s

feeding the matmul, so ``A' B`` is an integer sum the integer kernel
(`codegen.kernels.idense`) computes exactly in int32. Unlike quantize-dynamic nothing is
measured at run time, and values outside the calibrated range saturate. The graph stays
standard QDQ ONNX that onnxruntime runs.

``table``: the calibration table's JSON file. An activation the table has no range for
stays float (explained); nodes named in ``exclude`` (``a``, or ``(a,b)``) too. Each
quantized activation is one application (``quantize-static.activation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Optional

import numpy as np

from graphopt.calibration import CalibrationTable
from graphopt.errors import GraphoptError
from graphopt.ir import Graph, Node, Provenance, TensorData, Value
from graphopt.ops import build
from graphopt.pipeline.base import register_pass
from graphopt.pipeline.errors import PassOptionError

from .quantize_dynamic import ActivationQuantizer

RULE = "quantize-static.activation"


@register_pass
@dataclass
class QuantizeStatic(ActivationQuantizer):
    name = "quantize-static"
    summary = ("calibrated int8 activations for MatMul/Gemm with quantized weights (QuantizeLinear + "
               "DequantizeLinear with a fixed u8 scale from a calibration table; opt-in, after quantize-weights)")
    rule = RULE
    min_opset = 10

    table: str = ""             # the calibration table (JSON, `graphopt.calibration.CalibrationTable.save`)
    exclude: str = ""           # node names whose activation stays float32: a, or (a,b)

    @cached_property
    def _table(self) -> CalibrationTable:
        if not self.table:
            raise PassOptionError("quantize-static needs table=PATH, a calibration table "
                                  "(graphopt quantize --calibration DATA.npz --save-table PATH writes one)")
        try:
            return CalibrationTable.load(self.table)
        except GraphoptError as e:
            raise PassOptionError(f"quantize-static: {e}") from None

    def _refusal(self, a: Value) -> Optional[str]:
        if a.name not in self._table.ranges:
            return f"the calibration table has no range for its activation %{a.name}"
        return None

    def _quantize(self, graph: Graph, node: Node, a: Value) -> Value:
        qp = self._table.qparams(a.name)
        prov = Provenance(RULE, (node.name,))
        first = self.first_reader(graph, a)
        s = graph.add_constant(graph.fresh_name(a.name + "_scale"), TensorData.from_numpy(np.array(qp.scale, np.float32)))
        z = graph.add_constant(graph.fresh_name(a.name + "_zero_point"), TensorData.from_numpy(np.array(qp.zero, np.uint8)))
        q = build(graph, "QuantizeLinear", [a, s, z], name=a.name + "_quantize", before=first, provenance=prov)
        dq = build(graph, "DequantizeLinear", [q.output, s, z], name=a.name + "_dequantize", before=first,
                   provenance=prov)
        return dq.output
