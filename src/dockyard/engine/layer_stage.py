"""A layer unpacked while it streams in (a pull's download, a load's ingest),
then moved into its snapshot.

containerd unpacks a layer with its diff service once the blob is committed:
it reads the blob back, decompresses it, hashes the tar (the diff ID) and
writes the files, one layer after the other, because a layer's snapshot
needs its parent's. With the hashing that is most of a pull's time, all of it
on one core after the download. A :class:`LayerStage` does that work while
the bytes arrive instead, in a thread of its own, into a staging directory on
the same filesystem; when the pull or load reaches the layer in chain order,
:func:`install` prepares the snapshot on its parent, renames the staged
entries into the snapshot's empty upper directory and commits it.

    stage = LayerStage.start(directory, media_type)    # None: not a type it unpacks
    await stage.feed(chunk) ... ; stage.end()           # from the download
    if await install(ns, stage, key=..., parent=..., chain_id=..., diff_id=...):
        ...                                             # committed
    stage.discard()

A :class:`Stager` owns a staging root and the turns of its stages: pulls have
one, ``docker load`` another; ``staged``, ``install_layer`` and
``discard_stage`` are the steps above as those callers use them.

The staged tree is what containerd's overlay applier writes into an upper
directory: whiteouts become 0:0 character devices, ``.wh..wh..opq`` the
``trusted.overlay.opaque`` xattr, ``SCHILY.xattr.*`` records xattrs, and
every path is resolved inside the staging root (rootfs_archive's extractor),
so a hostile entry, link or symlink cannot write outside it.

A stage is only ever a shortcut. Anything it does not handle (a hard link to
a file of a lower layer, an unknown entry type, a diff ID other than the
config's, another filesystem, a snapshotter mount it does not know) makes
:func:`install` answer False, and the caller unpacks the layer with
containerd's diff service as before, which also reports a wrong diff ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import heapq
import itertools
import logging
import os
import secrets
import shutil
import stat
import tarfile
import threading
import zlib
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from dockyard import errors
from dockyard.containerd import Mount, Namespace
from dockyard.engine.rootfs_archive import TreeExtractor
from dockyard.engine.rootfs_archive import IMPLIED_DIRECTORY_MODE
from dockyard.engine.rootfs_path import (
    PathNotFound,
    RootPathError,
    lstat_in_root,
    mkdir_all_in_root,
    open_in_root,
)
from dockyard.oci import image as oci
from dockyard.thread_feed import ThreadFeed
from dockyard.wire.pathstat import go_base, go_clean, go_dir, go_join

log = logging.getLogger("dockyard.pull")

#: Chunks queued for the unpacking thread before the download waits for it.
QUEUE_CHUNKS = 16
#: What the unpacking thread asks of the tar reader at a time.
READ_SIZE = 1 << 20
WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
PAX_XATTR_PREFIX = "SCHILY.xattr."

_GZIP_TYPES = (oci.DOCKER_LAYER_GZIP, oci.OCI_LAYER_GZIP)
_PLAIN_TYPES = (oci.DOCKER_LAYER, oci.OCI_LAYER)


class ImpliedDirectory(RootPathError):
    """An entry's parent path, missing from the layer, runs into a non-directory."""


class StageTurns:
    """Which stage threads may do CPU work now: at most ``size`` at once, and
    the lowest key first whenever several have bytes to work on.

    A thread holds a turn only while it works on bytes it has, never while it
    waits for more, so a layer the network is slow to bring leaves the CPU to
    the others. Where the bytes come faster than they are unpacked (a
    registry on a fast link), the layer needed first is unpacked first:
    it is ready for containerd's commit and for its snapshot while the later
    ones still arrive, instead of all of them being ready at the end.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("StageTurns needs at least one turn")
        self._free = size
        self._waiting: list[tuple[object, int]] = []
        self._arrivals = itertools.count()
        self._changed = threading.Condition()

    def acquire(self, key: object) -> None:
        with self._changed:
            entry = (key, next(self._arrivals))
            heapq.heappush(self._waiting, entry)
            while not (self._free > 0 and self._waiting[0] == entry):
                self._changed.wait()
            heapq.heappop(self._waiting)
            self._free -= 1
            self._changed.notify_all()  # the next in line may have a turn too

    def release(self) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()


class _Chunks(Protocol):
    """Where an inflow takes its bytes from: a ThreadFeed (a queue in tests)."""

    def get(self) -> bytes | None: ...


class _Inflow:
    """The layer's bytes as the download delivers them, decompressed and hashed:
    the file-like object the tar reader reads from (in the unpacking thread)."""

    def __init__(self, chunks: _Chunks, gzip: bool) -> None:
        self._chunks = chunks
        self._inflate = zlib.decompressobj(wbits=31) if gzip else None
        self._turns: StageTurns | None = None
        self._key: object = None
        self._holding = False
        self._pending = b""
        self._at = 0  # how much of _pending was read
        self.hasher = hashlib.sha256()
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (fewer at a chunk's end); b"" only at the end.
        A whole chunk asked for is handed over as it is, without a copy."""
        while self._at >= len(self._pending) and not self.ended:
            self._pending, self._at = self._next(), 0
        if self._at == 0 and (size < 0 or size >= len(self._pending)):
            out, self._pending = self._pending, b""
            return out
        end = len(self._pending) if size < 0 else min(len(self._pending), self._at + size)
        out = self._pending[self._at : end]
        self._at = end
        return out

    def drain(self) -> None:
        """Read to the end: bytes after the tar's end are part of the diff ID too."""
        while self.read(READ_SIZE):
            pass

    def take_turns(self, turns: StageTurns, key: object) -> None:
        """Hold a turn of ``turns`` while working on each chunk (see StageTurns)."""
        self._turns, self._key = turns, key

    def leave_turn(self) -> None:
        if self._holding and self._turns is not None:
            self._holding = False
            self._turns.release()

    def _next(self) -> bytes:
        self.leave_turn()  # waiting for bytes holds no turn
        chunk = self._chunks.get()
        if chunk is None:
            self.ended = True
            if self._inflate is not None and not self._inflate.eof:
                raise EOFError("compressed layer ends early")
            return b""
        if self._turns is not None:
            self._turns.acquire(self._key)
            self._holding = True
        data = self._decompress(chunk) if self._inflate is not None else chunk
        self.hasher.update(data)
        return data

    def _decompress(self, chunk: bytes) -> bytes:
        assert self._inflate is not None
        parts = [self._inflate.decompress(chunk)]
        while self._inflate.eof and self._inflate.unused_data:
            rest = self._inflate.unused_data  # gzip allows several members, one after the other
            self._inflate = zlib.decompressobj(wbits=31)
            parts.append(self._inflate.decompress(rest))
        return b"".join(parts)


class _TarStream:
    """Just enough of a stream-mode TarFile for the extractor: the members in
    order (headers parsed by ``TarInfo.fromtarfile``: PAX and GNU long names
    included), and each member's data read straight from the inflow. tarfile's
    own stream mode copies every byte of data three or four times."""

    encoding = tarfile.ENCODING
    errors = "surrogateescape"

    def __init__(self, inflow: _Inflow) -> None:
        self.fileobj = self
        self._inflow = inflow
        self._position = 0
        #: Where the next header starts; fromtarfile sets it past each member's data.
        self.offset = 0
        self.pax_headers: dict[str, str] = {}

    # The file object fromtarfile reads headers from.
    def tell(self) -> int:
        return self._position

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer at the end of the stream."""
        first = self._inflow.read(size)
        if len(first) == size or not first:
            self._position += len(first)
            return first
        parts = [first]
        got = len(first)
        while got < size and (more := self._inflow.read(size - got)):
            parts.append(more)
            got += len(more)
        self._position += got
        return b"".join(parts)

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        while True:
            self._skip_to(self.offset)
            try:
                member = tarfile.TarInfo.fromtarfile(self)  # type: ignore[arg-type]
            except (tarfile.EOFHeaderError, tarfile.EmptyHeaderError):
                return  # two zero blocks, or the stream ends on a block boundary
            except tarfile.HeaderError as exc:
                raise tarfile.ReadError(str(exc)) from exc
            if member.issparse():
                raise tarfile.ReadError(f"{member.name}: sparse members are left to containerd")
            yield member

    def extractfile(self, member: tarfile.TarInfo) -> _MemberData:
        self._skip_to(member.offset_data)
        return _MemberData(self, member.size)

    def _skip_to(self, offset: int) -> None:
        while self._position < offset:
            if not self.read(min(READ_SIZE, offset - self._position)):
                raise tarfile.ReadError("unexpected end of data")


class _MemberData:
    """One member's data, read from the stream as it comes (short reads)."""

    def __init__(self, stream: _TarStream, size: int) -> None:
        self._stream = stream
        self._left = size

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0 or size == 0:
            return b""
        want = self._left if size < 0 else min(size, self._left)
        data = self._stream._inflow.read(want)
        if not data:
            raise tarfile.ReadError("unexpected end of data")
        self._stream._position += len(data)
        self._left -= len(data)
        return data


class _LayerExtractor(TreeExtractor):
    """rootfs_archive's in-root extractor, plus what an overlay upper directory
    holds: whiteouts, opaque directories and the entries' xattrs."""

    def __init__(self, root_fd: int) -> None:
        super().__init__(root_fd, "/", no_overwrite=False, owner=None)
        self.opaque_root = False
        #: Directories made because an entry needed them, parents first.
        self.implied: list[str] = []

    def open_parent(self, parent: str) -> int:
        try:
            return open_in_root(self.root_fd, parent, os.O_RDONLY | os.O_DIRECTORY)
        except PathNotFound:
            pass
        # A directory the layer implies but does not hold: containerd gives it
        # the attributes of the same directory in the lower layers, which
        # install() copies once it sees them. Made here as the extractor does.
        parts = [p for p in parent.split("/") if p]
        for end in range(1, len(parts) + 1):
            prefix = "/" + "/".join(parts[:end])
            try:
                found = lstat_in_root(self.root_fd, prefix)
            except PathNotFound:
                self.implied.append(prefix)
                continue
            if not stat.S_ISDIR(found.st_mode):
                raise ImpliedDirectory(f"{prefix} is not a directory", path=prefix, err=errno.ENOTDIR)
        return mkdir_all_in_root(self.root_fd, parent, IMPLIED_DIRECTORY_MODE)

    def entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = go_join("/", go_clean(member.name).lstrip("/") or ".")
        base = go_base(path)
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(path, base, member)
            return
        super().entry(archive, member)
        # trusted.* is overlayfs's own namespace (opaque directories, redirects):
        # containerd never takes it from a layer, and neither does a stage.
        xattrs = {k[len(PAX_XATTR_PREFIX):]: v for k, v in member.pax_headers.items()
                  if k.startswith(PAX_XATTR_PREFIX) and not k.startswith(PAX_XATTR_PREFIX + "trusted.")}  # fmt: skip
        if xattrs and (member.isreg() or member.isdir()):
            fd = open_in_root(self.root_fd, path, os.O_RDONLY | os.O_NOFOLLOW, follow_final=False)
            try:
                for key, value in xattrs.items():
                    os.setxattr(fd, key, value.encode("utf-8", "surrogateescape"))
            finally:
                os.close(fd)

    def _whiteout(self, path: str, base: str, member: tarfile.TarInfo) -> None:
        parent_path = go_dir(path)
        if base.startswith(WHITEOUT_META_PREFIX) and base != WHITEOUT_OPAQUE:
            return  # aufs bookkeeping (.wh..wh.plnk and such): nothing in overlay
        parent = self.open_parent(parent_path)
        try:
            if base == WHITEOUT_OPAQUE:
                os.setxattr(parent, OPAQUE_XATTR, b"y")
                if parent_path == "/":
                    self.opaque_root = True  # the staging root's own xattr does not move
                return
            hidden = base[len(WHITEOUT_PREFIX):]
            with contextlib.suppress(FileNotFoundError):
                existing = os.stat(hidden, dir_fd=parent, follow_symlinks=False)
                if stat.S_ISDIR(existing.st_mode):
                    shutil.rmtree(hidden, dir_fd=parent)
                else:
                    os.unlink(hidden, dir_fd=parent)
            os.mknod(hidden, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
            os.chown(hidden, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)


class LayerStage:
    """One layer being unpacked into ``directory`` by a thread of its own."""

    def __init__(
        self, directory: Path, *, gzip: bool, turns: StageTurns | None = None, key: object = None
    ) -> None:
        self.directory = directory
        self._loop = asyncio.get_running_loop()
        self._feed = ThreadFeed(QUEUE_CHUNKS)
        self._inflow = _Inflow(self._feed, gzip)
        if turns is not None:
            self._inflow.take_turns(turns, key)
        self._done: asyncio.Future[str | None] = self._loop.create_future()
        self.opaque_root = False
        self.implied: list[str] = []
        self.failure = ""
        #: Held by the one install that moves the files; what it decided, for the others.
        self.installing = asyncio.Lock()
        self.installed: bool | None = None
        directory.mkdir(mode=0o700)
        self._thread = threading.Thread(target=self._run, name=f"unpack {directory.name}", daemon=True)
        self._thread.start()

    @classmethod
    def start(
        cls, directory: Path, media_type: str, *, turns: StageTurns | None = None, key: object = None
    ) -> LayerStage | None:
        """A stage for a layer of ``media_type``, or None for one it does not
        unpack (zstd). With ``turns`` its thread works only in its turn (``key``)."""
        if media_type in _GZIP_TYPES:
            return cls(directory, gzip=True, turns=turns, key=key)
        if media_type in _PLAIN_TYPES:
            return cls(directory, gzip=False, turns=turns, key=key)
        return None

    async def feed(self, chunk: bytes) -> None:
        """The next bytes of the blob; waits while QUEUE_CHUNKS are unread."""
        await self._feed.put(chunk)

    def end(self) -> None:
        """No more bytes (the whole blob, or an abandoned download: then it fails)."""
        self._feed.close()

    async def diff_id(self) -> str | None:
        """The diff ID of what was staged once the thread is done; None if it failed."""
        self.end()
        return await asyncio.shield(self._done)

    def discard(self) -> None:
        """Remove what is staged (blocking; the thread must be done)."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def _run(self) -> None:
        result: str | None = None
        try:
            root = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                extractor = _LayerExtractor(root)
                extractor.run(_TarStream(self._inflow))  # type: ignore[arg-type]
                self._inflow.drain()
                self.opaque_root = extractor.opaque_root
                self.implied = extractor.implied
                result = "sha256:" + self._inflow.hasher.hexdigest()
            finally:
                os.close(root)
        except (OSError, RootPathError, tarfile.TarError, EOFError, UnicodeError, zlib.error) as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a bug here must not take the pull down: containerd unpacks instead
            log.exception("unpacking %s while it downloads", self.directory.name)
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self._inflow.leave_turn()
            if result is None:
                self._feed.drain()  # so the download never waits for a thread that gave up
            self._loop.call_soon_threadsafe(_settle, self._done, result)


class Stager:
    """Stages for one kind of work (pulls, loads): under ``root``, which must be
    on containerd's filesystem and is emptied here (what a crash left), their
    threads taking turns, one core left to the rest."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.turns = StageTurns(max(1, (os.cpu_count() or 2) - 1))
        #: A number per pull or load, for the turns' keys: earlier ones go first.
        self.numbers = itertools.count()
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(mode=0o700, parents=True)

    def start(self, name: str, media_type: str, key: object) -> LayerStage | None:
        """A stage in a directory of its own named after ``name``; None for a
        type it does not unpack."""
        return LayerStage.start(self.root / f"{name}-{secrets.token_hex(4)}", media_type, turns=self.turns, key=key)


async def staged(chunks: AsyncIterator[bytes], stage: LayerStage) -> AsyncIterator[bytes]:
    """``chunks``, each also handed to ``stage``; the stage learns where they end."""
    try:
        async for chunk in chunks:
            await stage.feed(chunk)
            yield chunk
    finally:
        stage.end()


async def install_layer(
    ns: Namespace, stage: LayerStage, *, index: int, chain: Sequence[str], diff_ids: Sequence[str]
) -> bool:
    """Commit snapshot ``chain[index]`` from ``stage`` (see install), unless it
    is committed already; the layers below must be committed."""
    info = await ns.stat_snapshot(chain[index])
    if info is not None and info.kind == "committed":
        return True
    return await install(
        ns, stage, parent=chain[index - 1] if index else "", chain_id=chain[index], diff_id=diff_ids[index],
        key=f"dockyard-extract-{secrets.token_hex(6)}-{chain[index]}",
    )  # fmt: skip


async def discard_stage(stage: LayerStage) -> None:
    """Wait for the stage's thread to end, then remove what it staged."""
    stage.end()
    await stage.diff_id()  # the thread is done: nothing writes there any more
    await asyncio.to_thread(stage.discard)


def _settle(future: asyncio.Future[str | None], result: str | None) -> None:
    if not future.done():
        future.set_result(result)


def upper_directory(mounts: Sequence[Mount]) -> str | None:
    """The writable directory of an active overlayfs snapshot's mounts, if this
    is the shape it knows: one overlay mount with ``upperdir=``, or (no parent)
    one bind mount of the directory."""
    if len(mounts) != 1:
        return None
    mount = mounts[0]
    if mount.type == "overlay":
        uppers = [o.partition("=")[2] for o in mount.options if o.startswith("upperdir=")]
        return uppers[0] if len(uppers) == 1 else None
    if mount.type == "bind" and "rw" in mount.options:
        return mount.source
    return None


async def install(
    ns: Namespace, stage: LayerStage, *, parent: str, chain_id: str, diff_id: str, key: str
) -> bool:
    """Commit snapshot ``chain_id`` on ``parent`` from what ``stage`` unpacked.

    False (nothing changed) if the stage failed or staged something other
    than ``diff_id``, or the snapshot's directory is not one it can move the
    staged files into; the caller unpacks with containerd then. A snapshot
    committed meanwhile (a concurrent pull) counts as done.
    """
    async with stage.installing:
        if stage.installed is None:
            stage.installed = await _install(ns, stage, parent=parent, chain_id=chain_id, diff_id=diff_id, key=key)
        return stage.installed


async def _install(
    ns: Namespace, stage: LayerStage, *, parent: str, chain_id: str, diff_id: str, key: str
) -> bool:
    staged = await stage.diff_id()
    if staged != diff_id:
        log.info("unpacking %s with containerd: %s", chain_id,
                 stage.failure or f"staged diff ID {staged} is not {diff_id}")  # fmt: skip
        return False
    mounts = await ns.prepare_snapshot(key, parent)
    try:
        upper = upper_directory(mounts)
        lowers = lower_directories(mounts)
        if upper is None or not await asyncio.to_thread(_move_into, stage, upper, lowers):
            await ns.remove_snapshot(key)
            return False
        try:
            await ns.commit_snapshot(chain_id, key)
        except errors.Conflict:
            await ns.remove_snapshot(key)  # committed meanwhile by a containerd unpack
        return True
    except BaseException:
        with contextlib.suppress(errors.DockyardError):
            await asyncio.shield(ns.remove_snapshot(key))
        raise


def lower_directories(mounts: Sequence[Mount]) -> list[str]:
    """The lower directories of an overlay mount, topmost first (none for a bind)."""
    if len(mounts) != 1 or mounts[0].type != "overlay":
        return []
    for option in mounts[0].options:
        if option.startswith("lowerdir="):
            return option.partition("=")[2].split(":")
    return []


def _move_into(stage: LayerStage, upper: str, lowers: Sequence[str]) -> bool:
    """Rename the staged entries into the (empty) upper directory; False if it
    is on another filesystem or not empty, before anything moved."""
    source = os.open(stage.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in stage.implied:
            _inherit(source, path, lowers)
        target = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(source).st_dev != os.fstat(target).st_dev or os.listdir(target):
                return False
            for name in os.listdir(source):
                os.rename(name, name, src_dir_fd=source, dst_dir_fd=target)
            if stage.opaque_root:
                os.setxattr(target, OPAQUE_XATTR, b"y")
            return True
        finally:
            os.close(target)
    finally:
        os.close(source)


def _inherit(staging: int, path: str, lowers: Sequence[str]) -> None:
    """Give the implied directory ``path`` the owner, mode, times and xattrs of
    the topmost lower layer's directory there (containerd's mkparent); a lower
    layer with something else there ends the search, keeping the defaults."""
    for lower in lowers:
        root = os.open(lower, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                found = open_in_root(root, path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, follow_final=False)
            except PathNotFound:
                continue
            except RootPathError:
                return  # not a directory there: the defaults stay
            try:
                info = os.fstat(found)
                attrs = {name: os.getxattr(found, name) for name in os.listxattr(found)
                         if not name.startswith("trusted.")}  # fmt: skip
            finally:
                os.close(found)
        finally:
            os.close(root)
        target = open_in_root(staging, path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, follow_final=False)
        try:
            os.fchown(target, info.st_uid, info.st_gid)
            os.fchmod(target, stat.S_IMODE(info.st_mode))
            os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
            for name, value in attrs.items():
                os.setxattr(target, name, value)
        finally:
            os.close(target)
        return


__all__ = ["ImpliedDirectory", "LayerStage", "StageTurns", "install", "lower_directories", "upper_directory"]
