"""Values the containerd adapter returns and accepts; plain data, no grpc.

Callers outside ``dockyard.containerd`` see only these, never protobuf messages.
Mappings are returned as fresh dicts and are not shared with the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Default snapshotter for images and containers.
SNAPSHOTTER = "overlayfs"
#: Default runtime for containers.
RUNC_RUNTIME = "io.containerd.runc.v2"
#: type_url under which containerd expects an OCI runtime spec packed in an Any.
OCI_SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec"
#: type_url for an exec'd process spec (an OCI `Process` object).
OCI_PROCESS_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process"


@dataclass(frozen=True, kw_only=True)
class VersionInfo:
    """What containerd's Version service reports."""

    version: str
    revision: str


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BlobInfo:
    """A committed blob in the content store."""

    digest: str
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class ImageRecord:
    """containerd's image record: a name pointing at a root descriptor.

    ``created_at``/``updated_at`` are set by containerd and ignored on create/update.
    """

    name: str
    target: Descriptor
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Mount:
    """One mount as the snapshotter describes it (type, source, options)."""

    type: str
    source: str
    options: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SnapshotInfo:
    """A snapshot; ``kind`` is "view", "active" or "committed"; ``parent`` "" for none."""

    name: str
    parent: str
    kind: str
    labels: Mapping[str, str] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ContainerRecord:
    """containerd's container record; ``spec`` is the decoded OCI runtime spec."""

    id: str
    image: str
    runtime: str
    spec: Mapping[str, Any]
    snapshotter: str
    snapshot_key: str
    labels: Mapping[str, str] = field(default_factory=dict)
    extensions: Mapping[str, bytes] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ExitStatus:
    """How a process ended. ``exited_at`` is None if containerd did not record it."""

    code: int
    exited_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class TaskInfo:
    """A task (or exec'd process) as containerd reports it.

    ``status`` is "created", "running", "stopped", "paused", "pausing" or "unknown";
    ``exit_status`` is meaningful only when stopped.
    """

    id: str
    pid: int
    status: str
    exit_status: int
    exited_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Event:
    """One event from containerd's event stream.

    ``payload`` is the decoded event message as a dict with containerd's field
    names (e.g. ``{"container_id": ..., "exit_status": ...}`` for /tasks/exit),
    or ``{}`` when the event type is unknown to the adapter.
    """

    topic: str
    namespace: str
    timestamp: datetime | None
    payload: Mapping[str, Any]


def filter_eq(field: str, value: str) -> str:
    """A containerd filter term ``field=="value"`` with the value quoted as its
    filter parser expects (backslash escapes), e.g. for ``labels."a.b"``:
    ``filter_eq('labels."dockyard.name"', "/web")``. Join terms with "," for AND."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{field}=="{escaped}"'
