"""graphopt IR -> ONNX. Every graph exports to a model that passes onnx.checker and runs
on onnxruntime; provenance travels in node metadata_props and comes back on import.

A fused group (``graphopt.FusedGroup``) exports as an ONNX model-local function
(FunctionProto, domain ``graphopt``, marked ``graphopt.op=FusedGroup`` in its metadata)
called by one node: onnxruntime runs any stage of the pipeline, fusions included, and the
importer reads such a function back as the group, not inlined. A named fused op (such as
``graphopt.RMSNorm``) exports the same way, its function's body being the op's reference
decomposition and its metadata mark the op's name; the call keeps the node's attributes
(declared by the function), and import reads it back as that op."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ExportError
from ..ir import AttrKind, DType, Graph, Node, TensorData, TensorType, Value, is_fused_group
from ..ir.attributes import Attr
from ..ops import decompose, has_decomposition

IR_VERSION = 10  # the IR version that goes with opset 21
FUNCTION_MARK = "graphopt.op"      # metadata key of a fused group's FunctionProto
FUNCTION_BODY = "graphopt.body"    # ... and the body graph's name


def tensor_to_proto(data: TensorData, name: str) -> onnx.TensorProto:
    if data.is_elided:
        raise ExportError(f"constant {name!r} was elided in the dump it was parsed from; its values are unknown")
    arr = data.numpy()
    if data.dtype is DType.BFLOAT16:
        return helper.make_tensor(name, onnx.TensorProto.BFLOAT16, list(data.shape),
                                  arr.astype(np.uint16).tobytes(), raw=True)
    if data.dtype.is_4bit:  # packed two a byte, the first element in the low nibble
        flat = arr.reshape(-1).view(np.uint8) & 0xF
        if flat.size % 2:
            flat = np.concatenate([flat, np.zeros(1, np.uint8)])
        packed = (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8)
        return helper.make_tensor(name, data.dtype.onnx, list(data.shape), packed.tobytes(), raw=True)
    if data.dtype is DType.STRING:
        flat = [s if isinstance(s, bytes) else str(s).encode("utf-8") for s in arr.reshape(-1)]
        return helper.make_tensor(name, onnx.TensorProto.STRING, list(data.shape), flat)
    return numpy_helper.from_array(arr if arr.flags.c_contiguous else arr.copy(order="C"), name)


def type_to_proto(name: str, t: TensorType) -> onnx.ValueInfoProto:
    shape = None if t.shape is None else [d for d in t.shape]
    return helper.make_tensor_value_info(name, t.dtype.onnx, shape)


def _attr_to_proto(key: str, a: Attr, fns: dict) -> onnx.AttributeProto:
    k = a.kind
    if k is AttrKind.TENSOR:
        return helper.make_attribute(key, tensor_to_proto(a.value, ""))
    if k is AttrKind.GRAPH:
        return helper.make_attribute(key, _graph_to_proto(a.value, fns))
    if k in (AttrKind.INTS, AttrKind.FLOATS, AttrKind.STRINGS):
        at = {AttrKind.INTS: onnx.AttributeProto.INTS, AttrKind.FLOATS: onnx.AttributeProto.FLOATS,
              AttrKind.STRINGS: onnx.AttributeProto.STRINGS}[k]
        return helper.make_attribute(key, list(a.value), attr_type=at)
    return helper.make_attribute(key, a.value)


def _node_to_proto(n: Node, fns: dict) -> onnx.NodeProto:
    op_type, attrs = n.op_type, dict(n.attrs)
    if is_fused_group(n):
        op_type = _function_for(n, n.attrs["body"].value, fns)
        attrs = {}
    elif has_decomposition(n):
        try:
            body = decompose(n)
        except ValueError as e:
            raise ExportError(str(e)) from None
        op_type = _function_for(n, body, fns, attributes=sorted(attrs))
    p = helper.make_node(
        op_type,
        ["" if v is None else v.name for v in n.inputs],
        ["" if v is None else v.name for v in n.outputs],
        name=n.name,
        domain=n.domain or None,
    )
    try:
        p.attribute.extend(_attr_to_proto(k, attrs[k], fns) for k in sorted(attrs))
    except ExportError as e:
        raise ExportError(f"node {n.name!r} ({n.op_type}): {e}") from None
    _add_provenance(p, n.provenance)
    return p


def _function_for(n: Node, body: Graph, fns: dict, attributes=()) -> str:
    """Add the FunctionProto of fused op ``n`` (a group's body or a named op's
    decomposition) to ``fns`` (name -> proto); its name. ``attributes``: the names the
    call passes (a function declares every attribute its calls carry)."""
    base = f"{n.op_type}_" + "".join(c if c.isalnum() else "_" for c in n.name)
    name, k = base, 1
    while name in fns:
        name, k = f"{base}_{k}", k + 1
    fns[name] = None  # reserved: nested groups name themselves apart from this one
    nodes = []
    for c in body.constants:  # a function has no initializers
        nodes.append(helper.make_node("Constant", [], [c.name], value=tensor_to_proto(c.const, c.name)))
    nodes += [_node_to_proto(inner, fns) for inner in body.nodes]
    own = {id(o) for m in body.nodes for o in m.outputs if o is not None}
    outputs = []
    for i, v in enumerate(body.outputs):
        if id(v) in own:
            outputs.append(v.name)
        else:  # an input or constant returned as it is: a function's outputs are made inside it
            outputs.append(f"{v.name}__out{i}")
            nodes.append(helper.make_node("Identity", [v.name], [outputs[-1]]))
    opsets = {"": body.opset_imports.get("", 21)}
    if any(m.domain for m in body.walk()):
        opsets.update((m.domain, 1) for m in body.walk() if m.domain)
    # The body's types as graphopt inferred them, so that import gives them back exactly.
    typed = [type_to_proto(o.name, o.type) for m in body.nodes for o in m.outputs
             if o is not None and o.type.shape is not None]
    f = helper.make_function(n.domain, name, [v.name for v in body.inputs], outputs, nodes,
                             [helper.make_opsetid(d, v) for d, v in sorted(opsets.items())], value_info=typed,
                             attributes=list(attributes))
    f.metadata_props.add(key=FUNCTION_MARK, value=n.op_type)
    f.metadata_props.add(key=FUNCTION_BODY, value=body.name)
    fns[name] = f
    return name


def _add_provenance(proto, prov) -> None:
    """Provenance travels in metadata_props (nodes and initializers have them)."""
    if prov is not None:
        proto.metadata_props.add(key="graphopt.rule", value=prov.rule)
        if prov.sources:
            proto.metadata_props.add(key="graphopt.sources", value=",".join(prov.sources))


def _graph_to_proto(g: Graph, fns: dict, initializers: bool = True) -> onnx.GraphProto:
    nodes = [_node_to_proto(n, fns) for n in g.nodes]
    inits = []
    for c in (g.constants if initializers else ()):
        t = tensor_to_proto(c.const, c.name)  # type: ignore[arg-type]
        _add_provenance(t, c.provenance)
        inits.append(t)
    inputs = [type_to_proto(v.name, v.type) for v in g.inputs]
    # A subgraph may return a value of an enclosing graph as it is; ONNX wants a graph's
    # outputs made in the graph, so such an output goes through an Identity.
    own = {id(v) for v in g.inputs} | {id(v) for v in g.constants} | {
        id(o) for n in g.nodes for o in n.outputs if o is not None}
    out_names = []
    for k, v in enumerate(g.outputs):
        if id(v) in own or g.parent is None:
            out_names.append(v.name)
            continue
        out_names.append(f"{v.name}__{g.name}_out{k}")
        nodes.append(helper.make_node("Identity", [v.name], [out_names[-1]]))
    outputs = [type_to_proto(nm, v.type) for nm, v in zip(out_names, g.outputs)]
    out_names = set(out_names)
    # onnx.checker wants a shape on every typed value: values of unknown rank go untyped.
    value_info = [type_to_proto(v.name, v.type) for n in g.nodes for v in n.outputs
                  if v is not None and v.name not in out_names and v.type.shape is not None]
    gp = helper.make_graph(nodes, g.name, inputs, outputs, initializer=inits, value_info=value_info)
    if g.doc_string:
        gp.doc_string = g.doc_string
    return gp


def export_onnx(graph: Graph) -> onnx.ModelProto:
    """The graph as an ONNX model (checked with onnx.checker)."""
    model = _model_proto(graph)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0]
        raise ExportError(f"exported model of graph {graph.name!r} fails onnx.checker: {first}") from None
    return model


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload_len: int) -> bytes:
    return _varint(number << 3 | 2) + _varint(payload_len)  # a length-delimited field's key and length


_MODEL_GRAPH, _GRAPH_INITIALIZER = 7, 5  # ModelProto.graph, GraphProto.initializer (onnx.proto)


def write_onnx_stream(graph: Graph, f) -> int:
    """Write the graph as an ONNX model to the binary file ``f`` one initializer at a time,
    never the whole model in memory (a transformer's weights would be there three times:
    arrays, tensor protos, serialized bytes); returns the bytes written. Not checked with
    onnx.checker (`export_onnx` is): for graphs that compiled, read back by graphopt's
    importer. Protobuf takes a message's fields in any order and a repeated field's
    elements apart, so the top graph is written as its initializer-free part, then each
    initializer as one more element of its repeated field."""
    model = _model_proto(graph, initializers=False)
    gbytes = model.graph.SerializeToString()
    model.ClearField("graph")
    head = model.SerializeToString()
    tensors = []
    for c in graph.constants:
        t = tensor_to_proto(c.const, c.name)
        _add_provenance(t, c.provenance)
        tensors.append(t.ByteSize())
    total = len(gbytes) + sum(len(_field(_GRAPH_INITIALIZER, n)) + n for n in tensors)
    f.write(head)
    f.write(_field(_MODEL_GRAPH, total))
    f.write(gbytes)
    written = len(head) + len(_field(_MODEL_GRAPH, total)) + len(gbytes)
    for c, n in zip(graph.constants, tensors):
        t = tensor_to_proto(c.const, c.name)
        _add_provenance(t, c.provenance)
        data = t.SerializeToString()
        f.write(_field(_GRAPH_INITIALIZER, len(data)))
        f.write(data)
        written += len(_field(_GRAPH_INITIALIZER, len(data))) + len(data)
    return written


def _model_proto(graph: Graph, initializers: bool = True) -> onnx.ModelProto:
    opsets = dict(graph.opset_imports) or {"": 21}
    opsets.setdefault("", 21)
    domains = {n.domain for n in graph.walk() if n.domain}
    for d in domains:
        opsets.setdefault(d, 1)
    fns: dict = {}
    gp = _graph_to_proto(graph, fns, initializers)
    return helper.make_model(
        gp,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
        producer_name="graphopt",
        ir_version=IR_VERSION,
        functions=list(fns.values()),
    )


def save_onnx(graph: Graph, path) -> None:
    """Write the graph as an .onnx file atomically (nothing is left behind on failure)."""
    from ..util.files import atomic_write_bytes

    model = export_onnx(graph)
    atomic_write_bytes(path, model.SerializeToString())
