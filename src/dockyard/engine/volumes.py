"""The volume service: local-driver volumes of every endpoint, and the containers using them.

Model: a volume belongs to the endpoint (containerd namespace) that created
it. Its record is ``<data_root>/volumes/<ns>/<name>/volume.json`` and its
content ``…/<name>/_data`` (the ``Mountpoint``, as dockerd lays it out). Which
container uses which volume is ``<data_root>/volumes/<ns>/_containers/<id>.json``
(volume names cannot start with ``_``), written when the container is
created and removed with it: a volume is in use while any container, running
or not, refers to it, as in dockerd.

Local-driver options ``type``/``device``/``o`` make a volume a mount
(``mount -t type -o o device _data``): mounted at its first use, unmounted
when no container uses it any more.

Raises only dockyard.errors: NotFound (``get x: no such volume``), Conflict
(``remove x: volume is in use - [ids]``), InvalidParameter (names, options,
filters), SystemError (mount or copy failures).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.containerd import Mount
from dockyard.engine.container_rootfs import ViewMount, open_view
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.events import EventBus
from dockyard.engine.rootfs_path import open_in_root
from dockyard.oci.mounts import UserMount, parse_bind, parse_mount
from dockyard.wire import duration
from dockyard.wire.filters import Filters

__all__ = ["ANONYMOUS_LABEL", "Volume", "VolumeMount", "VolumeService", "PRUNE_FILTERS", "LIST_FILTERS"]

#: The label moby (≥ 23) puts on anonymous volumes; prune removes only these unless ``all``.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
LIST_FILTERS = frozenset({"name", "label", "dangling", "driver"})
PRUNE_FILTERS = frozenset({"label", "label!", "all"})
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_LOCAL_OPTIONS = frozenset({"type", "device", "o", "size"})
_REFS_DIR = "_containers"
_RECORD = "volume.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class Volume:
    """One volume's record; ``body()`` is its v1.50 ``Volume`` JSON."""

    name: str
    mountpoint: str
    created_at: str
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    driver: str = "local"

    def body(self) -> dict[str, Any]:
        # dockerd answers null, not {}, for a volume without labels or options.
        return {"CreatedAt": self.created_at, "Driver": self.driver, "Labels": dict(self.labels) or None,
                "Mountpoint": self.mountpoint, "Name": self.name,
                "Options": dict(self.options) if self.options else None, "Scope": "local"}


@dataclass(frozen=True, kw_only=True, slots=True)
class VolumeMount:
    """A volume as one container mounts it; ``source`` is the host directory."""

    name: str
    destination: str
    source: str
    writable: bool = True
    mode: str = ""
    anonymous: bool = False

    def user_mount(self) -> UserMount:
        return UserMount(kind="bind", destination=self.destination, source=self.source,
                         writable=self.writable, propagation="rprivate")

    def view_mount(self) -> ViewMount:
        return ViewMount(destination=self.destination, kind="bind", source=self.source,
                         writable=self.writable, recursive=True)

    def inspect_entry(self) -> dict[str, Any]:
        return {"Type": "volume", "Name": self.name, "Source": self.source, "Destination": self.destination,
                "Driver": "local", "Mode": self.mode, "RW": self.writable, "Propagation": ""}


@dataclass(frozen=True, kw_only=True, slots=True)
class _Request:
    name: str  # "" anonymous
    destination: str
    writable: bool
    nocopy: bool
    mode: str
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)


def _is_mounted(path: str) -> bool:
    return os.path.ismount(path)


def _run(argv: Sequence[str]) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True)
    if result.returncode != 0:
        raise errors.SystemError(f"{argv[0]} failed: {result.stderr.strip() or result.returncode}")


class VolumeService:
    """Volumes of every endpoint under one data root."""

    def __init__(self, *, data_root: Path, exec_root: Path) -> None:
        self._root = data_root / "volumes"
        self._exec_root = exec_root
        self._lock = asyncio.Lock()
        self._events: EventBus | None = None
        # (namespace, name, action) noted by the worker threads, published by _flush on the loop.
        self._pending: list[tuple[str, str, str]] = []

    def set_events(self, bus: EventBus) -> None:
        """Publish volume events (create, destroy) on ``bus``."""
        self._events = bus

    def _note(self, namespace: str, name: str, action: str) -> None:
        self._pending.append((namespace, name, action))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for namespace, name, action in pending:
            if self._events is not None:
                self._events.publish(namespace, type="volume", action=action, actor_id=name,
                                     attributes={"driver": "local"})

    # --- records ----------------------------------------------------------------------

    def _dir(self, namespace: str) -> Path:
        return self._root / namespace

    def _load(self, namespace: str, name: str) -> Volume | None:
        if not _NAME.match(name):
            return None
        try:
            raw = json.loads((self._dir(namespace) / name / _RECORD).read_text())
        except (OSError, ValueError):
            return None
        return Volume(name=name, mountpoint=str(self._dir(namespace) / name / "_data"),
                      created_at=raw.get("CreatedAt", ""), labels=raw.get("Labels") or {},
                      options=raw.get("Options") or {})

    def _all(self, namespace: str) -> list[Volume]:
        try:
            names = sorted(os.listdir(self._dir(namespace)))
        except FileNotFoundError:
            return []
        return [v for v in (self._load(namespace, n) for n in names) if v is not None]

    def _refs(self, namespace: str) -> dict[str, list[VolumeMount]]:
        directory = self._dir(namespace) / _REFS_DIR
        found: dict[str, list[VolumeMount]] = {}
        try:
            files = os.listdir(directory)
        except FileNotFoundError:
            return found
        for file in files:
            try:
                raw = json.loads((directory / file).read_text())
            except (OSError, ValueError):
                continue
            found[file.removesuffix(".json")] = [VolumeMount(**m) for m in raw]
        return found

    def _users(self, namespace: str, name: str) -> list[str]:
        return sorted(cid for cid, mounts in self._refs(namespace).items() if any(m.name == name for m in mounts))

    def _create_record(self, namespace: str, name: str, labels: Mapping[str, str],
                       options: Mapping[str, str]) -> Volume:
        directory = self._dir(namespace) / name
        (directory / "_data").mkdir(parents=True, exist_ok=True)
        os.chmod(directory / "_data", 0o755)
        record = {"CreatedAt": duration.format_time(time.time_ns()).split(".")[0] + "Z",
                  "Labels": dict(labels), "Options": dict(options)}
        (directory / _RECORD).write_text(json.dumps(record))
        self._note(namespace, name, "create")
        loaded = self._load(namespace, name)
        assert loaded is not None
        return loaded

    @staticmethod
    def _check_options(driver: str, options: Mapping[str, str]) -> None:
        if driver not in ("", "local"):
            raise errors.NotFound(f'error looking up volume plugin {driver}: plugin "{driver}" not found')
        for key in options:
            if key not in _LOCAL_OPTIONS:
                raise errors.InvalidParameter(f'invalid option: "{key}"')
        if "size" in options:
            raise errors.InvalidParameter('quota size requested but no quota support')
        if options and "type" not in options:
            raise errors.InvalidParameter('missing required option: "type"')
        if options and options.get("type") != "tmpfs" and not options.get("device"):
            raise errors.InvalidParameter('missing required option: "device"')

    # --- API ----------------------------------------------------------------------------

    async def create(self, endpoint: Endpoint, *, name: str = "", driver: str = "local",
                     options: Mapping[str, str] | None = None,
                     labels: Mapping[str, str] | None = None) -> Volume:
        """``POST /volumes/create``; an existing name returns the existing volume."""
        options = dict(options or {})
        try:
            self._check_options(driver, options)
        except errors.InvalidParameter as err:
            raise errors.InvalidParameter(f"create {name}: {err.message}") from None
        async with self._lock:
            try:
                return await asyncio.to_thread(self._create_sync, endpoint.namespace, name, options,
                                               dict(labels or {}))
            finally:
                self._flush()

    def _create_sync(self, namespace: str, name: str, options: Mapping[str, str],
                     labels: Mapping[str, str]) -> Volume:
        if not name:
            name = secrets.token_hex(32)
        elif not _NAME.match(name):
            raise errors.InvalidParameter(
                f'create {name}: "{name}" includes invalid characters for a local volume name, only '
                '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
                "use absolute path")
        existing = self._load(namespace, name)
        if existing is not None:
            return existing
        return self._create_record(namespace, name, labels, options)

    async def get(self, endpoint: Endpoint, name: str) -> Volume:
        volume = await asyncio.to_thread(self._load, endpoint.namespace, name)
        if volume is None:
            raise errors.NotFound(f"get {name}: no such volume")
        return volume

    async def list_volumes(self, endpoint: Endpoint, filters: Filters | None = None) -> list[Volume]:
        """``GET /volumes`` with moby's filters (name substring, label, dangling, driver)."""
        filters = filters or Filters()
        filters.validate(LIST_FILTERS)
        dangling = filters.bool_value("dangling", False) if filters.contains("dangling") else None
        ns = endpoint.namespace
        volumes, refs = await asyncio.to_thread(lambda: (self._all(ns), self._refs(ns)))
        used = {m.name for mounts in refs.values() for m in mounts}
        return [v for v in volumes
                if filters.match("name", v.name) and filters.exact_match("driver", v.driver)
                and filters.match_label(v.labels)
                and (dangling is None or dangling == (v.name not in used))]

    async def remove(self, endpoint: Endpoint, name: str, *, force: bool = False) -> None:
        """``DELETE /volumes/{name}``: 409 while a container refers to it."""
        async with self._lock:
            ns = endpoint.namespace
            if await asyncio.to_thread(self._load, ns, name) is None:
                if force:
                    return
                raise errors.NotFound(f"get {name}: no such volume")
            users = await asyncio.to_thread(self._users, ns, name)
            if users:
                raise errors.Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            try:
                await asyncio.to_thread(self._delete, ns, name)
            finally:
                self._flush()

    def _delete(self, namespace: str, name: str) -> int:
        directory = self._dir(namespace) / name
        data = directory / "_data"
        if _is_mounted(str(data)):
            _run(["umount", str(data)])
        size = _tree_size(data)
        shutil.rmtree(directory, ignore_errors=True)
        self._note(namespace, name, "destroy")
        return size

    async def prune(self, endpoint: Endpoint, filters: Filters | None = None,
                    *, api_version: tuple[int, int] = (1, 50)) -> dict[str, Any]:
        """``POST /volumes/prune``: unused anonymous volumes (every unused one with ``all``)."""
        filters = filters or Filters()
        filters.validate(PRUNE_FILTERS)
        every = api_version < (1, 42) or (filters.contains("all") and filters.bool_value("all", False))
        deleted: list[str] = []
        reclaimed = 0
        async with self._lock:
            ns = endpoint.namespace
            volumes, refs = await asyncio.to_thread(lambda: (self._all(ns), self._refs(ns)))
            used = {m.name for mounts in refs.values() for m in mounts}
            for volume in volumes:
                if volume.name in used or not filters.match_labels_prune(volume.labels):
                    continue
                if not every and ANONYMOUS_LABEL not in volume.labels:
                    continue
                try:
                    reclaimed += await asyncio.to_thread(self._delete, ns, volume.name)
                finally:
                    self._flush()
                deleted.append(volume.name)
        return {"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # --- containers ---------------------------------------------------------------------

    async def prepare(self, endpoint: Endpoint, container_id: str, *, config: Mapping[str, Any],
                      host_config: Mapping[str, Any], rootfs: Sequence[Mount],
                      volumes_from: Sequence[tuple[str, str]] = ()) -> list[VolumeMount]:
        """Resolve, create and fill a new container's volumes and record it as their user.

        Named and anonymous volumes of ``Binds``/``Mounts``, ``VolumesFrom``, then
        ``Config.Volumes`` paths no other mount covers. ``volumes_from`` is
        ``HostConfig.VolumesFrom`` resolved by the caller: (container id, mode).
        A volume that is empty on its first use gets the image's files at that
        path (unless ``nocopy``). Raises InvalidParameter for bad requests.
        """
        requests = self._requests(config, host_config)
        inherited = await self._volumes_from(endpoint.namespace, volumes_from)
        taken = {r.destination for r in requests} | {m.destination for m in inherited}
        taken |= _other_destinations(host_config)
        for destination in (config.get("Volumes") or {}):
            cleaned = os.path.normpath(destination)
            if cleaned not in taken:
                taken.add(cleaned)
                requests.append(_Request(name="", destination=cleaned, writable=True, nocopy=False, mode=""))
        if not requests and not inherited:
            return []
        async with self._lock:
            try:
                return await asyncio.to_thread(self._prepare_sync, endpoint.namespace, container_id,
                                               requests, inherited, rootfs)
            finally:
                self._flush()

    @staticmethod
    def _requests(config: Mapping[str, Any], host_config: Mapping[str, Any]) -> list[_Request]:
        found: list[_Request] = []
        for index, raw in enumerate(host_config.get("Binds") or ()):
            mount = parse_bind(raw, index)
            if mount.kind == "volume":
                parts = raw.split(":")
                mode = parts[2] if len(parts) == 3 else ""
                # dockerd shows the SELinux default "z" for a named volume given without a mode.
                found.append(_Request(name=mount.source, destination=mount.destination, writable=mount.writable,
                                      nocopy=mount.nocopy, mode=mode or ("z" if mount.source else "")))
        for index, spec in enumerate(host_config.get("Mounts") or ()):
            mount = parse_mount(spec, index)
            if mount.kind == "volume":
                volume = spec.get("VolumeOptions") or {}
                driver = volume.get("DriverConfig") or {}
                VolumeService._check_options(driver.get("Name") or "", driver.get("Options") or {})
                found.append(_Request(name=mount.source, destination=mount.destination, writable=mount.writable,
                                      nocopy=mount.nocopy, mode="z",
                                      labels=volume.get("Labels") or {}, options=driver.get("Options") or {}))
        return found

    async def _volumes_from(self, namespace: str, volumes_from: Sequence[tuple[str, str]]) -> list[VolumeMount]:
        inherited: list[VolumeMount] = []
        refs = await asyncio.to_thread(self._refs, namespace)
        for source_id, mode in volumes_from:
            if mode not in ("", "ro", "rw"):
                raise errors.InvalidParameter(f"invalid mode for volumes-from: {mode}")
            for mount in refs.get(source_id, []):
                writable = mount.writable if mode == "" else mode == "rw"
                inherited.append(VolumeMount(name=mount.name, destination=mount.destination, source=mount.source,
                                             writable=writable, mode=mount.mode, anonymous=False))
        return inherited

    def _prepare_sync(self, namespace: str, container_id: str, requests: Sequence[_Request],
                      inherited: Sequence[VolumeMount], rootfs: Sequence[Mount]) -> list[VolumeMount]:
        mounts: list[VolumeMount] = list(inherited)
        to_fill: list[tuple[str, str]] = []
        for request in requests:
            volume = None if not request.name else self._load(namespace, request.name)
            if volume is None:
                labels = dict(request.labels)
                if not request.name:
                    labels[ANONYMOUS_LABEL] = ""
                volume = self._create_sync(namespace, request.name, request.options, labels)
            self._mount_volume(volume)
            if not request.nocopy and not os.listdir(volume.mountpoint):
                to_fill.append((request.destination, volume.mountpoint))
            mounts.append(VolumeMount(name=volume.name, destination=request.destination, source=volume.mountpoint,
                                      writable=request.writable, mode=request.mode, anonymous=not request.name))
        # Recorded before the copy: if it fails, the caller's release finds (and
        # removes) the anonymous volumes made here.
        refs = self._dir(namespace) / _REFS_DIR
        refs.mkdir(parents=True, exist_ok=True)
        (refs / f"{container_id}.json").write_text(json.dumps(
            [{"name": m.name, "destination": m.destination, "source": m.source, "writable": m.writable,
              "mode": m.mode, "anonymous": m.anonymous} for m in mounts]))
        if to_fill and rootfs:
            _copy_up(self._exec_root, rootfs, to_fill)
        return mounts

    @staticmethod
    def _mount_volume(volume: Volume) -> None:
        options = volume.options
        if not options.get("type") or _is_mounted(volume.mountpoint):
            return
        argv = ["mount", "-t", options["type"]]
        if options.get("o"):
            argv += ["-o", options["o"]]
        argv += [options.get("device") or options["type"], volume.mountpoint]
        _run(argv)

    async def container_mounts(self, endpoint: Endpoint | str, container_id: str) -> list[VolumeMount]:
        """The volumes a container mounts (``[]`` for none or an unknown container)."""
        ns = endpoint if isinstance(endpoint, str) else endpoint.namespace
        return (await asyncio.to_thread(self._refs, ns)).get(container_id, [])

    async def release(self, namespace: str, container_id: str, *, remove_anonymous: bool) -> None:
        """The container is gone: forget its uses; unmount what nobody uses; with
        ``remove_anonymous`` delete its anonymous volumes nobody else uses."""
        async with self._lock:
            try:
                await asyncio.to_thread(self._release_sync, namespace, container_id, remove_anonymous)
            finally:
                self._flush()

    def _release_sync(self, namespace: str, container_id: str, remove_anonymous: bool) -> None:
        refs = self._refs(namespace)
        mine = refs.pop(container_id, [])
        (self._dir(namespace) / _REFS_DIR / f"{container_id}.json").unlink(missing_ok=True)
        used = {m.name for mounts in refs.values() for m in mounts}
        for mount in mine:
            if mount.name in used:
                continue
            if remove_anonymous and mount.anonymous:
                self._delete(namespace, mount.name)
            elif _is_mounted(mount.source):
                _run(["umount", mount.source])


def _other_destinations(host_config: Mapping[str, Any]) -> set[str]:
    taken = {os.path.normpath(d) for d in (host_config.get("Tmpfs") or {})}
    for raw in host_config.get("Binds") or ():
        parts = raw.split(":")
        if len(parts) >= 2 and parts[0].startswith("/"):
            taken.add(os.path.normpath(parts[1]))
    for spec in host_config.get("Mounts") or ():
        if (spec.get("Type") or "") != "volume" and spec.get("Target"):
            taken.add(os.path.normpath(spec["Target"]))
    return taken


def _tree_size(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _copy_up(exec_root: Path, rootfs: Sequence[Mount], targets: Sequence[tuple[str, str]]) -> None:
    """Copy the image's files at each container path into its (empty) volume directory,
    owners, modes and times kept, as dockerd does on a volume's first use."""
    with open_view(exec_root, rootfs, ()) as view:
        for destination, volume_dir in targets:
            try:
                fd = open_in_root(view.root_fd, destination, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except (OSError, errors.DockyardError):
                continue  # nothing (or no directory) there in the image: the volume stays empty
            try:
                info = os.fstat(fd)
                source = f"/proc/{os.getpid()}/fd/{fd}/."
                _run(["cp", "-a", "--", source, volume_dir + "/"])
                os.chown(volume_dir, info.st_uid, info.st_gid)
                os.chmod(volume_dir, info.st_mode & 0o7777)
            finally:
                os.close(fd)
