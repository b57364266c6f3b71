"""Generated stubs, imported once, and conversions protobuf ↔ ``types`` values.

Pure: no I/O. The stubs are built by ``scripts/gen-stubs.sh``; if they are
missing, importing this module raises ImportError that says how to build them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from google.protobuf import any_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import DecodeError

try:
    from dockyard.containerd._gen.github.com.containerd.containerd.api.events import (
        container_pb2 as events_container,
        content_pb2 as events_content,
        image_pb2 as events_image,
        namespace_pb2 as events_namespace,
        snapshot_pb2 as events_snapshot,
        task_pb2 as events_task,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.containers.v1 import (
        containers_pb2,
        containers_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.content.v1 import (
        content_pb2,
        content_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.diff.v1 import (
        diff_pb2,
        diff_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.events.v1 import (
        events_pb2,
        events_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.images.v1 import (
        images_pb2,
        images_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.leases.v1 import (
        leases_pb2,
        leases_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.namespaces.v1 import (
        namespace_pb2,
        namespace_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.snapshots.v1 import (
        snapshots_pb2,
        snapshots_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.tasks.v1 import (
        tasks_pb2,
        tasks_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.services.version.v1 import (
        version_pb2_grpc,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.types import (
        descriptor_pb2,
        mount_pb2,
    )
    from dockyard.containerd._gen.github.com.containerd.containerd.api.types.task import (
        task_pb2,
    )
except ImportError as exc:  # pragma: no cover - depends on the build step
    raise ImportError(
        "containerd gRPC stubs are missing; run scripts/gen-stubs.sh (make setup)"
    ) from exc

from dockyard.containerd.types import (
    OCI_SPEC_TYPE_URL,
    ContainerRecord,
    Descriptor,
    ImageRecord,
    Mount,
    SnapshotInfo,
    TaskInfo,
)

__all__ = [
    "any_pb2",
    "containers_pb2",
    "containers_pb2_grpc",
    "content_pb2",
    "content_pb2_grpc",
    "diff_pb2",
    "diff_pb2_grpc",
    "events_pb2",
    "events_pb2_grpc",
    "field_mask_pb2",
    "images_pb2",
    "images_pb2_grpc",
    "leases_pb2",
    "leases_pb2_grpc",
    "namespace_pb2",
    "namespace_pb2_grpc",
    "snapshots_pb2",
    "snapshots_pb2_grpc",
    "tasks_pb2",
    "tasks_pb2_grpc",
    "task_pb2",
    "version_pb2_grpc",
]

#: Event message types, by full proto name. containerd's typeurl packs events
#: with the bare full name as type_url ("containerd.events.TaskExit").
EVENT_TYPES: Mapping[str, Any] = {
    cls.DESCRIPTOR.full_name: cls
    for cls in (
        events_task.TaskCreate,
        events_task.TaskStart,
        events_task.TaskDelete,
        events_task.TaskIO,
        events_task.TaskExit,
        events_task.TaskOOM,
        events_task.TaskExecAdded,
        events_task.TaskExecStarted,
        events_task.TaskPaused,
        events_task.TaskResumed,
        events_task.TaskCheckpointed,
        events_container.ContainerCreate,
        events_container.ContainerUpdate,
        events_container.ContainerDelete,
        events_image.ImageCreate,
        events_image.ImageUpdate,
        events_image.ImageDelete,
        events_content.ContentDelete,
        events_snapshot.SnapshotPrepare,
        events_snapshot.SnapshotCommit,
        events_snapshot.SnapshotRemove,
        events_namespace.NamespaceCreate,
        events_namespace.NamespaceUpdate,
        events_namespace.NamespaceDelete,
    )
}

_SNAPSHOT_KINDS = {
    snapshots_pb2.VIEW: "view",
    snapshots_pb2.ACTIVE: "active",
    snapshots_pb2.COMMITTED: "committed",
}

_TASK_STATUSES = {
    task_pb2.CREATED: "created",
    task_pb2.RUNNING: "running",
    task_pb2.STOPPED: "stopped",
    task_pb2.PAUSED: "paused",
    task_pb2.PAUSING: "pausing",
}


def from_timestamp(ts: timestamp_pb2.Timestamp, present: bool = True) -> datetime | None:
    """A protobuf timestamp as an aware UTC datetime; None for the zero value."""
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=timezone.utc)


def to_descriptor_pb(desc: Descriptor) -> descriptor_pb2.Descriptor:
    return descriptor_pb2.Descriptor(
        media_type=desc.media_type,
        digest=desc.digest,
        size=desc.size,
        annotations=dict(desc.annotations),
    )


def from_descriptor_pb(pb: descriptor_pb2.Descriptor) -> Descriptor:
    return Descriptor(
        media_type=pb.media_type, digest=pb.digest, size=pb.size, annotations=dict(pb.annotations)
    )


def to_mount_pb(mount: Mount) -> mount_pb2.Mount:
    return mount_pb2.Mount(type=mount.type, source=mount.source, options=list(mount.options))


def from_mount_pb(pb: mount_pb2.Mount) -> Mount:
    return Mount(type=pb.type, source=pb.source, options=tuple(pb.options))


def to_image_pb(record: ImageRecord) -> images_pb2.Image:
    return images_pb2.Image(
        name=record.name, labels=dict(record.labels), target=to_descriptor_pb(record.target)
    )


def from_image_pb(pb: images_pb2.Image) -> ImageRecord:
    return ImageRecord(
        name=pb.name,
        target=from_descriptor_pb(pb.target),
        labels=dict(pb.labels),
        created_at=from_timestamp(pb.created_at, pb.HasField("created_at")),
        updated_at=from_timestamp(pb.updated_at, pb.HasField("updated_at")),
    )


def from_snapshot_pb(pb: snapshots_pb2.Info) -> SnapshotInfo:
    return SnapshotInfo(
        name=pb.name,
        parent=pb.parent,
        kind=_SNAPSHOT_KINDS.get(pb.kind, "unknown"),
        labels=dict(pb.labels),
        created_at=from_timestamp(pb.created_at, pb.HasField("created_at")),
    )


def pack_json(value: Mapping[str, Any], type_url: str) -> any_pb2.Any:
    """An OCI JSON document packed the way containerd's typeurl registry packs it."""
    return any_pb2.Any(
        type_url=type_url, value=json.dumps(value, separators=(",", ":")).encode()
    )


def to_container_pb(record: ContainerRecord) -> containers_pb2.Container:
    return containers_pb2.Container(
        id=record.id,
        labels=dict(record.labels),
        image=record.image,
        runtime=containers_pb2.Container.Runtime(name=record.runtime),
        spec=pack_json(record.spec, OCI_SPEC_TYPE_URL),
        snapshotter=record.snapshotter,
        snapshot_key=record.snapshot_key,
        extensions={
            key: any_pb2.Any(type_url=key, value=value)
            for key, value in record.extensions.items()
        },
    )


def from_container_pb(pb: containers_pb2.Container) -> ContainerRecord:
    return ContainerRecord(
        id=pb.id,
        image=pb.image,
        runtime=pb.runtime.name,
        spec=json.loads(pb.spec.value) if pb.spec.value else {},
        snapshotter=pb.snapshotter,
        snapshot_key=pb.snapshot_key,
        labels=dict(pb.labels),
        extensions={key: bytes(value.value) for key, value in pb.extensions.items()},
        created_at=from_timestamp(pb.created_at, pb.HasField("created_at")),
        updated_at=from_timestamp(pb.updated_at, pb.HasField("updated_at")),
    )


def from_process_pb(pb: task_pb2.Process) -> TaskInfo:
    return TaskInfo(
        id=pb.id or pb.container_id,
        pid=pb.pid,
        status=_TASK_STATUSES.get(pb.status, "unknown"),
        exit_status=pb.exit_status,
        exited_at=from_timestamp(pb.exited_at, pb.HasField("exited_at")),
    )


def decode_event(event: any_pb2.Any) -> dict[str, Any]:
    """The payload of an event as a dict with proto field names (uint32/bool/
    string fields as such, 64-bit ints and timestamps as strings); {} if the
    type is unknown or the bytes do not parse."""
    message_type = EVENT_TYPES.get(event.type_url.rsplit("/", 1)[-1])
    if message_type is None:
        return {}
    message = message_type()
    try:
        message.ParseFromString(event.value)
    except DecodeError:
        return {}
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def field_mask(paths: list[str]) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=paths)
