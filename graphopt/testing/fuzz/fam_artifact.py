"""Tampered artifacts: manifest (bad JSON, wrong types, `../` and absolute file names,
symlinks leaving the folder), params (float64, a missing key, a truncated zip), library
(truncated, garbage, another model's), each with the content hash left alone or
recomputed the way someone editing the folder would. Loaded with `graphopt.load` and run,
or with `graphopt run`."""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from . import checks, models
from .case import case
from .outcome import ACCEPT, ERROR, Obs


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _write_manifest(folder: Path, m, rehash: bool) -> None:
    if rehash and isinstance(m, dict):
        m["content_hash"] = _content_hash(folder, m)
    (folder / "manifest.json").write_text(json.dumps(m, indent=1, sort_keys=True) if not isinstance(m, str) else m)


def _content_hash(folder: Path, m: dict) -> str:
    """The hash graphopt checks, recomputed as a tamperer would (with graphopt's own code)."""
    from graphopt.codegen import artifact

    try:
        return artifact.content_hash(folder, m)
    except Exception:  # noqa: BLE001 - a manifest graphopt's hash cannot digest: leave the old one
        return m.get("content_hash", "")


def _rehash(folder: Path) -> None:
    _write_manifest(folder, _manifest(folder), True)


def _npz(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _params(folder: Path) -> dict:
    with np.load(folder / "params.npz") as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------- the tampers (folder, outside) -> None
def _m_edit(fn):
    def t(folder, outside, rehash):
        m = _manifest(folder)
        fn(m)
        _write_manifest(folder, m, rehash)
    return t


def _raw_manifest(text):
    def t(folder, outside, rehash):
        (folder / "manifest.json").write_text(text(folder))
    return t


def _file_edit(name, fn):
    def t(folder, outside, rehash):
        p = folder / name
        p.write_bytes(fn(p.read_bytes(), folder, outside))
        if rehash:
            _rehash(folder)
    return t


def _params_edit(fn):
    def t(folder, outside, rehash):
        (folder / "params.npz").write_bytes(_npz(fn(_params(folder))))
        if rehash:
            _rehash(folder)
    return t


def _other_model(name):
    """The same file from another model's artifact (the gather model's)."""
    return lambda data, folder, outside: (outside / "other" / name).read_bytes()


def _symlink_out(name):
    def t(folder, outside, rehash):
        (folder / name).unlink()
        os.symlink(outside / "other" / name, folder / name)
        if rehash:
            _rehash(folder)
    return t


def _drop(name):
    def t(folder, outside, rehash):
        (folder / name).unlink()
    return t


def _foreign_stage(kind, how):
    """A staged manifest naming a library, params or ONNX region outside its folder."""
    def t(folder, outside, rehash):
        m = _manifest(folder)
        st = next(s for s in m["stages"] if s["kind"] == ("ort" if kind == "model" else "tvm"))
        old = st[kind]
        target = outside / "foreign" / old
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / old, target)
        if how == "symlink":
            (folder / old).unlink()
            os.symlink(target, folder / old)
        else:
            new = os.path.relpath(target, folder) if how == "dotdot" else str(target)
            st[kind] = new
            m["files"] = sorted(new if f == old else f for f in m["files"])
            for key in ("libraries", "param_specs"):
                if old in m.get(key, {}):
                    m[key][new] = m[key].pop(old)
            (folder / old).unlink()
        _write_manifest(folder, m, rehash)
    return t


def _set(path, value):
    def fn(m):
        cur = m
        for k in path[:-1]:
            cur = cur[k]
        cur[path[-1]] = value
    return fn


def _del(key):
    return lambda m: m.pop(key)


# name: (fixture, tamper, expectation)
TAMPER = {
    "untouched": ("mlp", lambda f, o, r: None, ACCEPT),
    "untouched-staged": ("staged", lambda f, o, r: None, ACCEPT),
    "manifest-truncated": ("mlp", _raw_manifest(lambda f: (f / "manifest.json").read_text()[:40]), ERROR),
    "manifest-garbage": ("mlp", _raw_manifest(lambda f: "\x00\xff garbage"), ERROR),
    "manifest-empty": ("mlp", _raw_manifest(lambda f: ""), ERROR),
    "manifest-list": ("mlp", _raw_manifest(lambda f: "[1, 2, 3]"), ERROR),
    "manifest-null": ("mlp", _raw_manifest(lambda f: "null"), ERROR),
    "manifest-nan": ("mlp", _m_edit(_set(["num_params"], float("nan"))), ERROR),
    "inputs-string": ("mlp", _m_edit(_set(["inputs"], "x")), ERROR),
    "inputs-empty": ("mlp", _m_edit(_set(["inputs"], [])), ERROR),
    "inputs-null": ("mlp", _m_edit(_set(["inputs"], None)), ERROR),
    "input-no-name": ("mlp", _m_edit(lambda m: m["inputs"][0].pop("name")), ERROR),
    "input-name-int": ("mlp", _m_edit(_set(["inputs", 0, "name"], 7)), ERROR),
    "input-dtype-unknown": ("mlp", _m_edit(_set(["inputs", 0, "dtype"], "float99")), ERROR),
    "input-dtype-float64": ("mlp", _m_edit(_set(["inputs", 0, "dtype"], "float64")), ERROR),
    "input-shape-string": ("mlp", _m_edit(_set(["inputs", 0, "shape"], "2x8")), ERROR),
    "input-shape-wrong": ("mlp", _m_edit(_set(["inputs", 0, "shape"], [2, 9])), ERROR),
    "input-shape-negative": ("mlp", _m_edit(_set(["inputs", 0, "shape"], [-2, 8])), ERROR),
    "input-dim-float": ("mlp", _m_edit(_set(["inputs", 0, "shape"], [2.0, 8.5])), ERROR),
    "outputs-empty": ("mlp", _m_edit(_set(["outputs"], [])), ERROR),
    "outputs-two": ("mlp", _m_edit(lambda m: m["outputs"].append(dict(m["outputs"][0], name="y2"))), ERROR),
    "num-params-string": ("mlp", _m_edit(_set(["num_params"], "three")), ERROR),
    "num-params-more": ("mlp", _m_edit(_set(["num_params"], 7)), ERROR),
    "num-params-fewer": ("mlp", _m_edit(_set(["num_params"], 1)), ERROR),
    "num-params-negative": ("mlp", _m_edit(_set(["num_params"], -1)), ERROR),
    "target-int": ("mlp", _m_edit(_set(["target"], 3)), ERROR),
    "target-unknown": ("mlp", _m_edit(_set(["target"], "tpu")), ERROR),
    "target-cuda": ("mlp", _m_edit(_set(["target"], "cuda")), ERROR),
    "hash-int": ("mlp", _raw_manifest(lambda f: json.dumps(dict(_manifest(f), content_hash=5))), ERROR),
    "no-hash": ("mlp", _raw_manifest(lambda f: json.dumps({k: v for k, v in _manifest(f).items() if k != "content_hash"})),
                ERROR),
    "versions-old-tvm": ("mlp", _m_edit(_set(["versions", "tvm"], "0.1.0")), ERROR),
    "versions-string": ("mlp", _m_edit(_set(["versions"], "new")), ERROR),
    "format-future": ("mlp", _m_edit(_set(["format"], 99)), ERROR),
    "files-dotdot": ("mlp", _m_edit(_set(["files"], ["../../elsewhere/model.so"])), ERROR),
    "files-absolute": ("mlp", _m_edit(_set(["files"], ["/etc/hostname"])), ERROR),
    "files-string": ("mlp", _m_edit(_set(["files"], "model.so")), ERROR),
    "params-float64": ("mlp", _params_edit(lambda p: {k: v.astype(np.float64) for k, v in p.items()}), ERROR),
    "params-missing-key": ("mlp", _params_edit(lambda p: {k: v for k, v in p.items() if k != "p1"}), ERROR),
    "params-extra-key": ("mlp", _params_edit(lambda p: dict(p, p99=np.zeros(3, np.float32))), ERROR),
    "params-wrong-shape": ("mlp", _params_edit(lambda p: {k: v.reshape(-1) for k, v in p.items()}), ERROR),
    "params-int32": ("mlp", _params_edit(lambda p: {k: v.astype(np.int32) for k, v in p.items()}), ERROR),
    "params-object": ("mlp", _file_edit("params.npz", lambda d, f, o: _npz_pickled()), ERROR),
    "params-truncated": ("mlp", _file_edit("params.npz", lambda d, f, o: d[: len(d) // 2]), ERROR),
    "params-garbage": ("mlp", _file_edit("params.npz", lambda d, f, o: b"PK\x03\x04" + b"\x00" * 100), ERROR),
    "params-empty": ("mlp", _file_edit("params.npz", lambda d, f, o: b""), ERROR),
    "params-other-model": ("mlp", _file_edit("params.npz", _other_model("params.npz")), ERROR),
    "params-symlink-out": ("mlp", _symlink_out("params.npz"), ERROR),
    "library-truncated": ("mlp", _file_edit("model.so", lambda d, f, o: d[: len(d) // 3]), ERROR),
    "library-garbage": ("mlp", _file_edit("model.so", lambda d, f, o: b"\x7fELF" + b"\x01" * 4000), ERROR),
    "library-empty": ("mlp", _file_edit("model.so", lambda d, f, o: b""), ERROR),
    "library-other-model": ("mlp", _file_edit("model.so", _other_model("model.so")), ERROR),
    "library-symlink-out": ("mlp", _symlink_out("model.so"), ERROR),
    "library-missing": ("mlp", _drop("model.so"), ERROR),
    "params-missing": ("mlp", _drop("params.npz"), ERROR),
    "manifest-missing": ("mlp", _drop("manifest.json"), ERROR),
    "stage-lib-dotdot": ("staged", _foreign_stage("lib", "dotdot"), ERROR),
    "stage-lib-absolute": ("staged", _foreign_stage("lib", "absolute"), ERROR),
    "stage-lib-symlink": ("staged", _foreign_stage("lib", "symlink"), ERROR),
    "stage-params-dotdot": ("staged", _foreign_stage("params", "dotdot"), ERROR),
    "stage-params-absolute": ("staged", _foreign_stage("params", "absolute"), ERROR),
    "stage-model-dotdot": ("staged", _foreign_stage("model", "dotdot"), ERROR),
    "stage-model-symlink": ("staged", _foreign_stage("model", "symlink"), ERROR),
    "stage-kind-unknown": ("staged", _m_edit(lambda m: m["stages"][0].update(kind="gpu")), ERROR),
    "stage-inputs-unknown": ("staged", _m_edit(lambda m: m["stages"][1].update(inputs=["nope"])), ERROR),
    "stages-string": ("staged", _m_edit(_set(["stages"], "all")), ERROR),
    "stage-region-garbage": ("staged", _file_edit("region1.onnx", lambda d, f, o: d[:30]), ERROR),
    "stage-lib-swapped": ("staged", _file_edit("stage0.so", lambda d, f, o: (f / "stage2.so").read_bytes()), ERROR),
}

NO_REHASH = {"untouched", "untouched-staged", "manifest-truncated", "manifest-garbage", "manifest-empty", "manifest-list",
             "manifest-null", "hash-int", "no-hash", "library-missing", "params-missing", "manifest-missing"}


def _npz_pickled() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, p0=np.array([{"a": 1}], dtype=object), p1=np.zeros(1), p2=np.zeros(1))
    return buf.getvalue()


def _layout(ctx, fixture: str, name: str):
    """(artifact copy, a folder outside it holding another model's artifact)."""
    d = ctx.case_dir(f"art-{name}")
    art = ctx.artifact_copy(fixture, d / "models")
    outside = d / "outside"
    outside.mkdir()
    shutil.copytree(ctx.artifact("gather"), outside / "other")
    return art, outside


def _feeds(fixture: str) -> dict:
    return models.inputs_for(models.load(fixture), 4)


def run_tamper(ctx, name: str, rehash: bool, via: str) -> Obs:
    import graphopt

    fixture, tamper, expect = TAMPER[name]
    art, outside = _layout(ctx, fixture, name)
    tamper(art, outside, rehash)
    feeds = _feeds(fixture)
    obs = Obs(expect=expect)
    if via == "api":
        with obs.call(f"graphopt.load({art.name}/).run(...)"):
            out = graphopt.load(art).run(**feeds)
            obs.wrong = checks.compare(checks.run_ort(models.model_bytes(fixture), feeds), out,
                                       "the loaded artifact differs from the oracle")
    else:
        args = []
        for k, v in feeds.items():
            np.save(outside.parent / f"{k}.npy", v)
            args += ["-i", f"{k}={outside.parent / (k + '.npy')}"]
        obs.cli(["run", art, *args], timeout=90)
    if obs.status == "ok" and any(w in name for w in ("symlink", "dotdot", "absolute")):
        obs.read_outside = "the artifact ran with a file from outside its folder"
    return obs


def cases(seed: int) -> list:
    out = []
    for i, name in enumerate(TAMPER):
        for rehash in ((False,) if name in NO_REHASH else (False, True)):
            tag = "rehash" if rehash else "as-is"
            # `graphopt run` imports TVM at every start (tens of seconds on a loaded machine):
            # the CLI path for the folder-escape cases and a few others.
            cli = name in ("untouched", "params-float64", "library-other-model") or "dotdot" in name
            vias = ("api", "cli") if cli and (rehash or name in NO_REHASH) else ("api",)
            for via in vias:
                out.append(case("artifact-tamper", f"{name}.{tag}.{via}", run_tamper,
                                args=dict(name=name, rehash=rehash, via=via), needs=(TAMPER[name][0], "gather"),
                                sample=via == "api" and (rehash or name in NO_REHASH) and i % 4 == 1
                                and TAMPER[name][0] == "mlp", timeout=90,
                                what=f"{'graphopt.load(ART).run' if via == 'api' else 'graphopt run ART'}: {name}"
                                     f"{', content hash recomputed' if rehash else ''}"))
    return out
