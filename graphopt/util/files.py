"""Atomic file writes: a failed write leaves no partial file behind, and a writer killed
mid-write (``kill -9``, a file size limit) leaves a temporary sibling named with its pid,
which the next write to the same path removes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import OutputPathError


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(parent: Path, name: str) -> list:
    """Remove ``.NAME.PID.*.tmp`` / ``.old`` siblings that a writer now dead left behind
    (a ``kill -9`` or a file size limit mid-save); a live writer's are left alone."""
    removed = []
    prefix = f".{name}."
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(prefix) or not e.name.endswith((".tmp", ".old")):
            continue
        pid = e.name[len(prefix):].split(".", 1)[0]
        if not pid.isdigit() or _pid_alive(int(pid)):
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed.append(e.name)
        except OSError:
            pass
    return removed


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputPathError(f"{path}: is a directory")
    if not parent.is_dir():
        raise OutputPathError(f"{path}: cannot write: folder {parent} does not exist")
    remove_stale(parent, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise OutputPathError(f"{path}: cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OutputPathError(f"{path}: cannot write: {e.strerror}") from None
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
