"""An artifact folder's stages, each checked before it runs: a TVM library must carry the id
its manifest entry gives, an onnxruntime region must load."""

from __future__ import annotations

from pathlib import Path

from ..codegen import artifact
from ..codegen.target import as_target
from .stages import OrtStage, TvmStage


def load_stages(path) -> tuple[dict, list, dict]:
    """(manifest, stages, the payload files' bytes) of the artifact folder ``path``; the
    bytes are kept so that the loaded model saves again."""
    target = artifact.read_manifest(path)["target"]
    if not as_target(target).runnable:
        raise artifact.ArtifactError(f"{path}: compiled for {target}, but no CUDA GPU is visible")
    manifest, lib, params = artifact.load(path)
    if "stages" in manifest:
        stages = []
        for sp in manifest["stages"]:
            if sp["kind"] == "ort":
                stages.append(load_ort_stage(path, sp))
            else:
                stages.append(load_tvm_stage(path, manifest, sp["lib"], sp["params"], sp["inputs"], sp["outputs"]))
        files = {name: _payload(Path(path) / name, name, manifest) for name in artifact.payload_files(manifest)}
        return manifest, stages, files
    st = load_tvm_stage(path, manifest, artifact.LIBRARY, artifact.PARAMS, manifest["inputs"], manifest["outputs"],
                        lib=lib, params=params)
    return manifest, [st], {name: _payload(Path(path) / name, name, manifest) for name in artifact.payload_files(manifest)
                            if name != artifact.PARAMS}


def _payload(p: Path, name: str, manifest: dict):
    """A payload file's bytes; the compiled graph (as large as the weights) as a private
    spilled copy, read only to save again or to compare intermediates."""
    if name == manifest.get("oracle_model"):
        from ..util.spill import SpilledBytes

        return SpilledBytes.of_file(p)
    return p.read_bytes()


def load_tvm_stage(path, manifest: dict, lib_name: str, params_name: str, sig_inputs, sig_outputs, lib=None,
                   params=None) -> TvmStage:
    """A TVM stage from an artifact's files, refused unless its library carries the id
    that the manifest's nonce, inputs, outputs and parameter specs give."""
    from tvm import relax

    lib = lib if lib is not None else artifact.load_library(path, lib_name)
    params = params if params is not None else artifact.load_params(path, params_name, manifest)
    try:
        ex = relax.VMExecutable(lib)
    except Exception as e:
        raise artifact.ArtifactError(f"{Path(path) / lib_name}: not a compiled Relax library ({type(e).__name__})") \
            from None
    names = lambda io: [x["name"] if isinstance(x, dict) else x for x in io]  # noqa: E731
    try:
        dtypes = lambda io: [x["dtype"] for x in io] if all(isinstance(x, dict) for x in io) else None  # noqa: E731
        written = [isinstance(x, dict) and bool(x.get("written")) for x in sig_inputs]
        st = TvmStage(ex, params, names(sig_inputs), names(sig_outputs), manifest["target"],
                      input_dtypes=dtypes(sig_inputs), output_dtypes=dtypes(sig_outputs), written=written)
    except Exception as e:  # the VM refuses the library (not one of graphopt's)
        raise artifact.ArtifactError(f"{Path(path) / lib_name}: cannot start the compiled library "
                                     f"({type(e).__name__})") from None
    if st.params is not None:
        expected = artifact.library_id(manifest["libraries"][lib_name], sig_inputs, sig_outputs,
                                       manifest["param_specs"][params_name])
        artifact.check_library_id(st.vm, path, lib_name, expected)
    return st


def load_ort_stage(path, sp: dict) -> OrtStage:
    fpath = Path(path) / sp["model"]
    try:
        return OrtStage(fpath.read_bytes(), sp["inputs"], sp["outputs"])
    except Exception as e:  # onnxruntime's own errors: a damaged or substituted region
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise artifact.ArtifactError(f"{fpath}: onnxruntime cannot load this region: {first}") from None
