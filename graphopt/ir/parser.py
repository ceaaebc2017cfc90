"""Parser for the text form written by `printer.print_ir`.

A hand-written tokenizer and recursive-descent parser. Errors carry the line and column.
Node types are taken from the text as written (the verifier checks them against the op
registry), so a parsed graph is exactly the printed one.

A hand-edited or corrupted file gets a ParseError naming the line and column for anything
the text form itself rules out (bad base64 or JSON escapes, numbers a dtype cannot hold,
element counts, duplicate names, truncation); what parses but is not a valid graph (an
unknown op, an attribute of the wrong kind) is the verifier's to report, by node.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Optional

import numpy as np

from ..errors import GraphoptError  # a leaf module (no imports): the layering holds
from .attributes import Attr, AttrKind
from .graph import Graph, IRError, Provenance, Value
from .tensor import TensorData
from .types import DType, TensorType


class ParseError(GraphoptError, ValueError):
    """Text that is not graphopt's IR text form, at ``line`` and ``col``."""

    def __init__(self, msg: str, line: int, col: int):
        super().__init__(f"line {line}, column {col}: {msg}")
        self.line, self.col = line, col


_TOKEN = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+|\#[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<arrow><-|->)
  | (?P<number>[-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\.\d+(?:[eE][-+]?\d+)?|\d+)(?![A-Za-z0-9_/]))
  | (?P<word>[A-Za-z0-9_.\-/]+)
  | (?P<punct>[%@(){}\[\]<>,:=_])
    """,
    re.VERBOSE,
)


class _Tok:
    __slots__ = ("kind", "text", "line", "col")

    def __init__(self, kind, text, line, col):
        self.kind, self.text, self.line, self.col = kind, text, line, col

    def __repr__(self):
        return f"{self.kind}:{self.text!r}"


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ParseError(f"unexpected character {text[pos]!r}", line, pos - line_start + 1)
        kind = m.lastgroup
        tok_text = m.group()
        if kind != "ws":
            if kind == "word" and tok_text == "_":
                kind = "punct"
            toks.append(_Tok(kind, tok_text, line, pos - line_start + 1))
        nl = tok_text.count("\n")
        if nl:
            line += nl
            line_start = pos + tok_text.rindex("\n") + 1
        pos = m.end()
    toks.append(_Tok("eof", "", line, pos - line_start + 1))
    return toks


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokenize(text)
        self.i = 0
        # Values referenced before their definition is seen can only be graph outputs,
        # which are resolved after the body; anything else is an error.

    # -------------------------------------------------------------- token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def error(self, msg: str, tok: Optional[_Tok] = None) -> ParseError:
        t = tok or self.tok
        return ParseError(msg + (f" (found {t.text!r})" if t.text else " (found end of input)"), t.line, t.col)

    def next(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind == "eof":
            raise self.error("unexpected end of input", t)
        self.i += 1
        return t

    def string(self, t: _Tok, what: str = "string") -> str:
        """The text of a quoted token; a name or attribute must be valid text (no lone
        surrogates, which nothing downstream could encode)."""
        s = self._json(t, what)
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            raise self.error(f"the {what} holds a lone surrogate escape (not valid text)", t) from None
        return s

    def _json(self, t: _Tok, what: str) -> str:
        try:
            return json.loads(t.text)
        except ValueError as e:  # json.JSONDecodeError: a bad escape
            raise self.error(f"bad quoted {what}: {e.msg}", t) from None

    def build(self, tok: _Tok, fn, *args, **kwargs):
        """A Graph mutation; what it refuses (a duplicate name) is the text's fault."""
        try:
            return fn(*args, **kwargs)
        except IRError as e:
            raise self.error(str(e), tok) from None

    def at(self, text: str) -> bool:
        t = self.tok
        return t.text == text and t.kind in ("punct", "word", "arrow")

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str) -> _Tok:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        return self.next()

    def ident(self) -> str:
        t = self.tok
        if t.kind == "word" or t.kind == "number":
            self.i += 1
            return t.text
        if t.kind == "string":
            self.i += 1
            return self.string(t, "name")
        raise self.error("expected a name")

    # -------------------------------------------------------------- types
    def tensor_type(self) -> TensorType:
        t = self.tok
        dt_name = self.ident()
        try:
            dtype = DType.parse(dt_name)
        except ValueError as e:
            raise self.error(str(e), t) from None
        self.expect("[")
        if self.at("...") or (self.tok.kind == "word" and self.tok.text == "..."):
            self.next()
            self.expect("]")
            return TensorType(dtype, None)
        dims: list = []
        while not self.at("]"):
            d = self.tok
            if d.kind == "number":
                self.i += 1
                if not re.fullmatch(r"\d+", d.text):
                    raise self.error("a dimension is a non-negative integer or a symbol", d)
                dims.append(int(d.text))
            else:
                dims.append(self.ident())
            if not self.accept(","):
                break
        self.expect("]")
        try:
            return TensorType(dtype, tuple(dims))
        except (ValueError, TypeError) as e:
            raise self.error(f"bad type: {e}", t) from None

    # -------------------------------------------------------------- literals
    def _element(self, dtype: DType):
        t = self.next()
        if dtype is DType.BOOL:
            if t.text not in ("true", "false"):
                raise self.error("expected true or false", t)
            return t.text == "true"
        if dtype is DType.STRING:
            if t.kind != "string":
                raise self.error("expected a string", t)
            s = self._json(t, "string")
            try:
                s.encode("utf-8")
                return s
            except UnicodeEncodeError:  # bytes that are not UTF-8, printed surrogate-escaped
                try:
                    return s.encode("utf-8", "surrogateescape")
                except UnicodeEncodeError:
                    raise self.error("the string holds a surrogate escape that stands for no byte", t) from None
        floating = dtype.is_float and dtype is not DType.BFLOAT16  # bf16 prints its bits
        if floating and t.text in ("nan", "inf", "-inf", "+inf"):
            return float(t.text)
        if t.kind != "number":
            raise self.error("expected a number", t)
        if floating:
            v = float(t.text)
            with np.errstate(over="ignore"):
                if not np.isfinite(np.array(v, dtype=dtype.numpy)):  # the printer writes inf as inf
                    raise self.error(f"{t.text} is out of range for {dtype.short}", t)
            return v
        if not re.fullmatch(r"[-+]?\d+", t.text):
            raise self.error(f"expected an integer for a {dtype.short} element", t)
        v = int(t.text)
        lo, hi = dtype.int_range
        if not lo <= v <= hi:
            raise self.error(f"{v} is out of range for {dtype.short} ({lo}..{hi})", t)
        return v

    def tensor_data(self, ttype: TensorType) -> TensorData:
        kw = self.tok
        if not ttype.is_static:
            raise self.error("a constant needs a static shape", kw)
        shape = ttype.shape
        kind = self.ident()
        self.expect("<")
        if kind == "elided":
            digest = self.ident()
            self.expect(">")
            return TensorData(None, ttype.dtype, shape, digest=digest)
        if kind == "base64":
            t = self.next()
            if t.kind != "string":
                raise self.error("expected a quoted base64 string", t)
            if ttype.dtype is DType.STRING:
                raise self.error("a string constant is written dense<[...]>, not base64", t)
            try:
                raw = base64.b64decode(self._json(t, "base64 string"), validate=True)
            except ValueError as e:  # binascii.Error, or text that is not ASCII
                raise self.error(f"bad base64 data: {e}", t) from None
            self.expect(">")
            npdt = np.dtype(np.uint16 if ttype.dtype is DType.BFLOAT16 else ttype.dtype.numpy)
            if len(raw) % npdt.itemsize:
                raise self.error(f"base64 data holds {len(raw)} bytes, not a whole number of "
                                 f"{ttype.dtype.short} elements", t)
            if len(raw) != ttype.numel() * npdt.itemsize:
                raise self.error(f"base64 data holds {len(raw)} bytes ({len(raw) // npdt.itemsize} elements), "
                                 f"the type says {ttype.numel()}", kw)
            arr = np.frombuffer(raw, dtype=npdt).copy()
            try:
                return TensorData(arr.reshape(shape), ttype.dtype)
            except ValueError as e:  # an int4 byte out of range
                raise self.error(str(e), t) from None
        if kind != "dense":
            raise self.error("expected dense<...>, base64<...> or elided<...>", kw)
        self.expect("[")
        elems = []
        while not self.at("]"):
            elems.append(self._element(ttype.dtype))
            if not self.accept(","):
                break
        self.expect("]")
        self.expect(">")
        if len(elems) != ttype.numel():
            raise self.error(f"constant has {len(elems)} elements, its type {ttype} says {ttype.numel()}", kw)
        if ttype.dtype is DType.STRING:
            arr = np.array(elems, dtype=object).reshape(shape)
        elif ttype.dtype is DType.BFLOAT16:
            arr = np.array(elems, dtype=np.uint16).reshape(shape)
        else:
            arr = np.array(elems, dtype=ttype.dtype.numpy).reshape(shape)
        return TensorData(arr, ttype.dtype)

    def attr_value(self, graph: Graph) -> Attr:
        t = self.tok
        if t.kind == "string":
            self.i += 1
            return Attr.string(self.string(t, "attribute string"))
        if t.kind == "number" or t.text in ("nan", "inf", "-inf"):
            self.i += 1
            if t.kind == "number" and re.fullmatch(r"[-+]?\d+", t.text):
                return Attr.int(self._int64(t))
            return Attr.float(float(t.text))
        if t.text in ("ints", "floats", "strings") and self.toks[self.i + 1].text == "[":
            self.i += 2
            self.expect("]")
            return Attr(AttrKind(t.text), ())
        if self.at("["):
            self.next()
            items = []
            while not self.at("]"):
                items.append(self.next())
                if not self.accept(","):
                    break
            self.expect("]")
            if all(x.kind == "string" for x in items):
                return Attr.strings([self.string(x, "attribute string") for x in items])
            if all(x.kind == "number" and re.fullmatch(r"[-+]?\d+", x.text) for x in items):
                return Attr.ints([self._int64(x) for x in items])
            if all(x.kind == "number" or x.text in ("nan", "inf", "-inf") for x in items):
                return Attr.floats([float(x.text) for x in items])
            raise self.error("a list attribute holds ints, floats or strings", t)
        if t.text == "tensor":
            self.next()
            self.expect("<")
            ttype = self.tensor_type()
            self.expect(":")
            data = self.tensor_data(ttype)
            self.expect(">")
            return Attr.tensor(data)
        if t.text == "graph":
            return Attr.graph(self.graph(parent_scope=graph))
        raise self.error("expected an attribute value")

    def _int64(self, t: _Tok) -> int:
        v = int(t.text)
        if not -(2 ** 63) <= v < 2 ** 63:
            raise self.error(f"{v} is out of range for an int attribute (int64)", t)
        return v

    # -------------------------------------------------------------- graphs
    def value_ref(self, graph: Graph) -> Optional[Value]:
        if self.accept("_"):
            return None
        t = self.expect("%")
        name = self.ident()
        v = graph.lookup(name)
        if v is None:
            raise self.error(f"value %{name} is used before it is defined", t)
        return v

    def graph(self, parent_scope: Optional[Graph] = None) -> Graph:
        self.expect("graph")
        name = self.ident()
        g = Graph(name, scope=parent_scope)
        self.expect("(")
        while not self.at(")"):
            tok = self.expect("%")
            vname = self.ident()
            self.expect(":")
            self.build(tok, g.add_input, vname, self.tensor_type())
            if not self.accept(","):
                break
        self.expect(")")
        if self.accept("opset"):
            self.expect("(")
            while not self.at(")"):
                t = self.next()
                if t.kind != "string":
                    raise self.error("expected a quoted domain", t)
                self.expect(":")
                v = self.next()
                if v.kind != "number" or not re.fullmatch(r"\d+", v.text):
                    raise self.error("expected an opset version (a non-negative integer)", v)
                g.opset_imports[self.string(t, "domain")] = int(v.text)
                if not self.accept(","):
                    break
            self.expect(")")
        self.expect("{")
        while not self.at("return"):
            if self.tok.kind == "eof":
                raise self.error("graph body ends without return")
            if self.accept("const"):
                tok = self.expect("%")
                cname = self.ident()
                self.expect(":")
                ttype = self.tensor_type()
                self.expect("=")
                data = self.tensor_data(ttype)
                self.build(tok, g.add_constant, cname, data, provenance=self.provenance())
            else:
                self.node(g)
        self.expect("return")
        outs = []
        if not self.at("}"):
            while True:
                t = self.tok
                v = self.value_ref(g)
                if v is None:
                    raise self.error("a graph output cannot be omitted", t)
                outs.append(v)
                if not self.accept(","):
                    break
        if not outs and parent_scope is None:
            raise self.error("the main graph returns nothing (a graph needs outputs)")
        g.outputs = outs
        self.expect("}")
        g._journal.clear()
        return g

    def provenance(self) -> Optional[Provenance]:
        if not self.accept("<-"):
            return None
        rule = self.ident()
        self.expect("(")
        srcs = []
        while not self.at(")"):
            srcs.append(self.ident())
            if not self.accept(","):
                break
        self.expect(")")
        return Provenance(rule, tuple(srcs))

    def node(self, g: Graph) -> None:
        start = self.tok
        outs: list = []
        if self.at("%") or (self.at("_") and self.toks[self.i + 1].text in (",", "=")):
            while True:
                if self.accept("_"):
                    outs.append(None)
                else:
                    self.expect("%")
                    oname = self.ident()
                    self.expect(":")
                    outs.append((oname, self.tensor_type()))
                if not self.accept(","):
                    break
            self.expect("=")
        op_tok = self.tok
        qual = self.ident()
        domain, _, op_type = qual.rpartition(".")
        self.expect("(")
        inputs = []
        while not self.at(")"):
            inputs.append(self.value_ref(g))
            if not self.accept(","):
                break
        self.expect(")")
        attrs: dict[str, Attr] = {}
        if self.accept("{"):
            while not self.at("}"):
                key = self.ident()
                self.expect("=")
                attrs[key] = self.attr_value(g)
                if not self.accept(","):
                    break
            self.expect("}")
        self.expect("@")
        name_tok = self.tok
        name = self.ident()
        prov = self.provenance()
        for o in outs:
            if o is not None and g.lookup(o[0]) is not None:
                raise self.error(f"value %{o[0]} is defined twice", start)
        node = self.build(
            start, g.add_node, op_type, inputs, [None if o is None else o[1] for o in outs], attrs,
            name=name, domain=domain, output_names=[None if o is None else o[0] for o in outs],
            provenance=prov,
        )
        if node.name != name:
            raise self.error(f"node name @{name} is used twice", name_tok)
        del op_tok


def parse_ir(text: str) -> Graph:
    """Parse the text form back into a Graph. Raises ParseError naming line and column."""
    p = _Parser(text)
    try:
        g = p.graph()
    except RecursionError:
        raise p.error("subgraphs are nested too deeply") from None
    if p.tok.kind != "eof":
        raise p.error("unexpected text after the graph")
    return g
