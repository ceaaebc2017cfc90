"""graphopt IR -> Relax IRModule, op by op, through a lowering table.

Every entry of `_TABLE` maps an ONNX (opset 21) op to a function ``(ctx, node) -> list of
relax expressions`` (one per node output; None for an omitted optional output). Most ops
map onto relax ops (which TVM legalizes to TIR through topi); the kernels that dominate CNN
run time (Conv, Gemm/MatMul with constant weights) are emitted as graphopt's own TE computes
over weights packed at compile time, which `codegen.schedules` then schedules by name.

Constants: small ones are embedded (`relax.const`); large ones become parameters of
``main`` (after its inputs), returned with the module, so that an artifact stores them
beside the library. Nodes computable from constants alone are folded before lowering by
the fold-constants pass without its size limit (onnxruntime evaluates them, as the oracle
would), so weight-building subgraphs such as ConstantOfShape cost nothing at run time.

Symbolic dims of the graph inputs become `tirx.Var`s shared by name, so a graph with a free
batch dim compiles once for every size.

A graphopt fused group (domain ``graphopt``, a node holding a subgraph) becomes one Relax
function marked ``Primitive`` that TVM compiles as one kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import GraphoptError, InternalError, UnsupportedOpError
from ..ir import DType, Graph, Node, Value, is_fused_group

# Constants with at most this many elements are embedded in the module; larger ones are
# parameters.
EMBED_LIMIT = 64


class LoweringError(GraphoptError):
    """A node whose lowering failed; the message names the node and op."""


class LoweringRefusedError(LoweringError, UnsupportedOpError):
    """Nodes of known ops whose lowering refused them (a case it does not handle, e.g. an
    axes input computed at run time), all of a graph's at once; ``ops`` lists (op, node)
    as UnsupportedOpError does, ``reasons`` each node's message."""

    def __init__(self, refused: list[tuple[str, str, str]], where: str = ""):
        UnsupportedOpError.__init__(self, [(op, node) for op, node, _ in refused], where)
        self.reasons = [why for _, _, why in refused]
        prefix = f"{where}: " if where else ""
        self.args = (f"{prefix}{len(refused)} node(s) cannot be lowered: " + "; ".join(self.reasons),)


_DT = {
    DType.FLOAT32: "float32", DType.FLOAT16: "float16", DType.FLOAT64: "float64", DType.BFLOAT16: "bfloat16",
    DType.INT8: "int8", DType.INT16: "int16", DType.INT32: "int32", DType.INT64: "int64", DType.UINT8: "uint8",
    DType.UINT16: "uint16", DType.UINT32: "uint32", DType.UINT64: "uint64", DType.BOOL: "bool",
}


def tvm_dtype(dt: DType) -> str:
    try:
        return _DT[dt]
    except KeyError:
        raise GraphoptError(f"dtype {dt.short} has no TVM lowering") from None


@dataclass
class Lowered:
    """The result of lowering a graph."""

    mod: object                      # tvm.IRModule with a relax function "main"
    input_names: list[str]
    output_names: list[str]
    params: list[np.ndarray]         # the values of main's parameters after its inputs
    param_names: list[str]
    folded: int = 0                  # nodes folded at compile time
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- table
_TABLE: dict[str, Callable] = {}


def _reg(*ops: str):
    def deco(fn):
        for op in ops:
            _TABLE[op] = fn
        return fn

    return deco


def lowered_ops() -> set[str]:
    """The ops (qualified names) this lowering supports."""
    return set(_TABLE) | {"Constant", "graphopt.FusedGroup"}


def unsupported_nodes(graph: Graph) -> list[tuple[str, str]]:
    """(op, node name) of every node (subgraphs included) that cannot be lowered."""
    bad = []
    for n in graph.walk():
        if is_fused_group(n):
            continue
        if n.qualified_op not in _TABLE:
            bad.append((n.qualified_op, n.name))
    return bad


# --------------------------------------------------------------------------- context
class Ctx:
    def __init__(self, graph: Graph, folded: dict[str, np.ndarray]):
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
        # graphopt's packed CPU kernels for Conv/Gemm/MatMul with constant weights (their
        # schedules are CPU ones); off for CUDA, where relax ops meet dlight's rules.
        self.packed_kernels = True

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

    def get(self, v: Optional[Value]):
        if v is None:
            return None
        e = self.env.get(id(v))
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
        from ..ops import attr_value

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


def _axis(ctx, n, name, r, default=0):
    """An axis attribute, counted from the front (ONNX allows negative axes)."""
    a = ctx.attr(n, name, default)
    return a + r if a < 0 else a


def _static(shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


# --------------------------------------------------------------------------- constant folding


# Folding for lowering has no size limit: weights must be concrete to compile, however
# they were built (the light models' ConstantOfShape weights reach 103M elements).
_UNLIMITED = 2 ** 40


def fold_for_lowering(graph: Graph) -> tuple[Graph, int]:
    """A copy of ``graph`` (constant payloads shared) with everything computable from
    constants folded by the fold-constants pass, which evaluates exactly as the oracle
    does; and how many nodes went away."""
    from ..ir.clone import clone_graph
    from ..pipeline import run_passes

    g = clone_graph(graph)
    before = sum(1 for _ in g.walk())
    run_passes(g, f"fold-constants{{max-elements={_UNLIMITED},max-eval-elements={_UNLIMITED}}}")
    return g, before - sum(1 for _ in g.walk())


# --------------------------------------------------------------------------- main entry
def lower(graph: Graph, *, fold: bool = True, name: str = "main", fallback_nodes: Optional[set] = None,
          target: str = "cpu") -> Lowered:
    """Lower ``graph`` to a Relax IRModule for ``target`` (a target name). Raises
    UnsupportedOpError listing every node (with its op) that has no lowering, or
    LoweringRefusedError listing every node whose lowering refused it, all at once."""
    from .target import as_target

    from tvm import relax

    nfold = 0
    if fold:
        graph, nfold = fold_for_lowering(graph)  # folded nodes need no lowering
    bad = [(op, nm) for op, nm in unsupported_nodes(graph) if not (fallback_nodes and nm in fallback_nodes)]
    if bad:
        raise UnsupportedOpError(bad, f"graph {graph.name!r}")
    ctx = Ctx(graph, {})
    ctx.refused = []
    ctx.packed_kernels = as_target(target).is_cpu
    in_vars = []
    for v in graph.inputs:
        var = relax.Var(_safe(v.name), ctx.sinfo(v))
        ctx.env[id(v)] = var
        in_vars.append(var)
    bb = ctx.bb
    try:
        with bb.function(name):  # parameters (inputs, then weights) are given at the end
            outs = emit_body(ctx, graph, fresh_outputs=True)
            result = outs[0] if len(outs) == 1 else relax.Tuple(outs)
            bb.emit_func_output(result, params=in_vars + ctx.param_vars)
    except BaseException:
        _close_blocks(bb)
        raise
    if ctx.refused:
        raise LoweringRefusedError(ctx.refused, f"graph {graph.name!r}")
    mod = bb.get()
    return Lowered(mod, [v.name for v in graph.inputs], [o.name for o in graph.outputs], ctx.param_vals,
                   ctx.param_names, nfold)


def _close_blocks(bb) -> None:
    """End the blocks a failed lowering left open: TVM prints "BlockBuilder destroyed with
    remaining blocks!" on the terminal otherwise, whenever the builder is freed."""
    for _ in range(256):
        try:
            bb._end_block()
        except Exception:
            return


def _safe(name: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return out if out and not out[0].isdigit() else "v_" + out


def _lower_node(ctx: Ctx, n: Node) -> None:
    fn = _TABLE.get(n.qualified_op)
    if fn is None:
        if is_fused_group(n):
            fn = _lower_fused_group
        else:
            raise UnsupportedOpError([(n.qualified_op, n.name)])
    try:
        res = fn(ctx, n)
    except LoweringError as e:  # a case the lowering knowingly refuses
        res = _refuse(ctx, n, e)
    except (GraphoptError, InternalError):
        raise
    except Exception as e:
        # Anything else is a bug, not a refusal: --fallback ort must not paper over it, and
        # the conformance runner counts it as a crash.
        raise InternalError(f"lowering of node {n.name!r} ({n.qualified_op})", e) from e
    if not isinstance(res, (list, tuple)):
        res = [res]
    for i, o in enumerate(n.outputs):
        if o is None:
            continue
        if i >= len(res) or res[i] is None:
            raise ctx.fail(f"output {i} (%{o.name}) is not supported")
        e = res[i]
        ty = getattr(e, "ty", None)
        if isinstance(ty, ctx.relax.TensorType) and ty.shape is None and ty.ndim >= 0:
            # Relax lost the shape (it could not prove dims of different names equal): bind
            # it to the IR's type, checked at run time, so that later ops see a shape.
            from .lowering_control import settle_shape

            e = settle_shape(ctx, e, o)
        _check_shape(ctx, o, e)
        ctx.env[id(o)] = e


def _refuse(ctx: Ctx, n: Node, e: LoweringError) -> list:
    """Record a refused node and stand zeros of its IR types in for its outputs, so that
    lowering goes on and finds every other refusal (lower() then fails listing all).
    Fails at once where that cannot be done: not collecting, an output of unknown rank,
    or a control-flow node (its functions may be half-built)."""
    from .lowering_control import CONTROL_OPS

    if ctx.refused is None or n.op_type in CONTROL_OPS or any(
            o is not None and o.type.shape is None for o in n.outputs):
        raise e
    ctx.refused.append((n.qualified_op, n.name, str(e)))
    return [None if o is None else ctx.emit(_R().op.zeros(ctx.shape_of(o), tvm_dtype(o.type.dtype)))
            for o in n.outputs]


def _check_shape(ctx: Ctx, o: Value, e) -> None:
    """The lowered value must have the IR's static shape and dtype (a cheap guard against
    semantic differences between ONNX and relax ops)."""
    from tvm import relax

    si = getattr(e, "ty", None)
    if si is None or not isinstance(si, relax.TensorType):
        return
    want_dt = tvm_dtype(o.type.dtype)
    if str(si.dtype) != want_dt:
        raise ctx.fail(f"lowered output %{o.name} has dtype {si.dtype}, expected {want_dt}")
    if si.shape is None or o.type.shape is None or not isinstance(si.shape, relax.ShapeExpr):
        return
    got = list(si.shape.values)
    if len(got) != len(o.type.shape):
        raise ctx.fail(f"lowered output %{o.name} has rank {len(got)}, expected {len(o.type.shape)}")
    for g, w in zip(got, o.type.shape):
        if isinstance(w, int) and hasattr(g, "value") and int(g.value) != w:
            raise ctx.fail(f"lowered output %{o.name} has shape {[str(x) for x in got]}, expected {list(o.type.shape)}")


# --------------------------------------------------------------------------- elementwise
def _R():
    from tvm import relax

    return relax


def _unary(op_name):
    def f(ctx, n):
        op = getattr(_R().op, op_name) if "." not in op_name else getattr(_R().op.nn, op_name.split(".")[1])
        return ctx.emit(op(ctx.get(n.inputs[0])))

    return f


for _onnx, _rx in [("Abs", "abs"), ("Neg", "negative"), ("Sqrt", "sqrt"), ("Floor", "floor"), ("Ceil", "ceil"),
                   ("Round", "round"), ("Sigmoid", "sigmoid"), ("Exp", "exp"), ("Log", "log"), ("Sign", "sign"),
                   ("Sin", "sin"), ("Cos", "cos"), ("Tan", "tan"), ("Asin", "asin"), ("Acos", "acos"),
                   ("Atan", "atan"), ("Sinh", "sinh"), ("Cosh", "cosh"), ("Tanh", "tanh"), ("Asinh", "asinh"),
                   ("Acosh", "acosh"), ("Atanh", "atanh"), ("Erf", "erf"), ("Not", "logical_not"),
                   ("BitwiseNot", "bitwise_not"), ("IsNaN", "isnan"), ("Relu", "nn.relu")]:
    _TABLE[_onnx] = _unary(_rx)


@_reg("Sign")
def _sign(ctx, n):
    x = n.inputs[0]
    e = ctx.get(x)
    if not x.type.dtype.is_float:
        return ctx.emit(_R().op.sign(e))
    return ctx.emit(_R().op.where(_R().op.isnan(e), e, _R().op.sign(e)))  # TVM's sign(NaN) is 0


def _scalar(ctx, v, like_dtype: str):
    return _R().const(v, like_dtype)


def _dt(v: Value) -> str:
    return tvm_dtype(v.type.dtype)


@_reg("Reciprocal")
def _reciprocal(ctx, n):
    x = n.inputs[0]
    return ctx.emit(_R().op.divide(_scalar(ctx, 1.0, _dt(x)), ctx.get(x)))


@_reg("Identity")
def _identity(ctx, n):
    return ctx.get(n.inputs[0])


@_reg("Dropout")
def _dropout(ctx, n):
    training = ctx.const_of(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] is not None else None
    if len(n.inputs) > 2 and n.inputs[2] is not None and (training is None or bool(np.asarray(training))):
        raise ctx.fail("Dropout in training mode is not supported")
    x = ctx.get(n.inputs[0])
    outs = [x]
    if len(n.outputs) > 1 and n.outputs[1] is not None:
        outs.append(ctx.emit(_R().op.full(ctx.shape_of(n.inputs[0]), _R().const(True, "bool"), "bool")))
    return outs


def _binary(op_name):
    def f(ctx, n):
        return ctx.emit(getattr(_R().op, op_name)(ctx.get(n.inputs[0]), ctx.get(n.inputs[1])))

    return f


for _onnx, _rx in [("Add", "add"), ("Sub", "subtract"), ("Mul", "multiply"), ("Equal", "equal"), ("Less", "less"),
                   ("LessOrEqual", "less_equal"), ("Greater", "greater"), ("GreaterOrEqual", "greater_equal"),
                   ("And", "logical_and"), ("Or", "logical_or"), ("Xor", "logical_xor"),
                   ("BitwiseAnd", "bitwise_and"), ("BitwiseOr", "bitwise_or"), ("BitwiseXor", "bitwise_xor")]:
    _TABLE[_onnx] = _binary(_rx)


@_reg("Div")
def _div(ctx, n):
    a, b = ctx.get(n.inputs[0]), ctx.get(n.inputs[1])
    if n.inputs[0].type.dtype.is_float:
        return ctx.emit(_R().op.divide(a, b))
    # ONNX integer division truncates toward zero: floor division, plus one where the
    # remainder is non-zero and the signs differ.
    R = _R()
    q = ctx.emit(R.op.floor_divide(a, b))
    if not n.inputs[0].type.dtype.is_signed_int:
        return q
    zero = R.const(0, _dt(n.inputs[0]))
    rem = ctx.emit(R.op.subtract(a, R.op.multiply(q, b)))
    fix = ctx.emit(R.op.logical_and(R.op.not_equal(rem, zero),
                                    R.op.logical_xor(R.op.less(a, zero), R.op.less(b, zero))))
    return ctx.emit(R.op.add(q, R.op.astype(fix, _dt(n.inputs[0]))))


@_reg("Mod")
def _mod(ctx, n):
    a, b = ctx.get(n.inputs[0]), ctx.get(n.inputs[1])
    fmod = ctx.attr(n, "fmod", 0)
    if fmod or n.inputs[0].type.dtype.is_float:
        if n.inputs[0].type.dtype.is_float:
            from tvm import topi

            return ctx.te(lambda x, y: topi.trunc_mod(x, y), a, b)
        return ctx.emit(_R().op.mod(a, b))
    return ctx.emit(_R().op.floor_mod(a, b))


@_reg("Pow")
def _pow(ctx, n):
    x, y = n.inputs
    if not x.type.dtype.is_float:
        # TVM's power takes floats only; onnxruntime computes integer powers through
        # double too (std::pow) and casts back.
        R = _R()
        xf = ctx.emit(R.op.astype(ctx.get(x), "float64"))
        yf = ctx.emit(R.op.astype(ctx.get(y), "float64"))
        return ctx.emit(R.op.astype(R.op.power(xf, yf), _dt(x)))
    ye = ctx.get(y)
    if y.type.dtype != x.type.dtype:
        ye = ctx.emit(_R().op.astype(ye, _dt(x)))
    c = ctx.const_of(y)
    if c is not None and c.size == 1 and float(np.asarray(c).reshape(-1)[0]) == 2.0 and x.type.dtype.is_float:
        xe = ctx.get(x)
        return ctx.emit(_R().op.multiply(xe, xe))
    return ctx.emit(_R().op.power(ctx.get(x), ye))


@_reg("BitShift")
def _bitshift(ctx, n):
    d = ctx.attr(n, "direction")
    op = _R().op.left_shift if d == "LEFT" else _R().op.right_shift
    return ctx.emit(op(ctx.get(n.inputs[0]), ctx.get(n.inputs[1])))


def _variadic(op_name, mean=False):
    def f(ctx, n):
        ins = [ctx.get(v) for v in n.inputs if v is not None]
        acc = ins[0]
        for e in ins[1:]:
            acc = ctx.emit(getattr(_R().op, op_name)(acc, e))
        if mean:
            acc = ctx.emit(_R().op.divide(acc, _scalar(ctx, float(len(ins)), _dt(n.inputs[0]))))
        elif len(ins) == 1:
            return ins[0]
        return acc

    return f


_TABLE["Sum"] = _variadic("add")
_TABLE["Max"] = _variadic("maximum")
_TABLE["Min"] = _variadic("minimum")
_TABLE["Mean"] = _variadic("add", mean=True)


@_reg("Where")
def _where(ctx, n):
    c, x, y = (ctx.get(v) for v in n.inputs)
    return ctx.emit(_R().op.where(c, x, y))


@_reg("Clip")
def _clip(ctx, n):
    x = ctx.get(n.inputs[0])
    dt = _dt(n.inputs[0])
    for i, op in ((1, _R().op.maximum), (2, _R().op.minimum)):
        if len(n.inputs) > i and n.inputs[i] is not None:
            b = ctx.get(n.inputs[i])
            x = ctx.emit(op(x, b))
    return x


@_reg("Cast")
def _cast(ctx, n):
    to = n.outputs[0].type.dtype
    x = n.inputs[0]
    e = ctx.get(x)
    if x.type.dtype.is_float and to is DType.BOOL:
        return ctx.emit(_R().op.not_equal(e, _scalar(ctx, 0.0, _dt(x))))
    if to is DType.BFLOAT16 and x.type.dtype is not DType.BFLOAT16:
        return _to_bfloat16(ctx, e if x.type.dtype is DType.FLOAT32 else ctx.emit(_R().op.astype(e, "float32")))
    return ctx.emit(_R().op.astype(e, tvm_dtype(to)))


def _to_bfloat16(ctx, e):
    """float32 -> bfloat16 rounding to nearest even on the bits, NaN kept quiet. A plain
    astype is lost when TVM fuses it with a cast back to float32 (the simplifier drops the
    pair, so 1 + 2**-9 came back unrounded)."""
    from tvm import te

    tir = _tir()

    def f(t):
        def one(*i):
            b = tir.reinterpret("uint32", t(*i))
            up = ((b >> tir.const(16, "uint32")) & tir.const(1, "uint32")) + tir.const(0x7FFF, "uint32")
            r = tir.Select(t(*i) != t(*i), (b >> tir.const(16, "uint32")) | tir.const(0x40, "uint32"),
                           (b + up) >> tir.const(16, "uint32"))
            return tir.reinterpret("bfloat16", tir.Cast("uint16", r))
        return te.compute(t.shape, one, name="to_bfloat16")

    return ctx.te(f, e)


@_reg("CastLike")
def _castlike(ctx, n):
    return _cast(ctx, n)


def _act(fn):
    """An activation written as TE over the input tensor (fn(x_elem, dtype) -> elem)."""

    def f(ctx, n):
        from tvm import te

        x = n.inputs[0]
        dt = _dt(x)
        attrs = {k: ctx.attr(n, k) for k in ("alpha", "beta", "gamma", "lambd", "bias")}

        def compute(t):
            return te.compute(t.shape, lambda *i: fn(t(*i), dt, attrs), name=n.op_type.lower())

        return ctx.te(compute, ctx.get(x))

    return f


def _c(v, dt):
    from tvm import tirx

    return tirx.const(v, dt)


def _tir():
    from tvm import tirx

    return tirx


_TABLE["LeakyRelu"] = _act(lambda x, dt, a: _tir().Select(x >= _c(0, dt), x, x * _c(a["alpha"], dt)))
_TABLE["Elu"] = _act(lambda x, dt, a: _tir().Select(x >= _c(0, dt), x, _c(a["alpha"], dt) * (_tir().exp(x) - _c(1, dt))))
_TABLE["Celu"] = _act(lambda x, dt, a: _tir().max(x, _c(0, dt)) + _tir().min(
    _c(0, dt), _c(a["alpha"], dt) * (_tir().exp(x / _c(a["alpha"], dt)) - _c(1, dt))))
_TABLE["Selu"] = _act(lambda x, dt, a: _c(a["gamma"], dt) * _tir().Select(
    x > _c(0, dt), x, _c(a["alpha"], dt) * (_tir().exp(x) - _c(1, dt))))
_TABLE["HardSigmoid"] = _act(lambda x, dt, a: _tir().max(_c(0, dt), _tir().min(_c(1, dt), _c(a["alpha"], dt) * x + _c(a["beta"], dt))))
_TABLE["HardSwish"] = _act(lambda x, dt, a: x * _tir().max(_c(0, dt), _tir().min(_c(1, dt), x / _c(6, dt) + _c(0.5, dt))))
_TABLE["Softsign"] = _act(lambda x, dt, a: x / (_c(1, dt) + _tir().abs(x)))
_TABLE["Softplus"] = _act(lambda x, dt, a: _tir().log(_c(1, dt) + _tir().exp(x)))
_TABLE["Mish"] = _act(lambda x, dt, a: x * _tir().tanh(_tir().log(_c(1, dt) + _tir().exp(x))))
_TABLE["ThresholdedRelu"] = _act(lambda x, dt, a: _tir().Select(x > _c(a["alpha"], dt), x, _c(0, dt)))
_TABLE["Shrink"] = _act(lambda x, dt, a: _tir().Select(
    x < _c(-a["lambd"], dt), x + _c(a["bias"], dt),
    _tir().Select(x > _c(a["lambd"], dt), x - _c(a["bias"], dt), _c(0, dt))))


@_reg("IsInf")
def _isinf(ctx, n):
    from tvm import te

    x = n.inputs[0]
    dt = _dt(x)
    neg, pos = ctx.attr(n, "detect_negative", 1), ctx.attr(n, "detect_positive", 1)

    def compute(t):
        def f(*i):
            v = t(*i)
            inf = _tir().isinf(v)
            if neg and pos:
                return inf
            if pos:
                return _tir().all(inf, v > _c(0, dt))
            if neg:
                return _tir().all(inf, v < _c(0, dt))
            return _tir().const(False, "bool")

        return te.compute(t.shape, f, name="isinf")

    return ctx.te(compute, ctx.get(x))


@_reg("Gelu")
def _gelu(ctx, n):
    op = _R().op.nn.gelu_tanh if ctx.attr(n, "approximate", "none") == "tanh" else _R().op.nn.gelu
    return ctx.emit(op(ctx.get(n.inputs[0])))


@_reg("PRelu")
def _prelu(ctx, n):
    x, s = ctx.get(n.inputs[0]), ctx.get(n.inputs[1])
    zero = _scalar(ctx, 0, _dt(n.inputs[0]))
    return ctx.emit(_R().op.where(_R().op.less(x, zero), _R().op.multiply(x, s), x)) if False else \
        ctx.emit(_R().op.where(ctx.emit(_R().op.less(x, zero)), ctx.emit(_R().op.multiply(x, s)), x))


# --------------------------------------------------------------------------- shape ops
def relax_dims(e) -> Optional[list]:
    """The dims (ints or PrimExprs) of a relax tensor expression; None if unknown."""
    from tvm import relax

    ty = getattr(e, "ty", None)
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    return [int(d.value) if hasattr(d, "value") else d for d in ty.shape.values]


def runtime_shape(ctx, t, rank: int, out: Value, keep=()):
    """A 1-D int64 tensor computed at run time as the relax shape of ``out``: bound (and
    checked at run time) to the IR's dims of ``out`` where it has them, else to fresh
    symbols, so that the ops consuming it get symbolic, not unknown, shapes. Also returns
    ``keep`` made usable after the barrier the binding needs."""
    from tvm import relax

    shp = ctx.emit(_R().op.tensor_to_shape(t))
    shp, *kept = ctx.barrier([shp, *keep])
    ir = out.type.shape if out.type.shape is not None and len(out.type.shape) == rank else [None] * rank
    dims = [d if isinstance(d, int) else ctx.sym(d) if isinstance(d, str)
            else ctx.tvm.tirx.Var(f"{_safe(out.name)}_d{k}", "int64") for k, d in enumerate(ir)]
    ctx.bb.match_cast(shp, relax.ShapeType(dims))
    return relax.ShapeExpr(dims), kept


def _shape_tensor(ctx, x):
    return ctx.emit(_R().op.shape_to_tensor(_R().op.shape_of(x)))


def _shape_len(ctx, v: Value) -> int:
    if v.type.shape is None or len(v.type.shape) != 1 or not isinstance(v.type.shape[0], int):
        raise ctx.fail(f"shape input %{v.name} must be 1-D of a length known at compile time")
    return v.type.shape[0]


@_reg("Reshape")
def _reshape(ctx, n):
    """The target from the shape input and relax's own dims of the data (a 0 copies one),
    not from the IR's symbols: relax knows how the dims relate where the IR has fresh names."""
    R = _R().op
    x = ctx.get(n.inputs[0])
    xd = relax_dims(x)
    allowzero = ctx.attr(n, "allowzero", 0)
    s = ctx.const_of(n.inputs[1])
    if s is not None and xd is not None:
        s = [int(v) for v in np.asarray(s).reshape(-1)]
        if not allowzero and any(v == 0 and i >= len(xd) for i, v in enumerate(s)):
            raise ctx.fail(f"shape {s} copies a dim (0) past the data's rank {len(xd)}")
        return ctx.emit(R.reshape(x, [xd[i] if v == 0 and not allowzero else v for i, v in enumerate(s)]))
    if s is not None:
        return ctx.emit(R.reshape(x, ctx.out_shape(n)))
    # Computed at run time: apply 0 (copy) and -1 (infer) to the shape tensor itself.
    r_out = _shape_len(ctx, n.inputs[1])
    t = ctx.get(n.inputs[1])
    xs = _shape_tensor(ctx, x)
    r_in = ctx.rank(n.inputs[0])
    same = ctx.emit(R.strided_slice(xs, [0], [0], [min(r_in, r_out)]))
    if r_out > r_in:
        same = ctx.emit(R.concat([same, ctx.array(np.ones(r_out - r_in, np.int64))], 0))
    zero, minus = _scalar(ctx, 0, "int64"), _scalar(ctx, -1, "int64")
    if not allowzero:
        t = ctx.emit(R.where(R.equal(t, zero), same, t))
    known = ctx.emit(R.prod(R.where(R.equal(t, minus), _scalar(ctx, 1, "int64"), t)))
    t = ctx.emit(R.where(R.equal(t, minus), R.divide(R.prod(xs), known), t))
    shape, (x,) = runtime_shape(ctx, t, r_out, n.outputs[0], keep=[x])
    return ctx.emit(R.reshape(x, shape))


@_reg("Flatten")
def _flatten(ctx, n):
    return ctx.emit(_R().op.reshape(ctx.get(n.inputs[0]), ctx.out_shape(n)))


@_reg("Squeeze", "Unsqueeze")
def _squeeze(ctx, n):
    return ctx.emit(_R().op.reshape(ctx.get(n.inputs[0]), ctx.out_shape(n)))


@_reg("Transpose")
def _transpose(ctx, n):
    r = ctx.rank(n.inputs[0])
    perm = ctx.attr(n, "perm", None)
    perm = list(perm) if perm else list(range(r))[::-1]
    return ctx.emit(_R().op.permute_dims(ctx.get(n.inputs[0]), perm))


@_reg("Concat")
def _concat(ctx, n):
    ins = [v for v in n.inputs if v is not None]
    r = ctx.rank(ins[0])
    axis = _axis(ctx, n, "axis", r, 0)
    # zero-sized inputs contribute nothing
    ins = [v for v in ins if not (v.type.shape is not None and isinstance(v.type.shape[axis], int) and v.type.shape[axis] == 0)] or ins[:1]
    if len(ins) == 1:
        return ctx.get(ins[0])
    return ctx.emit(_R().op.concat([ctx.get(v) for v in ins], axis=axis))


@_reg("Split")
def _split(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, 0)
    nout = len(n.outputs)
    sizes = ctx.ints_input(n, 1, "split")
    dim = x.type.shape[axis]
    if sizes is None:
        if not isinstance(dim, int):
            if nout == 1:
                return [ctx.get(x)]
            tup = ctx.emit(_R().op.split(ctx.get(x), nout, axis))
            return [ctx.emit(_R().TupleGetItem(tup, i)) for i in range(nout)]
        k = -(-dim // nout)
        sizes = [k] * (nout - 1) + [dim - k * (nout - 1)]
    if nout == 1:
        return [ctx.get(x)]
    idx = list(np.cumsum(sizes)[:-1].astype(int))
    tup = ctx.emit(_R().op.split(ctx.get(x), [int(i) for i in idx], axis))
    return [ctx.emit(_R().TupleGetItem(tup, i)) for i in range(nout)]


@_reg("Slice")
def _slice(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    if any(len(n.inputs) > i and n.inputs[i] is not None and ctx.const_of(n.inputs[i]) is None for i in (1, 2, 3, 4)):
        return _slice_dynamic(ctx, n, r)
    starts = ctx.ints_input(n, 1, "starts")
    ends = ctx.ints_input(n, 2, "ends")
    axes = ctx.ints_input(n, 3, "axes") or list(range(len(starts)))
    steps = ctx.ints_input(n, 4, "steps") or [1] * len(starts)
    axes = [a + r if a < 0 else a for a in axes]
    b2, e2, s2, a2 = [], [], [], []
    for a, b, e, s in zip(axes, starts, ends, steps):
        dim = x.type.shape[a]
        if isinstance(dim, int):
            b, e, s = _norm_slice(b, e, s, dim)
            if s < 0 and e < 0:
                e = -(dim + 1)  # relax: before the first element
        lim = 2**62
        a2.append(a)
        b2.append(max(-lim, min(lim, b)))
        e2.append(max(-lim, min(lim, e)))
        s2.append(s)
    return ctx.emit(_R().op.strided_slice(ctx.get(x), a2, b2, e2, s2))


def _slice_dynamic(ctx, n, r: int):
    """Slice with starts, ends, axes or steps computed at run time: relax's
    dynamic_strided_slice (its shape function clamps the indices as ONNX does) over
    full-rank index vectors scattered from the given ones, bound to the IR's type."""
    from .lowering_control import settle_shape

    R = _R().op

    def given(i):
        v = n.inputs[i] if len(n.inputs) > i else None
        if v is None:
            return None
        e = ctx.get(v)
        return e if v.type.dtype is DType.INT64 else ctx.emit(R.astype(e, "int64"))

    axes = given(3)
    if axes is None:
        axes = ctx.emit(R.arange(0, _len1(ctx, n.inputs[1]), 1, "int64"))
    else:
        axes = ctx.emit(R.where(R.less(axes, _scalar(ctx, 0, "int64")), R.add(axes, _scalar(ctx, r, "int64")), axes))

    def full(i, fill):
        base = ctx.array(np.full(r, fill, np.int64))
        v = given(i)
        return base if v is None else ctx.emit(R.scatter_elements(base, axes, v, 0))

    x = ctx.get(n.inputs[0])
    b, e, s = full(1, 0), full(2, 2**62), full(4, 1)
    # Clamp as ONNX does, and make empty slices explicit (end = begin): TVM's shape function
    # would give them a negative length. With a negative step, "before the first element"
    # must be -(dim + 1), since TVM wraps a plain -1 to the last element.
    d = ctx.emit(R.shape_to_tensor(R.shape_of(x)))
    zero, one = _scalar(ctx, 0, "int64"), _scalar(ctx, 1, "int64")
    neg = ctx.emit(R.less(s, zero))
    lo = ctx.emit(R.where(neg, R.negative(ctx.array(np.ones(r, np.int64))), ctx.array(np.zeros(r, np.int64))))
    hi = ctx.emit(R.where(neg, R.subtract(d, one), d))

    def canon(v):
        v = ctx.emit(R.where(R.less(v, zero), R.add(v, d), v))
        return ctx.emit(R.minimum(R.maximum(v, lo), hi))

    b, e = canon(b), canon(e)
    e = ctx.emit(R.where(neg, R.minimum(e, b), R.maximum(e, b)))
    e = ctx.emit(R.where(R.logical_and(neg, R.less(e, zero)), R.negative(R.add(d, one)), e))
    out = ctx.emit(R.dynamic_strided_slice(x, b, e, s))
    return settle_shape(ctx, out, n.outputs[0])


def _len1(ctx, v: Value) -> int:
    if v.type.shape is None or not isinstance(v.type.shape[0], int):
        raise ctx.fail(f"%{v.name} has a length unknown at compile time")
    return v.type.shape[0]


def _norm_slice(b, e, s, dim):
    if s > 0:
        b = b + dim if b < 0 else b
        e = e + dim if e < 0 else e
        b, e = max(0, min(dim, b)), max(0, min(dim, e))
    else:
        b = b + dim if b < 0 else b
        e = e + dim if e < 0 else e
        b, e = max(-1, min(dim - 1, b)), max(-1, min(dim - 1, e))
    return b, e, s


@_reg("Expand")
def _expand(ctx, n):
    """Broadcast relax's own dims of the data with the shape input (see Reshape)."""
    R = _R().op
    x = ctx.get(n.inputs[0])
    xd = relax_dims(x)
    s = ctx.const_of(n.inputs[1])
    if s is not None and xd is not None:
        s = [int(v) for v in np.asarray(s).reshape(-1)]
        r = max(len(s), len(xd))
        xd = [1] * (r - len(xd)) + xd
        s = [1] * (r - len(s)) + s
        return ctx.emit(R.broadcast_to(x, [a if b == 1 else b for a, b in zip(xd, s)]))
    r_s, r_x = _shape_len(ctx, n.inputs[1]), ctx.rank(n.inputs[0])
    r = max(r_s, r_x)
    t, xs = ctx.get(n.inputs[1]), _shape_tensor(ctx, x)
    if r_s < r:
        t = ctx.emit(R.concat([ctx.array(np.ones(r - r_s, np.int64)), t], 0))
    if r_x < r:
        xs = ctx.emit(R.concat([ctx.array(np.ones(r - r_x, np.int64)), xs], 0))
    t = ctx.emit(R.where(R.equal(t, _scalar(ctx, 1, "int64")), xs, t))
    shape, (x,) = runtime_shape(ctx, t, r, n.outputs[0], keep=[x])
    return ctx.emit(R.broadcast_to(x, shape))


@_reg("Tile")
def _tile(ctx, n):
    reps = ctx.ints_input(n, 1, "repeats")
    return ctx.emit(_R().op.tile(ctx.get(n.inputs[0]), reps))


@_reg("Shape")
def _shape(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    start = ctx.attr(n, "start", 0)
    end = ctx.attr(n, "end", None)
    start = max(0, min(r, start + r if start < 0 else start))
    end = r if end is None else max(0, min(r, end + r if end < 0 else end))
    t = ctx.emit(_R().op.shape_to_tensor(_R().op.shape_of(ctx.get(x))))
    if (start, end) != (0, r):
        t = ctx.emit(_R().op.strided_slice(t, [0], [start], [end]))
    return t


@_reg("Size")
def _size(ctx, n):
    x = n.inputs[0]
    dims = ctx.shape_of(x)
    p = 1
    for d in dims:
        p = p * d
    from tvm import te

    return ctx.te(lambda: te.compute((), lambda: _tir().Cast("int64", p) if not isinstance(p, int) else _tir().const(p, "int64"), name="size"))


@_reg("ConstantOfShape")
def _constant_of_shape(ctx, n):
    if ctx.const_of(n.inputs[0]) is None:
        shape, _ = runtime_shape(ctx, ctx.get(n.inputs[0]), _shape_len(ctx, n.inputs[0]), n.outputs[0])
    else:
        shape = ctx.out_shape(n)
    val = ctx.attr(n, "value", None)
    dt = _dt(n.outputs[0])
    v = 0 if val is None else np.asarray(val.numpy()).reshape(-1)[0].item()
    return ctx.emit(_R().op.full(shape, _R().const(v, dt), dt))


@_reg("Range")
def _range(ctx, n):
    vals = [ctx.const_of(v) for v in n.inputs]
    if any(v is None for v in vals):
        return _range_dynamic(ctx, n)
    start, limit, delta = (np.asarray(v).item() for v in vals)
    arr = np.arange(start, limit, delta).astype(n.outputs[0].type.dtype.numpy)
    return ctx.array(arr, n.outputs[0].name)


def _range_dynamic(ctx, n):
    """Range with bounds computed at run time: the count max(ceil((limit - start) / delta), 0)
    becomes a shape (a symbol bound at run time), then start + arange(count) * delta."""
    from .lowering_control import settle_shape

    R = _R().op
    dt = _dt(n.outputs[0])
    start, limit, delta = (ctx.get(v) for v in n.inputs)
    span = ctx.emit(R.divide(R.subtract(R.astype(limit, "float64"), R.astype(start, "float64")),
                             R.astype(delta, "float64")))
    count = ctx.emit(R.maximum(R.astype(R.ceil(span), "int64"), _scalar(ctx, 0, "int64")))
    shape, (start, delta) = runtime_shape(ctx, ctx.emit(R.reshape(count, [1])), 1, n.outputs[0], keep=[start, delta])
    steps = ctx.emit(R.arange(0, shape.values[0], 1, dt))
    out = ctx.emit(R.add(R.reshape(start, []), R.multiply(steps, R.reshape(delta, []))))
    return settle_shape(ctx, out, n.outputs[0])


@_reg("Gather")
def _gather(ctx, n):
    x, idx = n.inputs
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, 0)
    dim = x.type.shape[axis]
    c = ctx.const_of(idx)
    if c is not None and isinstance(dim, int):
        c = np.where(c < 0, c + dim, c).astype(np.int64)
        if c.size and (c.min() < 0 or c.max() >= dim):
            raise GraphoptError(f"node {n.name!r} (Gather): constant index {int(c[(c < 0) | (c >= dim)][0])} is out "
                                f"of range for axis {axis} of size {dim}")
        ie = ctx.array(c, idx.name)
    else:
        from .lowering_ops_extra import _norm_indices_te, checked_indices

        ie = _norm_indices_te(ctx, ctx.get(idx), ctx.get(x), axis_of=axis)
        ie = checked_indices(ctx, ie, ctx.get(x), axis_of=axis)
    return ctx.emit(_R().op.take(ctx.get(x), ie, axis))


@_reg("GatherElements")
def _gather_elements(ctx, n):
    x, idx = n.inputs
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, 0)
    from .lowering_ops_extra import _norm_indices_te, checked_indices

    ie = _norm_indices_te(ctx, ctx.get(idx), ctx.get(x), axis_of=axis)
    ie = checked_indices(ctx, ie, ctx.get(x), axis_of=axis)
    return ctx.emit(_R().op.gather_elements(ctx.get(x), ie, axis))


@_reg("Trilu")
def _trilu(ctx, n):
    k = ctx.ints_input(n, 1, "k")
    k = 0 if k is None else k[0]
    op = _R().op.triu if ctx.attr(n, "upper", 1) else _R().op.tril
    return ctx.emit(op(ctx.get(n.inputs[0]), k))


@_reg("Pad")
def _pad(ctx, n):
    from tvm import topi

    x = n.inputs[0]
    r = ctx.rank(x)
    pads = ctx.ints_input(n, 1, "pads")
    axes = ctx.ints_input(n, 3, "axes")
    mode = ctx.attr(n, "mode", "constant")
    axes = [a + r if a < 0 else a for a in axes] if axes is not None else list(range(r))
    before, after = [0] * r, [0] * r
    k = len(axes)
    for j, a in enumerate(axes):
        before[a], after[a] = pads[j], pads[j + k]
    if any(p < 0 for p in before + after):
        raise ctx.fail("negative pads are not supported")
    if mode == "constant":
        cv = ctx.const_of(n.inputs[2]) if len(n.inputs) > 2 and n.inputs[2] is not None else None
        if len(n.inputs) > 2 and n.inputs[2] is not None and cv is None:
            raise ctx.fail("constant_value must be a constant")
        val = 0 if cv is None else np.asarray(cv).reshape(-1)[0].item()
        return ctx.te(lambda t: topi.nn.pad(t, before, after, pad_value=val), ctx.get(x))
    if mode == "reflect":
        return ctx.te(lambda t: topi.nn.mirror_pad(t, before, after, mode="REFLECT"), ctx.get(x))
    if mode == "edge":
        from tvm import te

        def compute(t):
            shp = [t.shape[i] + before[i] + after[i] for i in range(r)]

            def f(*i):
                idx = [_tir().max(_tir().min(i[d] - before[d], t.shape[d] - 1), 0) for d in range(r)]
                return t(*idx)

            return te.compute(shp, f, name="edge_pad")

        return ctx.te(compute, ctx.get(x))
    raise ctx.fail(f"pad mode {mode!r} is not supported")


@_reg("DepthToSpace")
def _depth_to_space(ctx, n):
    b = ctx.attr(n, "blocksize")
    mode = ctx.attr(n, "mode", "DCR")
    N, C, H, W = ctx.shape_of(n.inputs[0])
    x = ctx.get(n.inputs[0])
    if mode == "DCR":
        t = ctx.emit(_R().op.reshape(x, [N, b, b, C // (b * b), H, W]))
        t = ctx.emit(_R().op.permute_dims(t, [0, 3, 4, 1, 5, 2]))
    else:
        t = ctx.emit(_R().op.reshape(x, [N, C // (b * b), b, b, H, W]))
        t = ctx.emit(_R().op.permute_dims(t, [0, 1, 4, 2, 5, 3]))
    return ctx.emit(_R().op.reshape(t, ctx.out_shape(n)))


@_reg("SpaceToDepth")
def _space_to_depth(ctx, n):
    b = ctx.attr(n, "blocksize")
    N, C, H, W = ctx.shape_of(n.inputs[0])
    t = ctx.emit(_R().op.reshape(ctx.get(n.inputs[0]), [N, C, H // b, b, W // b, b]))
    t = ctx.emit(_R().op.permute_dims(t, [0, 3, 5, 1, 2, 4]))
    return ctx.emit(_R().op.reshape(t, ctx.out_shape(n)))


# --------------------------------------------------------------------------- reductions
def _reduce_axes(ctx, n, r):
    if n.op_type in ("ReduceSum",) or len(n.inputs) > 1:
        axes = ctx.ints_input(n, 1, "axes") if len(n.inputs) > 1 else None
    else:
        axes = ctx.attr(n, "axes", None)
    if not axes:
        if ctx.attr(n, "noop_with_empty_axes", 0):
            return None
        return list(range(r))
    return sorted(a + r if a < 0 else a for a in axes)


def _reduce(kind):
    def f(ctx, n):
        x = n.inputs[0]
        r = ctx.rank(x)
        axes = _reduce_axes(ctx, n, r)
        keep = bool(ctx.attr(n, "keepdims", 1))
        e = ctx.get(x)
        if axes is None:
            return e
        R = _R().op
        dt = _dt(x)
        if kind in ("max", "min") and x.type.dtype.is_float:
            return _float_extremum(ctx, e, kind, axes, keep, dt)
        if kind in ("sum", "mean", "max", "min", "prod"):
            return ctx.emit(getattr(R, kind)(e, axes, keep))
        if kind == "l1":
            return ctx.emit(R.sum(ctx.emit(R.abs(e)), axes, keep))
        if kind == "l2":
            return ctx.emit(R.sqrt(ctx.emit(R.sum(ctx.emit(R.multiply(e, e)), axes, keep))))
        if kind == "sumsquare":
            return ctx.emit(R.sum(ctx.emit(R.multiply(e, e)), axes, keep))
        if kind == "logsum":
            return ctx.emit(R.log(ctx.emit(R.sum(e, axes, keep))))
        if kind == "logsumexp":
            # An infinite max is not subtracted (inf - inf is NaN; the answer is inf).
            m = ctx.emit(R.max(e, axes, True))
            if x.type.dtype.is_float:
                m = ctx.emit(R.where(R.isinf(m), _scalar(ctx, 0, dt), m))
            s = ctx.emit(R.sum(ctx.emit(R.exp(ctx.emit(R.subtract(e, m)))), axes, True))
            out = ctx.emit(R.add(ctx.emit(R.log(s)), m))
            if not keep:
                out = ctx.emit(R.squeeze(out, axes))
            return out
        raise AssertionError(kind)

    return f


def _float_extremum(ctx, e, kind: str, axes, keep: bool, dt: str):
    """max/min whose result over all -inf (+inf) is -inf (+inf). TVM's reductions start
    from the dtype's lowest (highest) finite value, so they return that instead, and
    masks built on ``max == -inf`` (attention's fully masked rows) never fire."""
    R = _R().op
    r = ctx.emit(getattr(R, kind)(e, axes, keep))
    finfo = np.finfo(np.float32 if dt == "bfloat16" else dt)
    edge, inf = (float(finfo.min), float("-inf")) if kind == "max" else (float(finfo.max), float("inf"))
    edge_c, inf_c = _scalar(ctx, edge, dt), _scalar(ctx, inf, dt)
    # r == edge: every element is edge or infinite; the answer is edge if any is edge.
    any_edge = ctx.emit(R.max(R.astype(R.equal(e, edge_c), "int8"), axes, keep))
    truly = ctx.emit(R.logical_or(R.not_equal(r, edge_c), R.equal(any_edge, _scalar(ctx, 1, "int8"))))
    r = ctx.emit(R.where(truly, r, inf_c))
    # The reduction skips NaN (LLVM's maxnum); a NaN anywhere makes the result NaN, as in
    # numpy and torch (onnxruntime's own kernel is inconsistent here).
    has_nan = _any_nan(ctx, e, axes, keep)
    return ctx.emit(R.where(has_nan, _scalar(ctx, float("nan"), dt), r))


def _any_nan(ctx, e, axes, keep: bool):
    R = _R().op
    return ctx.emit(R.equal(R.max(R.astype(R.isnan(e), "int8"), axes, keep), _scalar(ctx, 1, "int8")))


def _argext(ctx, e, kind: str, axis: int, keep: bool, is_float: bool):
    """argmax/argmin where a NaN wins (the first NaN's index, as numpy and torch give):
    TVM's compare skips NaN."""
    R = _R().op
    i = ctx.emit(getattr(R, kind)(e, axis, keep))
    if not is_float:
        return i
    # Nothing beats TVM's initial value (the lowest finite float) in a row of only -inf
    # (argmax) or +inf (argmin): its index stays -1; every element ties, so it is 0.
    i = ctx.emit(R.maximum(i, _scalar(ctx, 0, "int64")))
    nan = ctx.emit(R.astype(R.isnan(e), "int8"))
    first_nan = ctx.emit(R.argmax(nan, axis, keep))
    has = ctx.emit(R.equal(R.max(nan, [axis], keep), _scalar(ctx, 1, "int8")))
    return ctx.emit(R.where(has, first_nan, i))


for _onnx, _k in [("ReduceSum", "sum"), ("ReduceMean", "mean"), ("ReduceMax", "max"), ("ReduceMin", "min"),
                  ("ReduceProd", "prod"), ("ReduceL1", "l1"), ("ReduceL2", "l2"), ("ReduceSumSquare", "sumsquare"),
                  ("ReduceLogSum", "logsum"), ("ReduceLogSumExp", "logsumexp")]:
    _TABLE[_onnx] = _reduce(_k)


def _arg(kind):
    def f(ctx, n):
        x = n.inputs[0]
        r = ctx.rank(x)
        axis = _axis(ctx, n, "axis", r, 0)
        keep = bool(ctx.attr(n, "keepdims", 1))
        e = ctx.get(x)
        if ctx.attr(n, "select_last_index", 0):
            dim = x.type.shape[axis]
            if not isinstance(dim, int):
                raise ctx.fail("select_last_index needs a static dim")
            e = ctx.emit(_R().op.flip(e, axis))
            i = _argext(ctx, e, kind, axis, keep, x.type.dtype.is_float)
            return ctx.emit(_R().op.subtract(_R().const(dim - 1, "int64"), i))
        return _argext(ctx, e, kind, axis, keep, x.type.dtype.is_float)

    return f


_TABLE["ArgMax"] = _arg("argmax")
_TABLE["ArgMin"] = _arg("argmin")


@_reg("Softmax", "LogSoftmax")
def _softmax(ctx, n):
    axis = ctx.attr(n, "axis", -1)
    op = _R().op.nn.softmax if n.op_type == "Softmax" else _R().op.nn.log_softmax
    return ctx.emit(op(ctx.get(n.inputs[0]), axis))


@_reg("Hardmax")
def _hardmax(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, -1)
    dim = x.type.shape[axis]
    am = _argext(ctx, ctx.get(x), "argmax", axis, True, x.type.dtype.is_float)  # the first maximum, as ONNX wants

    def onehot(xx, a):
        from tvm import te, tirx

        def at(*idx):
            first = tuple(idx[:axis]) + (0,) + tuple(idx[axis + 1:])
            return tirx.Select(idx[axis] == a[first], tirx.const(1, xx.dtype), tirx.const(0, xx.dtype))

        return te.compute(xx.shape, at, name="hardmax")

    del dim
    return ctx.te(onehot, ctx.get(x), am)


@_reg("CumSum")
def _cumsum(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = ctx.ints_input(n, 1, "axis")[0]
    axis = axis + r if axis < 0 else axis
    e = ctx.get(x)
    rev = ctx.attr(n, "reverse", 0)
    if rev:
        e = ctx.emit(_R().op.flip(e, axis))
    e = ctx.emit(_R().op.cumsum(e, axis, None, bool(ctx.attr(n, "exclusive", 0))))
    if rev:
        e = ctx.emit(_R().op.flip(e, axis))
    return e


# --------------------------------------------------------------------------- linear algebra
def _const_weight(ctx, b: Optional[Value]) -> Optional[np.ndarray]:
    """The constant value of a 2-D matmul weight, looking through a Transpose of a
    constant (tied embeddings: GPT-2's lm_head reads the embedding table transposed); a
    transposed view, no copy."""
    c = ctx.const_of(b)
    if c is not None or b is None:
        return c
    p = b.producer
    if p is not None and p.op_type == "Transpose" and not p.domain and len(p.inputs) == 1:
        src = ctx.const_of(p.inputs[0])
        perm = p.attr("perm", None)
        if src is not None and src.ndim == 2 and (perm is None or list(perm) == [1, 0]):
            return src.T
    return None


@_reg("MatMul")
def _matmul(ctx, n):
    a, b = n.inputs
    bc = _const_weight(ctx, b)
    if (ctx.packed_kernels and bc is not None and b.type.shape is not None and len(b.type.shape) == 2
            and a.type.shape is not None and len(a.type.shape) >= 2 and a.type.dtype is DType.FLOAT32
            and _static(a.type.shape)):
        from . import kernels

        K, N = bc.shape
        ae = ctx.get(a)
        lead = list(a.type.shape[:-1])
        M = int(np.prod(lead))
        if len(lead) > 1:
            ae = ctx.emit(_R().op.reshape(ae, [M, K]))
        out = kernels.emit_dense(ctx, ae, bc.T, n.name)
        if len(lead) > 1:
            out = ctx.emit(_R().op.reshape(out, lead + [N]))
        return out
    return ctx.emit(_R().op.matmul(ctx.get(a), ctx.get(b)))


@_reg("Gemm")
def _gemm(ctx, n):
    a, b = n.inputs[0], n.inputs[1]
    c = n.inputs[2] if len(n.inputs) > 2 else None
    alpha, beta = ctx.attr(n, "alpha", 1.0), ctx.attr(n, "beta", 1.0)
    ta, tb = ctx.attr(n, "transA", 0), ctx.attr(n, "transB", 0)
    dt = _dt(a)
    bc = _const_weight(ctx, b)
    ae = ctx.get(a)
    if ta:
        ae = ctx.emit(_R().op.permute_dims(ae, [1, 0]))
    if ctx.packed_kernels and bc is not None and a.type.dtype is DType.FLOAT32 and _static(a.type.shape):
        from . import kernels

        w = bc if tb else bc.T  # [N, K]
        if alpha != 1.0:
            w = (w.astype(np.float64) * alpha).astype(np.float32)
        y = kernels.emit_dense(ctx, ae, w, n.name)
    else:
        be = ctx.get(b)
        if tb:
            be = ctx.emit(_R().op.permute_dims(be, [1, 0]))
        y = ctx.emit(_R().op.matmul(ae, be))
        if alpha != 1.0:
            y = ctx.emit(_R().op.multiply(y, _scalar(ctx, alpha, dt)))
    if c is not None and beta != 0.0:
        cc = ctx.const_of(c)
        if cc is not None:
            ce = ctx.array((cc.astype(np.float64) * beta).astype(cc.dtype) if beta != 1.0 else cc, c.name)
        else:
            ce = ctx.get(c)
            if beta != 1.0:
                ce = ctx.emit(_R().op.multiply(ce, _scalar(ctx, beta, dt)))
        y = ctx.emit(_R().op.add(y, ce))
    return y


@_reg("Einsum")
def _einsum(ctx, n):
    return ctx.emit(_R().op.einsum([ctx.get(v) for v in n.inputs], ctx.attr(n, "equation")))


# --------------------------------------------------------------------------- conv and pooling
def _spatial_pads(ctx, n, in_sp, k_eff, strides):
    """ONNX auto_pad/pads to (begin list, end list)."""
    d = len(in_sp)
    auto = ctx.attr(n, "auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        b, e = [], []
        for i in range(d):
            if not isinstance(in_sp[i], int):
                raise ctx.fail("auto_pad SAME needs static spatial dims")
            out = -(-in_sp[i] // strides[i])
            tot = max(0, (out - 1) * strides[i] + k_eff[i] - in_sp[i])
            lo = tot // 2 if auto == "SAME_UPPER" else tot - tot // 2
            b.append(lo)
            e.append(tot - lo)
        return b, e
    if auto == "VALID":
        return [0] * d, [0] * d
    pads = ctx.attr(n, "pads", None)
    pads = list(pads) if pads else [0] * (2 * d)
    return pads[:d], pads[d:]


@_reg("Conv")
def _conv(ctx, n):
    x, w = n.inputs[0], n.inputs[1]
    b = n.inputs[2] if len(n.inputs) > 2 else None
    r = ctx.rank(x)
    d = r - 2
    wshape = w.type.shape
    ks = ctx.attr(n, "kernel_shape", None) or list(wshape[2:])
    strides = list(ctx.attr(n, "strides", None) or [1] * d)
    dil = list(ctx.attr(n, "dilations", None) or [1] * d)
    groups = ctx.attr(n, "group", 1)
    k_eff = [(k - 1) * dl + 1 for k, dl in zip(ks, dil)]
    pb, pe = _spatial_pads(ctx, n, list(x.type.shape[2:]), k_eff, strides)
    wc = ctx.const_of(w)
    bc = ctx.const_of(b) if b is not None else None
    dt = _dt(x)
    if ctx.packed_kernels and d == 2 and wc is not None and x.type.dtype is DType.FLOAT32 and _static(x.type.shape[1:]):
        from . import kernels

        y = kernels.emit_conv2d(ctx, ctx.get(x), x.type.shape, wc, strides, dil, groups, pb, pe, n.name)
    else:
        xe, we = ctx.get(x), ctx.get(w)
        if d == 1:
            y = ctx.emit(_R().op.nn.conv1d(xe, we, strides, pb + pe, dil, groups))
        elif d == 2:
            y = ctx.emit(_R().op.nn.conv2d(xe, we, strides, [pb[0], pb[1], pe[0], pe[1]], dil, groups))
        elif d == 3:
            y = ctx.emit(_R().op.nn.conv3d(xe, we, strides, pb + pe, dil, groups))
        else:
            raise ctx.fail(f"{d}-d convolution is not supported")
    if b is not None:
        be = ctx.array(bc.reshape([-1] + [1] * d), b.name) if bc is not None else \
            ctx.emit(_R().op.reshape(ctx.get(b), [-1] + [1] * d))
        y = ctx.emit(_R().op.add(y, be))
    return y


@_reg("ConvTranspose")
def _conv_transpose(ctx, n):
    x, w = n.inputs[0], n.inputs[1]
    b = n.inputs[2] if len(n.inputs) > 2 else None
    r = ctx.rank(x)
    d = r - 2
    if d not in (1, 2):
        raise ctx.fail(f"{d}-d transposed convolution is not supported")
    if ctx.attr(n, "auto_pad", "NOTSET") not in ("NOTSET", "VALID") or ctx.attr(n, "output_shape", None):
        raise ctx.fail("auto_pad SAME and output_shape are not supported")
    strides = list(ctx.attr(n, "strides", None) or [1] * d)
    dil = list(ctx.attr(n, "dilations", None) or [1] * d)
    groups = ctx.attr(n, "group", 1)
    pads = list(ctx.attr(n, "pads", None) or [0] * (2 * d))
    opad = list(ctx.attr(n, "output_padding", None) or [0] * d)
    op = _R().op.nn.conv1d_transpose if d == 1 else _R().op.nn.conv2d_transpose
    y = ctx.emit(op(ctx.get(x), ctx.get(w), strides, pads, opad, dil, groups))
    if b is not None:
        y = ctx.emit(_R().op.add(y, ctx.emit(_R().op.reshape(ctx.get(b), [-1] + [1] * d))))
    return y


def pool_window(ctx, n):
    """A pooling node's window: spatial rank, kernel, strides, dilations, effective
    (dilated) kernel, and begin/end pads with auto_pad resolved."""
    x = n.inputs[0]
    d = ctx.rank(x) - 2
    ks = list(ctx.attr(n, "kernel_shape"))
    strides = list(ctx.attr(n, "strides", None) or [1] * d)
    dil = list(ctx.attr(n, "dilations", None) or [1] * d)
    k_eff = [(k - 1) * dl + 1 for k, dl in zip(ks, dil)]
    pb, pe = _spatial_pads(ctx, n, list(x.type.shape[2:]), k_eff, strides)
    return d, ks, strides, dil, k_eff, pb, pe


def _pool(kind):
    def f(ctx, n):
        x = n.inputs[0]
        d, ks, strides, dil, k_eff, pb, pe = pool_window(ctx, n)
        ceil = bool(ctx.attr(n, "ceil_mode", 0))
        if len(n.outputs) > 1 and n.outputs[1] is not None:
            raise ctx.fail("MaxPool's Indices output is not supported")
        e = ctx.get(x)
        P = _R().op.nn
        if d not in (1, 2, 3):
            raise ctx.fail(f"{d}-d pooling is not supported")
        name = {1: "1d", 2: "2d", 3: "3d"}[d]
        if kind == "max":
            return ctx.emit(getattr(P, "max_pool" + name)(e, ks, strides, pb + pe, dil, ceil))
        cip = bool(ctx.attr(n, "count_include_pad", 0))
        return ctx.emit(getattr(P, "avg_pool" + name)(e, ks, strides, pb + pe, dil, ceil, cip))

    return f


_TABLE["MaxPool"] = _pool("max")
_TABLE["AveragePool"] = _pool("avg")


@_reg("GlobalAveragePool", "GlobalMaxPool")
def _global_pool(ctx, n):
    x = n.inputs[0]
    axes = list(range(2, ctx.rank(x)))
    if n.op_type == "GlobalMaxPool" and x.type.dtype.is_float:
        return _float_extremum(ctx, ctx.get(x), "max", axes, True, _dt(x))
    op = _R().op.mean if n.op_type == "GlobalAveragePool" else _R().op.max
    return ctx.emit(op(ctx.get(x), axes, True))


@_reg("LRN")
def _lrn(ctx, n):
    from tvm import te

    size = ctx.attr(n, "size")
    alpha, beta, bias = ctx.attr(n, "alpha", 1e-4), ctx.attr(n, "beta", 0.75), ctx.attr(n, "bias", 1.0)
    x = n.inputs[0]
    dt = _dt(x)
    lo = (size - 1) // 2

    def compute(t):
        C = t.shape[1]
        rk = te.reduce_axis((0, size), name="rk")
        sq = te.compute(t.shape, lambda nn_, c, *s: te.sum(
            _tir().if_then_else(_tir().all(c - lo + rk >= 0, c - lo + rk < C),
                                t(nn_, c - lo + rk, *s) * t(nn_, c - lo + rk, *s), _c(0, dt)), axis=rk), name="lrn_sqsum")
        return te.compute(t.shape, lambda *i: t(*i) / _tir().power(_c(bias, dt) + _c(alpha / size, dt) * sq(*i), _c(beta, dt)),
                          name="lrn")

    return ctx.te(compute, ctx.get(x))


@_reg("BatchNormalization")
def _batchnorm(ctx, n):
    x = n.inputs[0]
    if ctx.attr(n, "training_mode", 0):
        raise ctx.fail("BatchNormalization in training mode is not supported")
    if any(o is not None for o in n.outputs[1:]):
        raise ctx.fail("BatchNormalization's running mean/var outputs are not supported")
    eps = ctx.attr(n, "epsilon", 1e-5)
    r = ctx.rank(x)
    vals = [ctx.const_of(v) for v in n.inputs[1:5]]
    dt = _dt(x)
    shp = [-1] + [1] * (r - 2)
    if all(v is not None for v in vals):
        s, bb, m, var = (np.asarray(v, dtype=np.float64) for v in vals)
        a = s / np.sqrt(var + eps)
        c = bb - m * a
        ae = ctx.array(a.astype(x.type.dtype.numpy).reshape(shp), n.name + ".scale")
        ce = ctx.array(c.astype(x.type.dtype.numpy).reshape(shp), n.name + ".shift")
        return ctx.emit(_R().op.add(ctx.emit(_R().op.multiply(ctx.get(x), ae)), ce))
    s, bb, m, var = (ctx.emit(_R().op.reshape(ctx.get(v), shp)) for v in n.inputs[1:5])
    R = _R().op
    a = ctx.emit(R.divide(s, ctx.emit(R.sqrt(ctx.emit(R.add(var, _scalar(ctx, eps, dt)))))))
    y = ctx.emit(R.multiply(ctx.emit(R.subtract(ctx.get(x), m)), a))
    return ctx.emit(R.add(y, bb))


def _bcast_param(ctx, v: Optional[Value], norm_shape: list, dt: str, fill: float):
    if v is None:
        return ctx.array(np.full([d for d in norm_shape], fill, dtype=dt), "fill") if all(isinstance(d, int) for d in norm_shape) \
            else ctx.emit(_R().op.full(norm_shape, _R().const(fill, dt), dt))
    c = ctx.const_of(v)
    if c is not None and all(isinstance(d, int) for d in norm_shape):
        return ctx.array(np.ascontiguousarray(np.broadcast_to(c, norm_shape)), v.name)
    return ctx.emit(_R().op.broadcast_to(ctx.get(v), norm_shape))


def _onnx_dtype(code: int) -> DType:
    from ..ops.defs._dtypes import dtype_from_onnx

    return dtype_from_onnx(code)


@_reg("LayerNormalization")
def _layer_norm(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, -1)
    eps = ctx.attr(n, "epsilon", 1e-5)
    dt = _dt(x)
    norm_shape = ctx.shape_of(x)[axis:]
    g = _bcast_param(ctx, n.inputs[1], norm_shape, dt, 1.0)
    b = _bcast_param(ctx, n.inputs[2] if len(n.inputs) > 2 else None, norm_shape, dt, 0.0)
    axes = list(range(axis, r))
    if all(o is None for o in n.outputs[1:]):
        return ctx.emit(_R().op.nn.layer_norm(ctx.get(x), g, b, axes, eps))
    # Mean and InvStdDev wanted too: spelled out in the stash type, as ONNX defines them.
    R = _R().op
    st = tvm_dtype(_onnx_dtype(ctx.attr(n, "stash_type", 1)))
    xs = ctx.emit(R.astype(ctx.get(x), st))
    mean = ctx.emit(R.mean(xs, axes, keepdims=True))
    xc = ctx.emit(R.subtract(xs, mean))
    inv = ctx.emit(R.rsqrt(R.add(R.mean(R.multiply(xc, xc), axes, keepdims=True), _scalar(ctx, eps, st))))
    y = ctx.emit(R.add(R.multiply(R.astype(R.multiply(xc, inv), dt), g), b))
    return [y, mean, inv]


@_reg("InstanceNormalization")
def _instance_norm(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    eps = ctx.attr(n, "epsilon", 1e-5)
    R = _R().op
    dt = _dt(x)
    e = ctx.get(x)
    axes = list(range(2, r))
    mean = ctx.emit(R.mean(e, axes, True))
    xc = ctx.emit(R.subtract(e, mean))
    var = ctx.emit(R.mean(ctx.emit(R.multiply(xc, xc)), axes, True))
    y = ctx.emit(R.divide(xc, ctx.emit(R.sqrt(ctx.emit(R.add(var, _scalar(ctx, eps, dt)))))))
    shp = [-1] + [1] * (r - 2)
    s = ctx.emit(R.reshape(ctx.get(n.inputs[1]), shp))
    b = ctx.emit(R.reshape(ctx.get(n.inputs[2]), shp))
    return ctx.emit(R.add(ctx.emit(R.multiply(y, s)), b))


@_reg("LpNormalization")
def _lp_norm(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axis = _axis(ctx, n, "axis", r, -1)
    p = ctx.attr(n, "p", 2)
    R = _R().op
    e = ctx.get(x)
    if p == 1:
        norm = ctx.emit(R.sum(ctx.emit(R.abs(e)), [axis], True))
    else:
        norm = ctx.emit(R.sqrt(ctx.emit(R.sum(ctx.emit(R.multiply(e, e)), [axis], True))))
    # A zero vector stays zero (onnxruntime), rather than 0/0.
    zero = _scalar(ctx, 0, _dt(x))
    return ctx.emit(R.where(R.equal(norm, zero), e, R.divide(e, norm)))


@_reg("MeanVarianceNormalization")
def _mvn(ctx, n):
    x = n.inputs[0]
    r = ctx.rank(x)
    axes = [a + r if a < 0 else a for a in (ctx.attr(n, "axes", None) or [0, 2, 3])]
    R = _R().op
    dt = _dt(x)
    e = ctx.get(x)
    mean = ctx.emit(R.mean(e, axes, True))
    xc = ctx.emit(R.subtract(e, mean))
    var = ctx.emit(R.mean(ctx.emit(R.multiply(xc, xc)), axes, True))
    return ctx.emit(R.divide(xc, ctx.emit(R.add(ctx.emit(R.sqrt(var)), _scalar(ctx, 1e-9, dt)))))


# --------------------------------------------------------------------------- fused groups
def _lower_fused_group(ctx, n):
    """A graphopt fused group: its subgraph becomes one Relax function marked Primitive
    (TVM compiles it as one kernel), called from main. It is built nested in main's
    builder, so that the kernels emitted inside are named apart from main's; large
    constants inside become parameters passed down from main."""
    from tvm import relax

    from .lowering_control import _SubCtx

    sub = n.subgraphs()[0]
    sub_ctx = _SubCtx(ctx, sub)
    inner_in = [relax.Var(_safe(v.name), sub_ctx.sinfo(v)) for v in sub.inputs]
    for v, var in zip(sub.inputs, inner_in):
        sub_ctx.env[id(v)] = var
    bb = ctx.bb
    with bb.function("fused_" + _safe(n.name), attrs={"Primitive": 1}, private=True):
        with bb.dataflow():
            for inner in sub.nodes:
                sub_ctx.node = inner
                _lower_node(sub_ctx, inner)
            outs = [bb.emit_output(sub_ctx.get(o)) for o in sub.outputs]
        gv = bb.emit_func_output(outs[0] if len(outs) == 1 else relax.Tuple(outs), params=inner_in + sub_ctx.param_vars)
    call = ctx.emit(relax.Call(gv, [ctx.get(v) for v in n.inputs] + sub_ctx.routed))
    if len(sub.outputs) == 1:
        return [call]
    return [ctx.emit(relax.TupleGetItem(call, i)) for i in range(len(sub.outputs))]


from . import lowering_ops_extra as _lowering_ops_extra  # noqa: E402,F401  (registers more ops)
from .lowering_control import emit_body  # noqa: E402  (also registers If and Loop)
from . import lowering_ops_linalg_vision as _lowering_ops_linalg_vision  # noqa: E402,F401  (Det, NonMaxSuppression)
