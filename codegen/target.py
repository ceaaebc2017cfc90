"""Targets: the host CPU (LLVM, detected: TVM's bundled LLVM refuses ``mcpu=native``) and CUDA."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from ..errors import GraphoptError

TARGET_NAMES = ("cpu", "cuda", "cuda:sm_XX")


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


# CPUs that GRAPHOPT_CPU may force, with the /proc/cpuinfo flags each has (the ones
# graphopt's kernels look at). Forcing a smaller CPU than the host's (x86-64-v3, i.e. AVX2
# + FMA, on an AVX-512 machine) runs the code and the tests that machine would get, so
# a failure that follows from the vector width shows where it is made.
_V2 = frozenset({"sse", "sse2", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16"})
_V3 = _V2 | {"avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe", "abm"}
_V4 = _V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}
FORCED_CPUS = {
    "x86-64": frozenset({"sse", "sse2"}),
    "x86-64-v2": _V2,
    "x86-64-v3": _V3,
    "x86-64-v4": _V4,
    "znver3": _V3,
    "znver4": _V4 | {"avx512_vnni", "avx512_bf16", "avx512vbmi", "avx512ifma"},
}
CPU_ENV = "GRAPHOPT_CPU"


def _host_flags() -> set:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:  # pragma: no cover
        pass
    return set()


@functools.lru_cache(maxsize=None)
def host_cpu() -> HostCPU:
    """The CPU code is compiled for: the host, or the one ``$GRAPHOPT_CPU`` names (one of
    `FORCED_CPUS`, never more than the host has)."""
    from tvm.target import codegen

    feats = _host_flags()
    forced = os.environ.get(CPU_ENV, "").strip()
    if forced:
        if forced not in FORCED_CPUS:
            raise GraphoptError(f"{CPU_ENV}={forced!r} is not a CPU graphopt can force; "
                                f"expected one of: {', '.join(FORCED_CPUS)}")
        want = FORCED_CPUS[forced]
        vector = {"avx", "avx2", "fma", "avx512f"}
        missing = sorted(want & vector - feats)
        if missing:
            raise GraphoptError(f"{CPU_ENV}={forced}: this host lacks {', '.join(missing)}; it can only force "
                                "a CPU with fewer features than its own")
        # What the forced CPU lacks is dropped from the features the kernels look at; flags
        # outside the table (not vector units) stay as the host has them.
        table = frozenset().union(*FORCED_CPUS.values())
        return HostCPU(forced, _physical_cores(), frozenset(f for f in feats if f not in table or f in want))
    try:
        mcpu = str(codegen.llvm_get_system_cpu())
    except Exception:  # pragma: no cover - LLVM without host detection
        mcpu = "generic"
    if mcpu in ("", "generic"):
        mcpu = "x86-64-v3" if "avx2" in feats else "x86-64"
    return HostCPU(mcpu, _physical_cores(), frozenset(feats))


def cuda_available() -> bool:
    try:
        import tvm

        return bool(tvm.cuda(0).exist)
    except Exception:
        return False


_CUDA_ARCH = re.compile(r"^cuda:sm_(\d{2,3}[a-z]?)$")
_UNKNOWN = ("expected cpu, cuda (the GPU of this machine) or cuda:sm_XX (that architecture, no GPU needed to "
            "compile)")


@dataclass(frozen=True)
class Target:
    """A compilation target, parsed once from its name and passed around as this object:
    ``cpu`` (the host CPU, or the one $GRAPHOPT_CPU forces), ``cuda`` (this machine's GPU)
    or ``cuda:sm_XX`` (that architecture, cross-compiled without a GPU)."""

    name: str
    kind: str                      # "cpu" or "cuda"
    arch: str | None = None        # "sm_90" for cuda:sm_90; None: the visible GPU's

    @staticmethod
    def parse(name: str) -> "Target":
        if not isinstance(name, str):
            raise GraphoptError(f"target must be a name, got {type(name).__name__}; {_UNKNOWN}")
        if name in ("cpu", "llvm"):
            return Target("cpu", "cpu")
        if name == "cuda":
            return Target("cuda", "cuda")
        m = _CUDA_ARCH.match(name)
        if m:
            return Target(name, "cuda", "sm_" + m.group(1))
        raise GraphoptError(f"unknown target {name!r}; {_UNKNOWN}")

    @property
    def is_cpu(self) -> bool:
        return self.kind == "cpu"

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    @property
    def runnable(self) -> bool:
        """Whether code for this target can run here (a CPU always; CUDA with a GPU)."""
        return self.is_cpu or cuda_available()

    @property
    def tvm(self):
        """The tvm Target (built on first use, then kept)."""
        return _tvm_target(self)

    @property
    def key(self) -> str:
        """A short, stable description, for cache keys and manifests."""
        if self.is_cuda:
            if self.arch:
                return f"cuda-{self.arch.replace('_', '')}"
            import tvm

            return f"cuda-sm{str(tvm.cuda(0).compute_version).replace('.', '')}" if cuda_available() else "cuda"
        h = host_cpu()
        return f"llvm-{h.mcpu}-{h.cores}c"

    def device(self):
        import tvm

        return tvm.cuda(0) if self.is_cuda else tvm.cpu(0)

    def __str__(self) -> str:
        return self.name


def as_target(target) -> Target:
    """``target`` as a Target (a name is parsed; a Target passes through)."""
    return target if isinstance(target, Target) else Target.parse(target)


@functools.lru_cache(maxsize=None)
def _tvm_target(t: Target):
    import tvm

    h = host_cpu()
    host = {"kind": "llvm", "mcpu": h.mcpu, "num-cores": h.cores}
    if t.is_cpu:
        return tvm.target.Target(host)
    if t.arch:
        return tvm.target.Target({"kind": "cuda", "arch": t.arch, "max_threads_per_block": 1024,
                                  "max_shared_memory_per_block": 49152, "thread_warp_size": 32, "host": host})
    if not cuda_available():
        raise GraphoptError("target 'cuda': no CUDA GPU is visible on this machine "
                            "(cuda:sm_XX compiles for a given architecture without one)")
    dev = tvm.cuda(0)
    arch = "sm_" + str(dev.compute_version).replace(".", "")
    return tvm.target.Target({"kind": "cuda", "arch": arch, "max_threads_per_block": int(dev.max_threads_per_block),
                              "max_shared_memory_per_block": int(dev.max_shared_memory_per_block),
                              "thread_warp_size": 32, "host": host})
