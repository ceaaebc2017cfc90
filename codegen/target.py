"""Targets: the host CPU (LLVM, detected: TVM's bundled LLVM refuses ``mcpu=native``) and CUDA."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from ..errors import GraphoptError

TARGET_NAMES = ("cpu", "cuda")


@dataclass(frozen=True)
class HostCPU:
    mcpu: str
    cores: int
    features: frozenset

    @property
    def vector_lanes(self) -> int:
        """float32 lanes of the widest vector unit LLVM will use."""
        if "avx512f" in self.features:
            return 16
        if "avx2" in self.features or "avx" in self.features:
            return 8
        return 4


def _physical_cores() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        n = os.cpu_count() or 1
    return max(1, n)


@functools.lru_cache(maxsize=None)
def host_cpu() -> HostCPU:
    from tvm.target import codegen

    try:
        mcpu = str(codegen.llvm_get_system_cpu())
    except Exception:  # pragma: no cover - LLVM without host detection
        mcpu = "generic"
    feats: set = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    feats = set(line.split(":", 1)[1].split())
                    break
    except OSError:  # pragma: no cover
        pass
    if mcpu in ("", "generic"):
        mcpu = "x86-64-v3" if "avx2" in feats else "x86-64"
    return HostCPU(mcpu, _physical_cores(), frozenset(feats))


def cuda_available() -> bool:
    try:
        import tvm

        return bool(tvm.cuda(0).exist)
    except Exception:
        return False


def make_target(name: str = "cpu"):
    """A tvm Target for ``"cpu"`` or ``"cuda"`` (errors name the target)."""
    import tvm

    if name == "cpu" or name == "llvm":
        h = host_cpu()
        return tvm.target.Target({"kind": "llvm", "mcpu": h.mcpu, "num-cores": h.cores})
    if name == "cuda":
        if not cuda_available():
            raise GraphoptError("target 'cuda': no CUDA GPU is visible on this machine")
        h = host_cpu()
        host = {"kind": "llvm", "mcpu": h.mcpu, "num-cores": h.cores}
        dev = tvm.cuda(0)
        arch = "sm_" + str(dev.compute_version).replace(".", "")
        return tvm.target.Target({"kind": "cuda", "arch": arch, "max_threads_per_block": int(dev.max_threads_per_block),
                                  "max_shared_memory_per_block": int(dev.max_shared_memory_per_block),
                                  "thread_warp_size": 32, "host": host})
    raise GraphoptError(f"unknown target {name!r}; expected one of {', '.join(TARGET_NAMES)}")


def target_key(name: str) -> str:
    """A short, stable description of a target, for cache keys and manifests."""
    if name == "cuda":
        import tvm

        return f"cuda-sm{str(tvm.cuda(0).compute_version).replace('.', '')}" if cuda_available() else "cuda"
    h = host_cpu()
    return f"llvm-{h.mcpu}-{h.cores}c"


def device_for(name: str):
    import tvm

    return tvm.cuda(0) if name == "cuda" else tvm.cpu(0)
