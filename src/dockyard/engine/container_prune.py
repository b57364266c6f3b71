"""``docker container prune`` (``POST /containers/prune``): remove every stopped container.

moby's ``ContainersPrune``: containers that are not running (nor paused or
restarting), filtered by ``until`` (created before) and ``label``/``label!``;
``SpaceReclaimed`` is the size of their writable layers. A container removed
or started meanwhile is skipped, not an error.

Raises dockyard.errors.InvalidParameter for an unknown filter or a bad time.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.wire import duration
from dockyard.wire.filters import Filters

__all__ = ["PRUNE_FILTERS", "prune_containers"]

PRUNE_FILTERS = frozenset({"until", "label", "label!"})


async def prune_containers(containers: ContainerService, containerd: Containerd, endpoint: Endpoint,
                           filters: Filters) -> dict[str, Any]:
    """Remove the stopped containers ``filters`` select; dockerd's response body."""
    filters.validate(PRUNE_FILTERS)
    until: int | None = None
    for value in filters.get("until"):
        until = duration.parse_time(value, now_ns=time.time_ns()) // 1_000_000_000
    ns = containerd.namespace(endpoint.namespace)
    deleted: list[str] = []
    reclaimed = 0
    for row in await containers.list(endpoint, all=True):
        if row.get("State") in ("running", "paused", "restarting"):
            continue
        if until is not None and int(row.get("Created") or 0) >= until:
            continue
        if not filters.match_labels_prune(row.get("Labels") or {}):
            continue
        size = 0
        with contextlib.suppress(errors.DockyardError):
            size = await ns.snapshot_usage(row["Id"])
        try:
            await containers.remove(endpoint, row["Id"])
        except (errors.NotFound, errors.Conflict):
            continue
        deleted.append(row["Id"])
        reclaimed += size
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
