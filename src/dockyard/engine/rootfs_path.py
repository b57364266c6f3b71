"""Paths inside a container's root, resolved as if the root were ``/``.

Every container path dockyard touches (``docker cp``, the archive API, export)
goes through here, never through a host path string join: a container that
plants ``/x -> /`` or ``/y -> ../../..`` must not make dockyard, running as
root, read or write the host's files. Resolution is chroot-like: ``..`` at the
root stays at the root, and absolute symlink targets start again at the root.

Two implementations give the same answers:

- ``openat2(2)`` with ``RESOLVE_IN_ROOT`` (Linux 5.6+): the kernel does the
  walk and retries it itself when a concurrent rename could have let it escape.
- a component-by-component walk (older kernels): each component is opened with
  ``O_PATH|O_NOFOLLOW`` relative to the fd of the previous one, symlinks are
  read through their own fd and their targets pushed back onto the walk, and
  the final open carries ``O_NOFOLLOW``, so a symlink swapped in mid-walk fails
  the call instead of leading out.

:data:`RESOLVER` names the one in use; it is picked once, at import, and tests
set it to run both. Bind mounts are the caller's business: a path under a
mount's destination is resolved in a root that is the mount's source.

Errors (``errno`` and the container ``path`` kept on each):

    RootPathError (DockyardError, 500)   any other failure of the walk or the open
    ├── PathNotFound (NotFound, 404)     ENOENT: a component does not exist
    ├── PathNotADirectory                ENOTDIR: a non-directory used as one
    └── PathLoop                         ELOOP: too many symlinks, or O_NOFOLLOW met one

Nothing here closes the ``root_fd`` it is given; every fd it returns is the
caller's to close.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import os
import stat
from collections import deque

from dockyard.errors import DockyardError, NotFound

__all__ = [
    "PathLoop",
    "PathNotADirectory",
    "PathNotFound",
    "RESOLVER",
    "Resolver",
    "RootPathError",
    "container_file_not_found",
    "lstat_in_root",
    "mkdir_all_in_root",
    "open_in_root",
    "openat2_available",
    "resolve_in_root",
    "root_path_error",
]

#: The kernel's MAXSYMLINKS: the walk gives up (ELOOP) after this many links.
MAX_SYMLINKS = 40

# <linux/openat2.h>; the syscall number is the same on every architecture
# that has openat2 (it came after the unified syscall table).
_SYS_OPENAT2 = 437
_RESOLVE_IN_ROOT = 0x10


class RootPathError(DockyardError):
    """A container path could not be resolved or opened inside its root."""

    def __init__(self, message: str, *, path: str, err: int) -> None:
        super().__init__(message)
        self.path = path
        self.errno = err


class PathNotFound(RootPathError, NotFound):
    """ENOENT. The engine words it as dockerd does: :func:`container_file_not_found`."""


class PathNotADirectory(RootPathError):
    """ENOTDIR (dockerd answers 500 here too)."""


class PathLoop(RootPathError):
    """ELOOP: more than :data:`MAX_SYMLINKS` links, or a symlink where none may be followed."""


def container_file_not_found(path: str, container: str) -> NotFound:
    """dockerd's 404 for a missing container path (``containerFileNotFound``)."""
    return NotFound(f"Could not find the file {path} in container {container}")


def root_path_error(err: OSError, path: str) -> RootPathError:
    """The :class:`RootPathError` for an ``OSError`` met while working on container ``path``."""
    code = err.errno or errno.EIO
    text = f"{path}: {os.strerror(code).lower()}"
    if code == errno.ENOENT:
        return PathNotFound(text, path=path, err=code)
    if code == errno.ENOTDIR:
        return PathNotADirectory(text, path=path, err=code)
    if code == errno.ELOOP:
        return PathLoop(text, path=path, err=code)
    return RootPathError(text, path=path, err=code)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    how = _OpenHow(flags=flags, mode=mode if flags & (os.O_CREAT | os.O_TMPFILE) else 0,
                   resolve=_RESOLVE_IN_ROOT)
    raw = os.fsencode(path or ".")
    while True:
        fd = _syscall(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(raw),
                      ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)))
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        # EAGAIN: a rename raced the walk and the kernel would rather we retry
        # than risk an escape; EINTR: a signal.
        if code not in (errno.EAGAIN, errno.EINTR):
            raise OSError(code, os.strerror(code), path)


def openat2_available() -> bool:
    """Whether this kernel has ``openat2`` with ``RESOLVE_IN_ROOT``."""
    try:
        os.close(_openat2(-100, "/", os.O_PATH | os.O_CLOEXEC, 0))  # AT_FDCWD
    except OSError as err:
        if err.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.E2BIG):
            return False  # EPERM: a seccomp profile that does not know the syscall
        raise
    return True


class Resolver(enum.Enum):
    OPENAT2 = "openat2"
    WALK = "walk"


#: The implementation in use; set once at import. Tests set it to run both.
RESOLVER: Resolver = Resolver.OPENAT2 if openat2_available() else Resolver.WALK


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _forces_directory(path: str) -> bool:
    """A trailing ``/``, ``/.`` or ``/..`` makes the kernel follow the last symlink and want a dir."""
    return path.endswith("/") or path.rsplit("/", 1)[-1] in (".", "..")


def _walk_open(root_fd: int, path: str, flags: int, mode: int, follow_final: bool) -> int:
    """The fallback: what ``openat2(RESOLVE_IN_ROOT)`` does, one component at a time."""
    must_be_dir = _forces_directory(path)
    follow_final = follow_final or must_be_dir
    if flags & os.O_CREAT and flags & os.O_EXCL:
        follow_final = False  # O_EXCL never follows a final symlink: EEXIST, as open(2) says
    pending = deque(_parts(path))
    stack: list[int] = []  # O_PATH fds of the directories walked into; empty = the root
    links = 0
    try:
        while True:
            here = stack[-1] if stack else root_fd
            if not pending:
                # The path named a directory already walked into (the root, or a trailing ..).
                return os.open(".", flags | os.O_CLOEXEC, mode, dir_fd=here)
            name = pending.popleft()
            if name == "..":
                if stack:
                    os.close(stack.pop())
                continue
            last = not pending
            if last and not follow_final:
                return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=here)
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=here)
                raise
            info = os.fstat(fd)
            if stat.S_ISLNK(info.st_mode):
                # Read through the fd just opened, so what is followed is what was checked.
                target = os.readlink("", dir_fd=fd)
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while stack:
                        os.close(stack.pop())
                target_parts = [p for p in target.split("/") if p not in ("", ".")]
                pending.extendleft(reversed(target_parts))
                continue
            if last:
                os.close(fd)
                # O_NOFOLLOW: if a symlink was swapped in since the check, fail, don't follow.
                opened = os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=here)
                if must_be_dir and not stat.S_ISDIR(os.fstat(opened).st_mode):
                    os.close(opened)
                    raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
                return opened
            if not stat.S_ISDIR(info.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(fd)
    finally:
        for fd in stack:
            os.close(fd)


def open_in_root(root_fd: int, path: str, flags: int, mode: int = 0, *,
                 follow_final: bool = True) -> int:
    """Open ``path`` as seen from inside the root whose directory fd is ``root_fd``.

    ``path`` may be absolute or relative; both start at the root. With
    ``follow_final=False`` a symlink as the last component is not followed
    (``O_NOFOLLOW``: opened itself with ``O_PATH``, ELOOP otherwise), unless
    the path ends in ``/`` or ``/.``, which always follows, as the kernel does.
    ``O_CLOEXEC`` is always added. Returns an fd the caller owns.
    Raises :class:`RootPathError` (a subclass per errno); never opens anything
    outside the root.
    """
    if not follow_final:
        flags |= os.O_NOFOLLOW
    try:
        if RESOLVER is Resolver.OPENAT2:
            return _openat2(root_fd, path, flags | os.O_CLOEXEC, mode)
        return _walk_open(root_fd, path, flags & ~os.O_NOFOLLOW, mode, follow_final)
    except OSError as err:
        raise root_path_error(err, path) from err


def lstat_in_root(root_fd: int, path: str) -> os.stat_result:
    """``lstat`` of ``path`` inside the root: parents resolved in-root, the last symlink not followed."""
    fd = open_in_root(root_fd, path, os.O_PATH, follow_final=False)
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def resolve_in_root(root_fd: int, path: str) -> str:
    """The absolute container path ``path`` leads to, every symlink evaluated in-root.

    Like moby's ``symlink.FollowSymlinkInScope``: components that do not exist
    are kept as written (``..`` among them still cannot climb above ``/``), so
    a dangling link resolves to where its target would be. For messages and
    for ``PathStat.linkTarget``; to act on a file, open it with
    :func:`open_in_root` rather than re-resolving this string. Always uses the
    walk (``openat2`` cannot name what does not exist). Raises
    :class:`RootPathError` (ENOTDIR, ELOOP).
    """
    pending = deque(_parts(path))
    names: list[str] = []
    fds: list[int] = []
    links = 0
    try:
        while pending:
            name = pending.popleft()
            if name == "..":
                if names:
                    names.pop()
                    if len(fds) > len(names):
                        os.close(fds.pop())
                continue
            if len(names) > len(fds):  # below a component that does not exist
                names.append(name)
                continue
            here = fds[-1] if fds else root_fd
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=here)
            except FileNotFoundError:
                names.append(name)
                continue
            info = os.fstat(fd)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink("", dir_fd=fd)
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    names.clear()
                    while fds:
                        os.close(fds.pop())
                pending.extendleft(reversed(_parts(target)))
                continue
            if pending and not stat.S_ISDIR(info.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            names.append(name)
            fds.append(fd)
    except OSError as err:
        raise root_path_error(err, path) from err
    finally:
        for fd in fds:
            os.close(fd)
    return "/" + "/".join(names)


def mkdir_all_in_root(root_fd: int, path: str, mode: int) -> int:
    """``mkdir -p`` inside the root; returns an fd (``O_RDONLY|O_DIRECTORY``) of the last directory.

    Each missing directory is made with ``mkdirat`` relative to the in-root fd
    of its parent, then given exactly ``mode`` (no umask). Existing
    components, symlinks to directories included, are kept. Raises
    :class:`RootPathError` (ENOTDIR when a component is not a directory).
    """
    flags = os.O_RDONLY | os.O_DIRECTORY
    current = open_in_root(root_fd, "/", flags)
    done: list[str] = []
    try:
        for name in path.split("/"):
            if name in ("", "."):
                continue
            done.append(name)
            prefix = "/".join(done)
            try:
                nxt = open_in_root(root_fd, prefix, flags)
            except PathNotFound:
                created = True
                try:
                    os.mkdir(name, 0o700, dir_fd=current)
                except FileExistsError:
                    created = False  # made concurrently, or a dangling symlink: the reopen decides
                except OSError as err:
                    raise root_path_error(err, "/" + prefix) from err
                # O_NOFOLLOW on what we made: a symlink swapped in for it fails, never leads on.
                nxt = open_in_root(root_fd, prefix, flags, follow_final=not created)
                if created:
                    os.fchmod(nxt, mode)
            os.close(current)
            current = nxt
    except BaseException:
        os.close(current)
        raise
    return current
