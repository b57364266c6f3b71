"""Drive a command through a real pseudo-terminal, as a person at a terminal would.

``TerminalSession`` forks the command onto a new pty, sets its size, reads what
it prints, and changes the size the way a window resize does (the kernel then
sends SIGWINCH). The `docker run -it` and `docker exec -it` tests share it.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from collections.abc import Mapping, Sequence
from types import TracebackType


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class TerminalSession:
    """A command on its own pty; ``output`` holds everything it printed so far."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], *, rows: int, cols: int) -> None:
        pid, master = pty.fork()
        if pid == 0:
            os.execvpe(argv[0], list(argv), dict(env))
        self.pid = pid
        self._master = master
        self.output = b""
        self.exit_code: int | None = None
        _set_size(master, rows, cols)

    def read_until(self, marker: bytes, timeout: float = 30) -> bool:
        """Read until ``marker`` appears, the terminal closes, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while marker not in self.output and time.monotonic() < deadline:
            ready, _, _ = select.select([self._master], [], [], 0.2)
            if ready:
                try:
                    self.output += os.read(self._master, 4096)
                except OSError:
                    break
        return marker in self.output

    def write(self, data: bytes) -> None:
        os.write(self._master, data)

    def resize_until_seen(self, rows: int, cols: int, *, attempts: int = 30) -> bool:
        """Resize (to a neighbouring size, then the wanted one: only a change raises
        SIGWINCH) and press Enter until the command prints ``rows cols``. The CLI
        forwards resizes only once it has seen the start response, which may come
        after the first output, hence the retries."""
        marker = f"{rows} {cols}".encode()
        for _ in range(attempts):
            _set_size(self._master, rows - 1, cols - 1)
            _set_size(self._master, rows, cols)
            self.write(b"\r")
            if self.read_until(marker, timeout=0.5):
                return True
        return False

    def close(self, *, kill: bool = False) -> int:
        """Wait for the command (killing it first if asked); return its exit code."""
        if kill:
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)
        os.close(self._master)
        self.exit_code = os.waitstatus_to_exitcode(status)
        return self.exit_code

    def __enter__(self) -> TerminalSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(kill=exc_type is not None)
