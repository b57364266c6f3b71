"""Mounting a snapshot's mounts on a host directory, for the duration of a COPY.

The builder writes COPY/ADD results through the merged overlayfs view (so
whiteouts, opaque directories and symlinks of lower layers behave as in a
container) and reads ``--from`` sources through a read-only view. Mounts are
made in the daemon's own mount namespace and always detached on the way out.

Errors: ``MountError`` (dockyard SystemError) with the kernel's reason.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from dockyard import errors
from dockyard.containerd.types import Mount

__all__ = ["MountError", "mounted"]

_MS_RDONLY = 0x1
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MNT_DETACH = 0x2
_FLAGS = {"ro": _MS_RDONLY, "bind": _MS_BIND, "rbind": _MS_BIND | _MS_REC}
_IGNORED = frozenset({"rw", "defaults"})

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


class MountError(errors.SystemError):
    """A snapshot could not be mounted."""


def _mount_one(mount: Mount, target: str) -> None:
    flags = 0
    data: list[str] = []
    for option in mount.options:
        if option in _FLAGS:
            flags |= _FLAGS[option]
        elif option not in _IGNORED:
            data.append(option)
    kind = mount.type
    if kind == "bind":
        flags |= _MS_BIND
    rc = _libc.mount(mount.source.encode(), target.encode(), kind.encode(), flags,
                     ",".join(data).encode() if data else None)
    if rc != 0:
        err = ctypes.get_errno()
        raise MountError(f"mount {kind} on {target}: {os.strerror(err)}")
    if kind == "bind" and flags & _MS_RDONLY:
        # A bind mount ignores MS_RDONLY until remounted.
        rc = _libc.mount(None, target.encode(), None, _MS_BIND | 0x20 | _MS_RDONLY, None)  # MS_REMOUNT


def _unmount(target: str) -> None:
    _libc.umount2(target.encode(), _MNT_DETACH)


@contextlib.contextmanager
def mounted(mounts: Sequence[Mount], *, parent: Path) -> Iterator[str]:
    """Mount ``mounts`` on a fresh directory under ``parent`` and yield its path;
    an empty list yields an empty directory (the scratch root). Blocking."""
    parent.mkdir(parents=True, exist_ok=True)
    target = tempfile.mkdtemp(prefix="mnt-", dir=parent)
    done = 0
    try:
        for mount in mounts:
            _mount_one(mount, target)
            done += 1
        yield target
    finally:
        for _ in range(done):
            _unmount(target)
        with contextlib.suppress(OSError):
            os.rmdir(target)
