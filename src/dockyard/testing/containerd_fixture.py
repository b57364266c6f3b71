"""A real containerd in a temporary directory, for tests that talk to it directly.

    async with embedded_containerd() as ctrd:
        ns = ctrd.client.namespace("test")
        await ns.create_namespace("test")

Use it from a module- or session-scoped async fixture (one containerd per test
module at most: starting one takes a fraction of a second, but tasks and
snapshots make teardown slower). On exit containerd is stopped by its PID,
leftover mounts under the directory are detached and the directory removed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.containerd.client import Containerd, Namespace
from dockyard.containerd.types import Descriptor
from dockyard.containerd.supervisor import EmbeddedContainerd


@dataclass(frozen=True, kw_only=True)
class ContainerdUnderTest:
    root: Path
    supervisor: EmbeddedContainerd
    client: Containerd

    @property
    def address(self) -> str:
        return self.supervisor.address


def unmount_under(root: Path) -> None:
    """Lazily detach every mount below ``root`` (deepest first)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    prefix = str(root.resolve()) + "/"
    points = [line.split()[4] for line in lines if len(line.split()) > 4]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@contextlib.asynccontextmanager
async def embedded_containerd(
    *, prefix: str = "dockyard-ctrd-", log_level: str = "info"
) -> AsyncIterator[ContainerdUnderTest]:
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        async with EmbeddedContainerd(
            data_root=root / "data", exec_root=root / "exec", log_level=log_level
        ) as supervisor:
            async with Containerd(supervisor.address, content_root=supervisor.content_root) as client:
                yield ContainerdUnderTest(root=root, supervisor=supervisor, client=client)
    finally:
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.asynccontextmanager
async def busybox_rootfs(ns: Namespace) -> AsyncIterator[tuple[Namespace, str]]:
    """The busybox fixture layer unpacked as a committed snapshot, all under a
    lease held for the block: yields the leased namespace and the chain ID to
    use as a container's snapshot parent."""
    from dockyard.testing.fixtures import busybox_layer, sha256

    async with ns.lease() as leased:
        layer = busybox_layer()
        desc = Descriptor(media_type="application/vnd.oci.image.layer.v1.tar",
                          digest=sha256(layer), size=len(layer))
        await leased.write_blob("busybox-layer", layer, expected_digest=desc.digest)
        mounts = await leased.prepare_snapshot("busybox-extract", "")
        applied = await leased.apply_layer(desc, mounts)
        await leased.commit_snapshot(applied.digest, "busybox-extract")
        yield leased, applied.digest


def remove_test_cgroups(name: str) -> None:
    """runc leaves the empty parent cgroup of a test's cgroupsPath behind: remove it."""
    for parent in Path("/sys/fs/cgroup").glob(f"*/{name}"):
        with contextlib.suppress(OSError):
            parent.rmdir()
    with contextlib.suppress(OSError):
        Path("/sys/fs/cgroup", name).rmdir()
