"""External data that leaves the model's folder (through `..`, an absolute path, a
symlinked file or folder), and external data for a model given as bytes or a ModelProto
(no folder to resolve against: the working directory must not be used). A sentinel file
outside the folder holds bytes that make a valid tensor: a run that succeeds has read it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from . import checks
from .case import case
from .models import IR_VERSION, OPSET
from .outcome import ACCEPT, EITHER, ERROR, Obs

_VALUES = np.array([[1234.5, -1.0, 2.0], [3.0, 4.0, 5.0]], np.float32)


def _model(location: str, offset=None, length=None):
    from onnx import TensorProto, helper

    w = TensorProto()
    w.name, w.data_type = "w", TensorProto.FLOAT
    w.dims.extend([2, 3])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = w.external_data.add()
            e.key, e.value = k, str(v)
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add")], "ext",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], initializer=[w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def _layout(ctx, name: str) -> tuple:
    """(case folder, the model's folder inside it, the sentinel outside the model's folder)."""
    d = ctx.case_dir(f"ext-{name}")
    mdir = d / "model"
    mdir.mkdir()
    secret = d / "secret" / "weights.bin"
    secret.parent.mkdir()
    secret.write_bytes(_VALUES.tobytes())
    return d, mdir, secret


# name: (location in the model, how to lay the files out, expectation)
def _prep(name: str, mdir: Path, secret: Path):
    if name == "inside":
        (mdir / "weights.bin").write_bytes(_VALUES.tobytes())
        return _model("weights.bin"), ACCEPT
    if name == "inside-subfolder":
        (mdir / "sub").mkdir()
        (mdir / "sub" / "weights.bin").write_bytes(_VALUES.tobytes())
        return _model("sub/weights.bin"), ACCEPT
    if name == "inside-dotdot-back":
        (mdir / "sub").mkdir()
        (mdir / "weights.bin").write_bytes(_VALUES.tobytes())
        return _model("sub/../weights.bin"), EITHER
    if name == "dotdot":
        return _model("../secret/weights.bin"), ERROR
    if name == "dotdot-deep":
        return _model("../../" + "/".join(secret.parts[-3:])), ERROR
    if name == "absolute":
        return _model(str(secret)), ERROR
    if name == "symlink-file":
        os.symlink(secret, mdir / "weights.bin")
        return _model("weights.bin"), ERROR
    if name == "symlink-folder":
        os.symlink(secret.parent, mdir / "sub")
        return _model("sub/weights.bin"), ERROR
    if name == "missing":
        return _model("nothing.bin"), ERROR
    if name == "folder":
        (mdir / "dir.bin").mkdir()
        return _model("dir.bin"), ERROR
    if name == "offset-beyond":
        (mdir / "weights.bin").write_bytes(_VALUES.tobytes())
        return _model("weights.bin", offset=4096), ERROR
    if name == "length-short":
        (mdir / "weights.bin").write_bytes(_VALUES.tobytes())
        return _model("weights.bin", offset=0, length=8), ERROR
    if name == "length-beyond":
        (mdir / "weights.bin").write_bytes(_VALUES.tobytes())
        return _model("weights.bin", offset=0, length=1 << 40), ERROR
    if name == "file-short":
        (mdir / "weights.bin").write_bytes(_VALUES.tobytes()[:10])
        return _model("weights.bin"), ERROR
    if name == "empty-location":
        return _model(""), ERROR
    if name == "device-file":
        return _model("/dev/zero", offset=0, length=24), ERROR
    raise KeyError(name)


OUTSIDE = {"dotdot", "dotdot-deep", "absolute", "symlink-file", "symlink-folder"}
NAMES = ["inside", "inside-subfolder", "inside-dotdot-back", "dotdot", "dotdot-deep", "absolute", "symlink-file",
         "symlink-folder", "missing", "folder", "offset-beyond", "length-short", "length-beyond", "file-short",
         "empty-location", "device-file"]


def run_path(ctx, name: str, via: str) -> Obs:
    import graphopt

    d, mdir, secret = _layout(ctx, name)
    model, expect = _prep(name, mdir, secret)
    path = mdir / "model.onnx"
    path.write_bytes(model.SerializeToString())
    obs = Obs(expect=expect)
    x = np.ones((2, 3), np.float32)
    if via == "api":
        with obs.call(f"import_onnx({path}) (external data {name})"):
            g = graphopt.import_onnx(str(path))
            out = graphopt.export_onnx(graphopt.run_passes(g, "O1"))
            obs.wrong = checks.compare([x + _VALUES], checks.run_ort(out.SerializeToString(), {"x": x}),
                                       "the imported weights differ from the file's")
    else:
        obs.cli([via, path] + (["-O1", "-o", d / "out.onnx"] if via == "opt" else []), timeout=90)
    if name in OUTSIDE and obs.status == "ok":
        obs.read_outside = f"read {secret} through external data location {name}"
    return obs


def run_unrooted(ctx, form: str, base_dir: bool) -> Obs:
    """A model as bytes or a ModelProto whose external data names weights.bin; the working
    directory holds a weights.bin (the sentinel)."""
    import graphopt

    d, mdir, secret = _layout(ctx, f"unrooted-{form}")
    (d / "weights.bin").write_bytes(_VALUES.tobytes())
    model = _model("weights.bin")
    obj = model.SerializeToString() if form == "bytes" else model
    obs = Obs(expect=ERROR)
    cwd = os.getcwd()
    os.chdir(d)
    try:
        with obs.call(f"import_onnx(<{form}>) with weights.bin in the working directory"):
            graphopt.import_onnx(obj)
    finally:
        os.chdir(cwd)
    if obs.status == "ok":
        obs.read_outside = "external data of a model given as bytes/ModelProto was read from the working directory"
    return obs


def cases(seed: int) -> list:
    out = []
    for name in NAMES:
        for via in ("api", "show", "opt") if name in OUTSIDE or name == "inside" else ("api",):
            out.append(case("extdata", f"{name}.{via}", run_path, args=dict(name=name, via=via), timeout=90,
                            sample=via == "api" and name in ("inside", "dotdot", "absolute", "symlink-file"),
                            what=f"{via}: model.onnx whose external data is {name}"))
    for form in ("bytes", "proto"):
        out.append(case("extdata", f"unrooted-{form}", run_unrooted, args=dict(form=form, base_dir=False), sample=True,
                        what=f"import_onnx(<{form}>) with external data and a weights.bin in the working directory"))
    return out
