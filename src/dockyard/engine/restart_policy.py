"""Restart policies (``no``, ``always``, ``on-failure[:N]``, ``unless-stopped``), carried out by the daemon.

``Backoff`` and ``should_restart`` are pure: moby's ``restartmanager`` rules
(the delay starts at 100 ms and doubles up to a minute; a run of 10 s or more
resets it; ``on-failure`` counts retries against ``MaximumRetryCount``; a
container a user stopped or killed is not restarted).

``RestartManager`` listens to the container service: at an exit it decides,
marks the container ``restarting`` (RestartCount + 1, persisted) and starts
it again after the delay; a user's stop, kill, start or remove cancels a
pending restart. ``resume`` is dockerd's start-up pass: containers with
``always`` (or ``unless-stopped`` not stopped by a user, or ``on-failure``
that failed and has retries left) that are not running are started.

Raises nothing of its own; start failures are logged and leave the container
exited, as dockerd does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockyard import errors
from dockyard.engine.container_model import Container
from dockyard.engine.containers import ContainerService

__all__ = ["Backoff", "RestartManager", "policy_of", "should_restart"]

log = logging.getLogger(__name__)

INITIAL_DELAY = 0.1
MAX_DELAY = 60.0
#: A run at least this long resets the delay (moby's restartmanager).
RESET_AFTER_NS = 10 * 1_000_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class Policy:
    name: str
    maximum_retry_count: int = 0


def policy_of(host_config: Mapping[str, Any]) -> Policy:
    raw = host_config.get("RestartPolicy") or {}
    return Policy(name=raw.get("Name") or "no", maximum_retry_count=int(raw.get("MaximumRetryCount") or 0))


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    """The current delay (0: none yet)."""

    delay: float = 0.0

    def next(self, run_ns: int) -> Backoff:
        """The delay for the restart after a run of ``run_ns``."""
        if run_ns >= RESET_AFTER_NS or self.delay == 0:
            return Backoff(delay=INITIAL_DELAY)
        return Backoff(delay=min(self.delay * 2, MAX_DELAY))


def should_restart(policy: Policy, *, exit_code: int, restart_count: int, manually_stopped: bool) -> bool:
    """moby's ``ShouldRestart`` for an exit while the daemon runs."""
    if manually_stopped:
        return False
    if policy.name in ("always", "unless-stopped"):
        return True
    if policy.name == "on-failure":
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


class RestartManager:
    """Carries out the restart policies of ``service``'s containers."""

    def __init__(self, service: ContainerService) -> None:
        self._service = service
        self._backoff: dict[str, Backoff] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        service.add_exit_listener(self._exited)
        service.add_action_listener(self._acted)

    def _exited(self, container: Container) -> None:
        state = container.state
        if container.removing or container.gone or state.status != "exited":
            return
        policy = policy_of(container.definition.host_config)
        if not should_restart(policy, exit_code=state.exit_code, restart_count=state.restart_count,
                              manually_stopped=state.manually_stopped):
            self._backoff.pop(container.id, None)
            return
        run_ns = max(0, state.finished_ns - state.started_ns) if state.started_ns else 0
        backoff = self._backoff.get(container.id, Backoff()).next(run_ns)
        self._backoff[container.id] = backoff
        container.state = state.evolve(status="restarting", restart_count=state.restart_count + 1)
        # record_exit (container_tasks) persists after its listeners: the restarting state is what gets written.
        self._pending[container.id] = self._service.spawn(
            self._restart_later(container, backoff.delay), f"restart-{container.id[:12]}")

    def _acted(self, container: Container, action: str) -> None:
        pending = self._pending.pop(container.id, None)
        if pending is not None:
            pending.cancel()
        if action == "start":
            self._backoff.pop(container.id, None)
            container.state = container.state.evolve(restart_count=0, manually_stopped=False, oom_killed=False)
        elif action == "stop":
            changes: dict[str, Any] = {"manually_stopped": True}
            if container.state.status == "restarting":
                changes["status"] = "exited"
            container.state = container.state.evolve(**changes)
            self._service.persist(container)
        else:
            self._backoff.pop(container.id, None)

    async def _restart_later(self, container: Container, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            if self._pending.get(container.id) is asyncio.current_task():
                del self._pending[container.id]
        async with container.lock:
            if container.state.status != "restarting" or container.removing or container.gone:
                return
            container.state = container.state.evolve(oom_killed=False)
            try:
                await self._service.start_process(container)
            except errors.DockyardError as err:
                log.warning("cannot restart container %s: %s", container.id, err.message)
                if container.state.status == "restarting":
                    container.state = container.state.evolve(status="exited")
                    self._service.persist(container)
                return
        self._service.publish_event(container, "restart")

    def resume(self) -> None:
        """dockerd's start-up pass over the loaded containers."""
        for container in self._service.loaded_containers():
            state = container.state
            if container.gone or container.removing or state.status in ("running", "paused"):
                continue
            policy = policy_of(container.definition.host_config)
            wanted = policy.name == "always" or (
                policy.name == "unless-stopped" and not state.manually_stopped)
            if policy.name == "on-failure":
                # A failure while the daemon was down, or during a back-off it did not finish.
                wanted = should_restart(policy, exit_code=state.exit_code, restart_count=state.restart_count,
                                        manually_stopped=state.manually_stopped)
            if wanted:
                self._service.spawn(self._start_now(container), f"resume-{container.id[:12]}")

    async def _start_now(self, container: Container) -> None:
        async with container.lock:
            if container.state.status in ("running", "paused") or container.removing or container.gone:
                return
            try:
                # A task the last daemon left behind (it stopped before reaping it) must go first.
                await self._service.discard_task(container)
                await self._service.start_process(container)
            except errors.DockyardError as err:
                log.warning("cannot start container %s at daemon start: %s", container.id, err.message)
