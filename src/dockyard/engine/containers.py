"""The container service: create, inspect, list, start, wait, kill, stop, remove (API 1.50).

Model (DESIGN.md "containerd mapping"): a container is a containerd container
record (its Docker definition and state in extensions, see
``container_store``) plus an active overlayfs snapshot keyed by the container
id, plus a task while it runs. Generated files live in
``<data_root>/containers/<id>/``, FIFOs in ``<exec_root>/fifo/<id>/``.

Each container has one in-memory :class:`Container` per endpoint table,
loaded from containerd at start (containers outlive the daemon). The state
is rewritten into containerd after each transition by a background writer
that coalesces bursts.

This module is the facade; its parts live next to it: ``container_create``
(create), ``container_tasks`` (a run's task: start, watch, reap, the exit
path), ``container_adopt`` (loading and adopting at daemon start).
Attach and logs streaming are in ``container_io``.

Raises only dockyard.errors: NotFound (``No such container: x``, ``No such
image: x``), Conflict (names, running containers), InvalidParameter,
NotModified (start of a running container), SystemError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import signal as signals
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd, Namespace
from dockyard.engine.container_adopt import load_table
from dockyard.engine.container_create import ContainerCreator, reserve_name
from dockyard.engine.container_model import (
    Container,
    ContainerTable,
    WaitResult,
    exit_code_for_start_error,
    parse_signal,
    wake,
)
from dockyard.engine.container_store import EXT_STATE, encode_state
from dockyard.engine.container_tasks import TaskRunner
from dockyard.engine.container_view import inspect_body, select_rows
from dockyard.engine.endpoint import DEFAULT_ENDPOINT, Endpoint
from dockyard.engine.events import EventBus
from dockyard.engine.fifo import remove_fifos
from dockyard.engine.images import ImageService, ImageUser
from dockyard.engine.stdio import StdioHub
from dockyard.engine.system import ContainerCounts
from dockyard.engine.volumes import VolumeMount, VolumeService
from dockyard.network import view as network_view
from dockyard.network.ports import ps_ports, settings_ports
from dockyard.network.service import NetworkService
from dockyard.oci import capabilities_from_mask
from dockyard.wire.filters import Filters

__all__ = ["Container", "ContainerService", "WAIT_CONDITIONS", "WaitResult", "exit_code_for_start_error", "parse_signal"]

log = logging.getLogger(__name__)

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def _own_capabilities() -> tuple[str, ...]:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return capabilities_from_mask(int(line.split()[1], 16))
    return ()


#: Seconds the service waits at shutdown for its own jobs in flight.
SHUTDOWN_GRACE = 5.0


class ContainerService:
    """Containers of every endpoint, on one containerd."""

    def __init__(self, *, containerd: Containerd, images: ImageService, data_root: Path,
                 exec_root: Path, host_hostname: str | None = None,
                 network: NetworkService | None = None) -> None:
        self._network = network
        self._containerd = containerd
        self._images = images
        self._containers_dir = data_root / "containers"
        self._fifo_dir = exec_root / "fifo"
        self._hostname = host_hostname or socket.gethostname()
        self._capabilities = _own_capabilities()
        self._cgroup_v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
        self._tables: dict[str, ContainerTable] = {}
        self._loading: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._random = random.Random()
        self._closed = False
        # Told (synchronously) of user actions: "start", "stop" (stop or kill), "remove".
        self._action_listeners: list[Callable[[Container, str], None]] = []
        self._runner = TaskRunner(self, network=network, fifo_dir=self._fifo_dir)
        self._creator = ContainerCreator(
            self, runner=self._runner, images=images, network=network, containers_dir=self._containers_dir,
            hostname=self._hostname, capabilities=self._capabilities, cgroup_v2=self._cgroup_v2)
        #: ``State.Health`` of a container by id, or None (engine/health.py's monitor).
        self.health_state: Callable[[str], dict[str, Any] | None] | None = None
        #: Rewrites a freshly built OCI spec from the HostConfig (resources, init, sysctls).
        self.spec_hook: Callable[[dict[str, Any], Mapping[str, Any]], None] | None = None
        self._events: EventBus | None = None
        self.volumes: VolumeService | None = None  # set by the daemon (set_volumes)
        # daemon.json ``log-opts``: merged into each new container's LogConfig, as dockerd does.
        self.log_defaults: Mapping[str, str] = {}
        images.set_containers_using(self.containers_using)

    def set_volumes(self, volumes: VolumeService) -> None:
        """Resolve and record the volumes of new containers in ``volumes``."""
        self.volumes = volumes

    async def volume_mounts(self, container: Container) -> list[VolumeMount]:
        """The volumes ``container`` mounts (for inspect, ``docker cp``, VolumesFrom)."""
        if self.volumes is None:
            return []
        return await self.volumes.container_mounts(container.namespace, container.id)

    def set_events(self, bus: EventBus) -> None:
        """Publish container events (create, start, die, …) on ``bus``."""
        self._events = bus

    def publish_event(self, container: Container, action: str, extra: Mapping[str, str] | None = None) -> None:
        """Publish a container event with moby's attributes; a no-op without a bus."""
        if self._events is not None:
            definition = container.definition
            self._events.publish_container(
                container.namespace, container_id=container.id, name=definition.name, image=definition.image,
                labels=definition.config.get("Labels"), action=action, extra=extra)

    # --- lifetime ----------------------------------------------------------------------

    async def start(self, endpoints: Sequence[Endpoint] = (DEFAULT_ENDPOINT,)) -> None:
        """Load (and reconcile with containerd) the containers of ``endpoints``."""
        self._containers_dir.mkdir(parents=True, exist_ok=True)
        self._fifo_dir.mkdir(parents=True, exist_ok=True)
        for endpoint in endpoints:
            await self.table(endpoint)

    async def close(self) -> None:
        """Stop watching; running containers keep running (and are adopted at next start)."""
        self._closed = True
        watchers = [c.watcher for t in self._tables.values() for c in t.by_id.values() if c.watcher]
        for task in watchers:
            task.cancel()
        writers = [c.writer for t in self._tables.values() for c in t.by_id.values() if c.writer]
        for task in [*watchers, *writers]:
            with contextlib.suppress(BaseException):
                await task
        for table in self._tables.values():
            for container in table.by_id.values():
                if container.hub is not None:
                    await container.hub.aclose()
        # Jobs in flight (reaping an exited task, an auto-remove) get a short
        # grace: cut off mid-way they leave containerd state that makes the
        # container's next start fail.
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def __aenter__(self) -> ContainerService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- for the service's companions (container_*.py, restart_policy.py) ------------

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a job the service owns: ``close`` gives it a grace, then cancels it."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def namespace_of(self, endpoint: Endpoint | str) -> Namespace:
        """The containerd namespace of an endpoint (or of a namespace name)."""
        name = endpoint if isinstance(endpoint, str) else endpoint.namespace
        return self._containerd.namespace(name)

    async def table(self, endpoint: Endpoint) -> ContainerTable:
        """The endpoint's containers, loaded from containerd (and adopted) on first use."""
        table = self._tables.get(endpoint.namespace)
        if table is not None:
            return table
        lock = self._loading.setdefault(endpoint.namespace, asyncio.Lock())
        async with lock:
            table = self._tables.get(endpoint.namespace)
            if table is None:
                table = await load_table(self._runner, endpoint.namespace)
                self._tables[endpoint.namespace] = table
        return table

    def loaded(self, namespace: str, container_id: str) -> Container | None:
        """The container by full id if its namespace is loaded; None otherwise (never loads)."""
        table = self._tables.get(namespace)
        return table.by_id.get(container_id) if table else None

    def loaded_containers(self) -> list[Container]:
        """Every container of the loaded namespaces, removed ones included (never loads)."""
        return [c for table in list(self._tables.values()) for c in list(table.by_id.values())]

    def reserve_name(self, table: ContainerTable, name: str | None, container_id: str) -> str:
        """Hold ``name`` (or a generated one) in ``table``; Conflict if taken, InvalidParameter if malformed."""
        return reserve_name(table, name, container_id, self._random)

    async def start_process(self, container: Container) -> None:
        """Start a run of ``container`` (the caller holds its lock); no action listener is told."""
        await self._runner.start(container)

    async def discard_task(self, container: Container) -> None:
        """Delete the container's task if any (one created and never started is killed first)."""
        await self._runner.kill_and_delete_task(container)

    async def auto_remove(self, container: Container, *, wake_early: bool = False) -> None:
        """Force-remove ``container`` (AutoRemove); with ``wake_early`` it leaves the
        table and wakes waiters before containerd's part."""
        await self._remove(container, force=True, wake_early=wake_early)

    # --- for exec (engine/exec.py) ------------------------------------------------------

    def add_exit_listener(self, listener: Callable[[Container], None]) -> None:
        """Call ``listener(container)`` (synchronously) each time a container's run ends."""
        self._runner.exit_listeners.append(listener)

    def add_start_listener(self, listener: Callable[[Container], None]) -> None:
        """Call ``listener(container)`` (synchronously) each time a container's process starts."""
        self._runner.start_listeners.append(listener)

    def add_action_listener(self, listener: Callable[[Container, str], None]) -> None:
        """Call ``listener(container, action)`` when a user starts, stops/kills or removes it."""
        self._action_listeners.append(listener)

    def _tell(self, container: Container, action: str) -> None:
        for listener in self._action_listeners:
            listener(container, action)

    def fifo_directory(self, container: Container) -> Path:
        """Where the FIFOs of a container's processes live (removed with the container)."""
        return self._fifo_dir / container.id

    @property
    def all_capabilities(self) -> tuple[str, ...]:
        """Every capability this daemon holds: what ``Privileged`` grants."""
        return self._capabilities

    async def process_spec(self, container: Container) -> dict[str, Any]:
        """The OCI ``process`` of the container's spec, as stored in containerd."""
        record = await self.namespace_of(container.namespace).get_container(container.id)
        return dict(record.spec.get("process") or {})

    # --- lookup ------------------------------------------------------------------------

    async def get(self, endpoint: Endpoint, ref: str) -> Container:
        """By full id, name (with or without ``/``) or unique id prefix; NotFound otherwise."""
        table = await self.table(endpoint)
        found = table.by_id.get(ref)
        if found is None:
            by_name = table.names.get(ref if ref.startswith("/") else "/" + ref)
            found = table.by_id.get(by_name) if by_name else None
        if found is None and ref:
            matches = [c for cid, c in table.by_id.items() if cid.startswith(ref)]
            if len(matches) > 1:
                raise errors.InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
            found = matches[0] if matches else None
        if found is None or found.gone:
            raise errors.NotFound(f"No such container: {ref}")
        return found

    async def containers_using(self, endpoint: Endpoint, image_id: str) -> list[ImageUser]:
        """For ``docker rmi``: the containers created from ``image_id``."""
        table = await self.table(endpoint)
        return [ImageUser(id=c.id, running=c.running) for c in table.by_id.values()
                if c.definition.image_id == image_id and not c.gone]

    async def count(self, endpoint: Endpoint) -> ContainerCounts:
        table = await self.table(endpoint)
        states = [c.state.status for c in table.by_id.values() if not c.gone]
        running = sum(s in ("running", "restarting") for s in states)
        paused = states.count("paused")
        return ContainerCounts(running=running, paused=paused, stopped=len(states) - running - paused)

    # --- create ------------------------------------------------------------------------

    async def create(self, endpoint: Endpoint, body: Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
        """``POST /containers/create``; returns ``{"Id": …, "Warnings": []}``."""
        return await self._creator.create(endpoint, body, name=name)

    # --- inspect / list ----------------------------------------------------------------

    async def inspect(self, endpoint: Endpoint, ref: str) -> dict[str, Any]:
        container = await self.get(endpoint, ref)
        body = self._with_network(container, inspect_body(container.definition, container.state))
        body["Mounts"] = [*body["Mounts"], *(m.inspect_entry() for m in await self.volume_mounts(container))]
        health = self.health_state(container.id) if self.health_state is not None else None
        if health is not None:
            body["State"]["Health"] = health
        return body

    def _with_network(self, container: Container, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` (an inspect body or ps row) with the bridge endpoint of a running container."""
        running = container.running and self._network is not None
        attachment = self._network.attachment(container.id) if running else None
        if attachment is not None and isinstance(body.get("NetworkSettings"), dict):
            body["NetworkSettings"] = network_view.fill_network_settings(body["NetworkSettings"], attachment)
            config = container.definition.config
            if "Ports" in body["NetworkSettings"]:
                body["NetworkSettings"]["Ports"] = settings_ports(config, attachment.ports)
            if isinstance(body.get("Ports"), list):
                body["Ports"] = ps_ports(config, attachment.ports)
        return body

    async def list(self, endpoint: Endpoint, *, all: bool = False, limit: int = -1,
                   filters: Filters | None = None) -> list[dict[str, Any]]:
        """``GET /containers/json``: newest first, with moby's filters."""
        filters = filters or Filters()
        ancestors: set[str] = set()
        for text in filters.get("ancestor"):
            with contextlib.suppress(errors.NotFound):
                ancestors.add((await self._images.get(endpoint, text)).id)
        table = await self.table(endpoint)
        entries = [(c.definition, c.state) for c in table.by_id.values() if not c.gone]
        rows = select_rows(entries, all=all, limit=limit, filters=filters, ancestor_ids=ancestors,
                           now_ns=time.time_ns())
        for row in rows:
            volume_rows = [m.inspect_entry() for m in await self.volume_mounts(table.by_id[row["Id"]])]
            row["Mounts"] = [*row.get("Mounts", []), *volume_rows]
            health = self.health_state(row["Id"]) if self.health_state is not None else None
            if health is not None and row["State"] == "running":
                status = health["Status"]  # moby's Health.String()
                row["Status"] += " (health: starting)" if status == "starting" else f" ({status})"
        return [self._with_network(table.by_id[row["Id"]], row) for row in rows]

    # --- start (the run itself is container_tasks.TaskRunner's) --------------------------

    async def pending_hub(self, container: Container) -> StdioHub:
        """The hub of the current run, or of the next one (made now): attach before start."""
        return await self._runner.pending_hub(container)

    async def start_container(self, endpoint: Endpoint, ref: str) -> None:
        """``POST /containers/{id}/start``; NotModified if running."""
        container = await self.get(endpoint, ref)
        async with container.lock:
            if container.running:
                raise errors.NotModified("container already started")
            if container.removing or container.gone:
                raise errors.Conflict(f"cannot start container {container.id}: removal in progress")
            self._tell(container, "start")
            await self._runner.start(container)

    # --- persistence -------------------------------------------------------------------

    def persist(self, container: Container) -> None:
        """Write the state to containerd soon, in order, coalescing bursts."""
        container.dirty = True
        if container.writer is None or container.writer.done():
            container.writer = self.spawn(self._write_state(container), f"state-{container.id[:12]}")

    async def _write_state(self, container: Container) -> None:
        ns = self.namespace_of(container.namespace)
        while container.dirty and not container.gone:
            container.dirty = False
            try:
                await ns.update_container(container.id, extensions={EXT_STATE: encode_state(container.state)})
            except errors.NotFound:
                return
            except errors.DockyardError:
                log.exception("cannot record the state of container %s", container.id)

    # --- wait / kill / stop / remove ---------------------------------------------------

    async def wait(self, endpoint: Endpoint, ref: str, condition: str = "") -> asyncio.Future[WaitResult]:
        """Validate and register a wait; the future resolves when the condition is met."""
        condition = condition or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise errors.InvalidParameter(f'invalid condition: "{condition}"')
        container = await self.get(endpoint, ref)
        future: asyncio.Future[WaitResult] = asyncio.get_running_loop().create_future()
        if condition == "removed":
            container.removed_waiters.append(future)
        elif condition == "not-running" and not container.running:
            future.set_result(WaitResult(status_code=container.state.exit_code))
        else:
            container.exit_waiters.append(future)
        return future

    async def kill(self, endpoint: Endpoint, ref: str, signal: str | None = None) -> None:
        container = await self.get(endpoint, ref)
        number = parse_signal(signal)
        if not container.running:
            raise errors.Conflict(
                f"cannot kill container: {ref}: container {container.id} is not running")
        restarting = container.state.status == "restarting"
        self._tell(container, "stop")
        if restarting:
            return  # no process to signal: cancelling the pending restart is the kill (moby)
        # Published before the signal so that it always precedes the "die" it may cause.
        self.publish_event(container, "kill", {"signal": str(number)})
        try:
            await self.namespace_of(endpoint).kill_task(container.id, number, all=number == signals.SIGKILL)
        except errors.NotFound:
            raise errors.Conflict(
                f"cannot kill container: {ref}: container {container.id} is not running") from None

    async def stop(self, endpoint: Endpoint, ref: str, *, timeout: int | None = None,
                   signal: str | None = None) -> None:
        container = await self.get(endpoint, ref)
        if not container.running:
            raise errors.NotModified("container already stopped")
        self._tell(container, "stop")
        await self._stop(container, timeout=timeout, signal=signal)
        self.publish_event(container, "stop")

    async def _stop(self, container: Container, *, timeout: int | None, signal: str | None) -> None:
        ns = self.namespace_of(container.namespace)
        config = container.definition.config
        number = parse_signal(signal or config.get("StopSignal"), signals.SIGTERM)
        if timeout is None:
            timeout = config.get("StopTimeout")
            timeout = 10 if timeout is None else timeout
        self.publish_event(container, "kill", {"signal": str(number)})
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await ns.kill_task(container.id, number)
        if timeout < 0:
            await container.exited.wait()
            return
        try:
            await asyncio.wait_for(container.exited.wait(), timeout)
            return
        except TimeoutError:
            pass
        self.publish_event(container, "kill", {"signal": str(int(signals.SIGKILL))})
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await ns.kill_task(container.id, signals.SIGKILL, all=True)
        await container.exited.wait()

    async def remove(self, endpoint: Endpoint, ref: str, *, force: bool = False, volumes: bool = False) -> None:
        container = await self.get(endpoint, ref)
        if container.running and not force:
            raise errors.Conflict(
                f'cannot remove container "{container.definition.name}": container is running: '
                "stop the container before removing or force remove")
        if container.removing:
            raise errors.Conflict(f"removal of container {container.id} is already in progress")
        await self._remove(container, force=force, volumes=volumes)

    async def _remove(self, container: Container, *, force: bool, wake_early: bool = False,
                      volumes: bool = False) -> None:
        """Kill (with ``force``), forget and delete a container. With ``wake_early``
        (auto-remove) it leaves the table and wakes waiters before containerd's part."""
        if container.removing or container.gone:
            return
        container.removing = True
        self._tell(container, "remove")
        ns = self.namespace_of(container.namespace)
        try:
            if container.running and force:
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    await ns.kill_task(container.id, signals.SIGKILL, all=True)
                await container.exited.wait()
        except BaseException:
            container.removing = False
            raise
        container.gone = True  # the state writer stops at its next turn
        if wake_early:
            # The task has exited: its volumes are free before `run --rm` returns.
            await self._release_volumes(container, volumes)
            self._forget(container)
        try:
            for task in (container.writer, container.task_cleanup, container.precreate):
                if task is not None:
                    with contextlib.suppress(BaseException):
                        await task
            with contextlib.suppress(errors.NotFound):
                await self._runner.kill_and_delete_task(container)
            await self._runner.detach_network(container)
            with contextlib.suppress(errors.NotFound):
                await ns.delete_container(container.id)
            with contextlib.suppress(errors.NotFound):
                await ns.remove_snapshot(container.id)
        except errors.DockyardError:
            if wake_early:
                log.exception("cannot remove container %s", container.id)
                return
            container.removing = container.gone = False
            raise
        shutil.rmtree(self._containers_dir / container.id, ignore_errors=True)
        shutil.rmtree(self._fifo_dir / container.id, ignore_errors=True)
        if not wake_early:
            await self._release_volumes(container, volumes)
        if self._network is not None:
            self._network.forget(container.id)
        if not wake_early:
            self._forget(container)

    async def _release_volumes(self, container: Container, volumes: bool) -> None:
        if self.volumes is None:
            return
        # dockerd removes anonymous volumes with `rm -v` and with AutoRemove (`run --rm`).
        try:
            await self.volumes.release(container.namespace, container.id,
                                       remove_anonymous=volumes or container.definition.auto_remove)
        except errors.DockyardError:
            log.exception("cannot release the volumes of container %s", container.id)

    def _forget(self, container: Container) -> None:
        """Drop the container from its table, close its stdio and wake every waiter."""
        if container.hub is not None:
            self.spawn(container.hub.aclose(), f"hub-close-{container.id[:12]}")
            remove_fifos(container.hub.fifos)
        table = self._tables.get(container.namespace)
        if table is not None:
            table.by_id.pop(container.id, None)
            if table.names.get(container.definition.name) == container.id:
                del table.names[container.definition.name]
        self.publish_event(container, "destroy")
        result = WaitResult(status_code=container.state.exit_code)
        wake(container.exit_waiters, result)
        wake(container.removed_waiters, result)

    # --- tty ---------------------------------------------------------------------------

    async def resize(self, endpoint: Endpoint, ref: str, *, height: int, width: int) -> None:
        container = await self.get(endpoint, ref)
        if not container.running:
            raise errors.Conflict(f"Container {container.id} is not running")
        if height < 0 or width < 0:
            raise errors.InvalidParameter("invalid resize dimensions")
        with contextlib.suppress(errors.NotFound):
            await self.namespace_of(endpoint).resize_pty(container.id, width, height)
        self.publish_event(container, "resize", {"height": str(height), "width": str(width)})
