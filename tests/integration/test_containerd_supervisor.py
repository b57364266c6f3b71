"""EmbeddedContainerd against the real containerd binary: start, plugins, restart
after death, adoption through the pid file, stop, and start-up failures."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.containerd import Containerd, EmbeddedContainerd, ExternalContainerd
from dockyard.testing.containerd_fixture import unmount_under


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-ctrd-sup-", dir="/tmp"))
    yield path
    unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
async def supervisor(root: Path) -> AsyncIterator[EmbeddedContainerd]:
    async with EmbeddedContainerd(
        data_root=root / "data", exec_root=root / "exec", log_level="info"
    ) as sup:
        yield sup


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is not running. It may also vanish
    # between the two looks.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


async def test_layout_pid_file_and_plugins(root: Path, supervisor: EmbeddedContainerd) -> None:
    state = root / "exec" / "containerd"
    assert supervisor.address == str(state / "containerd.sock")
    assert (state / "containerd.pid").read_text() == f"{supervisor.pid}\n"
    assert (root / "data" / "containerd").is_dir()
    assert (state / "containerd.log").exists()

    plugins = subprocess.run(
        ["ctr", "--address", supervisor.address, "plugins", "ls"],
        capture_output=True, text=True, check=True,
    ).stdout
    rows = {tuple(line.split()[:2]): line.split()[-1] for line in plugins.splitlines()[1:]}
    assert rows[("io.containerd.snapshotter.v1", "overlayfs")] == "ok"
    assert rows[("io.containerd.runtime.v2", "task")] == "ok"
    assert rows[("io.containerd.grpc.v1", "tasks")] == "ok"
    assert rows[("io.containerd.grpc.v1", "diff")] == "ok"
    assert all(status == "ok" for status in rows.values()), plugins
    assert ("io.containerd.grpc.v1", "cri") not in rows
    assert ("io.containerd.snapshotter.v1", "btrfs") not in rows


async def test_restarts_after_death(supervisor: EmbeddedContainerd) -> None:
    first = supervisor.pid
    assert first is not None
    restarts = supervisor.restarts
    os.kill(first, signal.SIGKILL)
    async with asyncio.timeout(20):
        while supervisor.restarts == restarts or not supervisor.ready.is_set():
            await asyncio.sleep(0.05)
    assert supervisor.pid != first
    async with Containerd(supervisor.address) as client:
        assert (await client.version()).startswith("1.6.")
    assert Path(supervisor.layout.pid_file).read_text() == f"{supervisor.pid}\n"


async def test_keeps_retrying_after_a_failed_restart(supervisor: EmbeddedContainerd) -> None:
    restarts = supervisor.restarts
    binary = supervisor._binary
    supervisor._binary = "false"  # the next restart attempt fails at once
    try:
        pid = supervisor.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        async with asyncio.timeout(20):
            while supervisor.pid is not None or supervisor.ready.is_set():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # at least one failed attempt
        assert supervisor.restarts == restarts
    finally:
        supervisor._binary = binary
    async with asyncio.timeout(30):
        await supervisor.ready.wait()
    assert supervisor.restarts == restarts + 1
    async with Containerd(supervisor.address) as client:
        await client.version()


async def test_adopts_containerd_of_a_killed_dockyard(tmp_path: Path) -> None:
    first = EmbeddedContainerd(data_root=tmp_path / "data", exec_root=tmp_path / "exec")
    await first.start()
    pid = first.pid
    assert pid is not None
    try:
        # "Kill dockyard": its supervision ends, containerd keeps running.
        first._stopping = True
        assert first._monitor is not None
        first._monitor.cancel()

        async with EmbeddedContainerd(
            data_root=tmp_path / "data", exec_root=tmp_path / "exec"
        ) as second:
            assert second.pid == pid
            assert second.adopted
            async with Containerd(second.address) as client:
                await client.version()
        # The adopter owns it: stopping the second supervisor stopped it.
        async with asyncio.timeout(10):
            while alive(pid):
                await asyncio.sleep(0.05)
        assert not second.layout.pid_file.exists()
    finally:
        await first.stop()
        unmount_under(tmp_path)


async def test_stale_pid_file_starts_a_new_containerd(tmp_path: Path) -> None:
    exec_root = tmp_path / "exec"
    (exec_root / "containerd").mkdir(parents=True)
    # PID of a process that is certainly not our containerd: ourselves.
    (exec_root / "containerd" / "containerd.pid").write_text(f"{os.getpid()}\n")
    async with EmbeddedContainerd(data_root=tmp_path / "data", exec_root=exec_root) as sup:
        assert not sup.adopted
        assert sup.pid != os.getpid()
        pid = sup.pid
    assert pid is not None and not alive(pid)
    unmount_under(tmp_path)


async def test_missing_binary(tmp_path: Path) -> None:
    sup = EmbeddedContainerd(
        data_root=tmp_path / "d", exec_root=tmp_path / "e", binary="no-such-containerd"
    )
    with pytest.raises(errors.Unavailable, match="'no-such-containerd' not found"):
        await sup.start()


async def test_containerd_that_exits_at_start(tmp_path: Path) -> None:
    # `false` stands in for a containerd that dies on a bad config.
    sup = EmbeddedContainerd(data_root=tmp_path / "d", exec_root=tmp_path / "e", binary="false")
    with pytest.raises(errors.Unavailable, match="exited with status 1"):
        await sup.start()
    assert not sup.layout.pid_file.exists()


async def test_external(supervisor: EmbeddedContainerd, tmp_path: Path) -> None:
    async with ExternalContainerd(supervisor.address) as ext:
        assert ext.address == supervisor.address
        assert ext.ready.is_set()
    with pytest.raises(errors.Unavailable):
        async with ExternalContainerd(str(tmp_path / "none.sock"), start_timeout=0.3):
            pass
