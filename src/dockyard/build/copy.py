"""COPY and ADD on files: find the sources, hash them for the cache, copy them.

Blocking (the executor runs these in a worker thread). Both ends are
directory fds of roots: the source root is the build context (or another
stage's or image's read-only view), the destination root the mounted
snapshot of the step. Every path on either side is resolved inside its root
(``engine.rootfs_path``): a context symlink to ``/etc`` leads to the
context's own ``etc``, never the host's, and an image symlink in the
destination path stays in the image. Below a source directory nothing is
followed: symlinks are copied as symlinks.

Docker's rules (moby ``builder/dockerfile/copy.go``): a source directory
copies its contents, not itself; a file goes to ``dest/<name>`` when
``dest`` ends in ``/`` or is a directory, else to ``dest``; several sources
need a directory destination; files are owned by 0:0 unless ``--chown``;
modes and mtimes are kept unless ``--chmod``; ADD unpacks local tar
archives (any compression) into the destination.

Errors: ``CopyError`` (InvalidParameter) with dockerd's wording.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

import zstandard

from dockyard import errors
from dockyard.build.context import unpack_member
from dockyard.engine import rootfs_path
from dockyard.wire import archive
from dockyard.wire.pathmatch import compile_match

__all__ = ["CopyError", "Owner", "SourceFile", "copy_sources", "find_sources", "hash_sources", "has_wildcards"]

_CHUNK = 1 << 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class CopyError(errors.InvalidParameter):
    """A COPY or ADD that cannot be done (missing source, bad destination)."""


@dataclass(frozen=True, kw_only=True)
class Owner:
    uid: int
    gid: int


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    """One resolved source: its path inside the source root, after symlinks."""

    path: str  # absolute, in-root
    is_dir: bool
    name: str  # the last component as written: a file keeps its link's name


def has_wildcards(path: str) -> bool:
    return any(c in path for c in "*?[")


def _clean(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _walk(root_fd: int, rel: str = "") -> list[tuple[str, bool]]:
    """Every path under the root (``a/b``), directories first, nothing followed."""
    out: list[tuple[str, bool]] = []
    fd = os.open(rel or ".", _DIR | os.O_NOFOLLOW, dir_fd=root_fd) if rel else os.dup(root_fd)
    try:
        entries = sorted(os.scandir(fd), key=lambda e: e.name)
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            is_dir = entry.is_dir(follow_symlinks=False)
            out.append((path, is_dir))
    finally:
        os.close(fd)
    return out


def find_sources(root_fd: int, patterns: Sequence[str], *, context: bool) -> list[SourceFile]:
    """The sources ``patterns`` name, in order. Wildcards match whole relative
    paths (a matched directory is not searched further); a plain path is
    resolved inside the root, following its symlinks there."""
    found: list[SourceFile] = []
    for pattern in patterns:
        clean = _clean(pattern)
        if has_wildcards(clean):
            rx = compile_match(clean)
            pending = [""]
            matches: list[SourceFile] = []
            while pending:
                base = pending.pop(0)
                for rel, is_dir in _walk(root_fd, base):
                    if rx.match(rel):
                        matches.append(_resolve(root_fd, rel, pattern, context))
                    elif is_dir:
                        pending.append(rel)
            found.extend(sorted(matches, key=lambda s: s.path))
            continue
        found.append(_resolve(root_fd, clean, pattern, context))
    if not found:
        raise CopyError("no source files were specified")
    return found


def _resolve(root_fd: int, rel: str, shown: str, context: bool) -> SourceFile:
    try:
        resolved = rootfs_path.resolve_in_root(root_fd, "/" + rel)
        st = rootfs_path.lstat_in_root(root_fd, resolved)
    except rootfs_path.RootPathError as exc:
        raise _not_found(shown, context) from exc
    if stat.S_ISLNK(st.st_mode):
        raise _not_found(shown, context)  # a dangling link
    return SourceFile(path=resolved, is_dir=stat.S_ISDIR(st.st_mode),
                      name=rel.rsplit("/", 1)[-1] or resolved.rsplit("/", 1)[-1])


def _not_found(shown: str, context: bool) -> CopyError:
    where = "file not found in build context or excluded by .dockerignore: " if context else ""
    return CopyError(f"{where}stat {shown.lstrip('/') or '.'}: file does not exist")


# -- hashing ------------------------------------------------------------------------


def hash_sources(root_fd: int, sources: Sequence[SourceFile]) -> str:
    """A digest of what the sources hold: names, types, permission bits, link
    targets and contents (not owners or times, as Docker's tarsum v1)."""
    h = hashlib.sha256()
    for source in sources:
        h.update(f"source {source.path} {source.is_dir}\n".encode())
        fd = rootfs_path.open_in_root(root_fd, source.path, os.O_RDONLY)
        try:
            if source.is_dir:
                _hash_dir(fd, "", h)
            else:
                _hash_file(fd, h)
        finally:
            os.close(fd)
    return "sha256:" + h.hexdigest()


def _hash_file(fd: int, h: Any) -> None:
    st = os.fstat(fd)
    h.update(f"file {stat.S_IMODE(st.st_mode):o} {st.st_size}\n".encode())
    while chunk := os.read(fd, _CHUNK):
        h.update(chunk)


def _hash_dir(fd: int, rel: str, h: Any) -> None:
    for entry in sorted(os.scandir(fd), key=lambda e: e.name):
        path = f"{rel}/{entry.name}"
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            h.update(f"link {path} -> {os.readlink(entry.name, dir_fd=fd)}\n".encode())
        elif stat.S_ISDIR(st.st_mode):
            h.update(f"dir {path} {stat.S_IMODE(st.st_mode):o}\n".encode())
            sub = os.open(entry.name, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            try:
                _hash_dir(sub, path, h)
            finally:
                os.close(sub)
        elif stat.S_ISREG(st.st_mode):
            h.update(f"path {path}\n".encode())
            sub = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                _hash_file(sub, h)
            finally:
                os.close(sub)


# -- copying ------------------------------------------------------------------------


def _clear(parent_fd: int, name: str, *, keep_dir: bool) -> bool:
    """Make room for ``name``; True if a directory stays there (``keep_dir``)."""
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return True
        fd = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=parent_fd)
        try:
            for entry in os.scandir(fd):
                _clear(fd, entry.name, keep_dir=False)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
        return False
    os.unlink(name, dir_fd=parent_fd)
    return False


def _copy_data(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, 1 << 30):
            pass
    except OSError:
        while chunk := os.read(src, _CHUNK):
            os.write(dst, chunk)


def _finish(fd: int, st: os.stat_result, owner: Owner, chmod: int | None) -> None:
    os.fchown(fd, owner.uid, owner.gid)
    os.fchmod(fd, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_file(src_fd: int, dst_parent: int, name: str, owner: Owner, chmod: int | None) -> None:
    st = os.fstat(src_fd)
    _clear(dst_parent, name, keep_dir=False)
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                  dir_fd=dst_parent)
    try:
        _copy_data(src_fd, out)
        _finish(out, st, owner, chmod)
    finally:
        os.close(out)


def _copy_tree(src_dir: int, dst_dir: int, owner: Owner, chmod: int | None) -> None:
    for entry in sorted(os.scandir(src_dir), key=lambda e: e.name):
        st = entry.stat(follow_symlinks=False)
        name = entry.name
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=src_dir)
            _clear(dst_dir, name, keep_dir=False)
            os.symlink(target, name, dir_fd=dst_dir)
            os.chown(name, owner.uid, owner.gid, dir_fd=dst_dir, follow_symlinks=False)
            with contextlib.suppress(OSError):
                os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)
        elif stat.S_ISDIR(st.st_mode):
            if not _clear(dst_dir, name, keep_dir=True):
                os.mkdir(name, 0o700, dir_fd=dst_dir)
            sub_src = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=src_dir)
            try:
                sub_dst = os.open(name, _DIR | os.O_NOFOLLOW, dir_fd=dst_dir)
                try:
                    _copy_tree(sub_src, sub_dst, owner, chmod)
                    _finish(sub_dst, st, owner, chmod)
                finally:
                    os.close(sub_dst)
            finally:
                os.close(sub_src)
        elif stat.S_ISREG(st.st_mode):
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
            try:
                _copy_file(fd, dst_dir, name, owner, chmod)
            finally:
                os.close(fd)


def _mkdir_all(root_fd: int, path: str, owner: Owner) -> int:
    """An fd of directory ``path`` in the root, made (0755, owned by ``owner``) where missing."""
    current = rootfs_path.open_in_root(root_fd, "/", _DIR)
    done: list[str] = []
    try:
        for name in [p for p in path.split("/") if p]:
            done.append(name)
            prefix = "/" + "/".join(done)
            try:
                nxt = rootfs_path.open_in_root(root_fd, prefix, _DIR)
            except rootfs_path.PathNotFound:
                nxt = rootfs_path.mkdir_all_in_root(root_fd, prefix, 0o755)
                os.fchown(nxt, owner.uid, owner.gid)
            except rootfs_path.PathNotADirectory as exc:
                raise CopyError(f"cannot copy to {path}: {prefix} is not a directory") from exc
            os.close(current)
            current = nxt
        return current
    except BaseException:
        os.close(current)
        raise


def _is_dir_in_root(root_fd: int, path: str) -> bool:
    try:
        fd = rootfs_path.open_in_root(root_fd, path, os.O_PATH)
    except rootfs_path.RootPathError:
        return False
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _decompressed(kind: archive.Compression, raw: IO[bytes]) -> Any:
    if kind is archive.Compression.GZIP:
        return gzip.GzipFile(fileobj=raw)
    if kind is archive.Compression.BZIP2:
        return bz2.BZ2File(raw)
    if kind is archive.Compression.XZ:
        return lzma.LZMAFile(raw)
    if kind is archive.Compression.ZSTD:
        return zstandard.ZstdDecompressor().stream_reader(raw)
    return raw


def _open_archive(fd: int) -> IO[bytes] | None:
    """The decompressed stream of a local tar archive, or None if it is not one
    (moby's ``IsArchivePath``: the first header must parse)."""
    kind = archive.detect_compression(os.pread(fd, archive.MAGIC_LENGTH, 0))
    raw = os.fdopen(os.dup(fd), "rb")
    try:
        block = _decompressed(kind, raw).read(512)
    except (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError):
        block = b""
    if len(block) < 512 or (block[257:262] != b"ustar" and not _v7_checksum_ok(block)):
        raw.close()
        return None
    raw.seek(0)
    stream: IO[bytes] = _decompressed(kind, raw)
    return stream


def _v7_checksum_ok(block: bytes) -> bool:
    try:
        stored = int(block[148:156].rstrip(b"\x00 ").decode() or "-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


def copy_sources(
    src_root: int,
    sources: Sequence[SourceFile],
    dst_root: int,
    dest: str,
    *,
    owner: Owner,
    chmod: int | None,
    unpack_archives: bool,
) -> None:
    """Copy ``sources`` to container path ``dest`` (absolute; a trailing ``/``
    means a directory) under ``dst_root``, with Docker's rules (module doc)."""
    dest_dir_wanted = dest.endswith("/") or len(sources) > 1
    if len(sources) > 1 and not dest.endswith("/"):
        raise CopyError("When using COPY with more than one source file, the destination must be "
                        "a directory and end with a /")
    for source in sources:
        fd = rootfs_path.open_in_root(src_root, source.path, os.O_RDONLY)
        try:
            if source.is_dir:
                dst = _mkdir_all(dst_root, dest, owner)
                try:
                    _copy_tree(fd, dst, owner, chmod)
                finally:
                    os.close(dst)
                continue
            if unpack_archives:
                stream = _open_archive(fd)
                if stream is not None:
                    dst = _mkdir_all(dst_root, dest, owner)
                    try:
                        with stream, tarfile.open(fileobj=stream, mode="r|") as tar:
                            for member in tar:
                                unpack_member(tar, member, dst, keep_owner=True)
                    except tarfile.TarError as exc:
                        raise CopyError(f"failed to unpack {source.path}: {exc}") from exc
                    finally:
                        os.close(dst)
                    continue
            name = source.name
            if dest_dir_wanted or _is_dir_in_root(dst_root, dest):
                parent_path, target = dest, name
            else:
                parent_path, _, target = dest.rstrip("/").rpartition("/")
            if not target:
                raise CopyError(f"cannot copy to {dest}")
            parent = _mkdir_all(dst_root, parent_path or "/", owner)
            try:
                _copy_file(fd, parent, target, owner, chmod)
            finally:
                os.close(parent)
        finally:
            os.close(fd)
