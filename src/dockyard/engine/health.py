"""Healthchecks: the daemon runs a container's HEALTHCHECK and keeps ``State.Health``.

A container whose effective config (its own ``Healthcheck`` over the
image's, merged at create by ``oci/config.py``) has a test other than
``NONE`` gets a monitor while it runs, as moby's ``daemon/health.go``: a
probe every ``Interval`` (``StartInterval`` while still ``starting`` inside
the ``StartPeriod``), each an exec in the container bounded by ``Timeout``;
exit code 0 is a success, anything else a failure. ``Retries`` consecutive
failures make it ``unhealthy``; failures inside the start period do not
count while it is still ``starting``. The last five results are kept, and
each change of status is published as a ``health_status: <status>`` event.

Pure parts (``health_config``, ``probe_command``, ``Health``) do no I/O;
``HealthMonitor`` runs probes through ``engine/exec.py``'s service. Health
is kept in memory: after a daemon restart a running container starts over
at ``starting``.

Raises nothing of its own: a probe that cannot run is a failed result
(exit code -1 and the error as output), as in moby.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import signal as signals
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd
from dockyard.engine.container_model import Container
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.exec import ExecOptions, ExecService, ExecStartOptions
from dockyard.wire.duration import format_time
from dockyard.wire.stdcopy import Demuxer, FramingError

__all__ = [
    "HEALTHY",
    "STARTING",
    "UNHEALTHY",
    "Health",
    "HealthConfig",
    "HealthMonitor",
    "HealthResult",
    "health_config",
    "probe_command",
    "status_suffix",
]

log = logging.getLogger(__name__)

STARTING = "starting"
HEALTHY = "healthy"
UNHEALTHY = "unhealthy"

#: moby's defaults (daemon/health.go) for fields left at 0.
DEFAULT_INTERVAL_NS = 30_000_000_000
DEFAULT_TIMEOUT_NS = 30_000_000_000
DEFAULT_START_INTERVAL_NS = 5_000_000_000
DEFAULT_RETRIES = 3
#: moby keeps this many results in ``Health.Log`` …
MAX_LOG_ENTRIES = 5
#: … and this many bytes of each probe's output.
MAX_OUTPUT_BYTES = 4096


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthConfig:
    """A container's healthcheck with moby's defaults filled in (durations in ns)."""

    test: tuple[str, ...]
    interval_ns: int
    timeout_ns: int
    start_period_ns: int
    start_interval_ns: int
    retries: int


@dataclass(frozen=True, kw_only=True, slots=True)
class HealthResult:
    """One probe, as ``Health.Log`` shows it."""

    start: str
    end: str
    exit_code: int
    output: str


def health_config(config: Mapping[str, Any]) -> HealthConfig | None:
    """The checks a container with ``config`` (its effective Config) gets; None without any.

    No test, an empty one or ``["NONE"]`` means no healthcheck (moby's
    ``Healthcheck == nil || len(Test) == 0 || Test[0] == "NONE"``).
    """
    check = config.get("Healthcheck") or {}
    test = tuple(check.get("Test") or ())
    if not test or test[0] == "NONE":
        return None
    return HealthConfig(
        test=test,
        interval_ns=int(check.get("Interval") or 0) or DEFAULT_INTERVAL_NS,
        timeout_ns=int(check.get("Timeout") or 0) or DEFAULT_TIMEOUT_NS,
        start_period_ns=max(0, int(check.get("StartPeriod") or 0)),
        start_interval_ns=int(check.get("StartInterval") or 0) or DEFAULT_START_INTERVAL_NS,
        retries=int(check.get("Retries") or 0) or DEFAULT_RETRIES,
    )


def probe_command(test: Sequence[str], shell: Sequence[str] | None) -> tuple[str, ...]:
    """The exec's argv: ``CMD`` args as they are, ``CMD-SHELL`` through the container's shell.

    moby runs a ``CMD-SHELL`` test with the config's ``Shell`` or
    ``/bin/sh -c``; a test without a known kind is taken as ``CMD``.
    """
    kind, args = test[0], tuple(test[1:])
    if kind == "CMD-SHELL":
        return (*(tuple(shell) if shell else ("/bin/sh", "-c")), " ".join(args))
    if kind == "CMD":
        return args
    return tuple(test)


def _go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` for the round values a healthcheck timeout has."""
    if ns % 1_000_000_000 == 0:
        seconds = ns // 1_000_000_000
        hours, rest = divmod(seconds, 3600)
        minutes, secs = divmod(rest, 60)
        if hours:
            return f"{hours}h{minutes}m{secs}s"
        return f"{minutes}m{secs}s" if minutes else f"{secs}s"
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:g}s"
    if ns >= 1_000_000:
        return f"{ns / 1e6:g}ms"
    return f"{ns / 1e3:g}µs" if ns >= 1000 else f"{ns}ns"


class Health:
    """The health of one run of a container; moby's ``container.Health``."""

    def __init__(self) -> None:
        self.status = STARTING
        self.failing_streak = 0
        self.log: collections.deque[HealthResult] = collections.deque(maxlen=MAX_LOG_ENTRIES)

    def record(self, result: HealthResult, *, retries: int, in_start_period: bool) -> bool:
        """Add a result (moby's ``handleProbeResult``); True when the status changed."""
        before = self.status
        self.log.append(result)
        if result.exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
        elif not (self.status == STARTING and in_start_period):
            self.failing_streak += 1
            if self.failing_streak >= retries:
                self.status = UNHEALTHY
        return self.status != before

    def to_wire(self) -> dict[str, Any]:
        """``State.Health`` in inspect."""
        return {
            "Status": self.status,
            "FailingStreak": self.failing_streak,
            "Log": [{"Start": r.start, "End": r.end, "ExitCode": r.exit_code, "Output": r.output}
                    for r in self.log],
        }


def status_suffix(status: str) -> str:
    """What ``docker ps`` adds to a running container's status: `` (healthy)``, `` (health: starting)``."""
    if status == STARTING:
        return " (health: starting)"
    return f" ({status})" if status else ""


class _OutputSink:
    """A ``ByteStream`` the probe's exec writes its framed output into; nothing is read from it."""

    def __init__(self) -> None:
        self._demuxer = Demuxer()
        self.output = bytearray()
        self._closed = asyncio.Event()

    async def read(self, max_bytes: int = 65536) -> bytes:
        await self._closed.wait()  # the probe has no stdin
        return b""

    async def write(self, data: bytes) -> None:
        try:
            frames = self._demuxer.feed(data)
        except FramingError:
            return
        for f in frames:
            room = MAX_OUTPUT_BYTES - len(self.output)
            if room > 0:
                self.output += f.data[:room]

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self._closed.set()


class HealthMonitor:
    """Runs the probes of every running container that has a healthcheck.

    Wire it with ``containers.add_start_listener(monitor.container_started)``
    and ``containers.add_exit_listener(monitor.container_exited)``;
    ``ContainerService`` asks :meth:`health_of` for inspect and ps.
    """

    def __init__(self, *, containers: ContainerService, execs: ExecService, containerd: Containerd) -> None:
        self._containers = containers
        self._execs = execs
        self._containerd = containerd
        self._health: dict[str, Health] = {}
        self._monitors: dict[str, asyncio.Task[None]] = {}

    def health_of(self, container_id: str) -> Health | None:
        """The container's health, for as long as it has a healthcheck and has run."""
        return self._health.get(container_id)

    def wire_state(self, container_id: str) -> dict[str, Any] | None:
        """``State.Health`` for inspect, or None."""
        health = self._health.get(container_id)
        return health.to_wire() if health is not None else None

    def container_started(self, container: Container) -> None:
        """Start (or restart) the probes of ``container``, at ``starting``."""
        self._stop_monitor(container.id)
        check = health_config(container.definition.config)
        if check is None:
            self._health.pop(container.id, None)
            return
        health = self._health[container.id] = Health()
        self._monitors[container.id] = asyncio.create_task(
            self._monitor(container, check, health), name=f"health-{container.id[:12]}")

    def container_exited(self, container: Container) -> None:
        """Stop probing; the last health stays visible, as in moby."""
        self._stop_monitor(container.id)
        if container.gone:
            self._health.pop(container.id, None)

    def forget(self, container_id: str) -> None:
        """Drop a removed container's health."""
        self._stop_monitor(container_id)
        self._health.pop(container_id, None)

    def _stop_monitor(self, container_id: str) -> None:
        task = self._monitors.pop(container_id, None)
        if task is not None:
            task.cancel()

    async def close(self) -> None:
        tasks = list(self._monitors.values())
        self._monitors.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def __aenter__(self) -> HealthMonitor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _in_start_period(self, container: Container, check: HealthConfig, at_ns: int) -> bool:
        started = container.state.started_ns
        return check.start_period_ns > 0 and at_ns < started + check.start_period_ns

    async def _monitor(self, container: Container, check: HealthConfig, health: Health) -> None:
        while True:
            starting = health.status == STARTING and self._in_start_period(container, check, time.time_ns())
            await asyncio.sleep((check.start_interval_ns if starting else check.interval_ns) / 1e9)
            if not container.running or container.gone:
                return
            result = await self._probe(container, check)
            if not container.running or container.gone:
                return
            in_period = self._in_start_period(container, check, time.time_ns())
            if health.record(result, retries=check.retries, in_start_period=in_period):
                self._containers.publish_event(container, "health_status: " + health.status)

    async def _probe(self, container: Container, check: HealthConfig) -> HealthResult:
        start_ns = time.time_ns()
        endpoint = Endpoint(name="health", namespace=container.namespace)
        cmd = probe_command(check.test, container.definition.config.get("Shell"))
        sink = _OutputSink()
        exec_id = ""

        async def upgrade() -> _OutputSink:
            return sink

        try:
            exec_id = await self._execs.create(endpoint, container.id, ExecOptions(
                cmd=cmd, attach_stdout=True, attach_stderr=True))
            await asyncio.wait_for(
                self._execs.start(endpoint, exec_id, ExecStartOptions(), upgrade=upgrade),
                check.timeout_ns / 1e9)
        except TimeoutError:
            with contextlib.suppress(errors.DockyardError):
                await self._containerd.namespace(container.namespace).kill_task(
                    container.id, signals.SIGKILL, exec_id=exec_id)
            return HealthResult(start=format_time(start_ns), end=format_time(time.time_ns()), exit_code=-1,
                                output=f"Health check exceeded timeout ({_go_duration(check.timeout_ns)})")
        except errors.DockyardError as err:
            return HealthResult(start=format_time(start_ns), end=format_time(time.time_ns()), exit_code=-1,
                                output=err.message)
        code = self._execs.inspect(endpoint, exec_id)["ExitCode"]
        return HealthResult(start=format_time(start_ns), end=format_time(time.time_ns()),
                            exit_code=-1 if code is None else int(code),
                            output=sink.output.decode("utf-8", errors="replace"))
