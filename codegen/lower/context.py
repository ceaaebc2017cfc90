"""The state of one lowering: the Relax block builder, the values lowered so far, shape
symbols, the constants that become parameters of ``main``; and `SubCtx`, the state of a
subgraph's function (If/Loop branches, fused groups) inside it."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...ir import DType, Graph, Node, Value
from .errors import LoweringError
from .helpers import tvm_dtype

# Constants with at most this many elements are embedded in the module; larger ones are
# parameters.
EMBED_LIMIT = 64


class Deferred:
    """A node's output not lowered yet (`Ctx.defer`)."""

    def __init__(self, node: Node, fn):
        self.node, self.fn = node, fn


class Ctx:
    def __init__(self, graph: Graph, folded: dict[str, np.ndarray], target_kind: str = "cpu"):
        import tvm
        from tvm import relax

        self.tvm = tvm
        self.relax = relax
        self.graph = graph
        self.bb = relax.BlockBuilder()
        self.syms: dict[str, object] = {}
        self.env: dict[int, object] = {}
        self.known: dict[str, np.ndarray] = folded   # constant values by value name
        self.param_vars: list = []
        self.param_vals: list[np.ndarray] = []
        self.param_names: list[str] = []
        self.node: Optional[Node] = None
        # (nodes, last reader index by value id, segment start, node being lowered): set by
        # emit_body for the dataflow block being built, read by barrier().
        self.segment: Optional[tuple] = None
        # (op, node, message) of nodes whose lowering refused them, when lower() collects
        # them all before failing; None: fail at the first.
        self.refused: Optional[list] = None
        # The target kind ("cpu", "cuda") whose lowerings (registry.TARGET_TABLES) shadow
        # the generic ones.
        self.target_kind = target_kind
        # relax var name -> the graphopt values (node, output index, value) it holds, for
        # the build's kernel map (codegen.kernel_map); main's function only (not SubCtx's)
        self.var_values: dict[str, list] = {}
        # lowered expressions several nodes share, by a key their lowering chooses (the
        # integer kernel's packed activation, read by the q, k and v projections alike);
        # a SubCtx has its own, as it has its own env
        self.memo: dict[tuple, object] = {}

    # symbols -----------------------------------------------------------
    def sym(self, name: str):
        v = self.syms.get(name)
        if v is None:
            v = self.tvm.tirx.Var(name, "int64")
            self.syms[name] = v
        return v

    def shape_of(self, v: Value) -> list:
        if v.type.shape is None:
            raise self.fail(f"value %{v.name} has unknown rank")
        return [d if isinstance(d, int) else self.sym(d) for d in v.type.shape]

    def sinfo(self, v: Value):
        return self.relax.TensorType(self.shape_of(v), tvm_dtype(v.type.dtype))

    # values ------------------------------------------------------------
    def const_of(self, v: Optional[Value]) -> Optional[np.ndarray]:
        if v is None:
            return None
        if v.name in self.known:
            return self.known[v.name]
        if v.const is not None and not v.const.is_elided:
            return v.const.numpy()
        return None

    def param(self, arr: np.ndarray, hint: str):
        arr = np.array(arr, order="C")
        var = self.relax.Var(f"p{len(self.param_vars)}", self.relax.TensorType(list(arr.shape), str(arr.dtype)))
        self.param_vars.append(var)
        self.param_vals.append(arr)
        self.param_names.append(hint)
        return var

    def array(self, arr: np.ndarray, hint: str = "const"):
        """A numpy array as a relax expression (embedded if small, else a parameter)."""
        arr = np.asarray(arr)
        if arr.dtype == np.bool_ or arr.size <= EMBED_LIMIT:
            return self.relax.const(arr, str(arr.dtype))
        return self.param(arr, hint)

    def defer(self, node: Node, fn) -> "Deferred":
        """Stand for ``node``'s output until something reads it, then lower it with ``fn``
        there: for a node computed from constants that its readers may absorb (a quantized
        weight's DequantizeLinear, which the quantized matmul kernel reads as integers), so
        that nothing of it is emitted, and no float copy of the weight becomes a parameter,
        unless some reader needs it after all."""
        return Deferred(node, fn)

    def is_deferred(self, v: Optional[Value]) -> bool:
        return v is not None and isinstance(self.env.get(id(v)), Deferred)

    def _force(self, d: "Deferred"):
        node, self.node = self.node, d.node
        try:
            res = d.fn(self, d.node)
        finally:
            self.node = node
        res = res if isinstance(res, (list, tuple)) else [res]
        for o, e in zip(d.node.outputs, res):
            if o is None:
                continue
            if isinstance(e, self.relax.DataflowVar):  # usable in the blocks after this one too
                e = self.bb.emit_output(e)
            self.env[id(o)] = e
            self.record(d.node, d.node.outputs.index(o), o, e)

    def get(self, v: Optional[Value]):
        if v is None:
            return None
        e = self.env.get(id(v))
        if isinstance(e, Deferred):
            self._force(e)
            e = self.env[id(v)]
        if e is not None:
            return e
        c = self.const_of(v)
        if c is None:
            raise self.fail(f"value %{v.name} is not defined")
        if v.type.dtype is DType.STRING:
            raise self.fail(f"string constant %{v.name} cannot be lowered")
        e = self.array(c.astype(tvm_dtype(v.type.dtype)) if v.type.dtype is not DType.BFLOAT16 else c, v.name)
        self.env[id(v)] = e
        return e

    def emit(self, expr):
        return self.bb.emit(expr)

    def record(self, node: Node, i: int, v: Value, e) -> None:
        """Note that relax var ``e`` holds ``node``'s output ``i`` (``v``)."""
        if isinstance(e, self.relax.Var):
            entry = {"node": node.name, "op": node.qualified_op, "output": i, "value": v.name}
            self.var_values.setdefault(e.name, []).append(entry)

    def barrier(self, keep=()) -> list:
        """End the dataflow block here and open another, so that TVM cannot fuse (nor
        reorder) what follows with what came before; returns ``keep`` usable after it.
        Needed before binding a symbol with match_cast: FuseOps tracks dependencies through
        variables, not symbols, and may hoist a use of the symbol above its binding."""
        from tvm import relax

        bb, seg = self.bb, self.segment
        if seg is None or not bb.current_block_is_dataflow():
            return list(keep)
        nodes, last_read, start, pos = seg
        for n in nodes[start:pos]:
            for o in n.outputs:
                if o is not None and last_read.get(id(o), -1) >= pos and isinstance(self.env.get(id(o)), relax.DataflowVar):
                    self.env[id(o)] = bb.emit_output(self.env[id(o)])
        kept = [bb.emit_output(e) if isinstance(e, relax.DataflowVar) else e for e in keep]
        block = bb._end_block()
        if len(block.bindings) > 0:
            bb._func._blocks.append(block)
        bb._begin_dataflow_block()
        return kept

    def te(self, fn, *args, **kwargs):
        return self.bb.emit_te(fn, *args, **kwargs)

    def fail(self, msg: str) -> LoweringError:
        n = self.node
        where = f"node {n.name!r} ({n.qualified_op})" if n is not None else "graph"
        return LoweringError(f"{where}: {msg}")

    def attr(self, node: Node, name: str, default=None):
        from ...ops import attr_value

        return attr_value(node, name, default)

    def ints_input(self, node: Node, i: int, what: str) -> Optional[list[int]]:
        if i >= len(node.inputs) or node.inputs[i] is None:
            return None
        c = self.const_of(node.inputs[i])
        if c is None:
            raise self.fail(f"{what} (input {i}) must be a constant to lower; it is computed at run time")
        return [int(x) for x in np.asarray(c).reshape(-1)]

    def out_shape(self, node: Node, i: int = 0, like=None) -> list:
        """The IR's output shape as relax dims; an unknown symbol becomes -1 (once)."""
        v = node.outputs[i]
        if v.type.shape is None:
            raise self.fail(f"output %{v.name} has unknown rank")
        dims, unknown = [], 0
        for d in v.type.shape:
            if isinstance(d, int):
                dims.append(d)
            elif d in self.syms:
                dims.append(self.syms[d])
            else:
                dims.append(-1)
                unknown += 1
        if unknown > 1:
            raise self.fail(f"output shape {v.type} has {unknown} dims not known at compile time")
        return dims

    def rank(self, v: Value) -> int:
        if v.type.shape is None:
            raise self.fail(f"value %{v.name} has unknown rank")
        return len(v.type.shape)


class SubCtx(Ctx):
    """The lowering context of a subgraph's function: its own symbols (each function
    binds its shapes from its own parameters) and parameters routed up to ``main``."""

    def __init__(self, parent: Ctx, graph: Graph):
        super().__init__(graph, parent.known, parent.target_kind)
        self.bb = parent.bb
        self.parent = parent
        self.routed: list = []   # per entry of param_vars: the expression the caller passes
        self.refused = parent.refused

    def param(self, arr, hint: str):
        var = super().param(arr, hint)
        self.routed.append(self.parent.param(arr, hint))
        return var
