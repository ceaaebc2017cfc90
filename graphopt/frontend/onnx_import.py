"""ONNX -> graphopt IR.

The model is checked, its local functions inlined, and its default-domain opset
normalized to `TARGET_OPSET` with onnx's version converter. Initializers (also those
listed as graph inputs, as opset-9 models do) and Constant nodes become graph constants.
Output types come from graphopt's op registry; where the model's own value_info knows a
dim that inference left symbolic, the model's dim is kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional, Union

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import ModelLoadError, UnsupportedOpError
from ..ir import Attr, AttrKind, DType, Graph, Provenance, TensorData, TensorType
from ..ir.function import BODY, DOMAIN as GROUP_DOMAIN, FUSED_GROUP
from ..ops import InferError, get_schema, infer_types
from .onnx_dtypes import dtype_from_onnx
from .onnx_export import FUNCTION_BODY, FUNCTION_MARK

TARGET_OPSET = 21
_FRESH = re.compile(r"_(o\d+_)?d\d+$")   # symbols made up by inference (ctx.fresh_dim) or import
_PLACEHOLDER = re.compile(r"unk__\d+$")  # onnx shape inference's names for unknown dims
ModelLike = Union[str, os.PathLike, bytes, onnx.ModelProto]


def load_model(model: ModelLike, base_dir: Union[str, os.PathLike, None] = None) -> tuple[onnx.ModelProto, str]:
    """Read a model from a path, bytes or a ModelProto; returns it and a name for messages.

    External data is read from the model file's folder; a model given as bytes or a
    ModelProto has none, so its external data needs ``base_dir``. Either way, no file
    outside that folder is read. The caller's ModelProto is never modified."""
    if isinstance(model, onnx.ModelProto):
        proto, where, base = model, "<model>", None
    else:
        proto, where, base = _read_proto(model)
    if base_dir is not None:
        base = str(base_dir)
    _check_strings(proto, where)
    if _external_tensors(proto):
        if base is None:
            name = _external_tensors(proto)[0].name
            raise ModelLoadError(
                f"{where}: tensor {name!r} keeps its data in an external file, and a model given as "
                "bytes or a ModelProto has no folder to read it from: pass base_dir= (the folder the "
                "data files are in)")
        proto = _with_external_data(proto, where, base)
    _check_tensor_data(proto, where)
    _check_declared_dims(proto.graph, where)
    return proto, where


def _check_declared_dims(graph: onnx.GraphProto, where: str) -> None:
    for what, vis in (("input", graph.input), ("output", graph.output), ("value", graph.value_info)):
        for vi in vis:
            if not vi.type.HasField("tensor_type"):
                continue
            for i, d in enumerate(vi.type.tensor_type.shape.dim):
                if d.HasField("dim_value") and d.dim_value < 0:
                    raise ModelLoadError(f"{where}: {what} {vi.name!r}: dim {i} is {d.dim_value}; "
                                         "a dimension cannot be negative")


def _read_proto(model) -> tuple[onnx.ModelProto, str, Optional[str]]:
    if isinstance(model, (bytes, bytearray)):
        where, data, base = "<bytes>", bytes(model), None
    else:
        path = Path(model)
        where = str(path)
        if not path.exists():
            raise ModelLoadError(f"{where}: no such file")
        if path.is_dir():
            raise ModelLoadError(f"{where}: is a directory, not an ONNX file")
        data = path.read_bytes()
        base = str(path.parent)
    if not data:
        raise ModelLoadError(f"{where}: the file is empty, not an ONNX model")
    try:
        proto = onnx.ModelProto()
        proto.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise ModelLoadError(f"{where}: not an ONNX model (protobuf could not parse it: {e})") from None
    if not proto.graph.node and not proto.graph.output and not proto.opset_import:
        raise ModelLoadError(f"{where}: not an ONNX model (no graph, no opset)")
    return proto, where, base


def _external_tensors(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    return [t for t in _get_all_tensors(proto) if uses_external_data(t)]


def _with_external_data(proto: onnx.ModelProto, where: str, base: str) -> onnx.ModelProto:
    """A copy of ``proto`` with its external data read in, each file checked to lie inside
    ``base`` (no absolute path, no ``..``, no symlink out of it) before anything is opened."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model

    work = onnx.ModelProto()
    work.CopyFrom(proto)
    root = os.path.realpath(base)
    for t in _external_tensors(work):
        try:
            loc = ExternalDataInfo(t).location
        except ValueError as e:
            raise ModelLoadError(f"{where}: tensor {t.name!r}: bad external data entry: {e}") from None
        _check_location(loc, root, where, t.name)
    try:
        load_external_data_for_model(work, base)
    except Exception as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{where}: cannot load external data: {msg}") from None
    return work


def _check_location(loc: str, root: str, where: str, tensor: str) -> None:
    what = f"{where}: tensor {tensor!r}: external data {loc!r}"
    if not loc:
        raise ModelLoadError(f"{what} names no file")
    if os.path.isabs(loc) or loc.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", loc):
        raise ModelLoadError(f"{what} is an absolute path; it must be relative to the model's folder {root}")
    if ".." in re.split(r"[/\\]", loc):
        raise ModelLoadError(f"{what} leaves the model's folder {root} (through '..')")
    real = os.path.realpath(os.path.join(root, loc))
    if os.path.commonpath([real, root]) != root:
        raise ModelLoadError(f"{what} leaves the model's folder {root} (a symlink to {real})")


def _node_label(n: onnx.NodeProto) -> str:
    name = n.name.decode("utf-8", "backslashreplace") if isinstance(n.name, bytes) else n.name
    op = n.op_type.decode("utf-8", "backslashreplace") if isinstance(n.op_type, bytes) else n.op_type
    return f"node '{name}' ({op})" if name else f"a {op} node"


def _check_strings(msg, where: str, context: str = "the model") -> None:
    """Refuse text fields that are not valid UTF-8 (protobuf hands them over as bytes, and
    every later step would trip on them), naming the node they are in."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    if isinstance(msg, onnx.NodeProto):
        context = _node_label(msg)
    elif isinstance(msg, onnx.GraphProto):
        context = f"graph {msg.name!r}" if isinstance(msg.name, str) else "the graph"
    for fd, val in msg.ListFields():
        if fd.name in _BULK:
            continue
        if fd.type == FD.TYPE_STRING:
            for v in (val if _repeated(fd) else [val]):
                if isinstance(v, bytes):
                    raise ModelLoadError(f"{where}: {context}: field {fd.name!r} is not valid UTF-8 text ({v[:60]!r})")
        elif fd.type == FD.TYPE_MESSAGE:
            for v in (val if _repeated(fd) else [val]):
                _check_strings(v, where, context)


# Tensor payloads: never text, and copying them out of protobuf costs their size.
_BULK = frozenset({"raw_data", "float_data", "double_data", "int32_data", "int64_data", "uint64_data", "string_data"})


def _repeated(fd) -> bool:
    r = getattr(fd, "is_repeated", None)  # protobuf >= 6; older ones have .label
    return fd.label == fd.LABEL_REPEATED if r is None else r


# Which TensorProto field holds the elements of each data type, and how many entries one
# element takes there (complex numbers are two).
_T = onnx.TensorProto
_FIELD = {
    _T.FLOAT: ("float_data", 1), _T.COMPLEX64: ("float_data", 2), _T.DOUBLE: ("double_data", 1),
    _T.COMPLEX128: ("double_data", 2), _T.INT64: ("int64_data", 1), _T.UINT32: ("uint64_data", 1),
    _T.UINT64: ("uint64_data", 1), _T.STRING: ("string_data", 1),
    **{dt: ("int32_data", 1) for dt in (_T.INT32, _T.INT16, _T.INT8, _T.UINT16, _T.UINT8, _T.BOOL,
                                        _T.FLOAT16, _T.BFLOAT16)},
    _T.INT4: ("int32_data", 0.5), _T.UINT4: ("int32_data", 0.5),  # two elements a byte, or a word
}
_DATA_FIELDS = ("float_data", "double_data", "int32_data", "int64_data", "uint64_data", "string_data")


def _all_tensors(proto: onnx.ModelProto):
    from onnx.external_data_helper import _get_all_tensors

    yield from _get_all_tensors(proto)
    for t in _get_all_tensors_in_sparse(proto.graph):
        yield t


def _get_all_tensors_in_sparse(graph: onnx.GraphProto):
    for s in graph.sparse_initializer:
        yield s.values
        yield s.indices


def _check_tensor_data(proto: onnx.ModelProto, where: str) -> None:
    """Every tensor's data must match its dims before anything (onnx's checker, shape
    inference, numpy) looks at it: a tiny file declaring 2^40 elements and no data would
    otherwise send onnx's shape inference into minutes of work, or numpy into an
    allocation of terabytes."""
    for t in _all_tensors(proto):
        _check_one_tensor(t, where)


def _check_one_tensor(t: onnx.TensorProto, where: str) -> None:
    what = f"{where}: tensor {t.name!r}"
    if any(d < 0 for d in t.dims):
        raise ModelLoadError(f"{what}: dims {list(t.dims)} hold a negative size")
    n = 1
    for d in t.dims:
        n *= d
    field = _FIELD.get(t.data_type)
    if field is None:
        return  # a type graphopt refuses later, by name
    fname, per = field
    typed = len(getattr(t, fname))
    others = [f for f in _DATA_FIELDS if f != fname and len(getattr(t, f))]
    if others:
        raise ModelLoadError(f"{what}: its data is in field {others[0]}, which does not go with its data type")
    if t.HasField("raw_data"):
        if typed:
            raise ModelLoadError(f"{what}: holds both raw_data and {fname}")
        if t.data_type == _T.STRING:
            raise ModelLoadError(f"{what}: string data cannot be raw_data")
        size = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        want = (n + 1) // 2 if per == 0.5 else n * size
        if len(t.raw_data) != want:
            raise ModelLoadError(f"{what}: dims {list(t.dims)} declare {n} elements ({want} bytes), "
                                 f"but raw_data holds {len(t.raw_data)} bytes")
    elif per == 0.5:
        if typed != (n + 1) // 2:
            raise ModelLoadError(f"{what}: dims {list(t.dims)} declare {n} 4-bit elements ({(n + 1) // 2} packed "
                                 f"words), but {fname} holds {typed}")
    elif typed != n * per:
        raise ModelLoadError(f"{what}: dims {list(t.dims)} declare {n} elements, but {fname} holds {typed // per}")


def _default_opset(model: onnx.ModelProto) -> Optional[int]:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return None


def normalize(model: onnx.ModelProto, where: str) -> onnx.ModelProto:
    """Check, inline local functions, and convert to TARGET_OPSET."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{where}: fails onnx.checker: {first}") from None
    except ValueError as e:  # models over 2 GB must be checked by path
        raise ModelLoadError(f"{where}: fails onnx.checker: {e}") from None
    if any(not _is_graphopt_function(f) for f in model.functions):
        from onnx import inliner

        # graphopt's fused groups and named fused ops stay (they come back as themselves);
        # other local functions are inlined.
        keep = [(f.domain, f.name) for f in model.functions if _is_graphopt_function(f)]
        model = inliner.inline_selected_functions(model, keep, exclude=True)
    version = _default_opset(model)
    if version is None:
        raise ModelLoadError(f"{where}: the model imports no default-domain opset")
    if version != TARGET_OPSET:
        _promote_initializer_inputs(model)
        try:
            model = onnx.version_converter.convert_version(model, TARGET_OPSET)
        except Exception as e:
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelLoadError(
                f"{where}: cannot convert opset {version} to opset {TARGET_OPSET}: {msg}") from None
    return model


def _function_mark(f: onnx.FunctionProto) -> Optional[str]:
    return next((p.value for p in f.metadata_props if p.key == FUNCTION_MARK), None)


def _is_graphopt_function(f: onnx.FunctionProto) -> bool:
    """A model-local function graphopt exported for a fused group or a named fused op
    (see onnx_export): domain graphopt, marked with a graphopt op that has a schema."""
    mark = _function_mark(f)
    return f.domain == GROUP_DOMAIN and mark is not None and get_schema(mark, GROUP_DOMAIN) is not None


def _promote_initializer_inputs(model: onnx.ModelProto) -> None:
    """Drop graph inputs that are also initializers (IR < 4 style): graphopt treats them as
    constants, and the version converter's adapters want constant inputs to be plain
    initializers."""
    inits = {t.name for t in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in inits]
    if len(keep) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(keep)
        if model.ir_version < 4:
            model.ir_version = 4


def _check_ops(graph, found: list[tuple[str, str]], functions: Optional[dict] = None) -> None:
    """Every op the registry does not know, by (op, node name), in ``graph`` (a GraphProto
    or a FunctionProto), its subgraphs and the fused-group functions it calls."""
    functions = functions or {}
    for n in graph.node:
        dom = "" if n.domain == "ai.onnx" else n.domain
        fn = functions.get((dom, n.op_type))
        if fn is not None:
            _check_ops(fn, found, functions)
            continue
        if n.op_type != "Constant" and get_schema(n.op_type, dom) is None:
            found.append((f"{dom + '.' if dom else ''}{n.op_type}", n.name or f"<unnamed {n.op_type}>"))
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _check_ops(a.g, found, functions)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    _check_ops(g, found, functions)


def _type_from_proto(tp: onnx.TypeProto, what: str, name: str) -> TensorType:
    if not tp.HasField("tensor_type"):
        kind = tp.WhichOneof("value") or "no type"
        raise ModelLoadError(f"{what}: only tensor types are supported, got {kind}")
    tt = tp.tensor_type
    try:
        dtype = dtype_from_onnx(tt.elem_type, what)
    except ValueError as e:
        raise ModelLoadError(str(e)) from None
    if not tt.HasField("shape"):
        return TensorType(dtype, None)
    dims: list = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value"):
            if d.dim_value < 0:
                raise ModelLoadError(f"{what}: dim {i} is {d.dim_value}; a dimension cannot be negative")
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(f"{name}_d{i}")  # unnamed unknown dim: a deterministic symbol
    return TensorType(dtype, tuple(dims))


def tensor_from_proto(t: onnx.TensorProto) -> TensorData:
    dtype = dtype_from_onnx(t.data_type, f"tensor {t.name!r}")
    arr = numpy_helper.to_array(t)
    if dtype is DType.BFLOAT16:
        arr = np.asarray(arr).view(np.uint16) if arr.dtype.itemsize == 2 else np.asarray(arr).astype(np.uint16)
    elif dtype is DType.STRING:
        arr = np.asarray(arr, dtype=object)
    else:  # (int4/uint4 arrive as ml_dtypes' int4/uint4 and are held as int8/uint8)
        arr = np.asarray(arr).astype(dtype.numpy)
    if dtype is not DType.STRING and not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    return TensorData(arr, dtype)


def _constant_node_value(n: onnx.NodeProto) -> TensorData:
    a = n.attribute[0]
    name = a.name
    if name == "value":
        return tensor_from_proto(a.t)
    if name == "value_float":
        return TensorData.from_numpy(np.array(a.f, dtype=np.float32))
    if name == "value_floats":
        return TensorData.from_numpy(np.array(list(a.floats), dtype=np.float32))
    if name == "value_int":
        return TensorData.from_numpy(np.array(a.i, dtype=np.int64))
    if name == "value_ints":
        return TensorData.from_numpy(np.array(list(a.ints), dtype=np.int64))
    if name == "value_string":
        return TensorData(np.array(a.s, dtype=object), DType.STRING)
    if name == "value_strings":
        return TensorData(np.array(list(a.strings), dtype=object), DType.STRING)
    raise ModelLoadError(f"Constant node {n.name!r}: attribute {name!r} is not supported")


def _attr_from_proto(a: onnx.AttributeProto, scope: Graph, ctx: "_Importer", where: str) -> Attr:
    T = onnx.AttributeProto
    if a.ref_attr_name:
        raise ModelLoadError(f"{where}: attribute {a.name!r} refers to a function attribute")
    if a.type == T.FLOAT:
        return Attr.float(a.f)
    if a.type == T.INT:
        return Attr.int(a.i)
    if a.type == T.STRING:
        return Attr.string(_text(a.s, a.name, where))
    if a.type == T.FLOATS:
        return Attr.floats(list(a.floats))
    if a.type == T.INTS:
        return Attr.ints(list(a.ints))
    if a.type == T.STRINGS:
        return Attr.strings([_text(s, a.name, where) for s in a.strings])
    if a.type == T.TENSOR:
        return Attr.tensor(tensor_from_proto(a.t))
    if a.type == T.GRAPH:
        return Attr.graph(ctx.graph(a.g, scope))
    raise ModelLoadError(f"{where}: attribute {a.name!r} of type {T.AttributeType.Name(a.type)} is not supported")


def _text(b: bytes, attr: str, where: str) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelLoadError(f"{where}: attribute {attr!r} is not valid UTF-8 text ({b[:60]!r})") from None


class _Importer:
    def __init__(self, where: str, value_info: dict[str, onnx.TypeProto],
                 large: Optional[dict[str, onnx.TensorProto]] = None, stored: frozenset = frozenset(),
                 functions: Optional[dict] = None):
        self.where = where
        self.functions = functions or {}  # (domain, name) -> a fused group's FunctionProto
        self.value_info = value_info
        self.stored = stored  # names whose type the model itself declares (value_info, outputs)
        self.large = large or {}  # root-graph initializers kept out of onnx's passes

    def graph(self, gp: onnx.GraphProto, scope: Optional[Graph], opsets: Optional[dict] = None) -> Graph:
        g = Graph(gp.name or "main", opsets, scope=scope)
        g.doc_string = gp.doc_string
        root = scope is None
        initializers = list(gp.initializer) + (list(self.large.values()) if root else [])
        inits = {t.name: t for t in initializers}
        if gp.sparse_initializer:
            raise ModelLoadError(f"{self.where}: sparse initializers are not supported")
        for t in initializers:
            try:
                g.add_constant(t.name, tensor_from_proto(t), provenance=_provenance(t.metadata_props))
            except ValueError as e:
                raise ModelLoadError(f"{self.where}: initializer {t.name!r}: {e}") from None
        for vi in gp.input:
            if vi.name in inits:  # IR < 4: every initializer is listed as an input too
                continue
            g.add_input(vi.name, _type_from_proto(vi.type, f"{self.where}: input {vi.name!r}", vi.name))
        for n in gp.node:
            self.node(n, g)
        outs = []
        for vi in gp.output:
            v = g.lookup(vi.name)
            if v is None:
                raise ModelLoadError(f"{self.where}: graph output {vi.name!r} is not produced by any node")
            outs.append(v)
        if root and not outs:
            raise ModelLoadError(f"{self.where}: the graph has no outputs (a model must compute something)")
        g.outputs = outs
        return g

    def node(self, n: onnx.NodeProto, g: Graph) -> None:
        label = f"node {n.name!r} ({n.op_type})" if n.name else f"a {n.op_type} node"
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            g.add_constant(n.output[0], _constant_node_value(n))
            return
        inputs = []
        for name in n.input:
            if not name:
                inputs.append(None)
                continue
            v = g.lookup(name)
            if v is None:
                raise ModelLoadError(f"{self.where}: {label} reads {name!r}, which is not defined before it")
            inputs.append(v)
        attrs = {a.name: _attr_from_proto(a, g, self, f"{self.where}: {label}") for a in n.attribute}
        domain = "" if n.domain == "ai.onnx" else n.domain
        fn = self.functions.get((domain, n.op_type))
        if fn is not None and _function_mark(fn) == FUSED_GROUP:  # read back as the group
            attrs = {BODY: Attr.graph(self.function_body(fn, inputs, label))}
            n = _renamed(n, FUSED_GROUP)
        elif fn is not None:  # a named fused op: the call's attributes are its own; the body
            n = _renamed(n, _function_mark(fn))  # is its decomposition, made again when needed
        node_name = g._fresh_node_name(n.name or n.op_type.lower())  # unique: fresh symbols derive from it
        try:
            types = infer_types(n.op_type, inputs, attrs, domain=domain, name=node_name, num_outputs=len(n.output))
        except InferError as e:
            raise ModelLoadError(f"{self.where}: {label}: {e}") from None
        out_types = []
        for name, t in zip(n.output, types):
            if not name:
                out_types.append(None)
                continue
            if t is None:
                raise ModelLoadError(f"{self.where}: {label}: cannot infer the type of output {name!r}")
            out_types.append(self._merge(t, name, label))
        prov = _provenance(n.metadata_props)
        g.add_node(n.op_type, inputs, out_types, attrs, name=node_name, domain=domain,
                   output_names=[o or None for o in n.output], provenance=prov)

    def function_body(self, fn: onnx.FunctionProto, inputs: list, label: str) -> Graph:
        """The body of a fused group from its FunctionProto, typed by the call's inputs."""
        name = next((p.value for p in fn.metadata_props if p.key == FUNCTION_BODY), fn.name)
        opsets = {("" if i.domain == "ai.onnx" else i.domain): i.version for i in fn.opset_import}
        body = Graph(name, opsets)
        if len(fn.input) != len(inputs) or any(v is None for v in inputs):
            raise ModelLoadError(f"{self.where}: {label}: the call passes {len(inputs)} inputs to function "
                                 f"{fn.name!r}, which takes {len(fn.input)}")
        for nm, v in zip(fn.input, inputs):
            body.add_input(nm, v.type)
        self.value_info.update((vi.name, vi.type) for vi in fn.value_info)  # body names are the group's own
        for inner in fn.node:
            self.node(inner, body)
        outs = []
        for nm in fn.output:
            v = body.lookup(nm)
            if v is None:
                raise ModelLoadError(f"{self.where}: function {fn.name!r}: output {nm!r} is not produced")
            outs.append(v)
        body.outputs = outs
        body._journal.clear()
        return body

    def _merge(self, inferred: TensorType, name: str, label: str) -> TensorType:
        """Keep dims the model's value_info knows where inference could only give a symbol."""
        tp = self.value_info.get(name)
        if tp is None:
            return inferred
        try:
            declared = _type_from_proto(tp, f"value {name!r}", name)
        except ModelLoadError:
            return inferred
        if name in self.stored:
            self._check_declared(declared, inferred, name, label)
        if inferred.shape is None and declared.dtype is inferred.dtype:
            return declared  # the model knows the rank where inference (data-dependent) cannot
        if declared.shape is None or len(declared.shape) != len(inferred.shape):
            return inferred
        dims = []
        for a, b in zip(inferred.shape, declared.shape):
            if isinstance(a, str) and isinstance(b, int):
                dims.append(b)  # the model knows the size
            elif isinstance(a, str) and isinstance(b, str) and _FRESH.search(a) and not _PLACEHOLDER.match(b):
                dims.append(b)  # a named dim beats a symbol inference had to make up
            else:
                dims.append(a)
        return TensorType(inferred.dtype, tuple(dims))


    def _check_declared(self, declared: TensorType, inferred: TensorType, name: str, label: str) -> None:
        """A type the model stores for a value must not contradict what the op computes
        (onnx's full check refuses such a model too)."""
        bad = declared.dtype is not inferred.dtype
        if declared.shape is not None and inferred.shape is not None:
            bad = bad or len(declared.shape) != len(inferred.shape) or any(
                isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(declared.shape, inferred.shape))
        if bad:
            raise ModelLoadError(f"{self.where}: value {name!r}: the model declares {declared}, but {label} "
                                 f"computes {inferred}")


def _renamed(n: onnx.NodeProto, op_type: str) -> onnx.NodeProto:
    m = onnx.NodeProto()
    m.CopyFrom(n)
    m.op_type = op_type
    del m.attribute[:]
    return m


def _provenance(props) -> Optional[Provenance]:
    meta = {p.key: p.value for p in props}
    if "graphopt.rule" not in meta:
        return None
    return Provenance(meta["graphopt.rule"], tuple(s for s in meta.get("graphopt.sources", "").split(",") if s))


# Initializers with more elements than this stay out of onnx's checker, version converter
# and shape inference (each serializes the whole model: seconds for a 100 MB model); they
# stand in as typed graph inputs there and come back as constants in the IR.
LARGE_INITIALIZER = 1024


def _copy_without(msg, skip_field: str, into):
    for fd, val in msg.ListFields():
        if fd.name == skip_field:
            continue
        repeated = getattr(fd, "is_repeated", None)  # protobuf >= 6; older ones have .label
        if repeated is None:
            repeated = fd.label == fd.LABEL_REPEATED
        if repeated:
            getattr(into, fd.name).extend(val)
        elif fd.type == fd.TYPE_MESSAGE:
            getattr(into, fd.name).CopyFrom(val)
        else:
            setattr(into, fd.name, val)
    return into


def _numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= d
    return n


def input_defaults(model: onnx.ModelProto) -> set[str]:
    """Graph inputs that also have an initializer, where that makes the initializer a
    default the caller may override (IR >= 4; before, every initializer was listed as an
    input and is a constant)."""
    if model.ir_version < 4:
        return set()
    inputs = {i.name for i in model.graph.input}
    return {t.name for t in model.graph.initializer if t.name in inputs}


def split_large_initializers(model: onnx.ModelProto, drop: frozenset = frozenset()
                             ) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A working copy of ``model`` (the caller's model is never modified) whose large
    initializers are typed graph inputs instead; and those initializers by name. The
    initializers named in ``drop`` are left out (their graph inputs stay)."""
    big = {t.name: t for t in model.graph.initializer
           if _numel(t) > LARGE_INITIALIZER and not t.external_data and t.name not in drop}
    graph = _copy_without(model.graph, "initializer", onnx.GraphProto())
    graph.initializer.extend(t for t in model.graph.initializer if t.name not in big and t.name not in drop)
    listed = {i.name for i in graph.input}
    for name, t in big.items():
        if name not in listed:
            graph.input.append(onnx.helper.make_tensor_value_info(name, t.data_type, list(t.dims)))
    work = _copy_without(model, "graph", onnx.ModelProto())
    work.graph.CopyFrom(graph)
    return work, big


def import_onnx(model: ModelLike, base_dir: Union[str, os.PathLike, None] = None) -> Graph:
    """Import an ONNX model (a path, bytes or a ModelProto) as a graphopt Graph.

    ``base_dir`` is the folder external data is read from (default: the model file's own
    folder; a model given as bytes or a ModelProto with external data needs it). An input
    that has an initializer too (IR >= 4) stays an input: the caller's value wins, and the
    initializer (its default) is dropped, never folded as a constant."""
    proto, where = load_model(model, base_dir)
    stored = frozenset(vi.name for vi in list(proto.graph.value_info) + list(proto.graph.output))
    proto, big = split_large_initializers(proto, frozenset(input_defaults(proto)))
    proto = normalize(proto, where)
    functions = {(f.domain, f.name): f for f in proto.functions if _is_graphopt_function(f)}
    unknown: list[tuple[str, str]] = []
    _check_ops(proto.graph, unknown, functions)
    if unknown:
        raise UnsupportedOpError(unknown, where)
    value_info = {vi.name: vi.type for vi in list(proto.graph.value_info) + list(proto.graph.output)}
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
        value_info.update((vi.name, vi.type) for vi in list(inferred.graph.value_info) + list(inferred.graph.output))
    except Exception:
        pass  # onnx's inference is only a source of extra dims; the registry infers every type
    opsets = {("" if i.domain == "ai.onnx" else i.domain): i.version for i in proto.opset_import}
    g = _Importer(where, value_info, big, stored, functions).graph(proto.graph, None, opsets)
    g._journal.clear()
    return g
