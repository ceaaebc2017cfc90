"""The op registry: for every op graphopt supports, its schema and its type inference.

An op is registered with `@register(...)` giving its inputs, outputs and attributes (with
kinds and defaults) and a function that maps an `InferContext` (input types, constant
input values where known, attributes with defaults applied) to the output types. Type
inference is symbolic: dims are ints or named symbols, and a dim that cannot be known
gets a deterministic fresh symbol derived from the node's name (``ctx.fresh_dim``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..ir import Attr, AttrKind, Graph, Node, TensorData, TensorType, Value
from ..ir.types import DType

REQUIRED = object()  # marks an attribute without a default


class InferError(ValueError):
    """The inputs or attributes of a node are not valid for its op."""


@dataclass(frozen=True)
class AttrSpec:
    kind: AttrKind
    default: Any = None  # None: optional with no default; REQUIRED: must be given


class PatternKind(enum.Enum):
    """How an op's loops relate its outputs to its inputs, for kernel grouping (TVM's
    OpPatternKind): each element from the same element (elementwise), the same with
    broadcasting, any fixed index map (injective: reshape, transpose, gather), a reduction
    over some axes, an anchor whose output an elementwise epilogue can fuse into (conv,
    matmul, pooling), or none of these (opaque)."""

    ELEMENTWISE = "elementwise"
    BROADCAST = "broadcast"
    INJECTIVE = "injective"
    REDUCTION = "reduction"
    OUT_FUSABLE = "out-fusable"
    OPAQUE = "opaque"


@dataclass(frozen=True)
class OpTraits:
    """What passes need to know about an op beyond its types. ``kind``: its `PatternKind`
    (None until its family's file says; a test requires every op to have one);
    ``commutative``: a binary op whose two inputs may be swapped (the rewrite matcher tries
    both orders); ``deterministic``: equal inputs give equal outputs (CSE may merge two such
    nodes, and fold-constants may evaluate them once); ``control_flow``: runs subgraphs (If,
    Loop); ``flops``: how one run of the op is counted (a `graphopt.ops.flops` rule; None:
    one per output element)."""

    kind: Optional[PatternKind] = None
    commutative: bool = False
    deterministic: bool = True
    control_flow: bool = False
    flops: Optional[Callable] = None


@dataclass(frozen=True)
class OpSchema:
    op_type: str
    domain: str
    inputs: tuple[str, ...]          # names; "X?" optional, "xs*" variadic (one or more, last only),
                                     # "xs*?" variadic that may be empty
    outputs: tuple[str, ...]         # names; "Y?" optional, "outputs*" variadic
    attrs: Mapping[str, AttrSpec]
    infer: Callable[["InferContext"], Sequence[Optional[TensorType]]]
    doc: str = ""
    traits: OpTraits = OpTraits()
    # A named fused op's reference decomposition into standard ONNX ops: ``fn(body, node,
    # inputs) -> outputs`` adds nodes to ``body`` (whose inputs stand for the node's) and
    # returns the values standing for the node's outputs. Export writes it as the op's ONNX
    # function, so onnxruntime (the oracle) runs the op; see `decompose`.
    decomposition: Optional[Callable[[Graph, Node, list], list]] = None

    @property
    def min_inputs(self) -> int:
        n = 0
        for i, name in enumerate(self.inputs):
            if not name.endswith("?") or name.endswith("*"):
                n = i + 1  # required, or a variadic that needs at least one
        return n

    @property
    def max_inputs(self) -> Optional[int]:
        return None if self.inputs and self.inputs[-1].rstrip("?").endswith("*") else len(self.inputs)

    @property
    def qualified(self) -> str:
        return f"{self.domain}.{self.op_type}" if self.domain else self.op_type


class InferContext:
    """What a type-inference function sees of one node."""

    def __init__(self, schema: OpSchema, node_name: str, input_types: Sequence[Optional[TensorType]],
                 input_consts: Sequence[Optional[TensorData]], attrs: Mapping[str, Attr], num_outputs: int,
                 subgraphs: Mapping[str, Graph] = {}):
        self.schema = schema
        self.node_name = node_name
        self.input_types = list(input_types)
        self.input_consts = list(input_consts)
        self._attrs = attrs
        self.num_outputs = num_outputs
        self.subgraphs = subgraphs

    # inputs ------------------------------------------------------------
    @property
    def num_inputs(self) -> int:
        return len(self.input_types)

    def has_input(self, i: int) -> bool:
        return i < len(self.input_types) and self.input_types[i] is not None

    def type(self, i: int) -> TensorType:
        if not self.has_input(i):
            raise InferError(f"input {i} ({self._input_name(i)}) is missing")
        return self.input_types[i]  # type: ignore[return-value]

    def shape(self, i: int):
        return self.type(i).shape

    def dtype(self, i: int) -> DType:
        return self.type(i).dtype

    def const(self, i: int) -> Optional[np.ndarray]:
        """The value of input ``i`` when it is a constant (not elided), else None."""
        if i >= len(self.input_consts):
            return None
        c = self.input_consts[i]
        if c is None or c.is_elided:
            return None
        return c.numpy()

    def _input_name(self, i: int) -> str:
        names = self.schema.inputs
        return names[min(i, len(names) - 1)].rstrip("?*") if names else str(i)

    # attributes ----------------------------------------------------------
    def attr(self, name: str, default: Any = REQUIRED):
        """The attribute's value, falling back on the schema's default."""
        a = self._attrs.get(name)
        if a is not None:
            return a.value
        spec = self.schema.attrs.get(name)
        if default is REQUIRED:
            default = spec.default if spec is not None else None
        if default is REQUIRED:
            raise InferError(f"required attribute {name!r} is missing")
        return default

    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    # results ---------------------------------------------------------------
    def fresh_dim(self, output: int, axis: int) -> str:
        """A deterministic symbol for a dim that inference cannot know."""
        return f"{self.node_name}_o{output}_d{axis}" if output else f"{self.node_name}_d{axis}"

    def fail(self, msg: str) -> InferError:
        return InferError(msg)


_REGISTRY: dict[tuple[str, str], OpSchema] = {}


def register(op_type: str, inputs: Sequence[str], outputs: Sequence[str], attrs: Optional[Mapping[str, AttrSpec]] = None,
             *, domain: str = "", doc: str = ""):
    """Decorator: register ``fn(ctx) -> list[TensorType | None]`` as the inference of an op."""

    def deco(fn):
        schema = OpSchema(op_type, domain, tuple(inputs), tuple(outputs), dict(attrs or {}), fn, doc or (fn.__doc__ or "").strip())
        key = (domain, op_type)
        if key in _REGISTRY:
            raise ValueError(f"op {schema.qualified} is registered twice")
        _REGISTRY[key] = schema
        return fn

    return deco


def set_traits(op_types: Sequence[str], *, domain: str = "", **traits) -> None:
    """Give registered ops traits (next to their registration, in their family's file)."""
    from dataclasses import replace

    for op in op_types:
        key = (domain, op)
        if key not in _REGISTRY:
            raise ValueError(f"set_traits: op {op!r} is not registered")
        s = _REGISTRY[key]
        _REGISTRY[key] = replace(s, traits=replace(s.traits, **traits))


def set_decomposition(op_type: str, fn: Callable[[Graph, Node, list], list], *, domain: str) -> None:
    """Give a registered (named fused) op its reference decomposition (next to its
    registration)."""
    from dataclasses import replace

    key = (domain, op_type)
    if key not in _REGISTRY:
        raise ValueError(f"set_decomposition: op {domain}.{op_type} is not registered")
    _REGISTRY[key] = replace(_REGISTRY[key], decomposition=fn)


def has_decomposition(node: Node) -> bool:
    """Whether ``node``'s op is a named fused op with a reference decomposition."""
    s = get_schema(node.op_type, node.domain)
    return s is not None and s.decomposition is not None


def decompose(node: Node) -> Graph:
    """The reference decomposition of a named fused op ``node``: a graph of standard ops
    with one input per input of the node (same names and types) and one output per
    output; InferError naming the node if the op has none, or if what it builds does not
    have the node's output types."""
    schema = get_schema(node.op_type, node.domain)
    where = f"node {node.name!r} ({node.qualified_op})"
    if schema is None or schema.decomposition is None:
        raise InferError(f"{where}: the op has no reference decomposition")
    if any(v is None for v in node.inputs):
        raise InferError(f"{where}: a decomposition needs every input present (an omitted optional input in "
                         "the middle is not supported)")
    root = node.graph.root if node.graph is not None else None
    body = Graph(f"{node.name}/decomposition", dict(root.opset_imports) if root is not None else {"": 21})
    ins = [body.add_input(v.name, v.type) for v in node.inputs]
    outs = schema.decomposition(body, node, ins)
    present = [o for o in node.outputs if o is not None]
    if len(outs) != len(present):
        raise InferError(f"{where}: the decomposition gives {len(outs)} outputs, the node has {len(present)}")
    for o, d in zip(present, outs):
        if o.type != d.type:
            raise InferError(f"{where}: the decomposition's output for %{o.name} is {d.type}, the node's {o.type}")
    body.outputs = outs
    return body


def attr_value(node: Node, name: str, default: Any = None):
    """A node's attribute value, else its schema's default, else ``default``: the one place
    attribute defaults are read (inference, rewrite patterns and lowerings all ask here)."""
    a = node.attrs.get(name)
    if a is not None:
        return a.value
    s = get_schema(node.op_type, node.domain)
    spec = s.attrs.get(name) if s is not None else None
    if spec is None or spec.default is None or spec.default is REQUIRED:
        return default
    return spec.default


def get_schema(op_type: str, domain: str = "") -> Optional[OpSchema]:
    return _REGISTRY.get((domain, op_type))


def supported_ops() -> list[OpSchema]:
    return sorted(_REGISTRY.values(), key=lambda s: (s.domain, s.op_type))


def _context(schema: OpSchema, name: str, inputs: Sequence[Optional[Value]], attrs: Mapping[str, Attr],
             num_outputs: int) -> InferContext:
    n = len(inputs)
    if n < schema.min_inputs or (schema.max_inputs is not None and n > schema.max_inputs):
        hi = "any" if schema.max_inputs is None else schema.max_inputs
        raise InferError(f"{schema.qualified} takes {schema.min_inputs} to {hi} inputs, got {n}")
    for i, v in enumerate(inputs):
        declared = schema.inputs[min(i, len(schema.inputs) - 1)]
        if v is None and not declared.endswith("?"):
            raise InferError(f"required input {i} ({declared.rstrip('*?')}) is missing")
    for key, spec in schema.attrs.items():
        if spec.default is REQUIRED and key not in attrs:
            raise InferError(f"required attribute {key!r} is missing")
    for key, a in attrs.items():
        spec = schema.attrs.get(key)
        if spec is None:
            raise InferError(f"unknown attribute {key!r}")
        if a.kind is not spec.kind:
            raise InferError(f"attribute {key!r} should be {spec.kind.value}, got {a.kind.value}")
    subgraphs = {k: a.value for k, a in attrs.items() if a.kind is AttrKind.GRAPH}
    return InferContext(schema, name, [None if v is None else v.type for v in inputs],
                        [None if v is None else v.const for v in inputs], attrs, num_outputs, subgraphs)


def infer_types(op_type: str, inputs: Sequence[Optional[Value]], attrs: Mapping[str, Attr], *, domain: str = "",
                name: str = "node", num_outputs: Optional[int] = None) -> list[Optional[TensorType]]:
    """Output types of an op applied to ``inputs``. Raises InferError (message says why)."""
    schema = get_schema(op_type, domain)
    if schema is None:
        raise InferError(f"unsupported op {domain + '.' if domain else ''}{op_type}")
    if num_outputs is None:
        num_outputs = len([o for o in schema.outputs if not o.endswith("?")]) or 1
    ctx = _context(schema, name, inputs, attrs, num_outputs)
    try:
        out = list(schema.infer(ctx))
    except InferError:
        raise
    except (ValueError, IndexError, TypeError, KeyError) as e:
        raise InferError(f"{schema.qualified}: {e}") from e
    if len(out) < num_outputs:
        out += [None] * (num_outputs - len(out))
    return out[:num_outputs]


def infer_node(node: Node) -> list[Optional[TensorType]]:
    """Re-infer the output types of an existing node (the verifier compares them)."""
    return infer_types(node.op_type, node.inputs, node.attrs, domain=node.domain, name=node.name,
                       num_outputs=len(node.outputs))


def build(graph: Graph, op_type: str, inputs: Sequence[Optional[Value]], attrs: Optional[Mapping[str, Any]] = None,
          *, num_outputs: Optional[int] = None, domain: str = "", name: str = "", **kwargs) -> Node:
    """Add a node whose output types come from the registry (``kwargs`` go to Graph.add_node:
    before, after, provenance, output_names)."""
    schema = get_schema(op_type, domain)
    typed = {}
    for k, v in (attrs or {}).items():
        spec = schema.attrs.get(k) if schema is not None else None
        # The schema's kind wins over a guess from the Python value (1 for a float attribute,
        # [] for a list of floats).
        typed[k] = v if isinstance(v, Attr) or spec is None else Attr(spec.kind, v)
    # The node's final (unique) name first: inference derives fresh symbols from it, and two
    # nodes sharing a name would share symbols that stand for different sizes.
    node_name = graph._fresh_node_name(name or op_type.lower())
    types = infer_types(op_type, inputs, typed, domain=domain, name=node_name, num_outputs=num_outputs)
    return graph.add_node(op_type, inputs, types, typed, name=node_name, domain=domain, **kwargs)
