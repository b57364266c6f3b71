"""Tar out of and into a container's root, never leaving it (``docker cp``, the archive API).

Everything here works through directory fds obtained with
:mod:`dockyard.engine.rootfs_path` and single-component ``*at`` calls that do
not follow symlinks, so no container path is ever joined onto a host path:

- :func:`stat_path` is ``HEAD .../archive``: dockerd's ``PathStat`` of a path.
- :func:`archive_path` is ``GET .../archive``: it resolves and checks at once
  (errors before any byte is sent) and returns a :class:`RootArchive` whose
  chunks are a tar of the file or tree, symlinks archived as symlinks (never
  followed), hard links detected by (device, inode), sockets skipped, entries
  named as dockerd names them (``wire.pathstat.tar_entry_name``).
- :func:`extract_into` is ``PUT .../archive``: it unpacks a tar stream into a
  directory of the root the way moby's ``archive.Untar`` does, with the
  difference that matters: each entry's parent is opened by in-root
  resolution and the entry is made with ``mkdirat``/``openat(O_EXCL|O_NOFOLLOW)``
  /``symlinkat``/``linkat``/``mknodat`` relative to it, so an entry, a symlink
  made by an earlier entry, a hard link, or a symlink a container process
  swaps in while the copy runs can at worst redirect a write elsewhere inside
  the root, never outside it.

The work is blocking file I/O; the ``async`` wrappers run it in a thread.

    RootPathError (from rootfs_path: PathNotFound 404, ...)
    └── ArchiveCopyError                  500, as dockerd: the copy failed part-way
        ├── BreakoutError                 an entry, symlink or hard link names a place outside the
        │                                 extraction directory (moby's lexical checks)
        ├── OverwriteError                noOverwriteDirNonDir: dir replaced by non-dir or back
        ├── MalformedTar                  not a tar, or cut short
        └── ExtractionPointNotDirectory (InvalidParameter, 400)
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import shutil
import stat
import tarfile
import threading
from collections.abc import AsyncIterable, AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.engine.rootfs_path import (
    PathNotADirectory,
    PathNotFound,
    RootPathError,
    lstat_in_root,
    mkdir_all_in_root,
    open_in_root,
    resolve_in_root,
    root_path_error,
)
from dockyard.errors import InvalidParameter
from dockyard.wire.pathstat import (
    ArchiveSource,
    PathStat,
    archive_source,
    container_abs_path,
    go_base,
    go_clean,
    go_dir,
    go_file_mode,
    go_join,
    preserve_trailing_dot_or_separator,
    tar_entry_name,
)

__all__ = [
    "ArchiveCopyError",
    "BreakoutError",
    "ExtractionPointNotDirectory",
    "MalformedTar",
    "OverwriteError",
    "RootArchive",
    "archive_path",
    "extract_into",
    "extract_into_async",
    "stat_path",
]

BLOCK = 512
#: Chunks handed to the HTTP layer: large enough that the thread hop is cheap.
CHUNK = 1 << 20
#: The mode moby gives directories an entry implies but the tar does not contain.
IMPLIED_DIRECTORY_MODE = 0o755


class ArchiveCopyError(RootPathError):
    def __init__(self, message: str, *, path: str, err: int = errno.EIO) -> None:
        super().__init__(message, path=path, err=err)


class BreakoutError(ArchiveCopyError):
    pass


class OverwriteError(ArchiveCopyError):
    pass


class MalformedTar(ArchiveCopyError):
    """500, as dockerd answers a body that is not a tar (``archive/tar: invalid tar header``)."""


class ExtractionPointNotDirectory(ArchiveCopyError, InvalidParameter):
    def __init__(self, path: str) -> None:
        super().__init__("extraction point is not a directory", path=path, err=errno.ENOTDIR)


def _q(text: str) -> str:
    """Close enough to Go's ``%q`` for messages."""
    return json.dumps(text, ensure_ascii=False)


# -- HEAD --------------------------------------------------------------------------


def stat_path(root_fd: int, path: str) -> PathStat:
    """dockerd's ``containerFSView.Stat`` of ``path`` (``HEAD .../archive``).

    An ``lstat`` (a trailing ``/`` or ``/.`` follows the last link, as the
    kernel does); for a symlink, ``link_target`` is its target fully resolved
    inside the root. ``name`` is the base name of the path as asked. Raises
    :class:`~dockyard.engine.rootfs_path.PathNotFound` (also for ``""``:
    dockerd's ``lstat("")`` fails) and other ``RootPathError``.
    """
    if path == "":
        raise PathNotFound(": no such file or directory", path=path, err=errno.ENOENT)
    abs_path = container_abs_path(path)
    info = lstat_in_root(root_fd, abs_path)
    target = resolve_in_root(root_fd, abs_path) if stat.S_ISLNK(info.st_mode) else ""
    return PathStat(name=go_base(abs_path), size=info.st_size, mode=go_file_mode(info.st_mode),
                    mtime_ns=info.st_mtime_ns, link_target=target)


# -- GET ---------------------------------------------------------------------------


def _header(name: str, info: os.stat_result, kind: bytes, linkname: str = "") -> bytes:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.mode = info.st_mode & 0o7777
    entry.uid, entry.gid = info.st_uid, info.st_gid
    entry.uname = entry.gname = ""
    # moby truncates to whole seconds and writes no atime/ctime.
    entry.mtime = info.st_mtime_ns // 1_000_000_000
    entry.size = info.st_size if kind == tarfile.REGTYPE else 0
    entry.linkname = linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        entry.devmajor, entry.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
    return entry.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def _kind(mode: int) -> bytes | None:
    if stat.S_ISREG(mode):
        return tarfile.REGTYPE
    if stat.S_ISDIR(mode):
        return tarfile.DIRTYPE
    if stat.S_ISLNK(mode):
        return tarfile.SYMTYPE
    if stat.S_ISCHR(mode):
        return tarfile.CHRTYPE
    if stat.S_ISBLK(mode):
        return tarfile.BLKTYPE
    if stat.S_ISFIFO(mode):
        return tarfile.FIFOTYPE
    return None  # sockets: moby skips them too


class RootArchive:
    """A tar of one path inside a root, made lazily; owns its source fd until :meth:`close`.

    Iterate it (blocking: in a thread) or ``async for`` over :meth:`aiter`,
    once. ``stat`` is the header value for the response. Files that vanish
    while the tar is made are left out, as moby does; a file that shrinks is
    padded with zeros to the size its header announced.
    """

    def __init__(self, *, stat: PathStat, source: ArchiveSource, fd: int, base: str | None) -> None:
        self.stat = stat
        self._source = source
        self._fd = fd  # the directory itself (base None), or the parent of ``base``
        self._base = base
        self._lock = threading.Lock()
        self._closed = False
        self._started = False
        self._gen = self._generate()

    def __enter__(self) -> RootArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop and release the fds; waits for a chunk being made in another thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._gen.close()
            os.close(self._fd)

    def _step(self) -> bytes | None:
        with self._lock:
            if self._closed:
                return None
            chunk = next(self._gen, None)
        if chunk is None:
            self.close()
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        if self._started:
            raise RuntimeError("a RootArchive is read once")
        self._started = True
        while (chunk := self._step()) is not None:
            yield chunk

    async def aiter(self) -> AsyncIterator[bytes]:
        """The chunks, each made in a worker thread; closes the archive at the end or on error."""
        if self._started:
            raise RuntimeError("a RootArchive is read once")
        self._started = True
        try:
            while (chunk := await asyncio.to_thread(self._step)) is not None:
                yield chunk
        finally:
            await asyncio.to_thread(self.close)

    def _generate(self) -> Generator[bytes, None, None]:
        out = bytearray()
        seen: dict[tuple[int, int], str] = {}
        stack: list[tuple[int, str, Iterator[str]]] = []
        try:
            if self._base is not None:
                yield from self._entry(out, seen, self._fd, self._base, self._base)
            else:
                top = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self._fd)
                stack.append((top, ".", self._listing(top)))
                self._add(out, tar_entry_name(".", self._source, is_dir=True), os.fstat(top),
                          tarfile.DIRTYPE)
            while stack:
                if len(out) >= CHUNK:
                    yield bytes(out)
                    out.clear()
                fd, rel, names = stack[-1]
                name = next(names, None)
                if name is None:
                    os.close(stack.pop()[0])
                    continue
                child = name if rel == "." else f"{rel}/{name}"
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(info.st_mode):
                    yield from self._entry(out, seen, fd, name, child)
                    continue
                try:
                    sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=fd)
                except OSError as err:
                    if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                        continue  # gone, or swapped for something else since the stat
                    raise
                stack.append((sub, child, self._listing(sub)))
                self._add(out, tar_entry_name(child, self._source, is_dir=True), os.fstat(sub),
                          tarfile.DIRTYPE)
            out += b"\0" * (2 * BLOCK)
            yield bytes(out)
        finally:
            for fd, _, _ in stack:
                os.close(fd)

    @staticmethod
    def _listing(fd: int) -> Iterator[str]:
        # Go's WalkDir order: names sorted as bytes.
        return iter(sorted(os.listdir(fd), key=os.fsencode))

    def _add(self, out: bytearray, name: str, info: os.stat_result, kind: bytes,
             linkname: str = "") -> None:
        out += _header(name, info, kind, linkname)

    def _entry(self, out: bytearray, seen: dict[tuple[int, int], str], dir_fd: int, name: str,
               rel: str) -> Iterator[bytes]:
        """One non-directory entry (a directory as ``base`` of a file source cannot happen)."""
        tar_name = tar_entry_name(rel, self._source, is_dir=False)
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return
        kind = _kind(info.st_mode)
        if kind is None:
            return
        if kind != tarfile.DIRTYPE and info.st_nlink > 1:
            key = (info.st_dev, info.st_ino)
            first = seen.get(key)
            if first is not None:
                self._add(out, tar_name, info, tarfile.LNKTYPE, first)
                return
            seen[key] = tar_name
        if kind == tarfile.SYMTYPE:
            self._add(out, tar_name, info, kind, os.readlink(name, dir_fd=dir_fd))
            return
        if kind != tarfile.REGTYPE:
            self._add(out, tar_name, info, kind)
            return
        try:
            # O_NONBLOCK: if a FIFO was swapped in since the stat, do not hang on it.
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                         dir_fd=dir_fd)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ELOOP):
                return
            raise
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return
            self._add(out, tar_name, info, tarfile.REGTYPE)
            left = info.st_size
            while left:
                data = os.read(fd, min(left, CHUNK))
                if not data:
                    data = b"\0" * min(left, CHUNK)  # shrank under us: keep the archive well-formed
                out += data
                left -= len(data)
                if len(out) >= CHUNK:
                    yield bytes(out)
                    out.clear()
            out += b"\0" * (-info.st_size % BLOCK)
        finally:
            os.close(fd)


def archive_path(root_fd: int, path: str, *, rebase_name: str | None = None) -> RootArchive:
    """``GET .../archive``: resolve ``path`` in the root, stat it, and prepare its tar.

    Everything that can fail before the first byte fails here
    (:class:`~dockyard.engine.rootfs_path.PathNotFound` and other
    ``RootPathError``). Entries are named as dockerd names them: the tree's
    top takes the base name of ``path`` (``rebase_name`` overrides it), a
    trailing ``/.`` archives the contents (names start ``./``), ``/`` gives
    absolute names. The caller closes the result (or reads it to the end).
    """
    file_stat = stat_path(root_fd, path)
    abs_path = container_abs_path(path)
    source = archive_source(abs_path, is_dir=file_stat.is_dir)
    if rebase_name is not None:
        source = ArchiveSource(source_dir=source.source_dir, source_base=source.source_base,
                               rebase_name=rebase_name)
    flags = os.O_RDONLY | os.O_DIRECTORY
    if file_stat.is_dir:
        # Follow the last link only where the stat did (a trailing / or /.), so
        # what is archived is what was stat'ed, or the open fails.
        follow = abs_path.endswith(("/", "/."))
        fd = open_in_root(root_fd, abs_path, flags, follow_final=follow)
        return RootArchive(stat=file_stat, source=source, fd=fd, base=None)
    fd = open_in_root(root_fd, source.source_dir, flags)
    return RootArchive(stat=file_stat, source=source, fd=fd, base=source.source_base)


# -- PUT ---------------------------------------------------------------------------


_UNIX_MAX_NS = (1 << 63) - 1


def _tar_time_ns(member: tarfile.TarInfo, key: str) -> int | None:
    raw = member.pax_headers.get(key)
    if raw is None:
        return int(member.mtime) * 1_000_000_000 if key == "mtime" else None
    whole, _, frac = raw.partition(".")
    sign = -1 if whole.startswith("-") else 1
    value = abs(int(whole or "0")) * 1_000_000_000 + int((frac[:9] or "0").ljust(9, "0"))
    return sign * value


def _bound(ns: int) -> int:
    # moby's boundTime: times the kernel cannot take become the epoch.
    return ns if 0 <= ns <= _UNIX_MAX_NS else 0


class _Prefixed:
    """A reader that gives ``head`` back before the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)


class TreeExtractor:
    def __init__(self, root_fd: int, dest: str, *, no_overwrite: bool,
                 owner: tuple[int, int] | None) -> None:
        self.root_fd = root_fd
        self.dest = dest
        self.no_overwrite = no_overwrite
        self.owner = owner
        self.dir_times: list[tuple[str, int, int]] = []
        self.may_mknod = os.geteuid() == 0

    def run(self, archive: tarfile.TarFile) -> None:
        for member in archive:
            self.entry(archive, member)
        for path, atime, mtime in self.dir_times:
            try:
                fd = open_in_root(self.root_fd, path, os.O_RDONLY | os.O_DIRECTORY,
                                  follow_final=False)
            except RootPathError:
                continue  # a later entry replaced it; moby would fail here, nothing is lost
            try:
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)

    def entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = go_clean(member.name)
        if name == ".." or name.startswith("../"):
            raise BreakoutError(f"{_q(member.name)} is outside of {_q(self.dest)}", path=member.name)
        rel = name.lstrip("/") or "."
        path = go_join(self.dest, rel)
        is_dir = member.isdir()
        if rel == ".":
            if is_dir:
                return  # the extraction point itself: moby leaves it as it is
            raise OverwriteError(f"cannot overwrite directory {_q(self.dest)} with non-directory "
                                 f"{_q(self.dest)}", path=self.dest)
        parent = self.open_parent(go_dir(path))
        try:
            self.create(archive, member, parent, go_base(path), path, is_dir)
        except OSError as err:
            raise root_path_error(err, path) from err
        finally:
            os.close(parent)

    def open_parent(self, parent: str) -> int:
        flags = os.O_RDONLY | os.O_DIRECTORY
        try:
            return open_in_root(self.root_fd, parent, flags)
        except PathNotFound:
            # moby's createImpliedDirectories: 0755, owned by root (as we are).
            return mkdir_all_in_root(self.root_fd, parent, IMPLIED_DIRECTORY_MODE)

    def create(self, archive: tarfile.TarFile, member: tarfile.TarInfo, parent: int, base: str,
               path: str, is_dir: bool) -> None:
        try:
            existing: os.stat_result | None = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            was_dir = stat.S_ISDIR(existing.st_mode)
            if self.no_overwrite and was_dir and not is_dir:
                raise OverwriteError(f"cannot overwrite directory {_q(path)} with non-directory "
                                     f"{_q(self.dest)}", path=path)
            if self.no_overwrite and not was_dir and is_dir:
                raise OverwriteError(f"cannot overwrite non-directory {_q(path)} with directory "
                                     f"{_q(self.dest)}", path=path)
            if not (was_dir and is_dir):
                if was_dir:
                    shutil.rmtree(base, dir_fd=parent)
                else:
                    os.unlink(base, dir_fd=parent)

        uid, gid = self.owner if self.owner is not None else (member.uid, member.gid)
        mode = member.mode & 0o7777
        mtime = _bound(_tar_time_ns(member, "mtime") or 0)
        atime = _bound(max(_tar_time_ns(member, "atime") or 0, mtime))

        if member.isreg():
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600, dir_fd=parent)
            try:
                data = archive.extractfile(member)
                assert data is not None  # a regular member always has a reader
                while chunk := data.read(CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                # chown before chmod: chown clears set-id bits.
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
                os.utime(fd, ns=(atime, mtime))
            finally:
                os.close(fd)
            return

        if is_dir:
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(base, 0o700, dir_fd=parent)
            fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent)
            try:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            # Last, so files made inside do not move it again.
            self.dir_times.append((path, atime, mtime))
            return

        if member.issym():
            # moby's lexical check, kept for the same answers; the real guarantee
            # is that a link's target is only ever resolved in-root.
            target = go_join(go_dir(path), member.linkname)
            if not target.startswith(self.dest):
                raise BreakoutError(f"invalid symlink {_q(path)} -> {_q(member.linkname)}", path=path)
            os.symlink(member.linkname, base, dir_fd=parent)
            os.chown(base, uid, gid, dir_fd=parent, follow_symlinks=False)
            os.utime(base, ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)
            return

        if member.islnk():
            target = go_join(self.dest, member.linkname)
            if not target.startswith(self.dest):
                raise BreakoutError(f"invalid hardlink {_q(target)} -> {_q(member.linkname)}",
                                    path=path)
            source = open_in_root(self.root_fd, go_dir(target), os.O_PATH | os.O_DIRECTORY)
            try:
                # flags 0: a symlink as the link's source is linked, not followed.
                os.link(go_base(target), base, src_dir_fd=source, dst_dir_fd=parent,
                        follow_symlinks=False)
            finally:
                os.close(source)
        elif member.ischr() or member.isblk():
            if not self.may_mknod:
                return  # moby skips devices where it may not make them
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        elif member.isfifo():
            os.mkfifo(base, 0o600, dir_fd=parent)
        else:
            raise ArchiveCopyError(f"unhandled tar header type {member.type[0]}", path=path)
        self.finish_node(parent, base, uid, gid, mode, atime, mtime)

    @staticmethod
    def finish_node(parent: int, base: str, uid: int, gid: int, mode: int, atime: int,
                    mtime: int) -> None:
        """Owner, mode and times of a hard link, device or FIFO, through an fd of the node itself."""
        os.chown(base, uid, gid, dir_fd=parent, follow_symlinks=False)
        fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            if not stat.S_ISLNK(os.fstat(fd).st_mode):
                # There is no fchmod for an O_PATH fd; its /proc link is the node itself,
                # so nothing swapped in by name since can redirect the chmod.
                os.chmod(f"/proc/self/fd/{fd}", mode)
        finally:
            os.close(fd)
        os.utime(base, ns=(atime, mtime), dir_fd=parent, follow_symlinks=False)


def _extraction_point(root_fd: int, dest_path: str) -> str:
    """dockerd's ``EvalSymlinks(Join("/", path))`` in-root; the directory must exist."""
    try:
        resolved = resolve_in_root(root_fd, dest_path)
        os.close(open_in_root(root_fd, resolved, os.O_PATH | os.O_DIRECTORY, follow_final=False))
    except PathNotFound as err:
        raise PathNotFound(str(err), path=dest_path, err=err.errno) from err
    except PathNotADirectory as err:
        raise ExtractionPointNotDirectory(dest_path) from err
    return go_clean(preserve_trailing_dot_or_separator(resolved, dest_path))


def extract_into(root_fd: int, dest_path: str, tar_stream: BinaryIO, *,
                 no_overwrite_dir_non_dir: bool, copy_uid_gid: tuple[int, int] | None = None) -> None:
    """``PUT .../archive``: unpack ``tar_stream`` into the directory ``dest_path`` of the root.

    Blocking; see :func:`extract_into_async`. ``tar_stream`` is read with
    ``read(n)`` (plain, gzip, bzip2 or xz); an empty stream is an empty
    archive. Entry names are cleaned and taken relative to ``dest_path``
    (``/abs`` lands at ``dest/abs``; ``../x`` is a :class:`BreakoutError`);
    missing parents are made 0755. Ownership is the entry's uid/gid, or
    ``copy_uid_gid`` when given (``copyUIDGID``: the caller looks up the
    container's user). With ``no_overwrite_dir_non_dir`` an entry that would
    replace a directory with a non-directory or back is an
    :class:`OverwriteError`; otherwise whatever is in the way is removed, as
    moby does. Devices are made only when running as root.

    Raises :class:`PathNotFound` (``dest_path`` missing: dockerd's 404),
    :class:`ExtractionPointNotDirectory`, :class:`MalformedTar`, and other
    ``RootPathError``; entries before the failing one stay, as with dockerd.
    """
    dest = _extraction_point(root_fd, dest_path)
    head = tar_stream.read(BLOCK)
    if not head:
        return
    extractor = TreeExtractor(root_fd, dest, no_overwrite=no_overwrite_dir_non_dir, owner=copy_uid_gid)
    try:
        with tarfile.open(fileobj=_Prefixed(head, tar_stream), mode="r|*") as archive:  # type: ignore[call-overload]
            extractor.run(archive)
    except (tarfile.TarError, EOFError, UnicodeError) as err:
        raise MalformedTar(f"invalid tar archive: {err}", path=dest_path) from err


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


async def extract_into_async(root_fd: int, dest_path: str, chunks: AsyncIterable[bytes], *,
                             no_overwrite_dir_non_dir: bool,
                             copy_uid_gid: tuple[int, int] | None = None) -> None:
    """:func:`extract_into` in a worker thread, fed from ``chunks`` through a pipe.

    When the archive ends before ``chunks`` does (tar padding), the rest is
    read and dropped, so the request body is consumed; when extraction fails,
    reading stops and the error is raised.
    """
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")

    def work() -> None:
        try:
            extract_into(root_fd, dest_path, reader, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                         copy_uid_gid=copy_uid_gid)
        finally:
            reader.close()  # a write blocked on a full pipe now fails instead of hanging

    worker = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        feeding = True
        async for chunk in chunks:
            if feeding and not worker.done():
                try:
                    await asyncio.to_thread(_write_all, write_fd, chunk)
                except BrokenPipeError:
                    feeding = False
            elif worker.done() and worker.exception() is not None:
                break
    finally:
        os.close(write_fd)
        # The thread ends soon either way: it has read EOF, or it has failed.
        await asyncio.shield(worker)
