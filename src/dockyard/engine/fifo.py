"""The named pipes a containerd task's stdio goes through, and their owners.

dockyard makes the FIFOs and hands their paths to containerd; the shim opens
the other ends. How each side is opened decides EOF and blocking, so it is
fixed here, once:

* stdout/stderr, read by us: ``O_RDONLY | O_NONBLOCK``. The open never waits
  for the shim, and the kernel reports neither data nor hang-up on such a fd
  until a writer has connected, so :meth:`FifoReader.read` waits through the
  gap before the shim opens its write end and returns ``b""`` exactly once
  every writer that connected has closed (the process's output ended). The
  shim opens its write end blocking and also holds a read end of its own, so
  it survives us closing and reopening ours (a daemon restart); reopening
  while the shim writes is a fresh open with a writer present, so EOF still
  comes when the shim closes. Never read before readiness: a non-blocking
  read with no writer yet would report a false EOF.
* stdin, written by us: ``O_RDWR | O_NONBLOCK``. A write-only open would fail
  (non-blocking) or hang (blocking) until the shim opens its read end, which
  happens only at task create, after ``docker run`` has attached and may
  already have sent stdin; opened read-write it never waits, and bytes
  written early wait in the pipe for the shim. The cost: as we hold a read
  end too, a write never fails with EPIPE; callers stop writing when the
  process ends.

Each fd has exactly one owner object; ``close`` invalidates it, and a second
concurrent read or write is a bug that raises.

Errors (programming errors, never shown to clients)::

    FifoError (RuntimeError)
    ├── ClosedFifoError   use after close
    └── BusyFifoError     a second task read (or wrote) while one was waiting
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BusyFifoError",
    "ClosedFifoError",
    "FifoError",
    "FifoReader",
    "FifoSet",
    "FifoWriter",
    "create_fifos",
    "remove_fifos",
]

# Larger than the 64 KiB default so a fast writer fills fewer, bigger reads;
# 1 MiB is the default /proc/sys/fs/pipe-max-size.
PIPE_SIZE = 1 << 20


class FifoError(RuntimeError):
    """Misuse of a FIFO end."""


class ClosedFifoError(FifoError):
    """The FIFO end was closed."""


class BusyFifoError(FifoError):
    """Another task is already reading (or writing) this FIFO end."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FifoSet:
    """The FIFO paths of one process; ``None`` where the process has no such stream.

    These are the ``stdin``/``stdout``/``stderr`` strings of containerd's
    ``CreateTaskRequest`` and ``ExecProcessRequest`` (``""`` for ``None``).
    With a TTY there is no stderr: the terminal carries both streams.
    """

    directory: Path
    stdin: Path | None
    stdout: Path | None
    stderr: Path | None

    def as_strings(self) -> tuple[str, str, str]:
        """``(stdin, stdout, stderr)`` as containerd takes them."""
        return tuple(str(p) if p is not None else "" for p in (self.stdin, self.stdout, self.stderr))  # type: ignore[return-value]


def create_fifos(directory: Path, process_id: str, *, stdin: bool, stdout: bool = True,
                 stderr: bool = True) -> FifoSet:
    """Make ``<directory>/<process_id>-stdin|stdout|stderr`` (mode 0600) for the streams asked.

    The directory is created (0700) if missing. A stale FIFO of the same name
    (left by a crash) is replaced; any other file there raises
    ``FileExistsError``.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    paths: dict[str, Path | None] = {}
    for name, wanted in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        if not wanted:
            paths[name] = None
            continue
        path = directory / f"{process_id}-{name}"
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            if not stat.S_ISFIFO(os.lstat(path).st_mode):
                raise
            os.unlink(path)
            os.mkfifo(path, 0o600)
        paths[name] = path
    return FifoSet(directory=directory, **paths)


def remove_fifos(fifos: FifoSet) -> None:
    """Unlink the FIFOs (missing ones are fine); open ends stay usable until closed."""
    for path in (fifos.stdin, fifos.stdout, fifos.stderr):
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


class _FdOwner:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._busy = False
        self._waiter: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        self._check()
        return self._fd

    def _check(self) -> None:
        if self._fd < 0:
            raise ClosedFifoError("FIFO end is closed")

    def _claim(self) -> int:
        self._check()
        if self._busy:
            raise BusyFifoError("another task is using this FIFO end")
        self._busy = True
        return self._fd

    def close(self) -> None:
        """Close the fd; idempotent. A task waiting on it gets :class:`ClosedFifoError`."""
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        loop = _running_loop()
        if loop is not None:
            # The waiter's callback goes with the fd; the waiter itself fails below.
            loop.remove_reader(fd)
            loop.remove_writer(fd)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ClosedFifoError("FIFO end closed while waiting"))
        os.close(fd)

    async def _wait(self, fd: int, *, write: bool) -> None:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter

        def ready() -> None:
            if not waiter.done():
                waiter.set_result(None)

        (loop.add_writer if write else loop.add_reader)(fd, ready)
        try:
            await waiter
        finally:
            self._waiter = None
            if self._fd == fd:
                (loop.remove_writer if write else loop.remove_reader)(fd)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class FifoReader(_FdOwner):
    """Our read end of a stdout or stderr FIFO."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self._connected = False

    @classmethod
    def open(cls, path: Path) -> FifoReader:
        """Open ``path`` for reading without waiting for a writer."""
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        return cls(fd)

    async def read(self, max_bytes: int = PIPE_SIZE) -> bytes:
        """Up to ``max_bytes``, waiting for data; ``b""`` once every writer has gone."""
        fd = self._claim()
        try:
            if self._connected:
                # A writer has been seen, so an empty read is a true EOF.
                try:
                    return os.read(fd, max_bytes)
                except BlockingIOError:
                    pass
            while True:
                await self._wait(fd, write=False)
                try:
                    data = os.read(fd, max_bytes)
                except BlockingIOError:
                    continue
                self._connected = True
                return data
        finally:
            self._busy = False


    def read_nowait(self, max_bytes: int = PIPE_SIZE) -> bytes:
        """What the pipe holds now, without waiting; ``b""`` if empty (or at EOF).

        For a final drain after the process is known to have exited, when
        waiting for EOF could last for ever (a writer that never connected,
        or a descendant still holding the write end).
        """
        fd = self._claim()
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            return b""
        finally:
            self._busy = False


class FifoWriter(_FdOwner):
    """Our write end of a stdin FIFO (opened read-write: see the module docstring)."""

    @classmethod
    def open(cls, path: Path) -> FifoWriter:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        return cls(fd)

    async def write(self, data: bytes) -> None:
        """Write all of ``data``, waiting while the pipe is full."""
        fd = self._claim()
        try:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(fd, view)
                except BlockingIOError:
                    await self._wait(fd, write=True)
                    continue
                view = view[written:]
        finally:
            self._busy = False
