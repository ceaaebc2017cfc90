"""The compiled artifact: a folder with the compiled library (``model.so``), the
parameters (``params.npz``) and a manifest (``manifest.json``: inputs, outputs, dtypes,
shapes, target, versions, each parameter's dtype and shape, content hash). Written
atomically: into a temporary sibling folder first, then renamed into place, so a failed or
interrupted save leaves either the old artifact or none, never a partial one; the next save
removes what a dead writer left (temporary names carry the writer's pid).

Loading trusts nothing in the folder: the manifest's types are checked, every file it names
must be a plain name of a regular file inside the folder (checked before any file is
opened), the parameters must have the dtypes and shapes the manifest records, and each
library must carry the id that the manifest's signature of it (nonce, inputs, outputs,
parameters) gives, so a library, parameter file or manifest from another compile is refused
with one line instead of failing inside the TVM VM."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Optional

from ..errors import GraphoptError, OutputPathError
from ..util.files import remove_stale
from ..util.spill import SpilledBytes

MANIFEST = "manifest.json"
LIBRARY = "model.so"
PARAMS = "params.npz"
FORMAT = 2
LIBRARY_ID_FN = "graphopt_library_id"   # a Relax function each library returns its id from
# The compiled graph as ONNX (manifest key "oracle_model"; artifacts before it lack both and
# load as before): what graphopt.compare_intermediates runs its oracle on.
ORACLE = "graph.onnx"
ORACLE_LIMIT = 1 << 30


class ArtifactError(GraphoptError):
    """A folder that is not a (complete, intact) graphopt artifact."""


def versions() -> dict:
    import tvm

    from ..version import __version__

    return {"graphopt": __version__, "tvm": tvm.__version__}


# --------------------------------------------------------------------------- signatures
def _descr(dtype) -> str:
    # np.load gives structured/void dtypes (bfloat16 included) back as plain |V<n>
    return f"|V{dtype.itemsize}" if dtype.kind == "V" else dtype.str


def param_specs(arrays) -> list:
    """[[dtype descr, shape], ...] of a list of parameter arrays, as recorded in the manifest."""
    import numpy as np

    out = []
    for p in arrays:
        a = p if isinstance(p, np.ndarray) else np.asarray(p)
        out.append([_descr(a.dtype), [int(d) for d in a.shape]])
    return out


def library_id(nonce: str, inputs, outputs, params) -> list:
    """The id a library carries: a digest of what the manifest says about it. A library,
    parameter file or manifest from another compile does not reproduce it."""
    body = json.dumps({"nonce": nonce, "inputs": inputs, "outputs": outputs, "params": params}, sort_keys=True)
    d = hashlib.sha256(body.encode()).digest()
    return [int.from_bytes(d[i:i + 7], "little") for i in (0, 7)]  # two ints that fit int64


# --------------------------------------------------------------------------- hashing
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
    if "files" in manifest:
        return list(manifest["files"])
    return [LIBRARY, PARAMS] + ([manifest["oracle_model"]] if "oracle_model" in manifest else [])


# --------------------------------------------------------------------------- leftovers
# --------------------------------------------------------------------------- saving
def _write_npz(path: Path, arrays) -> None:
    import numpy as np

    with open(path, "wb") as f:
        np.savez(f, **{f"p{i}": np.asarray(p) for i, p in enumerate(arrays)})


def one_line(e: BaseException) -> str:
    """An exception's message on one line: its first line, and the next when the first only
    introduces it ("Compilation error:")."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    text = " ".join(lines[:2]) if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return text[:300]


def _export(executable, path: Path, out: Path) -> None:
    from .build import native_output

    import resource

    # Under a file size limit (ulimit -f) LLVM may hit it while writing the object code and
    # end the process at once ("LLVM ERROR: IO failure on output stream: File too large"),
    # before graphopt can clean up or say anything; the next save removes what it left. Its
    # stderr is then left alone, so that its one line reaches the user.
    limited = resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY
    try:
        with (contextlib.nullcontext() if limited else native_output()):  # TVM logs "Scope Saving" on fd 2
            executable.export_library(str(path))
    except OSError:
        raise
    except Exception as e:  # TVM wraps the linker's failure (a full disk, a file size limit)
        raise OutputPathError(f"{out}: cannot write the compiled library {path.name}: {one_line(e)}") from None


def _write_bytes(path: Path, obj) -> None:
    if isinstance(obj, SpilledBytes):
        obj.write_to(path)
    else:
        path.write_bytes(obj)


def save(out, executable, params, manifest: dict, files: Optional[dict] = None) -> Path:
    """Write an artifact folder at ``out`` (replacing an existing artifact there).

    ``executable``: a built executable, or the bytes of a loaded artifact's library.
    ``files`` (models in stages): {file name: a built executable (``.so``), a list of
    arrays (``.npz``) or bytes}; ``executable`` and ``params`` are then None."""
    out = Path(out)
    parent = out.parent if str(out.parent) else Path(".")
    if out.exists() and not out.is_dir():
        raise OutputPathError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise OutputPathError(f"{out}: folder exists and is not a graphopt artifact; not overwriting it")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        remove_stale(parent, out.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise OutputPathError(f"{out}: cannot write: {e.strerror}") from None
    try:
        if executable is not None:  # the one-stage model's other files (the oracle's graph)
            for name, obj in (files or {}).items():
                if name not in (LIBRARY, PARAMS):
                    _write_bytes(tmp / name, obj)
        if isinstance(executable, (bytes, bytearray)):  # a loaded artifact's library, as it was on disk
            (tmp / LIBRARY).write_bytes(executable)
            _write_npz(tmp / PARAMS, params)
            manifest = dict(manifest, format=FORMAT, versions=versions(), num_params=len(params))
        elif executable is not None:
            _export(executable, tmp / LIBRARY, out)
            _write_npz(tmp / PARAMS, params)
            manifest = dict(manifest, format=FORMAT, versions=versions(), num_params=len(params))
        else:
            for name, obj in (files or {}).items():
                if isinstance(obj, (bytes, bytearray, SpilledBytes)):
                    _write_bytes(tmp / name, obj)
                elif isinstance(obj, list):
                    _write_npz(tmp / name, obj)
                else:
                    _export(obj, tmp / name, out)
            manifest = dict(manifest, format=FORMAT, versions=versions(), files=sorted(files or {}))
        manifest["content_hash"] = content_hash(tmp, manifest)
        with open(tmp / MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".old", dir=parent))
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


# --------------------------------------------------------------------------- manifest checks
def _bad(mpath, entry: str, what: str) -> ArtifactError:
    return ArtifactError(f"{mpath}: {entry}: {what}")


def _is_dim(d) -> bool:
    return (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or (isinstance(d, str) and bool(d))


def _check_io(mpath, entry: str, specs) -> None:
    if not isinstance(specs, list):
        raise _bad(mpath, entry, f"expected a list, got {type(specs).__name__}")
    for i, s in enumerate(specs):
        at = f"{entry}[{i}]"
        if not isinstance(s, dict):
            raise _bad(mpath, at, f"expected an object, got {type(s).__name__}")
        if not isinstance(s.get("name"), str) or not isinstance(s.get("dtype"), str):
            raise _bad(mpath, at, "needs a string 'name' and 'dtype'")
        shape = s.get("shape")
        if shape is not None and not (isinstance(shape, list) and all(_is_dim(d) for d in shape)):
            raise _bad(mpath, at, f"shape {shape!r} is not a list of dims (ints >= 0 or names)")
        if "written" in s and s["written"] is not True:
            raise _bad(mpath, at, f"'written' must be true when present, got {s['written']!r}")


def _check_names(mpath, entry: str, names) -> None:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _bad(mpath, entry, "expected a list of names")


def _check_specs(mpath, entry: str, specs) -> None:
    ok = isinstance(specs, list) and all(
        isinstance(s, list) and len(s) == 2 and isinstance(s[0], str) and isinstance(s[1], list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in s[1]) for s in specs)
    if not ok:
        raise _bad(mpath, entry, "expected a list of [dtype, shape] pairs")


def _need(mpath, manifest: dict, key: str, typ, what: str):
    if key not in manifest:
        raise ArtifactError(f"{mpath}: manifest lacks {key!r}")
    v = manifest[key]
    if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
        raise _bad(mpath, key, f"expected {what}, got {type(v).__name__}")
    return v


def _check_libraries(mpath, manifest: dict, libs: list) -> None:
    nonces = _need(mpath, manifest, "libraries", dict, "an object")
    specs = _need(mpath, manifest, "param_specs", dict, "an object")
    for lib, pf in libs:
        if not isinstance(nonces.get(lib), str):
            raise _bad(mpath, f"libraries[{lib!r}]", "missing (each library needs its nonce)")
        if pf not in specs:
            raise _bad(mpath, f"param_specs[{pf!r}]", "missing (each parameter file needs its specs)")
        _check_specs(mpath, f"param_specs[{pf!r}]", specs[pf])


def _check_stages(mpath, manifest: dict) -> list:
    """(library, params) file pairs of a staged manifest, its ONNX regions checked too."""
    stages = _need(mpath, manifest, "stages", list, "a list")
    files = _need(mpath, manifest, "files", list, "a list")
    _check_names(mpath, "files", files)
    libs = []
    for i, sp in enumerate(stages):
        at = f"stages[{i}]"
        if not isinstance(sp, dict) or sp.get("kind") not in ("tvm", "ort"):
            raise _bad(mpath, at, "expected an object with kind 'tvm' or 'ort'")
        _check_names(mpath, f"{at}.inputs", sp.get("inputs"))
        _check_names(mpath, f"{at}.outputs", sp.get("outputs"))
        keys = ("lib", "params") if sp["kind"] == "tvm" else ("model",)
        for k in keys:
            if not isinstance(sp.get(k), str):
                raise _bad(mpath, f"{at}.{k}", "expected a file name")
            if sp[k] not in files:
                raise _bad(mpath, f"{at}.{k}", f"{sp[k]!r} is not among the artifact's files")
        if sp["kind"] == "tvm":
            libs.append((sp["lib"], sp["params"]))
    _check_dataflow(mpath, manifest)
    return libs


def _check_dataflow(mpath, manifest: dict) -> None:
    """Each stage reads only model inputs and earlier stages' outputs, and every model
    output is produced (else a run would fail looking a value up)."""
    have = {i["name"] for i in manifest["inputs"]}
    for i, sp in enumerate(manifest["stages"]):
        missing = [x for x in sp["inputs"] if x not in have]
        if missing:
            raise _bad(mpath, f"stages[{i}].inputs", f"{missing[0]!r} is neither a model input nor an earlier "
                                                     "stage's output")
        have.update(sp["outputs"])
    missing = [o["name"] for o in manifest["outputs"] if o["name"] not in have]
    if missing:
        raise _bad(mpath, "outputs", f"{missing[0]!r} is produced by no stage")


def _check_kernel_map(mpath, entry: str, calls) -> None:
    """The build's kernel map (codegen.kernel_map): per call, its kernel's name, and per
    output the graph values it holds (objects naming a node and a value)."""
    def values(ws) -> bool:
        return isinstance(ws, list) and all(isinstance(w, dict) and isinstance(w.get("node"), str)
                                            and isinstance(w.get("value"), str) for w in ws)

    if not isinstance(calls, list):
        raise _bad(mpath, entry, f"expected a list, got {type(calls).__name__}")
    for i, c in enumerate(calls):
        ok = (isinstance(c, dict) and isinstance(c.get("kernel"), str) and isinstance(c.get("outputs"), list)
              and all(values(g) for g in c["outputs"]) and values(c.get("inside", [])))
        if not ok:
            raise _bad(mpath, f"{entry}[{i}]", "expected {kernel: name, outputs: [[{node, value}...]...], "
                                               "inside: [{node, value}...]}")


def check_manifest(mpath, manifest) -> None:
    """Raise ArtifactError naming the manifest and the entry at fault unless ``manifest``
    has the keys and types load relies on."""
    if not isinstance(manifest, dict):
        raise ArtifactError(f"{mpath}: expected a JSON object, got {type(manifest).__name__}")
    fmt = manifest.get("format")
    if fmt != FORMAT:
        raise ArtifactError(f"{mpath}: artifact format {fmt!r}, this graphopt reads format {FORMAT}; "
                            "recompile the model")
    for key in ("inputs", "outputs"):
        _check_io(mpath, key, _need(mpath, manifest, key, list, "a list"))
    _need(mpath, manifest, "target", str, "a string")
    _need(mpath, manifest, "content_hash", str, "a string")
    v = _need(mpath, manifest, "versions", dict, "an object")
    if not isinstance(v.get("tvm"), str):
        raise _bad(mpath, "versions.tvm", "expected a string")
    if "files" in manifest:
        _check_names(mpath, "files", manifest["files"])
    if "oracle_model" in manifest and not isinstance(manifest["oracle_model"], str):
        raise _bad(mpath, "oracle_model", "expected a file name")
    _check_kernel_map(mpath, "kernels", manifest.get("kernels", []))
    for i, sp in enumerate(manifest.get("stages", []) if isinstance(manifest.get("stages"), list) else []):
        if isinstance(sp, dict):
            _check_kernel_map(mpath, f"stages[{i}].kernels", sp.get("kernels", []))
    if "stages" in manifest:
        libs = _check_stages(mpath, manifest)
    else:
        n = _need(mpath, manifest, "num_params", int, "an int")
        libs = [(LIBRARY, PARAMS)]
        _check_libraries(mpath, manifest, libs)
        if len(manifest["param_specs"][PARAMS]) != n:
            raise _bad(mpath, "num_params", f"{n}, but param_specs lists {len(manifest['param_specs'][PARAMS])}")
        return
    _check_libraries(mpath, manifest, libs)


def named_files(manifest: dict) -> list:
    """(manifest entry, file name) of every file a (checked) manifest names."""
    out = [(f"files[{i}]", n) for i, n in enumerate(payload_files(manifest))] if "files" in manifest else \
        [("library", LIBRARY), ("params", PARAMS)]
    for i, sp in enumerate(manifest.get("stages", [])):
        out += [(f"stages[{i}].{k}", sp[k]) for k in ("lib", "params", "model") if k in sp]
    if "oracle_model" in manifest and "files" not in manifest:
        out.append(("oracle_model", manifest["oracle_model"]))
    out += [(f"libraries[{k!r}]", k) for k in manifest.get("libraries", {})]
    out += [(f"param_specs[{k!r}]", k) for k in manifest.get("param_specs", {})]
    return out


def check_member(folder: Path, mpath, entry: str, name) -> None:
    """``name`` must be a plain file name (no folder part, not absolute, not ``..``) of a
    regular file that resolves inside ``folder``: an artifact reads nothing outside itself."""
    plain = isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\\0")
    if not plain:
        raise _bad(mpath, entry, f"{name!r} is not a plain file name inside the artifact folder; refusing it")
    p = folder / name
    try:
        st = os.lstat(p)
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: incomplete artifact, {name} is missing") from None
    except OSError as e:
        raise _bad(mpath, entry, f"{name}: {e.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        real, base = os.path.realpath(p), os.path.realpath(folder)
        if os.path.commonpath([real, base]) != base or real == base:
            raise _bad(mpath, entry, f"{name} is a symlink leading outside the artifact folder; refusing it")
        try:
            st = os.stat(p)
        except OSError:
            raise _bad(mpath, entry, f"{name} is a dangling symlink") from None
    if not stat.S_ISREG(st.st_mode):
        raise _bad(mpath, entry, f"{name} is not a regular file")


def read_manifest(folder) -> dict:
    """The checked manifest of an artifact folder (see `check_manifest`); its file names
    are checked too, so nothing outside the folder is opened after this."""
    folder = Path(folder)
    if not folder.exists():
        raise ArtifactError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: not a folder (a compiled artifact is a folder)")
    mpath = folder / MANIFEST
    if not os.path.lexists(mpath):
        raise ArtifactError(f"{folder}: not a graphopt artifact (no {MANIFEST})")
    check_member(folder, mpath, "the manifest itself", MANIFEST)
    try:
        manifest = json.loads(mpath.read_text())
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{mpath}: unreadable manifest: {e}") from None
    check_manifest(mpath, manifest)
    for entry, name in named_files(manifest):
        check_member(folder, mpath, entry, name)
    return manifest


# --------------------------------------------------------------------------- loading
def load(folder, verify: bool = True):
    """(manifest, tvm runtime module, list of numpy params) of an artifact folder; for a
    model in stages (manifest, None, None): load each stage's files with `load_library`
    and `load_params`."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if verify and content_hash(folder, manifest) != manifest["content_hash"]:
        raise ArtifactError(f"{folder}: content hash mismatch: the library, parameters or manifest were modified "
                            "or are corrupt")
    v = versions()
    if manifest["versions"]["tvm"] != v["tvm"]:
        raise ArtifactError(f"{folder}: compiled with TVM {manifest['versions']['tvm']}, this is TVM {v['tvm']}; "
                            "recompile the model")
    if "stages" in manifest:
        return manifest, None, None
    return manifest, load_library(folder, LIBRARY), load_params(folder, PARAMS, manifest)


def load_library(folder, name: str):
    """Load a library from a private copy: the dynamic loader reuses a library already
    loaded under the same path, so after an artifact is saved over, loading the path again
    in this process would give the old library."""
    import tvm

    path = Path(folder) / name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read the compiled library: {e.strerror}") from None
    bad = elf_problem(data)
    if bad:
        raise ArtifactError(f"{path}: not a loadable compiled library: {bad}")
    fd, private = tempfile.mkstemp(prefix="graphopt-lib-", suffix=".so")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        from .build import native_output

        with native_output():  # and "Scope Loaded" per load
            return tvm.runtime.load_module(private)
    except Exception as e:
        raise ArtifactError(f"{path}: cannot load the compiled library: {one_line(e)}") from None
    finally:
        try:
            os.unlink(private)  # the mapping stays valid
        except OSError:
            pass


def elf_problem(data: bytes) -> Optional[str]:
    """Why ``data`` is not a whole 64-bit little-endian ELF file, or None. The dynamic
    loader maps segments as the headers describe them: a truncated library would be
    mapped past its end and the process killed (SIGBUS) on first touch."""
    import struct

    n = len(data)
    if n < 64 or data[:4] != b"\x7fELF":
        return "not an ELF file"
    if data[4] != 2 or data[5] != 1:
        return "not a 64-bit little-endian ELF file"
    phoff, shoff = struct.unpack_from("<QQ", data, 0x20)
    phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", data, 0x36)
    if phentsize < 56 or phoff + phnum * phentsize > n or (shnum and shoff + shnum * shentsize > n):
        return "truncated (its headers lie past the end of the file)"
    for k in range(phnum):
        _, _, off, _, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + k * phentsize)
        if off + filesz > n:
            return "truncated (a segment lies past the end of the file)"
    if shnum and shentsize >= 64:
        for k in range(shnum):
            _, typ, _, _, off, size = struct.unpack_from("<IIQQQQ", data, shoff + k * shentsize)
            if typ != 8 and off + size > n:  # SHT_NOBITS takes no room in the file
                return "truncated (a section lies past the end of the file)"
    return None


_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)


def load_params(folder, name: str, manifest: dict) -> list:
    """The parameters of ``name``, each checked against the dtype and shape the manifest
    records for it (a damaged, truncated or substituted file is an ArtifactError)."""
    import numpy as np

    path = Path(folder) / name
    specs = manifest["param_specs"][name]
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ArtifactError(f"{path}: not an .npz archive of parameters")
            want = [f"p{i}" for i in range(len(specs))]
            if sorted(z.files) != sorted(want):
                extra = sorted(set(z.files) - set(want))
                missing = [k for k in want if k not in z.files]
                raise ArtifactError(f"{path}: parameters do not match the manifest (missing {missing or 'none'}, "
                                    f"unexpected {extra or 'none'})")
            params = [z[k] for k in want]
    except ArtifactError:
        raise
    except _READ_ERRORS as e:
        raise ArtifactError(f"{path}: unreadable parameters: {type(e).__name__}: {e}") from None
    for i, (p, (dt, shape)) in enumerate(zip(params, specs)):
        if _descr(p.dtype) != dt or list(p.shape) != shape:
            raise ArtifactError(f"{path}: p{i} is {p.dtype.str}{list(p.shape)}, the manifest says {dt}{shape}")
    return params


def check_library_id(vm, folder, name: str, expected: list) -> None:
    """Refuse a library that is not the one the manifest describes (another compile's)."""
    try:
        got = [int(x) for x in vm[LIBRARY_ID_FN]()]
    except Exception:  # a library without the id function: not graphopt's, or older
        got = None
    if got != list(expected):
        raise ArtifactError(f"{Path(folder) / name}: not the library this artifact's manifest describes "
                            "(from another compile, or modified)")
