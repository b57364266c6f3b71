"""Named network namespaces: a bind mount of an nsfs file, as ``ip netns add`` makes.

A namespace made here outlives every process in it until ``delete`` unmounts
and unlinks its file, so runc can join it by path (the OCI spec's
``linux.namespaces[].path``) and the CNI plugins can configure it before the
container's process exists.

Raises only ``NetnsError`` (a subclass of ``dockyard.errors.SystemError``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from dockyard import errors

__all__ = ["NetnsError", "create", "delete", "is_mounted"]


class NetnsError(errors.SystemError):
    """A namespace could not be made or removed."""


async def _run(*argv: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
    except OSError as err:
        raise NetnsError(f"{argv[0]}: {err}") from err
    _, stderr = await proc.communicate()
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {stderr.decode(errors='replace').strip()}")


def is_mounted(path: Path) -> bool:
    """True if ``path`` is a mount point (an nsfs bind mount made by ``create``)."""
    target = str(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == target for line in f)


async def create(path: Path) -> None:
    """Make a fresh network namespace bound at ``path`` (which must not exist)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o444))
    except FileExistsError:
        raise NetnsError(f"network namespace {path} already exists") from None
    try:
        # util-linux's unshare binds the new namespace onto the file itself.
        await _run("unshare", f"--net={path}", "true")
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


async def delete(path: Path) -> None:
    """Unmount and unlink ``path``; a missing or unmounted file is not an error."""
    if not path.exists():
        return
    if is_mounted(path):
        await _run("umount", str(path))
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
