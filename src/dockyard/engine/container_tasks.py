"""The run of a container's process: create the task, start it, watch it, reap it.

A collaborator of :class:`~dockyard.engine.containers.ContainerService`,
which owns the containers and hands each run to :class:`TaskRunner`. Exit
codes come only from containerd's ``Wait`` on the task; one watcher task per
running container owns the exit path: drain the output, delete the task,
record the exit, wake waiters, auto-remove.

Raises only dockyard.errors: InvalidParameter (a start whose command cannot
run), SystemError (any other failed start); the containerd client's errors
otherwise pass through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as signals
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard import errors
from dockyard.containerd import Namespace
from dockyard.engine.container_model import Container, WaitResult, exit_code_for_start_error, wake
from dockyard.engine.fifo import FifoSet, create_fifos, remove_fifos
from dockyard.engine.log_file import log_file_options
from dockyard.engine.stdio import StdioHub
from dockyard.network import hosts as network_hosts
from dockyard.network.ports import requested_ports
from dockyard.network.service import NetworkService, bridge_mode
from dockyard.wire import duration

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService

__all__ = ["EXIT_UNKNOWN", "OUTPUT_DRAIN_SECONDS", "TaskRunner"]

log = logging.getLogger(__name__)

#: moby's exit code when a start failed for a reason other than the command.
EXIT_UNKNOWN = 128
#: How long the exit path waits for output after the process is gone (a
#: leftover process outside the pid namespace may hold the pipe open).
OUTPUT_DRAIN_SECONDS = 2.0


class TaskRunner:
    """Runs the containers of ``service``: one containerd task per run."""

    def __init__(self, service: ContainerService, *, network: NetworkService | None, fifo_dir: Path) -> None:
        self.service = service
        self.network = network
        self.fifo_dir = fifo_dir
        #: Told (synchronously) each time a container's run ends.
        self.exit_listeners: list[Callable[[Container], None]] = []
        #: Told (synchronously) each time a container's process starts, adopted ones included.
        self.start_listeners: list[Callable[[Container], None]] = []

    def namespace(self, container: Container) -> Namespace:
        return self.service.namespace_of(container.namespace)

    def fifo_set(self, container: Container, *, existing: bool = False) -> FifoSet:
        """The FIFOs of the container's main process: made now, or (``existing``) those on disk."""
        directory = self.fifo_dir / container.id
        config = container.definition.config
        with_stdin = bool(config.get("OpenStdin"))
        with_stderr = not container.definition.tty
        if existing:
            def path(name: str, wanted: bool) -> Path | None:
                p = directory / f"init-{name}"
                return p if wanted and p.exists() else None
            return FifoSet(directory=directory, stdin=path("stdin", with_stdin),
                           stdout=path("stdout", True), stderr=path("stderr", with_stderr))
        return create_fifos(directory, "init", stdin=with_stdin, stdout=True, stderr=with_stderr)

    def hub_for(self, container: Container, fifos: FifoSet) -> StdioHub:
        """A (not yet started) hub on ``fifos`` writing the container's log."""
        ns = self.namespace(container)
        return StdioHub(fifos, log_path=Path(container.definition.log_path),
                        log_options=log_file_options(container.definition.host_config),
                        on_stdin_eof=lambda: ns.close_io(container.id))

    async def pending_hub(self, container: Container) -> StdioHub:
        """The hub of the current run, or of the next one (made now): attach before start."""
        hub = container.hub
        if hub is not None and not hub.output_ended:
            return hub
        hub = self.hub_for(container, self.fifo_set(container))
        await hub.start()
        container.hub, container.hub_used = hub, False
        return hub

    async def create_task(self, container: Container) -> StdioHub:
        """Make the run's hub and containerd task (not started). On failure the hub
        stays for ``_start_failed`` to close; the error propagates."""
        ns = self.namespace(container)
        if container.hub is not None and (container.hub.output_ended or container.hub_used):
            container.hub = None
        hub = await self.pending_hub(container)
        container.hub_used = True
        if container.mounts is None:
            container.mounts = await ns.snapshot_mounts(container.id)
        await self._attach_network(container)  # runc joins the namespace at task create
        stdin, stdout, stderr = hub.fifos.as_strings()
        await ns.create_task(container.id, rootfs=container.mounts, stdin=stdin, stdout=stdout,
                             stderr=stderr, terminal=container.definition.tty)
        return hub

    async def _attach_network(self, container: Container) -> None:
        """Bridge mode: namespace + CNI ADD (idempotent), and the container's own
        address line in its /etc/hosts."""
        if self.network is None or not bridge_mode(container.definition.host_config):
            return
        config = container.definition.config
        attachment = await self.network.attach(
            container.id, requested_ports(config, container.definition.host_config))
        hosts = Path(container.definition.hosts_path)
        text = await asyncio.to_thread(hosts.read_text)
        await asyncio.to_thread(hosts.write_text, network_hosts.with_own_address(
            text, address=attachment.ip_address, hostname=config.get("Hostname") or "",
            domainname=config.get("Domainname") or ""))
        resolv = self.network.resolv_conf(container.id)
        if resolv is not None:  # a user network: the embedded DNS at 127.0.0.11
            await asyncio.to_thread(Path(container.definition.resolv_conf_path).write_text, resolv)

    async def detach_network(self, container: Container) -> None:
        """Undo the bridge attachment; a failure is logged, never raised."""
        if self.network is None or not bridge_mode(container.definition.host_config):
            return
        try:
            await self.network.detach(container.id)
        except errors.DockyardError:
            log.exception("cannot detach container %s from its network", container.id)

    async def start(self, container: Container) -> None:
        """Start a run (the caller holds ``container.lock``); the state says running after it."""
        ns = self.namespace(container)
        if container.task_cleanup is not None:
            await container.task_cleanup  # the last run's task must be gone first
            container.task_cleanup = None
        precreate, container.precreate = container.precreate, None
        created = False
        try:
            hub = await (precreate if precreate is not None else self.create_task(container))
            created = True
            pid = await ns.start_task(container.id)
        except errors.DockyardError as err:
            await self._start_failed(container, container.hub, err, created)
            raise self._start_error(err) from err
        hub.process_started()
        now = time.time_ns()
        container.exited.clear()
        container.state = container.state.evolve(
            status="running", pid=pid, error="", exit_code=0, started_at=duration.format_time(now),
            started_ns=now, finished_at=container.state.finished_at, started_before=True)
        self.service.persist(container)
        self.watch(container, hub)
        self.service.publish_event(container, "start")
        self.tell_started(container)

    def watch(self, container: Container, hub: StdioHub) -> None:
        """Own the exit path of the running ``container`` from now on."""
        container.watcher = self.service.spawn(self._watch(container, hub), f"watch-{container.id[:12]}")

    def tell_started(self, container: Container) -> None:
        for listener in self.start_listeners:
            listener(container)

    @staticmethod
    def _start_error(err: errors.DockyardError) -> errors.DockyardError:
        message = f"failed to create task for container: {err.message}"
        if exit_code_for_start_error(err.message) is not None:
            return errors.InvalidParameter(message)
        return errors.SystemError(message)

    async def _start_failed(self, container: Container, hub: StdioHub | None, err: errors.DockyardError,
                            created: bool) -> None:
        ns = self.namespace(container)
        if created:
            with contextlib.suppress(errors.DockyardError):
                await ns.kill_task(container.id, signals.SIGKILL, all=True)
            with contextlib.suppress(errors.DockyardError):
                await ns.wait_task(container.id)
            with contextlib.suppress(errors.DockyardError):
                await ns.delete_task(container.id)
        await self.detach_network(container)
        if hub is not None:
            await hub.aclose()
            remove_fifos(hub.fifos)
        container.hub = None
        code = exit_code_for_start_error(err.message) or EXIT_UNKNOWN
        message = self._start_error(err).message
        container.state = container.state.evolve(exit_code=code, error=message)
        wake(container.exit_waiters, WaitResult(status_code=code))
        self.service.persist(container)
        if container.definition.auto_remove:
            self.service.spawn(self.service.auto_remove(container), f"autoremove-{container.id[:12]}")

    async def _watch(self, container: Container, hub: StdioHub) -> None:
        ns = self.namespace(container)
        status = await ns.wait_task(container.id)
        try:
            await asyncio.wait_for(hub.wait_closed(), OUTPUT_DRAIN_SECONDS)
        except TimeoutError:
            await hub.aclose()
        remove_fifos(hub.fifos)
        container.watcher = None
        if container.definition.auto_remove:
            # Nobody will see the exited state: skip writing it, and answer
            # "removed" waiters before containerd's slower teardown.
            self.record_exit(container, status.code, persist=False)
            await self.service.auto_remove(container, wake_early=True)
            return
        self.record_exit(container, status.code)
        # Deleting the task stops the shim (tens of ms): waiters need not wait for it.
        container.task_cleanup = self.service.spawn(self._delete_task(container), f"reap-{container.id[:12]}")

    async def kill_and_delete_task(self, container: Container) -> None:
        """Delete the task; one that was created and never started is killed first."""
        ns = self.namespace(container)
        task = await ns.get_task(container.id)
        if task is None:
            return
        if task.status == "created":
            await ns.kill_task(container.id, signals.SIGKILL)
            await ns.wait_task(container.id)
        await ns.delete_task(container.id)

    async def _delete_task(self, container: Container) -> None:
        with contextlib.suppress(errors.NotFound):
            await self.namespace(container).delete_task(container.id)
        await self.detach_network(container)

    def record_exit(self, container: Container, code: int, *, persist: bool = True) -> None:
        """The run ended with ``code``: state, ``die`` event, waiters, exit listeners."""
        now = time.time_ns()
        started_ns = container.state.started_ns
        container.state = container.state.evolve(
            status="exited", pid=0, exit_code=code, finished_at=duration.format_time(now), finished_ns=now)
        container.exited.set()
        self.service.publish_event(container, "die", {
            "execDuration": str(max(0, now - started_ns) // 1_000_000_000 if started_ns else 0),
            "exitCode": str(code)})
        wake(container.exit_waiters, WaitResult(status_code=code))
        for listener in self.exit_listeners:
            listener(container)
        if persist:
            self.service.persist(container)
