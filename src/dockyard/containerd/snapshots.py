"""Snapshots and the diff service: the ``Namespace`` methods for filesystems.

A mixin of :class:`dockyard.containerd.client.Namespace`. All snapshot calls go
to the namespace's snapshotter (overlayfs). Raises only dockyard.errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from dockyard import errors
from dockyard.containerd import _proto as pb
from dockyard.containerd.errors import translate_errors
from dockyard.containerd.types import Descriptor, Mount, SnapshotInfo

if TYPE_CHECKING:
    from dockyard.containerd.client import _Stubs


class SnapshotCalls:
    _stubs: _Stubs
    _metadata: tuple[tuple[str, str], ...]
    snapshotter: str

    # -- snapshots ------------------------------------------------------------------

    async def prepare_snapshot(
        self, key: str, parent: str = "", labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """An active (writable) snapshot ``key`` on top of committed ``parent``
        ("" for an empty one); returns how to mount it. Conflict if ``key``
        exists, NotFound if ``parent`` does not."""
        with translate_errors():
            response = await self._stubs.snapshots.Prepare(
                pb.snapshots_pb2.PrepareSnapshotRequest(
                    snapshotter=self.snapshotter, key=key, parent=parent, labels=dict(labels or {})
                ),
                metadata=self._metadata,
            )
        return [pb.from_mount_pb(m) for m in response.mounts]

    async def view_snapshot(
        self, key: str, parent: str, labels: Mapping[str, str] | None = None
    ) -> list[Mount]:
        """A read-only view ``key`` of committed ``parent``; returns its mounts."""
        with translate_errors():
            response = await self._stubs.snapshots.View(
                pb.snapshots_pb2.ViewSnapshotRequest(
                    snapshotter=self.snapshotter, key=key, parent=parent, labels=dict(labels or {})
                ),
                metadata=self._metadata,
            )
        return [pb.from_mount_pb(m) for m in response.mounts]

    async def snapshot_mounts(self, key: str) -> list[Mount]:
        """The mounts of an active or view snapshot; NotFound if missing."""
        with translate_errors():
            response = await self._stubs.snapshots.Mounts(
                pb.snapshots_pb2.MountsRequest(snapshotter=self.snapshotter, key=key),
                metadata=self._metadata,
            )
        return [pb.from_mount_pb(m) for m in response.mounts]

    async def commit_snapshot(
        self, name: str, key: str, labels: Mapping[str, str] | None = None
    ) -> None:
        """Turn active snapshot ``key`` into committed ``name`` (``key`` is gone
        afterwards). Conflict if ``name`` exists already."""
        with translate_errors():
            await self._stubs.snapshots.Commit(
                pb.snapshots_pb2.CommitSnapshotRequest(
                    snapshotter=self.snapshotter, name=name, key=key, labels=dict(labels or {})
                ),
                metadata=self._metadata,
            )

    async def remove_snapshot(self, key: str) -> None:
        """Remove a snapshot; NotFound if missing, Conflict if it has children."""
        with translate_errors():
            await self._stubs.snapshots.Remove(
                pb.snapshots_pb2.RemoveSnapshotRequest(snapshotter=self.snapshotter, key=key),
                metadata=self._metadata,
            )

    async def stat_snapshot(self, key: str) -> SnapshotInfo | None:
        """The snapshot's info; None if there is no such snapshot."""
        try:
            with translate_errors():
                response = await self._stubs.snapshots.Stat(
                    pb.snapshots_pb2.StatSnapshotRequest(snapshotter=self.snapshotter, key=key),
                    metadata=self._metadata,
                )
        except errors.NotFound:
            return None
        return pb.from_snapshot_pb(response.info)

    async def update_snapshot_labels(self, key: str, labels: Mapping[str, str]) -> SnapshotInfo:
        """Set the given labels ("" removes one), leaving the others alone."""
        with translate_errors():
            response = await self._stubs.snapshots.Update(
                pb.snapshots_pb2.UpdateSnapshotRequest(
                    snapshotter=self.snapshotter,
                    info=pb.snapshots_pb2.Info(name=key, labels=dict(labels)),
                    update_mask=pb.field_mask([f"labels.{k}" for k in labels]),
                ),
                metadata=self._metadata,
            )
        return pb.from_snapshot_pb(response.info)

    async def snapshot_usage(self, key: str) -> int:
        """Bytes the snapshot itself uses on disk (not its parents)."""
        with translate_errors():
            response = await self._stubs.snapshots.Usage(
                pb.snapshots_pb2.UsageRequest(snapshotter=self.snapshotter, key=key),
                metadata=self._metadata,
            )
        return response.size

    async def list_snapshots(self, *filters: str) -> list[SnapshotInfo]:
        """Snapshots matching any of containerd's filters (none: all)."""
        call = self._stubs.snapshots.List(
            pb.snapshots_pb2.ListSnapshotsRequest(
                snapshotter=self.snapshotter, filters=list(filters)
            ),
            metadata=self._metadata,
        )
        found: list[SnapshotInfo] = []
        with translate_errors():
            async for response in call:
                found.extend(pb.from_snapshot_pb(info) for info in response.info)
        return found

    # -- diff -----------------------------------------------------------------------

    async def apply_layer(self, desc: Descriptor, mounts: Sequence[Mount]) -> Descriptor:
        """Unpack layer blob ``desc`` (tar, tar+gzip or tar+zstd) onto ``mounts``
        (an active snapshot) and return the descriptor of the uncompressed diff,
        whose digest is the layer's diff ID. The blob must be in the content store."""
        with translate_errors():
            response = await self._stubs.diff.Apply(
                pb.diff_pb2.ApplyRequest(
                    diff=pb.to_descriptor_pb(desc), mounts=[pb.to_mount_pb(m) for m in mounts]
                ),
                metadata=self._metadata,
            )
        return pb.from_descriptor_pb(response.applied)

    async def diff_mounts(
        self,
        lower: Sequence[Mount],
        upper: Sequence[Mount],
        *,
        media_type: str,
        ref: str,
        labels: Mapping[str, str] | None = None,
    ) -> Descriptor:
        """Write the difference ``lower`` → ``upper`` as a layer blob of
        ``media_type`` into the content store (ingest ``ref``) and return its
        descriptor. For a gzip/uncompressed tar layer the uncompressed digest is
        in the blob label ``containerd.io/uncompressed``."""
        with translate_errors():
            response = await self._stubs.diff.Diff(
                pb.diff_pb2.DiffRequest(
                    left=[pb.to_mount_pb(m) for m in lower],
                    right=[pb.to_mount_pb(m) for m in upper],
                    media_type=media_type,
                    ref=ref,
                    labels=dict(labels or {}),
                ),
                metadata=self._metadata,
            )
        return pb.from_descriptor_pb(response.diff)
