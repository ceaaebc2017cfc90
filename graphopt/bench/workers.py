"""One process per system: a worker holds one prepared system and answers requests from the
benchmark's parent process over a pipe, so that peak memory and thread pools
are the system's own, while the parent still interleaves the systems' timing rounds.

Protocol: length-prefixed pickles. The parent sends ``{"cmd": ...}`` dicts:

    prepare {system, case, options}  -> {ok, prepare_s, tune_s, max_abs_err, rel_err, call_ms, base_mb, note}
    run     {n, inner}               -> {ok, ms: [n samples, each the mean of `inner` calls]}
    stats                            -> {ok, peak_mb}
    quit

The worker's stdout is redirected to its stderr (a log file), so library chatter cannot
corrupt the protocol, which runs on a duplicate of the original stdout.

    python -m graphopt.bench.workers      (started by `Worker`, not by hand)
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
import time
import traceback
from typing import Optional

_HDR = struct.Struct("<Q")


class WorkerError(RuntimeError):
    pass


def _write(fd: int, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    buf = memoryview(_HDR.pack(len(data)) + data)
    while buf:
        n = os.write(fd, buf)
        buf = buf[n:]


def _read_exact(fd: int, n: int, deadline: Optional[float]) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                raise TimeoutError
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            raise EOFError
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _read(fd: int, deadline: Optional[float] = None):
    (n,) = _HDR.unpack(_read_exact(fd, _HDR.size, deadline))
    return pickle.loads(_read_exact(fd, n, deadline))


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MB. VmHWM, not ``ru_maxrss``: Linux
    carries ``ru_maxrss`` over fork and exec, so a worker started by a large parent would
    report the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def thread_env(n_threads: int) -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TVM_NUM_THREADS",
              "GRAPHOPT_BENCH_THREADS"):
        env[k] = str(n_threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, system: str, n_threads: int, log_path: str):
        self.system = system
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "graphopt.bench.workers"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, env=thread_env(n_threads),
                                     bufsize=0)
        self.dead: Optional[str] = None

    def request(self, msg: dict, timeout: Optional[float] = None) -> dict:
        if self.dead:
            raise WorkerError(self.dead)
        try:
            _write(self.proc.stdin.fileno(), msg)
            deadline = time.monotonic() + timeout if timeout else None
            return _read(self.proc.stdout.fileno(), deadline)
        except TimeoutError:
            self.kill()
            self.dead = f"timed out after {timeout:.0f} s"
        except (EOFError, BrokenPipeError, OSError):
            rc = self.proc.wait()
            self.dead = f"worker died ({_exit_reason(rc)}){self.log_tail()}"
        raise WorkerError(self.dead)

    def log_tail(self, lines: int = 1) -> str:
        try:
            self._log.flush()
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 4000))
                tail = [ln for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
            return (": " + " / ".join(tail[-lines:])[:300]) if tail else ""
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None and not self.dead:
            try:
                _write(self.proc.stdin.fileno(), {"cmd": "quit"})
                self.proc.wait(timeout=30)
            except Exception:
                self.kill()
        if self.proc.poll() is None:
            self.kill()
        self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _exit_reason(rc: int) -> str:
    if rc < 0:
        import signal

        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit code {rc}"


# ------------------------------------------------------------------------------ the child
def _errors(outs, ref) -> tuple[Optional[float], Optional[float]]:
    import numpy as np

    if ref is None or not outs:
        return None, None
    if len(outs) != len(ref):
        outs, ref = outs[:1], ref[:1]
    abs_err, scale = 0.0, 0.0
    for a, r in zip(outs, ref):
        a = np.asarray(a)
        if a.shape != r.shape:
            raise ValueError(f"output shape {a.shape} differs from the oracle's {r.shape}")
        if r.size == 0:
            continue
        if r.dtype.kind in "fc" or a.dtype.kind in "fc":
            d = np.abs(a.astype(np.float64) - r.astype(np.float64))
            abs_err = max(abs_err, float(np.nan_to_num(d, nan=np.inf).max()))
            scale = max(scale, float(np.abs(r).max()))
        else:
            abs_err = max(abs_err, float((a != r).sum() > 0))
    return abs_err, (abs_err / scale if scale else None)


class _State:
    runner = None


def _handle(msg: dict, st: _State) -> dict:
    from . import systems
    from .cases import Case, load_arrays

    cmd = msg["cmd"]
    if cmd == "prepare":
        system = msg["system"]
        case = Case.from_dict(msg["case"])
        systems.imports(system)
        base = _rss_mb()
        t0 = time.perf_counter()
        r = systems.prepare(system, case, msg.get("options", {}))
        prepare_s = time.perf_counter() - t0 - r.exclude_s
        t0 = time.perf_counter()
        out = r.call()
        first_ms = 1e3 * (time.perf_counter() - t0)
        err = rel = None
        if case.ref:
            err, rel = _errors(r.arrays(out), load_arrays(case.ref))
        del out
        call_ms = first_ms
        if first_ms < 500:  # warm calls (up to 10, or 0.5 s) size the timing batches
            warm, t_end = [], time.perf_counter() + 0.5
            while len(warm) < 10 and time.perf_counter() < t_end:
                t0 = time.perf_counter()
                r.call()
                warm.append(1e3 * (time.perf_counter() - t0))
            call_ms = sorted(warm)[len(warm) // 2]
        st.runner = r
        return {"ok": True, "prepare_s": prepare_s, "tune_s": r.tune_s, "max_abs_err": err, "rel_err": rel,
                "first_ms": first_ms, "call_ms": call_ms, "base_mb": base, "note": r.note, "info": r.info}
    if cmd == "run":
        call = st.runner.call
        inner = int(msg.get("inner", 1))
        ms = []
        for _ in range(int(msg.get("n", 1))):
            t0 = time.perf_counter()
            for _ in range(inner):
                call()
            ms.append(1e3 * (time.perf_counter() - t0) / inner)
        return {"ok": True, "ms": ms}
    if cmd == "stats":
        return {"ok": True, "peak_mb": _rss_mb()}
    raise ValueError(f"unknown request {cmd!r}")


def main() -> int:
    proto_out = os.dup(1)
    os.dup2(2, 1)  # print() and C-level writes to stdout go to the log
    sys.stdout = os.fdopen(1, "w", buffering=1)
    fd_in = sys.stdin.fileno()
    st = _State()
    while True:
        try:
            msg = _read(fd_in)
        except EOFError:
            return 0
        if msg.get("cmd") == "quit":
            return 0
        try:
            resp = _handle(msg, st)
        except BaseException as e:  # report, and keep serving (the parent decides)
            if isinstance(e, KeyboardInterrupt):
                raise
            traceback.print_exc()
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            resp = {"ok": False, "error": f"{type(e).__name__}: {first}"[:400]}
        _write(proto_out, resp)


if __name__ == "__main__":
    sys.exit(main())
