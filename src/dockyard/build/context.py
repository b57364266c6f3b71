"""The build context: the request's tar body unpacked into a private directory.

``receive_context`` spools the body (gzip, bzip2, xz and zstd bodies are
decompressed as they arrive), then ``unpack_context`` writes the members
under a fresh directory in a worker thread. Nothing is ever written outside
that directory: a member with an absolute name or a ``..`` component is
refused (``wire.archive.clean_member_path``), every parent directory is
opened with ``O_NOFOLLOW`` from the root down (a member that would be
written through a symlink of the context is refused), and files are created
with ``O_EXCL|O_NOFOLLOW``. Symlinks are kept as symlinks whatever they
point at: COPY resolves them inside the context root (see ``build.copy``).
Hard links are written as copies of the file they name (resolved in-root);
device nodes and FIFOs are dropped (a context never needs them).

``apply_dockerignore`` then removes what the context's ``.dockerignore``
excludes (the CLI filtered already; docker-py and curl may not), and
``read_dockerfile`` finds the Dockerfile as dockerd does.

Errors: ``ArchiveError`` (InvalidParameter) for a hostile or broken tar,
``PayloadTooLarge`` past the body limit, ``ContextError`` (InvalidParameter)
for a Dockerfile that cannot be found or a bad ``.dockerignore``.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import IO

from dockyard import errors
from dockyard.build.dockerignore import DockerignoreError, PatternMatcher, read_dockerignore
from dockyard.engine import rootfs_path
from dockyard.engine.image_load import BodyReader, spool
from dockyard.wire import archive

__all__ = [
    "ContextError",
    "DEFAULT_DOCKERFILE",
    "apply_dockerignore",
    "read_dockerfile",
    "receive_context",
    "unpack_context",
    "unpack_member",
]

DEFAULT_DOCKERFILE = "Dockerfile"
DOCKERIGNORE = ".dockerignore"
#: A Dockerfile is text; anything bigger is a mistake (BuildKit's limit is similar).
DOCKERFILE_LIMIT = 16 << 20
_COPY_CHUNK = 1 << 20


class ContextError(errors.InvalidParameter):
    """The context has no usable Dockerfile, or a malformed ``.dockerignore``."""


async def receive_context(body: BodyReader, *, spool_dir: Path, limit: int) -> IO[bytes]:
    """The body, decompressed, in an unlinked temp file (rewound)."""
    return await spool(body, spool_dir, decompress=True, limit=limit)


def _is_tar(head: bytes) -> bool:
    return len(head) >= 262 and head[257:262] == b"ustar"


def unpack_context(file: IO[bytes], root: Path) -> bool:
    """Unpack the tar in ``file`` under the existing empty directory ``root``
    (blocking). A body that is not a tar is taken as the Dockerfile itself
    (``docker build - < Dockerfile`` from older clients); returns False then."""
    head = file.read(512)
    file.seek(0)
    if head and not _is_tar(head) and head.strip(b"\x00"):
        data = file.read(DOCKERFILE_LIMIT + 1)
        if len(data) > DOCKERFILE_LIMIT:
            raise ContextError("the Dockerfile is too large")
        (root / DEFAULT_DOCKERFILE).write_bytes(data)
        return False
    # The CLI's `-f` outside the context appends the Dockerfile with Go's tar
    # writer and stops after its data: no block padding, no end marker (Go's
    # reader takes that). Python's does not, so complete the archive.
    size = file.seek(0, os.SEEK_END)
    file.write(b"\x00" * ((-size) % 512 + 1024))
    file.seek(0)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with tarfile.open(fileobj=file, mode="r|") as tar:
            for member in tar:
                unpack_member(tar, member, root_fd)
    except tarfile.TarError as exc:
        raise archive.MalformedArchive(f"invalid build context: {exc}") from exc
    finally:
        os.close(root_fd)
    return True


def _open_parent(root_fd: int, path: str) -> int:
    """An fd of the directory that will hold ``path``, creating missing ones
    (0755); refuses to pass through anything that is not a real directory."""
    fd = os.dup(root_fd)
    try:
        for name in path.split("/")[:-1]:
            try:
                nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(name, 0o755, dir_fd=fd)
                nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise archive.UnsafeArchive(
                        f"context member {path!r} would be written through a symlink or file") from exc
                raise
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


def _clear(parent_fd: int, name: str, *, keep_dir: bool) -> None:
    """Remove what is at ``name`` unless it is a directory and ``keep_dir``."""
    try:
        st = os.lstat(name, dir_fd=parent_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if keep_dir:
            return
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            _rmtree_fd(fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


def _rmtree_fd(fd: int) -> None:
    for entry in os.scandir(fd):
        if entry.is_dir(follow_symlinks=False):
            sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            try:
                _rmtree_fd(sub)
            finally:
                os.close(sub)
            os.rmdir(entry.name, dir_fd=fd)
        else:
            os.unlink(entry.name, dir_fd=fd)


def _write_file(parent_fd: int, name: str, source: IO[bytes], mode: int) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=parent_fd)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(source, out, _COPY_CHUNK)
        os.fchmod(out.fileno(), mode)


def unpack_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root_fd: int, *,
                  keep_owner: bool = False) -> None:
    """Write one member under the directory ``root_fd`` (see the module doc)."""
    path = archive.clean_member_path(member.name)
    if not path:
        return
    name = path.rsplit("/", 1)[-1]
    parent = _open_parent(root_fd, path)
    try:
        mode = member.mode & 0o7777
        if member.isdir():
            _clear(parent, name, keep_dir=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=parent)
            os.chmod(name, mode, dir_fd=parent, follow_symlinks=False)
        elif member.isreg():
            _clear(parent, name, keep_dir=False)
            source = tar.extractfile(member)
            assert source is not None
            _write_file(parent, name, source, mode)
        elif member.issym():
            _clear(parent, name, keep_dir=False)
            os.symlink(member.linkname, name, dir_fd=parent)
        elif member.islnk():
            target = archive.clean_member_path(member.linkname)
            try:
                fd = rootfs_path.open_in_root(root_fd, target, os.O_RDONLY, follow_final=False)
            except rootfs_path.RootPathError as exc:
                raise archive.MalformedArchive(f"hard link {member.name!r} names a missing file") from exc
            _clear(parent, name, keep_dir=False)
            with os.fdopen(fd, "rb") as source:
                _write_file(parent, name, source, stat.S_IMODE(os.fstat(source.fileno()).st_mode))
        else:
            return  # devices and FIFOs: nothing a build can use
        if keep_owner:
            with contextlib.suppress(OSError):
                os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
            if not member.issym():
                os.chmod(name, mode, dir_fd=parent, follow_symlinks=False)  # chown drops setuid bits
        with contextlib.suppress(OSError):
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(parent)


def apply_dockerignore(root: Path, *, keep: tuple[str, ...] = ()) -> None:
    """Remove what ``root/.dockerignore`` excludes, except the paths in ``keep``
    (the Dockerfile: dockerd reads it even when it is ignored). Blocking."""
    ignore = root / DOCKERIGNORE
    if not ignore.is_file() or ignore.is_symlink():
        return
    try:
        matcher = PatternMatcher(read_dockerignore(ignore.read_bytes()))
    except DockerignoreError as exc:
        raise ContextError(f"failed to parse {DOCKERIGNORE}: {exc}") from exc
    if not matcher.patterns:
        return
    kept = {p.strip("/") for p in keep}
    kept.add(DOCKERIGNORE)  # read by the step below; removed at the end if ignored
    ignore_ignored = matcher.matches(DOCKERIGNORE)
    kept_parents = {"/".join(k.split("/")[:i]) for k in kept for i in range(1, k.count("/") + 1)}
    for directory, dirs, files in os.walk(root, topdown=True):
        rel_dir = os.path.relpath(directory, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in list(dirs):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(directory, name)
            if os.path.islink(full):
                files.append(name)
                dirs.remove(name)
                continue
            if matcher.matches(rel) and not matcher.exclusions and rel not in kept_parents:
                shutil.rmtree(full)
                dirs.remove(name)
        for name in files:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if rel in kept:
                continue
            if matcher.matches(rel):
                os.unlink(os.path.join(directory, name))
    if matcher.exclusions:
        # Ignored directories were walked for re-included children; drop the
        # ones that ended up empty.
        for directory, _dirs, _files in os.walk(root, topdown=False):
            rel = os.path.relpath(directory, root)
            if rel != "." and matcher.matches(rel) and not os.listdir(directory):
                os.rmdir(directory)
    if ignore_ignored and DOCKERIGNORE not in {k for k in keep}:
        ignore.unlink()


def read_dockerfile(root: Path, name: str) -> tuple[str, bytes]:
    """``(path in the context, text)`` of the Dockerfile named ``name`` (default
    ``Dockerfile``, then ``dockerfile``), resolved inside the context root."""
    wanted = name or DEFAULT_DOCKERFILE
    candidates = [wanted] if name else [DEFAULT_DOCKERFILE, "dockerfile"]
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for candidate in candidates:
            try:
                fd = rootfs_path.open_in_root(root_fd, candidate, os.O_RDONLY)
            except rootfs_path.RootPathError:
                continue
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    continue
                data = f.read(DOCKERFILE_LIMIT + 1)
            if len(data) > DOCKERFILE_LIMIT:
                raise ContextError("the Dockerfile is too large")
            return candidate, data
    finally:
        os.close(root_fd)
    raise ContextError(f"Cannot locate specified Dockerfile: {wanted}")


def tar_of_files(files: dict[str, bytes]) -> bytes:
    """A small tar of regular files (tests and ``docker build -`` helpers)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
