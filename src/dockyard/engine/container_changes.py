"""``docker diff``: what a container changed, read from its snapshot's upper directory.

moby's overlay ``changes`` walk, on the container's active overlayfs
snapshot: every entry of the upper directory is an addition (``A``), a
modification (``C``, it exists in a lower layer) or, for a whiteout, a
deletion (``D``); a directory that exists below with the same size, mode and
mtime is not a change; the parent of an added or deleted entry is always
changed. Kinds as the API numbers them: 0 = C, 1 = A, 2 = D.

dockerd puts an "init layer" between the image and the container (the
mount points /etc/hosts, /etc/hostname, /etc/resolv.conf, /proc, /sys, /dev
...), so those never show in ``docker diff``. dockyard has no init layer:
runc makes the mount points in the upper directory at start. They are
treated here as if they were below, and a directory that holds one has its
mtime and size ignored (runc touched them, not the container).

The walk is fd-based (``os.fwalk``, no symlink followed) and lower layers are
probed component by component with ``O_NOFOLLOW``: a symlink a container
planted in its upper directory never leads the walk onto a host path.
``upper_changes`` blocks; ``container_changes`` runs it in a thread. Raises
``OSError``, and containerd's errors for the snapshot's mounts.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.containerd import Containerd
from dockyard.engine.container_fs import layer_dirs
from dockyard.engine.container_model import Container

__all__ = ["CHANGE_ADD", "CHANGE_DELETE", "CHANGE_MODIFY", "Change", "INIT_DIRS", "INIT_FILES", "container_changes",
           "upper_changes"]

CHANGE_MODIFY = 0
CHANGE_ADD = 1
CHANGE_DELETE = 2

#: moby's init layer (daemon/initlayer): directories, and the files mounted over.
INIT_DIRS = frozenset({"/dev", "/dev/pts", "/dev/shm", "/proc", "/sys", "/etc"})
INIT_FILES = frozenset({"/.dockerenv", "/etc/resolv.conf", "/etc/hosts", "/etc/hostname",
                        "/dev/console", "/etc/mtab"})
_INIT_ENTRIES = INIT_DIRS | INIT_FILES
_INIT_PARENTS = frozenset(p.rsplit("/", 1)[0] or "/" for p in _INIT_ENTRIES)


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    path: str
    kind: int

    def to_json(self) -> dict[str, object]:
        return {"Path": self.path, "Kind": self.kind}


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _lower_stat(layer: str, rel: str) -> os.stat_result | None:
    """The entry ``rel`` of one layer directory, parents never followed; None if absent."""
    parts = [p for p in rel.split("/") if p]
    try:
        fd = os.open(layer, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for name in parts[:-1]:
            try:
                nxt = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                    return None
                raise
            os.close(fd)
            fd = nxt
        try:
            return os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise
    finally:
        os.close(fd)


def _below(lowers: Sequence[str], rel: str) -> os.stat_result | None:
    """What the lower layers (top first) show at ``rel``: a whiteout hides the rest."""
    for layer in lowers:
        info = _lower_stat(layer, rel)
        if info is None:
            continue
        return None if _is_whiteout(info) else info
    return None


def _same_time(a: os.stat_result, b: os.stat_result) -> bool:
    # moby's sameFsTime: equal, or equal seconds where one side lost its nanoseconds.
    if a.st_mtime_ns == b.st_mtime_ns:
        return True
    sa, na = divmod(a.st_mtime_ns, 1_000_000_000)
    sb, nb = divmod(b.st_mtime_ns, 1_000_000_000)
    return sa == sb and (na == 0 or nb == 0)


def _sort_key(path: str) -> list[bytes]:
    return [os.fsencode(p) for p in path.split("/")]


def upper_changes(upper: str, lowers: Sequence[str]) -> list[Change]:
    """The changes of overlay upper directory ``upper`` over ``lowers`` (top first), in walk order."""
    found: dict[str, int] = {}
    changed_dirs: set[str] = set()
    for dirpath, dirnames, filenames, dir_fd in os.fwalk(upper, follow_symlinks=False):
        rel = os.path.relpath(dirpath, upper)
        rel_dir = "/" if rel == "." else "/" + rel
        for name in [*dirnames, *filenames]:
            path = f"{rel_dir.rstrip('/')}/{name}"
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            if path in INIT_FILES:
                continue  # a mount point: the container's writes went to its source
            if _is_whiteout(info):
                kind = CHANGE_DELETE
            else:
                below = _below(lowers, path)
                if below is None and path in INIT_DIRS:
                    continue  # made by runc; the init layer would have it
                kind = CHANGE_ADD
                if below is not None:
                    if is_dir and stat.S_ISDIR(below.st_mode):
                        holds_init = path in _INIT_PARENTS and _holds_init(dir_fd, name, path)
                        same_meta = info.st_mode == below.st_mode and (
                            holds_init or (info.st_size == below.st_size and _same_time(info, below)))
                        if same_meta:
                            continue
                    kind = CHANGE_MODIFY
            if is_dir:
                changed_dirs.add(path)
            if kind in (CHANGE_ADD, CHANGE_DELETE):
                parent = path.rsplit("/", 1)[0] or "/"
                if parent != "/" and parent not in changed_dirs:
                    found.setdefault(parent, CHANGE_MODIFY)
                    changed_dirs.add(parent)
            found[path] = kind
    return [Change(path=p, kind=k) for p, k in sorted(found.items(), key=lambda item: _sort_key(item[0]))]


def _holds_init(dir_fd: int, name: str, path: str) -> bool:
    """Whether upper directory ``path`` contains one of the init layer's entries."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return any(f"{path}/{child}" in _INIT_ENTRIES for child in os.listdir(fd))
    finally:
        os.close(fd)


async def container_changes(containerd: Containerd, container: Container) -> list[Change]:
    """``GET /containers/{id}/changes`` for one container (any state)."""
    mounts = container.mounts
    if mounts is None:
        mounts = await containerd.namespace(container.namespace).snapshot_mounts(container.id)
    upper, lowers = layer_dirs(mounts)
    if upper is None:
        return []
    return await asyncio.to_thread(upper_changes, upper, lowers)
