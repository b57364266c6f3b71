"""The container service: create, inspect, list, start, wait, kill, stop, remove (API 1.50).

Model (DESIGN.md "containerd mapping"): a container is a containerd container
record (its Docker definition and state in extensions, see
``container_store``) plus an active overlayfs snapshot keyed by the container
id, plus a task while it runs. Generated files live in
``<data_root>/containers/<id>/``, FIFOs in ``<exec_root>/fifo/<id>/``.

Each container has one in-memory :class:`Container` per endpoint table,
loaded from containerd at start (containers outlive the daemon). The state
is rewritten into containerd after each transition by a background writer
that coalesces bursts. Exit codes come only from containerd's ``Wait`` on the
task; one watcher task per running container owns the exit path: drain the
output, delete the task, record the exit, wake waiters, auto-remove.

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
import secrets
import shutil
import signal as signals
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd, Namespace
from dockyard.engine import container_fs
from dockyard.engine.container_store import (
    EXT_DEFINITION,
    EXT_STATE,
    LABEL_NAME,
    ContainerDefinition,
    ContainerState,
    CorruptRecord,
    encode_definition,
    encode_state,
    from_extensions,
)
from dockyard.engine.container_model import (
    Container,
    ContainerTable,
    WaitResult,
    exit_code_for_start_error,
    parse_signal,
    wake,
)
from dockyard.engine.container_view import inspect_body, select_rows
from dockyard.engine.endpoint import DEFAULT_ENDPOINT, Endpoint
from dockyard.engine.events import EventBus
from dockyard.engine.fifo import FifoSet, create_fifos, remove_fifos
from dockyard.engine.images import ImageService, ImageUser
from dockyard.engine.log_file import log_file_options, with_log_defaults
from dockyard.engine.stdio import StdioHub
from dockyard.engine.system import ContainerCounts
from dockyard.engine.volumes import VolumeMount, VolumeService
from dockyard.network import hosts as network_hosts
from dockyard.network import view as network_view
from dockyard.network.ports import ps_ports, requested_ports, settings_ports
from dockyard.network.service import NetworkService, bridge_mode, joined_container
from dockyard.oci import (
    ContainerSpecInput,
    build_spec,
    capabilities_from_mask,
    default_hostname,
    merge_config,
    resolve_user,
    validate_config,
    validate_host_config,
)
from dockyard.oci.image import chain_ids
from dockyard.wire import duration, names
from dockyard.wire.filters import Filters

__all__ = ["Container", "ContainerService", "WAIT_CONDITIONS", "WaitResult", "exit_code_for_start_error", "parse_signal"]

log = logging.getLogger(__name__)

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
#: moby's exit code when a start failed for a reason other than the command.
EXIT_UNKNOWN = 128
#: How long the exit path waits for output after the process is gone (a
#: leftover process outside the pid namespace may hold the pipe open).
OUTPUT_DRAIN_SECONDS = 2.0
GC_ROOT_LABEL = "containerd.io/gc.root"


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
        self._exit_listeners: list[Callable[[Container], None]] = []
        # Told (synchronously) of user actions: "start", "stop" (stop or kill), "remove".
        self._action_listeners: list[Callable[[Container, str], None]] = []
        # Told (synchronously) each time a container's process starts, adopted ones included.
        self._start_listeners: list[Callable[[Container], None]] = []
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

    async def _prepare_volumes(self, endpoint: Endpoint, container_id: str, config: Mapping[str, Any],
                               host_config: Mapping[str, Any], rootfs: Sequence[Any]) -> list[VolumeMount]:
        if self.volumes is None:
            return []
        volumes_from = []
        for raw in host_config.get("VolumesFrom") or ():
            ref, _, mode = raw.partition(":")
            volumes_from.append(((await self.get(endpoint, ref)).id, mode))
        return await self.volumes.prepare(endpoint, container_id, config=config, host_config=host_config,
                                          rootfs=rootfs, volumes_from=volumes_from)

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
            await self._table(endpoint)

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

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _ns(self, endpoint: Endpoint | str) -> Namespace:
        name = endpoint if isinstance(endpoint, str) else endpoint.namespace
        return self._containerd.namespace(name)

    async def _table(self, endpoint: Endpoint) -> ContainerTable:
        table = self._tables.get(endpoint.namespace)
        if table is not None:
            return table
        lock = self._loading.setdefault(endpoint.namespace, asyncio.Lock())
        async with lock:
            table = self._tables.get(endpoint.namespace)
            if table is None:
                table = await self._load(endpoint.namespace)
                self._tables[endpoint.namespace] = table
        return table

    async def _load(self, namespace: str) -> ContainerTable:
        table = ContainerTable()
        ns = self._ns(namespace)
        for record in await ns.list_containers():
            try:
                stored = from_extensions(record.extensions)
            except CorruptRecord:
                continue
            container = Container(stored.definition, stored.state, namespace)
            table.by_id[container.id] = container
            table.names[container.definition.name] = container.id
            await self._adopt(container)
        return table

    async def _adopt(self, container: Container) -> None:
        """Reconcile a loaded container with its task: watch it, or record how it ended."""
        ns = self._ns(container.namespace)
        task = await ns.get_task(container.id)
        if task is not None and task.status == "created":
            # Pre-created for a start that never came: the next start makes a fresh one.
            with contextlib.suppress(errors.DockyardError):
                await self._kill_and_delete_task(container)
            await self._detach_network(container)
            shutil.rmtree(self._fifo_dir / container.id, ignore_errors=True)
            return
        if task is not None and task.status in ("running", "paused", "pausing"):
            fifos = self._fifo_set(container, existing=True)
            hub = StdioHub(fifos, log_path=Path(container.definition.log_path),
                           log_options=log_file_options(container.definition.host_config),
                           on_stdin_eof=lambda: ns.close_io(container.id))
            await hub.start()
            hub.process_started()
            container.hub, container.hub_used = hub, True
            # containerd knows a task paused before the restart: it stays paused.
            status = "paused" if task.status in ("paused", "pausing") else "running"
            container.state = container.state.evolve(status=status, pid=task.pid)
            container.watcher = self._spawn(self._watch(container, hub), f"watch-{container.id[:12]}")
            if self._network is not None:
                await self._network.restore_ports(container.id)
            for listener in self._start_listeners:
                listener(container)
            return
        if task is not None:
            status = await ns.delete_task(container.id)
            self._record_exit(container, status.code)
        elif container.state.running:
            self._record_exit(container, container.state.exit_code or EXIT_UNKNOWN)
        else:
            return
        if container.definition.auto_remove:
            self._spawn(self._remove(container, force=True), f"autoremove-{container.id[:12]}")

    # --- for exec (engine/exec.py) ------------------------------------------------------

    def add_exit_listener(self, listener: Callable[[Container], None]) -> None:
        """Call ``listener(container)`` (synchronously) each time a container's run ends."""
        self._exit_listeners.append(listener)

    def add_start_listener(self, listener: Callable[[Container], None]) -> None:
        """Call ``listener(container)`` (synchronously) each time a container's process starts."""
        self._start_listeners.append(listener)

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
        record = await self._ns(container.namespace).get_container(container.id)
        return dict(record.spec.get("process") or {})

    # --- lookup ------------------------------------------------------------------------

    async def get(self, endpoint: Endpoint, ref: str) -> Container:
        """By full id, name (with or without ``/``) or unique id prefix; NotFound otherwise."""
        table = await self._table(endpoint)
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
        table = await self._table(endpoint)
        return [ImageUser(id=c.id, running=c.running) for c in table.by_id.values()
                if c.definition.image_id == image_id and not c.gone]

    async def count(self, endpoint: Endpoint) -> ContainerCounts:
        table = await self._table(endpoint)
        states = [c.state.status for c in table.by_id.values() if not c.gone]
        running = sum(s in ("running", "restarting") for s in states)
        paused = states.count("paused")
        return ContainerCounts(running=running, paused=paused, stopped=len(states) - running - paused)

    # --- create ------------------------------------------------------------------------

    def _reserve_name(self, table: ContainerTable, name: str | None, container_id: str) -> str:
        if name:
            names.validate_name(name)
            full = name if name.startswith("/") else "/" + name
            holder = table.names.get(full)
            if holder is not None:
                raise errors.Conflict(
                    f'Conflict. The container name "{full}" is already in use by container "{holder}". '
                    "You have to remove (or rename) that container to be able to reuse that name."
                )
        else:
            for retry in range(100):
                full = "/" + names.generate(self._random, retry // 10)
                if full not in table.names:
                    break
        table.names[full] = container_id
        return full

    async def create(self, endpoint: Endpoint, body: Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
        """``POST /containers/create``; returns ``{"Id": …, "Warnings": []}``."""
        if not isinstance(body, Mapping):
            raise errors.InvalidParameter("config cannot be empty in order to create a container")
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        host_config = dict(body.get("HostConfig") or {})
        validate_config(config)
        validate_host_config(host_config, config)
        host_config = with_log_defaults(host_config, self.log_defaults)
        requested_ports({}, host_config)  # a malformed binding fails the create, not the start
        image_name = config.get("Image") or ""
        if not image_name:
            raise errors.InvalidParameter("no image specified")
        table = await self._table(endpoint)
        container_id = secrets.token_hex(32)
        full_name = self._reserve_name(table, name, container_id)
        ns = self._ns(endpoint)
        snapshot = False
        files = container_fs.ContainerFiles.under(self._containers_dir, container_id)
        try:
            image = await self._images.get(endpoint, image_name)
            chain = chain_ids(image.config.diff_ids)
            merged = merge_config(image.config.config, config)
            merged["Image"] = image_name
            merged["Hostname"] = default_hostname(config=merged, host_config=host_config,
                                                  container_id=container_id, host_hostname=self._hostname)
            prepare = asyncio.ensure_future(ns.prepare_snapshot(
                container_id, chain[-1] if chain else "", labels={GC_ROOT_LABEL: duration.format_time(time.time_ns())}))
            try:
                container_fs.write_container_files(files, hostname=merged["Hostname"], config=merged,
                                                   host_config=host_config)
            finally:
                mounts = await prepare
                snapshot = True
            user = resolve_user(merged.get("User") or "", container_fs.read_image_file(mounts, "/etc/passwd"),
                                container_fs.read_image_file(mounts, "/etc/group"),
                                host_config.get("GroupAdd") or ())
            container_fs.create_workdir(mounts, merged.get("WorkingDir") or "")
            volume_mounts = await self._prepare_volumes(endpoint, container_id, merged, host_config, mounts)
            spec = build_spec(ContainerSpecInput(
                config=merged, host_config=host_config, user=user,
                cgroups_path=f"/dockyard/{endpoint.namespace}/{container_id}",
                hosts_path=str(files.hosts), hostname_path=str(files.hostname),
                resolv_path=str(files.resolv_conf), cgroup_v2=self._cgroup_v2,
                all_capabilities=self._capabilities,
                netns_path=await self._sandbox_path(endpoint, container_id, full_name, host_config,
                                                    body.get("NetworkingConfig")),
                volume_mounts=tuple(m.user_mount() for m in volume_mounts)))
            args = spec["process"]["args"]
            if self.spec_hook is not None:
                self.spec_hook(spec, host_config)
            now = time.time_ns()
            definition = ContainerDefinition(
                id=container_id, name=full_name, created=duration.format_time(now), created_ns=now,
                config=merged, host_config=host_config, image=image_name, image_id=image.id,
                chain_id=chain[-1] if chain else "", path=args[0], args=tuple(args[1:]),
                log_path=str(files.log), hostname_path=str(files.hostname), hosts_path=str(files.hosts),
                resolv_conf_path=str(files.resolv_conf))
            state = ContainerState()
            await ns.create_container(
                container_id, image=image.records[0].name if image.records else image.id, spec=spec,
                snapshot_key=container_id, labels={LABEL_NAME: full_name},
                extensions={EXT_DEFINITION: encode_definition(definition), EXT_STATE: encode_state(state)})
        except BaseException:
            table.names.pop(full_name, None)
            if snapshot:
                with contextlib.suppress(errors.DockyardError):
                    await ns.remove_snapshot(container_id)
            shutil.rmtree(files.directory, ignore_errors=True)
            if self._network is not None:
                self._network.forget(container_id)
            if self.volumes is not None:
                with contextlib.suppress(errors.DockyardError):
                    await self.volumes.release(endpoint.namespace, container_id, remove_anonymous=True)
            raise
        container = Container(definition, state, endpoint.namespace)
        container.mounts = mounts
        table.by_id[container_id] = container
        self.publish_event(container, "create")
        # Start the shim and `runc create` now: `docker run` attaches and
        # waits before it starts, and those round trips hide most of it.
        container.precreate = self._spawn(self._create_task(container), f"precreate-{container_id[:12]}")
        return {"Id": container_id, "Warnings": []}

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
        table = await self._table(endpoint)
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

    # --- start and the exit path -------------------------------------------------------

    def _fifo_set(self, container: Container, *, existing: bool = False) -> FifoSet:
        directory = self._fifo_dir / container.id
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

    async def pending_hub(self, container: Container) -> StdioHub:
        """The hub of the current run, or of the next one (made now): attach before start."""
        hub = container.hub
        if hub is not None and not hub.output_ended:
            return hub
        ns = self._ns(container.namespace)
        fifos = self._fifo_set(container)
        hub = StdioHub(fifos, log_path=Path(container.definition.log_path),
                       log_options=log_file_options(container.definition.host_config),
                       on_stdin_eof=lambda: ns.close_io(container.id))
        await hub.start()
        container.hub, container.hub_used = hub, False
        return hub

    async def start_container(self, endpoint: Endpoint, ref: str) -> None:
        """``POST /containers/{id}/start``; NotModified if running."""
        container = await self.get(endpoint, ref)
        async with container.lock:
            if container.running:
                raise errors.NotModified("container already started")
            if container.removing or container.gone:
                raise errors.Conflict(f"cannot start container {container.id}: removal in progress")
            self._tell(container, "start")
            await self._start(container)

    async def _create_task(self, container: Container) -> StdioHub:
        """Make the run's hub and containerd task (not started). On failure the hub
        stays for ``_start_failed`` to close; the error propagates."""
        ns = self._ns(container.namespace)
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
        if self._network is None or not bridge_mode(container.definition.host_config):
            return
        config = container.definition.config
        attachment = await self._network.attach(
            container.id, requested_ports(config, container.definition.host_config))
        hosts = Path(container.definition.hosts_path)
        text = await asyncio.to_thread(hosts.read_text)
        await asyncio.to_thread(hosts.write_text, network_hosts.with_own_address(
            text, address=attachment.ip_address, hostname=config.get("Hostname") or "",
            domainname=config.get("Domainname") or ""))
        resolv = self._network.resolv_conf(container.id)
        if resolv is not None:  # a user network: the embedded DNS at 127.0.0.11
            await asyncio.to_thread(Path(container.definition.resolv_conf_path).write_text, resolv)

    async def _sandbox_path(self, endpoint: Endpoint, container_id: str, name: str,
                            host_config: dict[str, Any], networking: Any) -> str | None:
        """The network namespace runc joins: the container's own (bridge, user network),
        or another container's (``container:NAME``); None for host/none."""
        if self._network is None:
            return None
        joined = joined_container(host_config)
        if joined is not None:
            return str(self._network.netns_path((await self.get(endpoint, joined)).id))
        if not bridge_mode(host_config):
            return None
        self._network.prepare(endpoint.namespace, container_id, name, host_config, networking)
        return str(self._network.netns_path(container_id))

    async def _detach_network(self, container: Container) -> None:
        if self._network is None or not bridge_mode(container.definition.host_config):
            return
        try:
            await self._network.detach(container.id)
        except errors.DockyardError:
            log.exception("cannot detach container %s from its network", container.id)

    async def _start(self, container: Container) -> None:
        ns = self._ns(container.namespace)
        if container.task_cleanup is not None:
            await container.task_cleanup  # the last run's task must be gone first
            container.task_cleanup = None
        precreate, container.precreate = container.precreate, None
        created = False
        try:
            hub = await (precreate if precreate is not None else self._create_task(container))
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
        self._persist(container)
        container.watcher = self._spawn(self._watch(container, hub), f"watch-{container.id[:12]}")
        self.publish_event(container, "start")
        for listener in self._start_listeners:
            listener(container)

    @staticmethod
    def _start_error(err: errors.DockyardError) -> errors.DockyardError:
        message = f"failed to create task for container: {err.message}"
        if exit_code_for_start_error(err.message) is not None:
            return errors.InvalidParameter(message)
        return errors.SystemError(message)

    async def _start_failed(self, container: Container, hub: StdioHub | None, err: errors.DockyardError,
                            created: bool) -> None:
        ns = self._ns(container.namespace)
        if created:
            with contextlib.suppress(errors.DockyardError):
                await ns.kill_task(container.id, signals.SIGKILL, all=True)
            with contextlib.suppress(errors.DockyardError):
                await ns.wait_task(container.id)
            with contextlib.suppress(errors.DockyardError):
                await ns.delete_task(container.id)
        await self._detach_network(container)
        if hub is not None:
            await hub.aclose()
            remove_fifos(hub.fifos)
        container.hub = None
        code = exit_code_for_start_error(err.message) or EXIT_UNKNOWN
        message = self._start_error(err).message
        container.state = container.state.evolve(exit_code=code, error=message)
        wake(container.exit_waiters, WaitResult(status_code=code))
        self._persist(container)
        if container.definition.auto_remove:
            self._spawn(self._remove(container, force=True), f"autoremove-{container.id[:12]}")

    async def _watch(self, container: Container, hub: StdioHub) -> None:
        ns = self._ns(container.namespace)
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
            self._record_exit(container, status.code, persist=False)
            await self._remove(container, force=True, wake_early=True)
            return
        self._record_exit(container, status.code)
        # Deleting the task stops the shim (tens of ms): waiters need not wait for it.
        container.task_cleanup = self._spawn(self._delete_task(container), f"reap-{container.id[:12]}")

    async def _kill_and_delete_task(self, container: Container) -> None:
        """Delete the task; one that was created and never started is killed first."""
        ns = self._ns(container.namespace)
        task = await ns.get_task(container.id)
        if task is None:
            return
        if task.status == "created":
            await ns.kill_task(container.id, signals.SIGKILL)
            await ns.wait_task(container.id)
        await ns.delete_task(container.id)

    async def _delete_task(self, container: Container) -> None:
        with contextlib.suppress(errors.NotFound):
            await self._ns(container.namespace).delete_task(container.id)
        await self._detach_network(container)

    def _record_exit(self, container: Container, code: int, *, persist: bool = True) -> None:
        now = time.time_ns()
        started_ns = container.state.started_ns
        container.state = container.state.evolve(
            status="exited", pid=0, exit_code=code, finished_at=duration.format_time(now), finished_ns=now)
        container.exited.set()
        self.publish_event(container, "die", {
            "execDuration": str(max(0, now - started_ns) // 1_000_000_000 if started_ns else 0),
            "exitCode": str(code)})
        wake(container.exit_waiters, WaitResult(status_code=code))
        for listener in self._exit_listeners:
            listener(container)
        if persist:
            self._persist(container)

    # --- persistence -------------------------------------------------------------------

    def _persist(self, container: Container) -> None:
        """Write the state to containerd soon, in order, coalescing bursts."""
        container.dirty = True
        if container.writer is None or container.writer.done():
            container.writer = self._spawn(self._write_state(container), f"state-{container.id[:12]}")

    async def _write_state(self, container: Container) -> None:
        ns = self._ns(container.namespace)
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
            await self._ns(endpoint).kill_task(container.id, number, all=number == signals.SIGKILL)
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
        ns = self._ns(container.namespace)
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
        ns = self._ns(container.namespace)
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
                await self._kill_and_delete_task(container)
            await self._detach_network(container)
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
            self._spawn(container.hub.aclose(), f"hub-close-{container.id[:12]}")
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
            await self._ns(endpoint).resize_pty(container.id, width, height)
        self.publish_event(container, "resize", {"height": str(height), "width": str(width)})
