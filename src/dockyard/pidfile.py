"""The daemon's pid file: one dockyard per data root.

The file is held with an exclusive ``flock`` for the daemon's whole life, so a
second daemon on the same data root is refused even when the first one left a
stale file behind after a crash (the lock dies with its process; the file
does not).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from dockyard.errors import Conflict


class PidFile:
    """An exclusively locked pid file; ``release`` unlocks and removes it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Lock the file and write our pid; raises Conflict if another process holds it."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise Conflict(
                f"dockyard is already running with this data root: process {holder} "
                f"holds {self._path}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self._path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None
