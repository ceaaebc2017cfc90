"""The compiled artifact: a folder with the compiled library (``model.so``), the
parameters (``params.npz``) and a manifest (``manifest.json``: inputs, outputs, dtypes,
shapes, target, versions, content hash). Written atomically: into a temporary sibling
folder first, then renamed into place, so a failed or interrupted save leaves either the
old artifact or none, never a partial one."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from ..errors import GraphoptError, OutputPathError

MANIFEST = "manifest.json"
LIBRARY = "model.so"
PARAMS = "params.npz"
FORMAT = 1


class ArtifactError(GraphoptError):
    """A folder that is not a (complete, intact) graphopt artifact."""


def versions() -> dict:
    import tvm

    import graphopt

    return {"graphopt": graphopt.__version__, "tvm": tvm.__version__}


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(folder: Path, manifest: dict) -> str:
    h = hashlib.sha256()
    body = {k: v for k, v in manifest.items() if k != "content_hash"}
    h.update(json.dumps(body, sort_keys=True).encode())
    for name in payload_files(manifest):
        h.update(name.encode() + _file_hash(folder / name).encode())
    return h.hexdigest()


def payload_files(manifest: dict) -> list:
    """The files the content hash covers: ``model.so`` and ``params.npz``, or for a model
    in stages (``--fallback ort``) the files its manifest lists."""
    return list(manifest["files"]) if "files" in manifest else [LIBRARY, PARAMS]


def save(out, executable, params, manifest: dict, files: Optional[dict] = None) -> Path:
    """Write an artifact folder at ``out`` (replacing an existing artifact there).

    ``files`` (models in stages): {file name: a built executable (``.so``), a list of
    arrays (``.npz``) or bytes}; ``executable`` and ``params`` are then None."""
    import numpy as np

    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise OutputPathError(f"{out}: folder exists and is not a graphopt artifact; not overwriting it")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise OutputPathError(f"{out}: cannot write: {e.strerror}") from None
    try:
        if executable is not None:
            executable.export_library(str(tmp / LIBRARY))
            with open(tmp / PARAMS, "wb") as f:
                np.savez(f, **{f"p{i}": np.asarray(p) for i, p in enumerate(params)})
            manifest = dict(manifest, format=FORMAT, versions=versions(), num_params=len(params))
        else:
            for name, obj in (files or {}).items():
                if isinstance(obj, (bytes, bytearray)):
                    (tmp / name).write_bytes(obj)
                elif isinstance(obj, list):
                    with open(tmp / name, "wb") as f:
                        np.savez(f, **{f"p{i}": np.asarray(p) for i, p in enumerate(obj)})
                else:
                    obj.export_library(str(tmp / name))
            manifest = dict(manifest, format=FORMAT, versions=versions(), files=sorted(files or {}))
        manifest["content_hash"] = content_hash(tmp, manifest)
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            os.rmdir(old)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise OutputPathError(f"{out}: cannot write: {e.strerror or e}") from None
        raise
    return out


def read_manifest(folder) -> dict:
    folder = Path(folder)
    if not folder.exists():
        raise ArtifactError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not a folder (a compiled artifact is a folder)")
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise ArtifactError(f"{folder}: not a graphopt artifact (no {MANIFEST})")
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{mpath}: unreadable manifest: {e}") from None
    for key in ("inputs", "outputs", "target", "content_hash"):
        if key not in manifest:
            raise ArtifactError(f"{mpath}: manifest lacks {key!r}")
    return manifest


def load(folder, verify: bool = True):
    """(manifest, tvm runtime module, list of numpy params) of an artifact folder."""
    import numpy as np
    import tvm

    folder = Path(folder)
    manifest = read_manifest(folder)
    for name in payload_files(manifest):
        if not (folder / name).is_file():
            raise ArtifactError(f"{folder}: incomplete artifact, {name} is missing")
    if verify and content_hash(folder, manifest) != manifest["content_hash"]:
        raise ArtifactError(f"{folder}: content hash mismatch: the library, parameters or manifest were modified "
                            "or are corrupt")
    v = versions()
    if manifest.get("versions", {}).get("tvm") not in (None, v["tvm"]):
        raise ArtifactError(f"{folder}: compiled with TVM {manifest['versions']['tvm']}, this is TVM {v['tvm']}; "
                            "recompile the model")
    if "stages" in manifest:
        return manifest, None, None
    try:
        lib = tvm.runtime.load_module(str(folder / LIBRARY))
    except Exception as e:
        raise ArtifactError(f"{folder / LIBRARY}: cannot load the compiled library: {e}") from None
    with np.load(folder / PARAMS) as z:
        params = [z[f"p{i}"] for i in range(int(manifest.get("num_params", len(z.files))))]
    return manifest, lib, params


def load_library(folder, name: str):
    import tvm

    try:
        return tvm.runtime.load_module(str(Path(folder) / name))
    except Exception as e:
        raise ArtifactError(f"{Path(folder) / name}: cannot load the compiled library: {e}") from None


def load_params(folder, name: str) -> list:
    import numpy as np

    with np.load(Path(folder) / name) as z:
        return [z[f"p{i}"] for i in range(len(z.files))]
