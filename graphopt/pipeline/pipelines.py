"""Named pipelines and pipeline specs.

- ``O0``: no passes (import/export only).
- ``O1``: the cleanup passes to a fixpoint: simplify, fold-constants, cse, dce.
- ``O2``: O1, then rewrites that round (fuse-conv-bn) and pattern fusions (fuse-gelu, fuse-layer-norm, fuse-rms-norm, fuse-swiglu, fuse-rotary, fuse-attention, fuse-cache-write), then O1 again, then group-kernels (graphopt's kernel boundaries around matmuls, convs and norms).
- ``O3``: not yet defined (more aggressive fusion, layout).

A spec picks passes by name: ``"fold-constants,dce"``, options in braces
(``"fold-constants{max-elements=4096},dce"``), and ``fixpoint(a,b,...)`` for a group
repeated until nothing changes. `build_pipeline` turns a name, a spec or a list of names
and Pass instances into pipeline items, and drops disabled passes.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

from .base import Pass, get_pass
from .errors import PassOptionError, UnknownPassError
from .manager import Fixpoint, PipelineItem

O1_PASSES = ["simplify", "fold-constants", "cse", "dce"]


def _o0() -> list[PipelineItem]:
    return []


def _o1() -> list[PipelineItem]:
    return [Fixpoint([get_pass(n)() for n in O1_PASSES], max_iterations=8)]


O2_PASSES = ["fuse-conv-bn", "fuse-gelu", "fuse-layer-norm", "fuse-rms-norm", "fuse-swiglu", "fuse-rotary", "fuse-attention",
             "fuse-cache-write"]


# After the last cleanup: the groups it outlines are opaque to the rewrites above.
O2_LAST = ["group-kernels"]


def _o2() -> list[PipelineItem]:
    return _o1() + [get_pass(n)() for n in O2_PASSES] + _o1() + [get_pass(n)() for n in O2_LAST]


PIPELINES: dict[str, tuple[str, Callable[[], list[PipelineItem]]]] = {
    "O0": ("no passes: import and export only", _o0),
    "O1": ("cleanup to a fixpoint: " + ", ".join(O1_PASSES), _o1),
    "O2": ("O1, then " + ", ".join(O2_PASSES) + " (rounds within float tolerance), then O1 again, then "
           + ", ".join(O2_LAST), _o2),
}


# What lowering needs of a graph: everything computable from constants folded, with no size
# limit, since weights must be concrete to compile however they were built (the light
# models' ConstantOfShape weights reach 103M elements). It ends every compile's pipeline.
_UNLIMITED = 2 ** 40
LOWERING_PREP = f"fold-constants{{max-elements={_UNLIMITED},max-eval-elements={_UNLIMITED}}}"


def specialize_pipeline(dims: Optional[Mapping[str, int]] = None) -> list[PipelineItem]:
    """specialize-shapes binding ``dims`` (symbol -> size), or nothing for no binding."""
    if not dims:
        return []
    from ..ir.binding import format_dims

    return [get_pass("specialize-shapes").with_options({"dims": format_dims(dims)})]


def lowering_pipeline(level: Optional[str] = None, dims: Optional[Mapping[str, int]] = None) -> list[PipelineItem]:
    """The one pipeline a compile runs before lowering: specialize-shapes for ``dims``
    (sizes of symbolic input dims) first, so every pass after it sees the static shapes
    and folds what they make constant; then ``level``'s passes (a named pipeline or a
    spec; none for None or ""); then `LOWERING_PREP`."""
    return specialize_pipeline(dims) + (build_pipeline(level) if level else []) + parse_spec(LOWERING_PREP)


def pipeline_names() -> list[str]:
    return list(PIPELINES)


def _split_top(s: str) -> list[str]:
    """Split on commas outside braces and parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "({":
            depth += 1
        elif ch in ")}":
            depth -= 1
            if depth < 0:
                raise PassOptionError(f"unbalanced brackets in pipeline spec {s!r}")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise PassOptionError(f"unbalanced brackets in pipeline spec {s!r}")
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_spec(spec: str) -> list[PipelineItem]:
    """``"a,b{opt=1},fixpoint(c,d)"`` -> pipeline items."""
    items: list[PipelineItem] = []
    for part in _split_top(spec):
        if part.startswith("fixpoint(") and part.endswith(")"):
            items.append(Fixpoint(parse_spec(part[len("fixpoint("):-1])))
            continue
        name, opts = part, {}
        if "{" in part:
            if not part.endswith("}"):
                raise PassOptionError(f"bad pass spec {part!r}: options go in braces at the end, "
                                      "e.g. fold-constants{max-elements=4096}")
            name, body = part[:-1].split("{", 1)
            for kv in _split_top(body):
                if "=" not in kv:
                    raise PassOptionError(f"bad option {kv!r} for pass {name!r}: use name=value")
                k, v = kv.split("=", 1)
                opts[k.strip()] = v.strip()
        items.append(get_pass(name.strip()).with_options(opts))
    return items


PipelineLike = Union[str, Sequence[Union[str, Pass, Fixpoint]]]


def build_pipeline(pipeline: PipelineLike = "O1", *, disable: Iterable[str] = (),
                   options: Optional[Mapping[str, Mapping[str, object]]] = None) -> list[PipelineItem]:
    """Pipeline items from a named pipeline ("O1", "-O1"), a spec string, or a list of
    names / specs / Pass instances / Fixpoint groups. ``disable`` drops passes by name;
    ``options`` sets options by pass name ({"fold-constants": {"max-elements": 10}})."""
    if isinstance(pipeline, str):
        key = pipeline.lstrip("-")
        if key in PIPELINES:
            items = PIPELINES[key][1]()
        elif key == "O3":
            raise UnknownPassError(f"pipeline -{key} is not defined yet (pipelines: "
                                   + ", ".join(f"-{k}" for k in PIPELINES) + ")")
        else:
            items = parse_spec(pipeline)
    else:
        items = []
        for it in pipeline:
            if isinstance(it, str):
                items.extend(parse_spec(it))
            elif isinstance(it, (Pass, Fixpoint)):
                items.append(it)
            elif isinstance(it, type) and issubclass(it, Pass):
                items.append(it())
            else:
                raise UnknownPassError(f"not a pass: {it!r}")
    disable = list(disable)
    for d in disable:
        get_pass(d)  # an unknown name is an error, not silently nothing
    if disable:
        items = _drop(items, set(disable))
    if options:
        for name in options:
            get_pass(name)
        items = _with_options(items, options)
    return items


def _drop(items: list[PipelineItem], names: set[str]) -> list[PipelineItem]:
    out: list[PipelineItem] = []
    for it in items:
        if isinstance(it, Fixpoint):
            inner = _drop(it.items, names)
            if inner:
                out.append(Fixpoint(inner, it.max_iterations))
        elif it.name not in names:
            out.append(it)
    return out


def _with_options(items: list[PipelineItem], options: Mapping[str, Mapping[str, object]]) -> list[PipelineItem]:
    import dataclasses

    out: list[PipelineItem] = []
    for it in items:
        if isinstance(it, Fixpoint):
            out.append(Fixpoint(_with_options(it.items, options), it.max_iterations))
        elif it.name in options:
            cur = {f.name: getattr(it, f.name) for f in it.option_fields()}
            new = type(it).with_options(dict(options[it.name]))
            explicit = {k.replace("-", "_") for k in options[it.name]}
            for k, v in cur.items():
                if k not in explicit:
                    setattr(new, k, v)
            out.append(new)
        else:
            out.append(it)
    return out
