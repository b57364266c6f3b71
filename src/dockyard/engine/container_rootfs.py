"""A container's filesystem as the archive API sees it, mounted privately for one call.

moby's ``openContainerFS``: the container's root filesystem with its bind
mounts (``Binds``, bind ``Mounts``, and /etc/hostname, /etc/hosts,
/etc/resolv.conf) and a private tmpfs at each tmpfs destination, so that a
path inside a bind mount reaches the mount's source and ``..`` or a symlink
there still resolves inside the container. It works the same for created,
running and stopped containers.

The view lives in a directory of its own below ``<exec_root>/rootfs-views``,
which is a private mount while any view is open (unmounted with the last one,
so nothing outlives the daemon): nothing mounted there propagates to the host
or to any other mount namespace, and one lazy unmount takes a view down.
The root filesystem is

- for a container whose task exists, a bind of the overlay mount the shim
  made (found in ``/proc/self/mountinfo`` by its ``upperdir``): a second
  overlay mount of the same upper directory while the container writes to it
  is what overlayfs calls undefined behaviour;
- otherwise a fresh mount of the snapshot's mounts.

Every bind mount is attached through file descriptors (``open_tree`` →
``mount_setattr`` → ``move_mount``): the destination is opened with
:func:`~dockyard.engine.rootfs_path.open_in_root`, so a symlink planted in the
container (``/data -> /``) can at worst move the mount elsewhere inside the
view, never onto a host path, and read-only and private propagation are set on
the detached tree before it is attached anywhere.

Errors: ``RootfsViewError`` (``SystemError``, 500) when a mount fails;
``RootPathError`` from ``rootfs_path`` when a destination cannot be resolved.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import secrets
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dockyard import errors
from dockyard.containerd.types import Mount
from dockyard.engine.container_fs import layer_dirs
from dockyard.engine.rootfs_path import PathNotFound, mkdir_all_in_root, open_in_root

__all__ = ["RootfsView", "RootfsViewError", "ViewMount", "open_view"]

log = logging.getLogger(__name__)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

# <linux/mount.h>; the new mount API has one number on every architecture.
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_AT_FDCWD = -100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_MOVE_MOUNT_F_EMPTY_PATH = 0x04
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_MOUNT_ATTR_RDONLY = 0x1
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
_MNT_DETACH = 2

#: containerd mount options that are flags, not filesystem data.
_FLAG_OPTIONS = {"ro": MS_RDONLY, "rw": 0, "bind": MS_BIND, "rbind": MS_BIND | MS_REC,
                 "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC}

VIEWS_DIR = "rootfs-views"


class RootfsViewError(errors.SystemError):
    """A mount the view needs could not be made."""


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise RootfsViewError(f"{what}: {os.strerror(code)}")
    return result


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _detach(target: str) -> None:
    if _libc.umount2(os.fsencode(target), _MNT_DETACH) < 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):
            log.warning("cannot unmount %s: %s", target, os.strerror(code))


def _clone_tree(source: str, *, recursive: bool) -> int:
    """A detached copy of the mount (tree) at ``source``; the caller owns the fd."""
    flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | (_AT_RECURSIVE if recursive else 0)
    return _check(_syscall(ctypes.c_long(_SYS_OPEN_TREE), ctypes.c_int(_AT_FDCWD),
                           ctypes.c_char_p(os.fsencode(source)), ctypes.c_uint(flags)),
                  f"open_tree {source}")


def _set_attrs(tree_fd: int, *, read_only: bool) -> None:
    """Private propagation (and read-only) on every mount of a detached tree."""
    attr = _MountAttr(attr_set=_MOUNT_ATTR_RDONLY if read_only else 0, attr_clr=0,
                      propagation=MS_PRIVATE, userns_fd=0)
    _check(_syscall(ctypes.c_long(_SYS_MOUNT_SETATTR), ctypes.c_int(tree_fd), ctypes.c_char_p(b""),
                    ctypes.c_uint(_AT_EMPTY_PATH | _AT_RECURSIVE), ctypes.byref(attr),
                    ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def _attach(tree_fd: int, target_fd: int) -> None:
    _check(_syscall(ctypes.c_long(_SYS_MOVE_MOUNT), ctypes.c_int(tree_fd), ctypes.c_char_p(b""),
                    ctypes.c_int(target_fd), ctypes.c_char_p(b""),
                    ctypes.c_uint(_MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH)), "move_mount")


@dataclass(frozen=True, kw_only=True, slots=True)
class ViewMount:
    """One mount laid over the root filesystem: a bind of host ``source``, or a tmpfs."""

    destination: str
    kind: str  # "bind" or "tmpfs"
    source: str = ""
    writable: bool = True
    recursive: bool = True


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def find_overlay_mount(upperdir: str, mountinfo: str | None = None) -> str | None:
    """Where an overlay with this ``upperdir`` is mounted in our namespace, if anywhere."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            mountinfo = f.read()
    wanted = "upperdir=" + upperdir
    for line in mountinfo.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, extra = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(extra) < 3 or extra[0] != "overlay":
            continue
        if wanted in [_unescape(o) for o in extra[2].split(",")] and fields[3] == "/":
            return _unescape(fields[4])
    return None


class RootfsView:
    """A mounted view; ``root_fd`` is an ``O_PATH`` directory fd of its root. Close once."""

    def __init__(self, *, directory: Path, root_fd: int) -> None:
        self.directory = directory
        self.root_fd = root_fd
        self._closed = False

    def close(self) -> None:
        """Detach every mount of the view (lazily: fds opened inside stay usable) and remove it."""
        if self._closed:
            return
        self._closed = True
        os.close(self.root_fd)
        _detach(str(self.directory))
        try:
            os.rmdir(self.directory)
        except OSError as err:
            log.warning("cannot remove %s: %s", self.directory, err)
        _release(self.directory.parent)

    def __enter__(self) -> RootfsView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_users_lock = threading.Lock()
_users: dict[Path, int] = {}


def _acquire(views_dir: Path) -> None:
    """Count a view in; the first one makes ``views_dir`` a private mount."""
    with _users_lock:
        if not _users.get(views_dir):
            _ensure_private(views_dir)
        _users[views_dir] = _users.get(views_dir, 0) + 1


def _release(views_dir: Path) -> None:
    """Count a view out; the last one takes the private mount away."""
    with _users_lock:
        left = _users.get(views_dir, 1) - 1
        _users[views_dir] = left
        if left == 0:
            _detach(str(views_dir))


def _ensure_private(views_dir: Path) -> None:
    """Make ``views_dir`` a private mount of itself (a leftover one is reused)."""
    views_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        points = [line.split()[4] for line in f if len(line.split()) > 4]
    if str(views_dir) not in {_unescape(p) for p in points}:
        _mount(str(views_dir), str(views_dir), None, MS_BIND, None)
    _mount(None, str(views_dir), None, MS_PRIVATE, None)


def _mount_rootfs(target: Path, rootfs: Sequence[Mount]) -> None:
    upper, _ = layer_dirs(rootfs)
    existing = find_overlay_mount(upper) if upper and rootfs[0].type == "overlay" else None
    if existing is not None:
        try:
            tree = _clone_tree(existing, recursive=False)
        except RootfsViewError:
            tree = -1  # unmounted since we looked: mount it ourselves
        if tree >= 0:
            try:
                _set_attrs(tree, read_only=False)
                target_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    _attach(tree, target_fd)
                finally:
                    os.close(target_fd)
            finally:
                os.close(tree)
            return
    if len(rootfs) != 1:
        raise RootfsViewError(f"cannot mount a root filesystem of {len(rootfs)} mounts")
    mount = rootfs[0]
    flags, data = 0, []
    for option in mount.options:
        if option in _FLAG_OPTIONS:
            flags |= _FLAG_OPTIONS[option]
        else:
            data.append(option)
    fstype = None if flags & MS_BIND else mount.type
    _mount(mount.source, str(target), fstype, flags, ",".join(data) or None)


def _mount_point(root_fd: int, mount: ViewMount, source_is_dir: bool) -> int:
    """An ``O_PATH`` fd of the destination, made (as moby does) if missing."""
    try:
        return open_in_root(root_fd, mount.destination, os.O_PATH)
    except PathNotFound:
        pass
    if source_is_dir:
        os.close(mkdir_all_in_root(root_fd, mount.destination, 0o755))
    else:
        parent = mount.destination.rsplit("/", 1)[0] or "/"
        os.close(mkdir_all_in_root(root_fd, parent, 0o755))
        os.close(open_in_root(root_fd, mount.destination, os.O_WRONLY | os.O_CREAT, 0o755))
    return open_in_root(root_fd, mount.destination, os.O_PATH)


def _add_mount(root_fd: int, mount: ViewMount) -> None:
    if mount.kind == "tmpfs":
        target = _mount_point(root_fd, mount, True)
        try:
            # A fresh, private tmpfs: what is written there is not the container's, as with moby.
            _mount("tmpfs", f"/proc/self/fd/{target}", "tmpfs", MS_NOSUID | MS_NODEV, None)
        finally:
            os.close(target)
        return
    try:
        source_is_dir = stat.S_ISDIR(os.stat(mount.source).st_mode)
    except OSError as err:
        log.info("bind source %s of %s: %s; left out of the view", mount.source, mount.destination, err)
        return
    tree = _clone_tree(mount.source, recursive=mount.recursive)
    try:
        _set_attrs(tree, read_only=not mount.writable)
        target = _mount_point(root_fd, mount, source_is_dir)
        try:
            _attach(tree, target)
        finally:
            os.close(target)
    finally:
        os.close(tree)


def open_view(exec_root: Path, rootfs: Sequence[Mount], mounts: Sequence[ViewMount]) -> RootfsView:
    """Mount the view (blocking; run it in a thread). ``mounts`` go on in order
    (parents before children). The caller closes the result."""
    views_dir = exec_root / VIEWS_DIR
    _acquire(views_dir)
    directory = views_dir / secrets.token_hex(8)
    root_fd = -1
    try:
        directory.mkdir(mode=0o700)
        _mount_rootfs(directory, rootfs)
        root_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        for mount in mounts:
            _add_mount(root_fd, mount)
    except BaseException:
        if root_fd >= 0:
            os.close(root_fd)
        _detach(str(directory))
        try:
            os.rmdir(directory)
        except OSError:
            pass
        _release(views_dir)
        raise
    return RootfsView(directory=directory, root_fd=root_fd)
