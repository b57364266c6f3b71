"""An asyncio client for containerd's gRPC API, scoped by namespace.

    c = Containerd("unix:///run/dockyard/containerd/containerd.sock")
    ns = c.namespace("dockyard")
    async with ns.lease() as leased:
        info = await leased.write_blob("ref", data, expected_digest=d)

:class:`Containerd` owns one ``grpc.aio`` channel (create it inside the event
loop that uses it; close it with ``await c.close()`` or ``async with``).
:class:`Namespace` is a cheap value bound to that channel: every call it makes
carries the ``containerd-namespace`` metadata, and ``containerd-lease`` when
it was made with :meth:`Namespace.with_lease`.

Errors: every method raises only :mod:`dockyard.errors` classes, translated in
:mod:`dockyard.containerd.errors` (NotFound, Conflict, InvalidParameter,
Unavailable, SystemError); grpc exceptions never leave this package.

The methods are grouped by containerd service in mixins (content and images in
``content.py``, snapshots and diff in ``snapshots.py``, containers, tasks and
events in ``runtime.py``); this module holds the channel, leases and namespaces.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType

import grpc
import grpc.aio
from google.protobuf import empty_pb2

from dockyard import errors
from dockyard.containerd import _proto as pb
from dockyard.containerd.content import ContentCalls
from dockyard.containerd.errors import translate_errors
from dockyard.containerd.runtime import RuntimeCalls
from dockyard.containerd.snapshots import SnapshotCalls
from dockyard.containerd.types import SNAPSHOTTER, VersionInfo

#: Above containerd's 16 MiB default on purpose: the daemon side is configured
#: to match (config.MAX_MESSAGE_SIZE), and an external containerd still caps
#: what it sends at its own limit.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024

#: GC label on a lease: containerd expires the lease (and frees what only it
#: held) at this RFC 3339 time, even if dockyard dies before deleting it.
LEASE_EXPIRE_LABEL = "containerd.io/gc.expire"


class _Stubs:
    """One stub per containerd service, all on the same channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.version = pb.version_pb2_grpc.VersionStub(channel)
        self.namespaces = pb.namespace_pb2_grpc.NamespacesStub(channel)
        self.content = pb.content_pb2_grpc.ContentStub(channel)
        self.images = pb.images_pb2_grpc.ImagesStub(channel)
        self.snapshots = pb.snapshots_pb2_grpc.SnapshotsStub(channel)
        self.diff = pb.diff_pb2_grpc.DiffStub(channel)
        self.leases = pb.leases_pb2_grpc.LeasesStub(channel)
        self.containers = pb.containers_pb2_grpc.ContainersStub(channel)
        self.tasks = pb.tasks_pb2_grpc.TasksStub(channel)
        self.events = pb.events_pb2_grpc.EventsStub(channel)


def _target(address: str) -> str:
    # Accept a bare socket path as well as unix:// (dockerd's --containerd takes a path).
    return address if "://" in address or address.startswith("unix:") else f"unix://{address}"


async def _create_namespace(stubs: _Stubs, name: str, labels: Mapping[str, str] | None) -> None:
    request = pb.namespace_pb2.CreateNamespaceRequest(
        namespace=pb.namespace_pb2.Namespace(name=name, labels=dict(labels or {}))
    )
    try:
        with translate_errors():
            # containerd publishes a /namespaces/create event and refuses to
            # without a namespace in the call context: use the new one.
            await stubs.namespaces.Create(request, metadata=(("containerd-namespace", name),))
    except errors.Conflict:
        pass  # idempotent by contract


async def _list_namespaces(stubs: _Stubs) -> list[str]:
    with translate_errors():
        response = await stubs.namespaces.List(pb.namespace_pb2.ListNamespacesRequest())
    return sorted(n.name for n in response.namespaces)


class Containerd:
    """A connection to one containerd; the channel connects lazily on first call."""

    def __init__(self, address: str, *, content_root: Path | None = None) -> None:
        """``content_root``: the local content store of a containerd on this
        machine whose files dockyard may write (the embedded one); big blobs
        are then written into their ingest files instead of over gRPC."""
        self.address = address
        self._content_root = content_root
        self._channel = grpc.aio.insecure_channel(
            _target(address),
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
                ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
                # A unix socket has no host name; containerd ignores :authority.
                ("grpc.default_authority", "localhost"),
            ],
        )
        self._stubs = _Stubs(self._channel)

    @property
    def content_root(self) -> Path | None:
        """The local content store this client writes big blobs into, if any."""
        return self._content_root

    async def __aenter__(self) -> Containerd:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight fail with Unavailable."""
        await self._channel.close()

    async def version(self, *, timeout: float | None = None) -> str:
        """containerd's version string, e.g. "1.6.20~ds1". Raises Unavailable if down."""
        return (await self.version_info(timeout=timeout)).version

    async def version_info(self, *, timeout: float | None = None) -> VersionInfo:
        """containerd's version and revision (its git commit or package release)."""
        with translate_errors():
            response = await self._stubs.version.Version(empty_pb2.Empty(), timeout=timeout)
        return VersionInfo(version=response.version, revision=response.revision)

    async def wait_ready(self, timeout: float) -> str:
        """Wait until containerd answers; return its version.

        Raises Unavailable when it has not answered within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        last: errors.DockyardError | None = None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                detail = f": {last.message}" if last else ""
                raise errors.Unavailable(
                    f"containerd at {self.address} did not answer within {timeout:g}s{detail}"
                )
            try:
                return await self.version(timeout=min(remaining, 2.0))
            except errors.DockyardError as exc:
                last = exc
            await asyncio.sleep(min(0.05, max(deadline - time.monotonic(), 0)))

    def namespace(self, name: str) -> Namespace:
        """Calls scoped to containerd namespace ``name`` (created with create_namespace)."""
        if not name:
            raise errors.InvalidParameter("containerd namespace must not be empty")
        return Namespace(stubs=self._stubs, name=name, lease_id=None, content_root=self._content_root)

    async def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Create a namespace; an existing one is left as it is (labels untouched)."""
        await _create_namespace(self._stubs, name, labels)

    async def list_namespaces(self) -> list[str]:
        """Names of all namespaces, sorted."""
        return await _list_namespaces(self._stubs)

    async def delete_namespace(self, name: str) -> None:
        """Delete an empty namespace; Conflict if it still holds objects."""
        with translate_errors():
            await self._stubs.namespaces.Delete(pb.namespace_pb2.DeleteNamespaceRequest(name=name))


class Namespace(ContentCalls, SnapshotCalls, RuntimeCalls):
    """containerd calls in one namespace, optionally under a lease.

    Immutable: :meth:`with_lease` returns a new Namespace on the same channel.
    """

    def __init__(
        self, *, stubs: _Stubs, name: str, lease_id: str | None, content_root: Path | None = None
    ) -> None:
        self._stubs = stubs
        self._content_root = content_root
        self.name = name
        self.lease_id = lease_id
        metadata = [("containerd-namespace", name)]
        if lease_id:
            metadata.append(("containerd-lease", lease_id))
        self._metadata: tuple[tuple[str, str], ...] = tuple(metadata)
        self.snapshotter = SNAPSHOTTER

    def __repr__(self) -> str:
        return f"Namespace(name={self.name!r}, lease_id={self.lease_id!r})"

    def with_lease(self, lease_id: str | None) -> Namespace:
        """The same namespace with calls made under ``lease_id`` (None: no lease)."""
        return Namespace(stubs=self._stubs, name=self.name, lease_id=lease_id, content_root=self._content_root)

    # -- namespaces (convenience, same as on Containerd) --------------------------

    async def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Create namespace ``name`` if missing; idempotent."""
        await _create_namespace(self._stubs, name, labels)

    async def list_namespaces(self) -> list[str]:
        """Names of all namespaces, sorted."""
        return await _list_namespaces(self._stubs)

    # -- leases ---------------------------------------------------------------------

    async def create_lease(
        self,
        *,
        lease_id: str | None = None,
        expire_seconds: float | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> str:
        """Create a lease in this namespace and return its id.

        With ``expire_seconds`` containerd drops the lease by itself after that
        long, a safety net for a dockyard that dies before deleting it.
        """
        all_labels = dict(labels or {})
        if expire_seconds is not None:
            expires = datetime.now(timezone.utc) + timedelta(seconds=expire_seconds)
            all_labels[LEASE_EXPIRE_LABEL] = expires.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        request = pb.leases_pb2.CreateRequest(
            id=lease_id or f"dockyard-{secrets.token_hex(8)}", labels=all_labels
        )
        with translate_errors():
            response = await self._stubs.leases.Create(request, metadata=self._metadata)
        return response.lease.id

    async def delete_lease(self, lease_id: str, *, sync: bool = True) -> None:
        """Delete a lease. With ``sync`` the call returns only after containerd's
        garbage collector ran, so what only this lease held is gone by then.
        A lease that does not exist is not an error."""
        request = pb.leases_pb2.DeleteRequest(id=lease_id, sync=sync)
        try:
            with translate_errors():
                await self._stubs.leases.Delete(request, metadata=self._metadata)
        except errors.NotFound:
            pass

    async def list_leases(self) -> list[str]:
        with translate_errors():
            response = await self._stubs.leases.List(
                pb.leases_pb2.ListRequest(), metadata=self._metadata
            )
        return sorted(lease.id for lease in response.leases)

    @contextlib.asynccontextmanager
    async def lease(
        self,
        *,
        expire_seconds: float | None = 3600,
        labels: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Namespace]:
        """A new lease for the block: yields this namespace under the lease, and
        deletes the lease (synchronously collecting garbage) on the way out,
        whether the block succeeded or not.

        Whatever the block wrote under the lease survives only if something else
        references it by then (an image record, a container, GC labels from a
        referenced blob); on failure it is all collected.
        """
        lease_id = await self.create_lease(expire_seconds=expire_seconds, labels=labels)
        try:
            yield self.with_lease(lease_id)
        finally:
            # Shielded so a cancelled caller still releases what it held.
            await asyncio.shield(self.delete_lease(lease_id, sync=True))
