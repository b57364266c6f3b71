"""Small blocking probes the integration tests share: a free port, an HTTP GET
that retries until a server answers, waiting for a condition with a deadline.

They poll (the things they watch are other processes: a daemon, a container's
server) but never sleep as synchronization: each waits for a condition and
gives up at a deadline. Failures raise AssertionError (a condition not met) or
the last OSError (a server that never answered).
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from typing import TypeVar

__all__ = ["free_port", "http_get_retry", "wait_until"]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (nothing holds it now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_retry(url: str, timeout: float = 30.0) -> str:
    """The body of ``GET url`` (decoded UTF-8), retried until ``timeout`` seconds have
    passed; then the last OSError (refused, reset, HTTP error) propagates."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_until(condition: Callable[[], T], timeout: float = 30.0, *, what: str = "condition",
               interval: float = 0.05) -> T:
    """Call ``condition`` until it returns something truthy, and return that;
    AssertionError naming ``what`` if it has not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(interval)
