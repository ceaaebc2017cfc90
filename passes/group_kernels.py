"""Kernel grouping: graphopt, not TVM's FuseOps, decides the kernel around each anchor.

An anchor is an op with an output an elementwise epilogue fuses into: `PatternKind`
OUT_FUSABLE (matmul, conv, ...) or a named fused row reduction (graphopt.RMSNorm,
LayerNormalization: PatternKind REDUCTION with a reference decomposition). Around it the
pass outlines one ``graphopt.FusedGroup`` named ``k_<anchor>``, which codegen lowers as one
Primitive function, compiled as exactly one kernel:

- the epilogue: the chain of ELEMENTWISE/BROADCAST consumers of the anchor's value (bias
  Add, activation, residual Add, scale Mul, Cast), each taking in the chain's value and
  values computed outside the group (constants, graph inputs, earlier nodes' outputs),
  with the chain's shape (an operand broadcasts into the chain, never the chain up), and
  the reshapes on the way to one (`RESHAPES`: the write-back stores through the index
  map; GPT-2's Gemm -> Reshape -> residual Add). It extends while the chain's value has
  one use. A value also used elsewhere ends the chain there, before its other user:
  outputting it from the group as well would make the packed kernels' write-back store it
  and keep going, which their schedule does not do (it inlines a consumer only where the
  value it consumes has one reader);
- the prologue: the weight of a matmul when it is a Transpose of a constant used only by
  the anchor (tied embeddings: GPT-2's lm_head). It must come in: the packed dense kernel
  needs constant weights, and a group input is not one. With ``prologues`` on, also
  INJECTIVE producers (Transpose, Reshape, Squeeze, Unsqueeze) of the anchor's data input
  used only by the anchor (a producer with another user is never pulled in: that would
  compute it twice). Off by default: the packed kernels' schedules compute a prologue as
  a copy loop of its own inside the group, and outside it FuseOps fuses the same copy into
  its producer's kernel, so pulling it in saves nothing and may add a pass over the data.

The benefit rule, what keeps a group from being slower than what FuseOps gives (measured
by building: see tests/passes/test_group_kernels.py):

- a group holds one anchor: the chain stops at any op that is not elementwise/broadcast
  or a reshape (another matmul, a reduction, a transpose), so two anchors are never
  grouped;
- a matmul/gemm/conv anchor must be one graphopt's packed kernels compute (float32, static
  shapes, constant weights; a 2-D matmul weight, a 4-D conv input): those kernels'
  schedules (codegen/schedules dense.py, conv.py) inline an epilogue into the write-back
  of the register tile. Other out-fusable ops (pooling, a matmul of two activations,
  integer matmuls, ConvTranspose) keep FuseOps's grouping: their schedules were not
  written for a group. graphopt.Attention (two matmuls and a softmax) is no anchor: one
  kernel would lose the matmul and row schedules;
- the epilogue takes only ops whose lowering is one elementwise stage that reads the
  chain's value once (`MULTI_STAGE` lists those that are not: Gelu is x*0.5*(1+erf(x/√2)),
  reading x twice, so the dense write-back stops before it and every later op of the
  group ran as a separate loop: 10-20% slower than FuseOps's separate epilogue kernel);
  the chain stops before such an op;
- a group of the anchor alone (no epilogue) is not formed: FuseOps gives it the same kernel.

What it gains: a matmul over a 3-D input lowers as reshape, dense, reshape, and FuseOps
puts the dense in a kernel of its own, its epilogue in another (the reshape between them
is not elementwise): grouped, the epilogue is computed in the dense kernel's write-back.
A named row reduction (RMSNorm, lowered from its decomposition as a kernel of its own)
takes its elementwise epilogue into its kernel. Where FuseOps already fuses the same ops
(a 2-D matmul and its epilogue), the group is that same kernel.

Measured (``python -m benchmarks.pass_ab --with group-kernels --models bert,gpt2-decode,gpt2
--rounds 8``, 2026-12-02, a shared 2-core AVX2 machine, load 1.5-2.7; median ratio grouped /
-O2 over interleaved rounds): BERT-base seq 128 1.016 (288.3 vs 284.7 ms), GPT-2 decode
0.944 (39.3 vs 40.3 ms, 21 kernels vs 23), GPT-2 prefill seq 128 1.010 (446.8 vs 454.4 ms,
20 kernels vs 22): no slower within this machine's noise, and identical outputs. It runs
last in -O2. On CUDA (no packed kernels there) a group's kernel still gets dlight's Matmul
schedule, as FuseOps's did (read off the built TIR for sm_80; not timed, no GPU here).

Every anchor it looks at and does not group is a miss with the reason (``--explain
group-kernels``); each group formed is one application of rule ``group-kernels.group``,
which the group node's provenance records (its held nodes keep the provenance earlier
rewrites gave them; those without one record the rule too). Top-level graph only: the
bodies of If/Loop and of existing groups are left alone. Running it twice changes nothing
(a group is opaque; what is left was refused for a reason that still holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from graphopt.ir import Graph, Node, Value
from graphopt.ir.function import DOMAIN, outline, why_not_outline
from graphopt.ir.graph import Provenance
from graphopt.ir.types import DType
from graphopt.ops import PatternKind, get_schema, has_decomposition
from graphopt.pipeline.base import Pass, PassContext, register_pass

RULE = "group-kernels.group"

EPILOGUE_KINDS = (PatternKind.ELEMENTWISE, PatternKind.BROADCAST)

# Elementwise/broadcast ops whose lowering is more than one stage, one of which reads the
# input again (x * f(x)): the packed kernels' write-back cannot take them (see the module
# docstring). Found by building each op as a matmul epilogue (the test checks this list
# against the built kernels, both ways, so a lowering that changes shows up there).
MULTI_STAGE = frozenset({"Gelu", "Mod", "PRelu", "Sign", "graphopt.SiLU", "graphopt.SwiGLU"})

# The out-fusable ops graphopt's packed CPU kernels compute, by the input that must be a
# constant (codegen/lower/packed.py; passes do not import codegen).
PACKED_WEIGHT = {"MatMul": 1, "Gemm": 1, "Conv": 1}

# Injective ops that only reshape (row-major order kept): an epilogue passes through them
# to the elementwise ops after them (GPT-2's Gemm -> Reshape -> residual Add).
RESHAPES = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})


def kind_of(n: Node) -> Optional[PatternKind]:
    s = get_schema(n.op_type, n.domain)
    return s.traits.kind if s is not None else None


def _site(n: Node) -> str:
    return f"{n.name} ({n.qualified_op})"


def _const_weight(v: Optional[Value], prologue: list[Node]) -> Optional[str]:
    """None when ``v`` is a constant, or a Transpose of one used only here (appended to
    ``prologue``); else why not."""
    if v is None:
        return "it has no weight input"
    if v.is_constant:
        return None
    p = v.producer
    if p is not None and p.op_type == "Transpose" and not p.domain and len(p.inputs) == 1 \
            and p.inputs[0] is not None and p.inputs[0].is_constant:
        if len(v.uses()) != 1 or v.is_graph_output():
            return (f"its weight %{v.name} (a transposed constant) is used elsewhere too: in the group it would not "
                    "be a constant, and the packed kernel needs one")
        prologue.append(p)
        return None
    return f"its weight %{v.name} is computed, not a constant"


def _anchor_reason(n: Node, prologue: list[Node]) -> Optional[str]:
    """None when the group around ``n`` keeps ``n``'s fast schedule; else why not."""
    kind = kind_of(n)
    if kind is PatternKind.OUT_FUSABLE:
        if n.domain or n.op_type not in PACKED_WEIGHT:
            return (f"{n.qualified_op} is not one of graphopt's packed kernels (dense, conv) whose write-back "
                    "takes an epilogue; FuseOps groups it")
        x = n.inputs[0]
        if x is None or x.type.dtype is not DType.FLOAT32:
            return "the packed kernels are float32 only"
        if x.type.shape is None or not x.type.is_static:
            return f"input %{x.name} has no static shape (the packed kernels need one)"
        if n.op_type == "MatMul" and len(x.type.shape) < 2:
            return "the packed dense kernel takes a matrix (or a batch of rows), not a vector"
        if n.op_type == "Conv" and len(x.type.shape) != 4:
            return "only 2-D convolutions (4-D input) have a packed kernel"
        w = n.inputs[PACKED_WEIGHT[n.op_type]]
        if n.op_type == "MatMul" and (w is None or w.type.shape is None or len(w.type.shape) != 2):
            return "the packed dense kernel takes a 2-D weight"
        return _const_weight(w, prologue)
    if kind is PatternKind.REDUCTION and has_decomposition(n):
        return None
    return "not an anchor"


def _epilogue_reason(v: Value, u: Node) -> Optional[str]:
    """None when ``u`` (the one user of the chain's value ``v``) extends the chain."""
    if kind_of(u) not in EPILOGUE_KINDS:
        return f"%{v.name} goes on to {_site(u)}, which is not elementwise"
    if u.qualified_op in MULTI_STAGE:
        return (f"{_site(u)} lowers to several stages that read %{v.name} twice: the packed kernels' write-back "
                "stops before it, and the rest of the group would run as loops of their own (slower than FuseOps)")
    if len([o for o in u.outputs if o is not None]) != 1:
        return f"{_site(u)} has several outputs"
    out = u.outputs[0]
    if out.type.shape != v.type.shape:
        return f"{_site(u)} broadcasts %{v.name} {list(v.type.shape or ())} up to {list(out.type.shape or ())}"
    if sum(1 for x in u.inputs if x is v) != 1:
        return f"{_site(u)} reads %{v.name} twice"
    return None


def _is_reshape(v: Value, u: Node) -> bool:
    """``u`` only reshapes ``v`` (row-major order kept: an affine index map that the packed
    write-back inlines), its other inputs constants."""
    return (not u.domain and u.op_type in RESHAPES and u.inputs and u.inputs[0] is v
            and all(x is None or x.is_constant for x in u.inputs[1:])
            and len([o for o in u.outputs if o is not None]) == 1)


def _epilogue(anchor: Node) -> tuple[list[Node], str]:
    """The epilogue chain after ``anchor``, and why it ends where it does. Reshapes join
    it only on the way to an elementwise op (a trailing one stays out: FuseOps puts it
    with its consumers as before)."""
    outs = [o for o in anchor.outputs if o is not None]
    if len(outs) != 1:
        return [], "it has several outputs"
    v, chain, pending = outs[0], [], []
    while True:
        uses = v.uses()
        if v.is_graph_output() and uses:
            return chain, f"%{v.name} is a graph output and used inside the graph too"
        if len(uses) != 1:
            return chain, (f"%{v.name} has {len(uses)} uses" if uses else f"%{v.name} is a graph output")
        u = uses[0].node
        if u.graph is not anchor.graph:
            return chain, f"%{v.name} is read inside a subgraph"
        if _is_reshape(v, u):
            pending.append(u)
        else:
            why = _epilogue_reason(v, u)
            if why:
                return chain, why
            chain += pending + [u]
            pending = []
        v = u.outputs[0]


def _data_prologue(anchor: Node) -> list[Node]:
    """INJECTIVE producers of ``anchor``'s data input used only by it (a chain of them)."""
    out: list[Node] = []
    v = anchor.inputs[0] if anchor.inputs else None
    while v is not None and v.producer is not None and v.producer.graph is anchor.graph:
        p = v.producer
        if kind_of(p) is not PatternKind.INJECTIVE or p.domain or len(v.uses()) != 1 or v.is_graph_output():
            break
        if len([o for o in p.outputs if o is not None]) != 1:
            break
        out.append(p)
        data = [x for x in p.inputs if x is not None and not x.is_constant]
        if len(data) != 1:
            break
        v = data[0]
    return out


@register_pass
@dataclass
class GroupKernels(Pass):
    name = "group-kernels"
    summary = "outline each matmul/conv/norm anchor with its elementwise epilogue as one graphopt.FusedGroup kernel"

    prologues: bool = False

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for anchor in list(graph.nodes):
            if anchor.graph is not graph:
                continue  # taken into a group already
            kind = kind_of(anchor)
            named = has_decomposition(anchor)
            if kind is not PatternKind.OUT_FUSABLE and not (named and kind is PatternKind.REDUCTION):
                if named and anchor.domain == DOMAIN and kind is PatternKind.OPAQUE:
                    ctx.explain_failed(RULE, _site(anchor), f"{anchor.qualified_op} is no anchor: its kernels are "
                                       "TVM's, and one group of all of it would lose the matmul and row schedules")
                continue
            if self._group(graph, anchor, ctx):
                changed = True
        return changed

    def _group(self, graph: Graph, anchor: Node, ctx: PassContext) -> bool:
        site = _site(anchor)
        prologue: list[Node] = []
        why = _anchor_reason(anchor, prologue)
        if why:
            ctx.explain_failed(RULE, site, why, near=True)
            return False
        chain, ends = _epilogue(anchor)
        if not chain:
            ctx.explain_failed(RULE, site, f"no epilogue ({ends}): the anchor alone is the kernel FuseOps gives it",
                               near=True)
            return False
        if self.prologues:
            prologue += _data_prologue(anchor)
        nodes = prologue + [anchor] + chain
        why = why_not_outline(graph, nodes)
        if why:
            ctx.explain_failed(RULE, site, why, near=True)
            return False
        if ctx.limit_reached:
            ctx.refused += 1
            ctx.explain_failed(RULE, site, "the bisect limit was reached", near=True)
            return False
        names = tuple(n.name for n in nodes)
        group = outline(graph, nodes, f"k_{anchor.name}")
        group.provenance = Provenance(RULE, names)
        for inner in group.subgraphs()[0].nodes:
            if inner.provenance is None:
                inner.provenance = Provenance(RULE, (inner.name[len(group.name) + 1:],))
        ctx.allow(RULE, nodes, lambda: f"{group.name}: " + ", ".join(_site(n) for n in nodes)
                  + f" (the epilogue ends: {ends})", created=[group])
        ctx.explain_applied(RULE, site)
        return True
