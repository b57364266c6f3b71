"""The in-memory side of a container, and the small rules the service applies to it.

``Container`` is the engine's mutable handle on one container (definition,
state, stdio hub, waiters, background tasks); only ``ContainerService``
changes it. ``parse_signal`` and ``exit_code_for_start_error`` are pure.

Raises ``dockyard.errors.InvalidParameter`` (bad signal) only.
"""

from __future__ import annotations

import asyncio
import signal as signals
from dataclasses import dataclass

from dockyard import errors
from dockyard.containerd.types import Mount
from dockyard.engine.container_store import ContainerDefinition, ContainerState
from dockyard.engine.stdio import StdioHub

__all__ = ["Container", "ContainerTable", "WaitResult", "exit_code_for_start_error", "parse_signal", "wake"]


def exit_code_for_start_error(message: str) -> int | None:
    """moby's setExitCodeFromError: 127 command not found, 126 cannot invoke, None otherwise."""
    text = message.lower()
    if ("executable file not found" in text or "no such file or directory" in text
            or "system cannot find the file specified" in text):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return None


def parse_signal(text: str | None, default: int = signals.SIGKILL) -> int:
    """A signal as docker sends it: a number, ``KILL`` or ``SIGKILL``."""
    if not text:
        return default
    if text.isdigit():
        number = int(text)
        if number <= 0 or number > 64:
            raise errors.InvalidParameter(f"Invalid signal: {text}")
        return number
    name = text.upper()
    name = name if name.startswith("SIG") else "SIG" + name
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise errors.InvalidParameter(f"Invalid signal: {text}") from None


@dataclass(frozen=True, kw_only=True)
class WaitResult:
    status_code: int
    error: str | None = None


class Container:
    """One container as the engine tracks it; mutated only by the service."""

    def __init__(self, definition: ContainerDefinition, state: ContainerState, namespace: str) -> None:
        self.definition = definition
        self.state = state
        self.namespace = namespace
        self.hub: StdioHub | None = None
        self.hub_used = False  # the hub's FIFOs were handed to a task
        self.mounts: list[Mount] | None = None
        self.lock = asyncio.Lock()
        self.exit_waiters: list[asyncio.Future[WaitResult]] = []
        self.removed_waiters: list[asyncio.Future[WaitResult]] = []
        self.exited = asyncio.Event()
        self.removing = False
        self.gone = False
        self.dirty = False
        self.writer: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.task_cleanup: asyncio.Task[None] | None = None
        self.precreate: asyncio.Task[StdioHub] | None = None

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def running(self) -> bool:
        return self.state.running


class ContainerTable:
    def __init__(self) -> None:
        self.by_id: dict[str, Container] = {}
        self.names: dict[str, str] = {}  # "/name" -> id; reserved before the record exists




def wake(waiters: list[asyncio.Future[WaitResult]], result: WaitResult) -> None:
    """Resolve every waiter still pending, and forget them."""
    for future in waiters:
        if not future.done():
            future.set_result(result)
    waiters.clear()
