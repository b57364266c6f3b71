"""``POST /containers/{id}/update`` (``docker update``): restart policy and resource limits.

The new values are merged into the container's HostConfig (kept in its
containerd record, so they survive a daemon restart), into the stored OCI
spec's ``linux.resources`` (the next start uses them) and, while it runs,
into the task's cgroups through containerd's task Update. Messages are moby's.

Raises only dockyard.errors: NotFound, Conflict (removal in progress),
InvalidParameter (bad values, AutoRemove with a policy), SystemError (the
runtime refused the limits).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dockyard import errors
from dockyard.engine.container_store import EXT_DEFINITION, encode_definition
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.oci import validate_host_config
from dockyard.oci.resources import RESOURCE_FIELDS, linux_resources, validate_resources

__all__ = ["ContainerUpdater"]


class ContainerUpdater:
    """``docker update`` for the containers of ``service``."""

    def __init__(self, service: ContainerService) -> None:
        self._service = service

    async def update(self, endpoint: Endpoint, ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
        container = await self._service.get(endpoint, ref)
        if not isinstance(body, Mapping):
            raise errors.InvalidParameter("invalid JSON: the body must be an object")
        host_config = dict(container.definition.host_config)
        policy = body.get("RestartPolicy") or {}
        if policy.get("Name"):
            if host_config.get("AutoRemove") and policy["Name"] != "no":
                raise errors.InvalidParameter(
                    "Restart policy cannot be updated because AutoRemove is enabled for the container")
            host_config["RestartPolicy"] = {"Name": policy["Name"],
                                            "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
        changed = [name for name in RESOURCE_FIELDS if body.get(name) not in (None, 0, "")]
        for name in changed:
            host_config[name] = body[name]
        if "Memory" in changed and not body.get("MemorySwap") and host_config.get("MemorySwap", 0) > 0:
            # moby: a new memory limit above the old swap limit drags the swap limit along.
            if host_config["Memory"] > host_config["MemorySwap"]:
                host_config["MemorySwap"] = 0
        validate_host_config(host_config, container.definition.config)
        validate_resources(host_config)
        if container.removing or container.gone:
            raise errors.Conflict(f"cannot update container {container.id}: removal in progress")
        ns = self._service.namespace_of(container.namespace)
        resources = linux_resources(host_config)
        if changed and container.running:
            try:
                await ns.update_task(container.id, resources)
            except errors.NotFound:
                pass  # it stopped meanwhile: the spec below is what the next start uses
            except errors.DockyardError as err:
                raise errors.SystemError(
                    f"Cannot update container {container.id}: {err.message}") from err
        record = await ns.get_container(container.id)
        spec = dict(record.spec)
        linux = dict(spec.get("linux") or {})
        old = dict(linux.get("resources") or {})
        linux["resources"] = {**{k: v for k, v in old.items() if k not in ("memory", "cpu", "pids")}, **resources}
        spec["linux"] = linux
        definition = dataclasses.replace(container.definition, host_config=host_config)
        await ns.update_container(container.id, spec=spec,
                                  extensions={EXT_DEFINITION: encode_definition(definition)})
        container.definition = definition
        self._service.publish_event(container, "update")
        return {"Warnings": []}
