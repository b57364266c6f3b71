"""``POST /containers/create``: from a request body to a containerd container record.

A collaborator of :class:`~dockyard.engine.containers.ContainerService`: it
validates the body, reserves the name, prepares the snapshot, the generated
files (``<data_root>/containers/<id>/``), the volumes and the network
sandbox, builds the OCI spec and creates the record; on any failure it
undoes all of that. The new container's task is pre-created at once (see
``container_tasks``).

Raises only dockyard.errors: NotFound (``No such image: x``, a VolumesFrom or
``container:NAME`` reference), Conflict (the name is taken), InvalidParameter,
SystemError.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import errors
from dockyard.engine import container_fs
from dockyard.engine.container_model import Container, ContainerTable
from dockyard.engine.container_store import (
    EXT_DEFINITION,
    EXT_STATE,
    LABEL_NAME,
    ContainerDefinition,
    ContainerState,
    encode_definition,
    encode_state,
)
from dockyard.engine.container_tasks import TaskRunner
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.images import ImageService
from dockyard.engine.log_file import with_log_defaults
from dockyard.engine.volumes import VolumeMount
from dockyard.network.ports import requested_ports
from dockyard.network.service import NetworkService, bridge_mode, joined_container
from dockyard.oci import (
    ContainerSpecInput,
    build_spec,
    default_hostname,
    merge_config,
    resolve_user,
    validate_config,
    validate_host_config,
)
from dockyard.oci.image import chain_ids
from dockyard.wire import duration, names

if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService

__all__ = ["GC_ROOT_LABEL", "ContainerCreator", "reserve_name"]

GC_ROOT_LABEL = "containerd.io/gc.root"


def reserve_name(table: ContainerTable, name: str | None, container_id: str, rng: random.Random) -> str:
    """Hold ``name`` (or a generated one) in ``table`` for ``container_id``; its full ``/name``.

    Raises InvalidParameter for a malformed name, Conflict for one in use."""
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
            full = "/" + names.generate(rng, retry // 10)
            if full not in table.names:
                break
    table.names[full] = container_id
    return full


class ContainerCreator:
    """Creates the containers of ``service``."""

    def __init__(self, service: ContainerService, *, runner: TaskRunner, images: ImageService,
                 network: NetworkService | None, containers_dir: Path, hostname: str,
                 capabilities: tuple[str, ...], cgroup_v2: bool) -> None:
        self._service = service
        self._runner = runner
        self._images = images
        self._network = network
        self._containers_dir = containers_dir
        self._hostname = hostname
        self._capabilities = capabilities
        self._cgroup_v2 = cgroup_v2

    async def _prepare_volumes(self, endpoint: Endpoint, container_id: str, config: Mapping[str, Any],
                               host_config: Mapping[str, Any], rootfs: Sequence[Any]) -> list[VolumeMount]:
        volumes = self._service.volumes
        if volumes is None:
            return []
        volumes_from = []
        for raw in host_config.get("VolumesFrom") or ():
            ref, _, mode = raw.partition(":")
            volumes_from.append(((await self._service.get(endpoint, ref)).id, mode))
        return await volumes.prepare(endpoint, container_id, config=config, host_config=host_config,
                                     rootfs=rootfs, volumes_from=volumes_from)

    async def _sandbox_path(self, endpoint: Endpoint, container_id: str, name: str,
                            host_config: dict[str, Any], networking: Any) -> str | None:
        """The network namespace runc joins: the container's own (bridge, user network),
        or another container's (``container:NAME``); None for host/none."""
        if self._network is None:
            return None
        joined = joined_container(host_config)
        if joined is not None:
            return str(self._network.netns_path((await self._service.get(endpoint, joined)).id))
        if not bridge_mode(host_config):
            return None
        self._network.prepare(endpoint.namespace, container_id, name, host_config, networking)
        return str(self._network.netns_path(container_id))

    async def create(self, endpoint: Endpoint, body: Mapping[str, Any], *, name: str | None = None) -> dict[str, Any]:
        """``POST /containers/create``; returns ``{"Id": …, "Warnings": []}``."""
        service = self._service
        if not isinstance(body, Mapping):
            raise errors.InvalidParameter("config cannot be empty in order to create a container")
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        host_config = dict(body.get("HostConfig") or {})
        validate_config(config)
        validate_host_config(host_config, config)
        host_config = with_log_defaults(host_config, service.log_defaults)
        requested_ports({}, host_config)  # a malformed binding fails the create, not the start
        image_name = config.get("Image") or ""
        if not image_name:
            raise errors.InvalidParameter("no image specified")
        table = await service.table(endpoint)
        container_id = secrets.token_hex(32)
        full_name = service.reserve_name(table, name, container_id)
        ns = service.namespace_of(endpoint)
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
            if service.spec_hook is not None:
                service.spec_hook(spec, host_config)
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
            if service.volumes is not None:
                with contextlib.suppress(errors.DockyardError):
                    await service.volumes.release(endpoint.namespace, container_id, remove_anonymous=True)
            raise
        container = Container(definition, state, endpoint.namespace)
        container.mounts = mounts
        table.by_id[container_id] = container
        service.publish_event(container, "create")
        # Start the shim and `runc create` now: `docker run` attaches and
        # waits before it starts, and those round trips hide most of it.
        container.precreate = service.spawn(self._runner.create_task(container), f"precreate-{container_id[:12]}")
        return {"Id": container_id, "Warnings": []}
