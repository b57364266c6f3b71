"""``docker cp`` and ``docker export``: the archive API on a container's filesystem.

- ``HEAD /containers/{id}/archive`` → :meth:`ArchiveService.stat`
- ``GET  /containers/{id}/archive`` → :meth:`ArchiveService.get`
- ``PUT  /containers/{id}/archive`` → :meth:`ArchiveService.put`
- ``GET  /containers/{id}/export``  → :meth:`ArchiveService.export`

Each call mounts a private view of the container (``container_rootfs``: the
root filesystem plus its bind mounts, for created, running and stopped
containers alike) and works only through directory fds of that view with
``rootfs_path``/``rootfs_archive``: no container path is ever joined onto a
host path, so ``/x -> /`` planted in a container leads to the container's own
``/``. Everything that can fail does so before the response head (the
service returns a stream only once the path is resolved and opened).

Errors (dockyard.errors only): NotFound (``No such container: x``, and
dockerd's ``Could not find the file /p in container x``), InvalidParameter
(``bad parameter: pathcannot be empty``, ``extraction point is not a
directory``, read-only destinations with moby's ``checkWritablePath``
wording, copyUIDGID user lookups), and the 500s of ``rootfs_archive`` and
``container_rootfs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tarfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd
from dockyard.containerd.types import Mount
from dockyard.engine.container_model import Container
from dockyard.engine.container_rootfs import RootfsView, ViewMount, open_view
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.rootfs_archive import (
    ExtractionPointNotDirectory,
    RootArchive,
    archive_path,
    extract_into_async,
    stat_path,
)
from dockyard.engine.rootfs_path import (
    PathNotADirectory,
    PathNotFound,
    container_file_not_found,
    lstat_in_root,
    open_in_root,
    resolve_in_root,
)
from dockyard.oci import defaults, resolve_user
from dockyard.oci.errors import OCIError
from dockyard.oci.mounts import UserMount, request_mounts
from dockyard.wire.pathstat import ArchiveSource, PathStat, container_abs_path, go_clean

__all__ = ["ArchiveService", "ContainerArchive", "TAR_MEDIA_TYPE", "view_mounts", "writable_path_error"]

#: The Content-Type of every tar dockerd sends.
TAR_MEDIA_TYPE = "application/x-tar"


def _empty_path() -> errors.InvalidParameter:
    # moby's badParameterError, missing space included.
    return errors.InvalidParameter("bad parameter: pathcannot be empty")


def _depth(path: str) -> int:
    return go_clean(path).count("/")


def _from_user(mount: UserMount) -> ViewMount:
    if mount.kind == "tmpfs":
        return ViewMount(destination=mount.destination, kind="tmpfs")
    return ViewMount(destination=mount.destination, kind="bind", source=mount.source,
                     writable=mount.writable, recursive=not mount.non_recursive)


def view_mounts(*, host_config: Mapping[str, Any], hostname_path: str, hosts_path: str,
                resolv_conf_path: str) -> list[ViewMount]:
    """The mounts laid over the root filesystem, parents first (moby's ``setupMounts``)."""
    try:
        user, network = request_mounts(host_config)
    except OCIError as err:
        raise errors.SystemError(f"cannot read the container's mounts: {err.message}") from err
    items = [_from_user(m) for m in user]
    read_only = bool(host_config.get("ReadonlyRootfs"))
    for destination, generated in ((defaults.RESOLV_CONF, resolv_conf_path),
                                   (defaults.HOSTNAME_FILE, hostname_path),
                                   (defaults.HOSTS_FILE, hosts_path)):
        if destination in network:
            items.append(_from_user(network[destination]))
        elif generated and os.path.exists(generated):
            items.append(ViewMount(destination=destination, kind="bind", source=generated,
                                   writable=not read_only, recursive=False))
    return sorted(items, key=lambda m: _depth(m.destination))


def _has_resource(destination: str, abs_path: str) -> bool:
    """moby's ``HasResource``: ``abs_path`` is the mount's destination or below it."""
    rel = os.path.relpath(abs_path, destination)
    return rel != ".." and not rel.startswith("../")


def writable_path_error(host_config: Mapping[str, Any], abs_path: str) -> errors.InvalidParameter | None:
    """moby's ``checkWritablePath`` for the resolved destination ``abs_path``."""
    try:
        user, network = request_mounts(host_config)
    except OCIError:
        user, network = [], {}
    for mount in [*user, *network.values()]:
        if mount.kind == "bind" and _has_resource(mount.destination, abs_path):
            if mount.writable:
                return None
            return errors.InvalidParameter("mounted volume is marked read-only")
    if host_config.get("ReadonlyRootfs"):
        return errors.InvalidParameter("container rootfs is marked read-only")
    return None


@dataclass(frozen=True, kw_only=True)
class ContainerArchive:
    """A resolved ``GET .../archive``: the header value's stat, and the tar, read once."""

    stat: PathStat
    chunks: AsyncIterator[bytes]


class _Stream:
    """The chunks of an archive made inside a view; closing (or the end) releases both.

    A class rather than an async generator: ``aclose`` of a generator that never
    started runs none of its ``finally``, and the view must go either way.
    """

    def __init__(self, archive: RootArchive, view: RootfsView) -> None:
        self._archive = archive
        self._view = view
        self._chunks = archive.aiter()

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        with contextlib.suppress(BaseException):
            await self._chunks.aclose()  # type: ignore[attr-defined]
        await asyncio.to_thread(self._archive.close)
        await asyncio.to_thread(self._view.close)


class _ExportArchive(RootArchive):
    """The whole root as ``docker export`` names it: ``bin/``, ``bin/sh``; no entry for ``/`` itself."""

    def _add(self, out: bytearray, name: str, info: os.stat_result, kind: bytes,
             linkname: str = "") -> None:
        if name == "./":
            return
        if kind == tarfile.LNKTYPE:
            linkname = linkname.removeprefix("./")
        super()._add(out, name.removeprefix("./"), info, kind, linkname)


class ArchiveService:
    """The archive API for every endpoint's containers."""

    def __init__(self, *, containers: ContainerService, containerd: Containerd, exec_root: Path) -> None:
        self._containers = containers
        self._containerd = containerd
        self._exec_root = exec_root

    async def _rootfs(self, container: Container) -> list[Mount]:
        if container.mounts is not None:
            return list(container.mounts)
        try:
            return await self._containerd.namespace(container.namespace).snapshot_mounts(container.id)
        except errors.NotFound as err:
            raise errors.Conflict(f"container {container.id} has no filesystem: {err.message}") from err

    async def _open(self, container: Container, *, with_mounts: bool = True) -> RootfsView:
        definition = container.definition
        mounts: Sequence[ViewMount] = ()
        if with_mounts:
            mounts = view_mounts(host_config=definition.host_config,
                                 hostname_path=definition.hostname_path, hosts_path=definition.hosts_path,
                                 resolv_conf_path=definition.resolv_conf_path)
            volumes = [m.view_mount() for m in await self._containers.volume_mounts(container)]
            mounts = sorted([*mounts, *volumes], key=lambda m: _depth(m.destination))
        rootfs = await self._rootfs(container)
        return await asyncio.to_thread(open_view, self._exec_root, rootfs, mounts)

    async def _in_view(self, container: Container, work: Callable[[RootfsView], object]) -> object:
        """Run blocking ``work(view)`` in a thread with the view mounted, holding the container's
        lock (a start meanwhile would mount the same upper directory a second time)."""
        async with container.lock:
            view = await self._open(container)
            try:
                return await asyncio.to_thread(work, view)
            finally:
                await asyncio.to_thread(view.close)

    async def stat(self, endpoint: Endpoint, ref: str, path: str) -> PathStat:
        """``HEAD .../archive``: the ``X-Docker-Container-Path-Stat`` of ``path``."""
        if not path:
            raise _empty_path()
        container = await self._containers.get(endpoint, ref)
        try:
            result = await self._in_view(container, lambda view: stat_path(view.root_fd, path))
        except PathNotFound as err:
            raise container_file_not_found(path, ref) from err
        assert isinstance(result, PathStat)
        return result

    async def get(self, endpoint: Endpoint, ref: str, path: str) -> ContainerArchive:
        """``GET .../archive``: resolved and opened now; the tar is made as it is read."""
        if not path:
            raise _empty_path()
        container = await self._containers.get(endpoint, ref)
        async with container.lock:
            view = await self._open(container)
            try:
                archive = await asyncio.to_thread(archive_path, view.root_fd, path)
            except BaseException as err:
                await asyncio.to_thread(view.close)
                if isinstance(err, PathNotFound):
                    raise container_file_not_found(path, ref) from err
                raise
        return ContainerArchive(stat=archive.stat, chunks=_Stream(archive, view))

    async def put(self, endpoint: Endpoint, ref: str, path: str, body: AsyncIterable[bytes], *,
                  copy_uid_gid: bool = False, no_overwrite_dir_non_dir: bool = False) -> None:
        """``PUT .../archive``: extract the tar ``body`` into directory ``path``.

        The destination's symlinks are followed inside the container (the last
        one too, as dockerd does); it must be a directory and writable by
        moby's rules. Entries are extracted by ``rootfs_archive`` and cannot
        land outside the destination.
        """
        if not path:
            raise _empty_path()
        container = await self._containers.get(endpoint, ref)
        async with container.lock:
            view = await self._open(container)
            try:
                owner = await asyncio.to_thread(self._check_destination, view, container, path, ref,
                                                copy_uid_gid)
                volumes = await self._containers.volume_mounts(container)
                resolved = await asyncio.to_thread(resolve_in_root, view.root_fd, container_abs_path(path))
                covering = [m for m in volumes if _has_resource(m.destination, resolved)]
                if covering and not max(covering, key=lambda m: _depth(m.destination)).writable:
                    raise errors.InvalidParameter("mounted volume is marked read-only")
                await extract_into_async(view.root_fd, path, body,
                                         no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                                         copy_uid_gid=owner)
            except PathNotFound as err:
                raise container_file_not_found(path, ref) from err
            finally:
                await asyncio.to_thread(view.close)

    @staticmethod
    def _check_destination(view: RootfsView, container: Container, path: str, ref: str,
                           copy_uid_gid: bool) -> tuple[int, int] | None:
        abs_path = container_abs_path(path)
        resolved = resolve_in_root(view.root_fd, abs_path)
        try:
            fd = open_in_root(view.root_fd, resolved, os.O_PATH | os.O_DIRECTORY, follow_final=False)
        except PathNotADirectory as err:
            raise ExtractionPointNotDirectory(path) from err
        except PathNotFound:
            # Present but not a directory, or missing: tell them apart as dockerd does.
            lstat_in_root(view.root_fd, resolved)
            raise ExtractionPointNotDirectory(path) from None
        os.close(fd)
        problem = writable_path_error(container.definition.host_config, resolved)
        if problem is not None:
            raise problem
        if not copy_uid_gid:
            return None
        user = resolve_user(str(container.definition.config.get("User") or ""),
                            _read_text(view.root_fd, "/etc/passwd"), _read_text(view.root_fd, "/etc/group"))
        return user.uid, user.gid

    async def export(self, endpoint: Endpoint, ref: str) -> AsyncIterator[bytes]:
        """``GET .../export``: the root filesystem (no bind mounts) as an uncompressed tar."""
        container = await self._containers.get(endpoint, ref)
        async with container.lock:
            view = await self._open(container, with_mounts=False)
            try:
                archive = await asyncio.to_thread(_export_archive, view.root_fd)
            except BaseException:
                await asyncio.to_thread(view.close)
                raise
        return _Stream(archive, view)


def _export_archive(root_fd: int) -> RootArchive:
    top = stat_path(root_fd, "/")
    fd = open_in_root(root_fd, "/", os.O_RDONLY | os.O_DIRECTORY)
    return _ExportArchive(stat=top, source=ArchiveSource(source_dir="/", source_base=".", rebase_name=""),
                          fd=fd, base=None)


def _read_text(root_fd: int, path: str, limit: int = 4 << 20) -> str | None:
    try:
        fd = open_in_root(root_fd, path, os.O_RDONLY)
    except errors.DockyardError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read(limit).decode("utf-8", errors="replace")
