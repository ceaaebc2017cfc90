"""Bytes kept in a private temporary file instead of memory: a compiled model's copy of
its graph as ONNX (hundreds of MB for a transformer) is only read again to save the
artifact or by compare-intermediates, so it waits on disk. The file goes away with the
object (or at interpreter exit)."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path


class SpilledBytes:
    def __init__(self, path: str):
        self.path = path
        self.size = os.path.getsize(path)
        self._done = weakref.finalize(self, _remove, path)

    @classmethod
    def of(cls, data: bytes) -> "SpilledBytes":
        return cls.written(lambda f: f.write(data))

    @classmethod
    def written(cls, write) -> "SpilledBytes":
        """The bytes ``write(f)`` writes to a binary file."""
        fd, path = tempfile.mkstemp(prefix="graphopt-spill-", suffix=".bin")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
        except BaseException:
            _remove(path)
            raise
        return cls(path)

    @classmethod
    def of_file(cls, src) -> "SpilledBytes":
        """A private copy of file ``src`` (a hard link where the file system allows: the
        artifact may be replaced or removed later, the link keeps these bytes)."""
        fd, path = tempfile.mkstemp(prefix="graphopt-spill-", suffix=".bin")
        os.close(fd)
        try:
            os.unlink(path)
            try:
                os.link(src, path)
            except OSError:
                shutil.copyfile(src, path)
        except BaseException:
            _remove(path)
            raise
        return cls(path)

    def read(self) -> bytes:
        return Path(self.path).read_bytes()

    def write_to(self, dest) -> None:
        shutil.copyfile(self.path, dest)

    def __len__(self) -> int:
        return self.size


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def as_bytes(obj) -> bytes:
    return obj.read() if isinstance(obj, SpilledBytes) else obj
