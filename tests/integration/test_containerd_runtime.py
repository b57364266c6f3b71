"""Containers, tasks, execs and events against a real containerd and runc,
with a busybox rootfs unpacked through the diff service."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dockyard import errors
from dockyard.containerd import Event, Namespace
from dockyard.containerd.types import filter_eq
from dockyard.testing.containerd_fixture import (
    ContainerdUnderTest,
    busybox_rootfs,
    embedded_containerd,
    remove_test_cgroups,
)

NS = "runtime-test"


@pytest.fixture(scope="module")
async def ctrd() -> AsyncIterator[ContainerdUnderTest]:
    async with embedded_containerd(prefix="dockyard-ctrd-runtime-") as running:
        await running.client.create_namespace(NS)
        yield running
    remove_test_cgroups("dockyard-test")


@pytest.fixture(scope="module")
async def rootfs(ctrd: ContainerdUnderTest) -> AsyncIterator[tuple[Namespace, str]]:
    """The namespace under a lease for the module, and the busybox chain ID."""
    async with busybox_rootfs(ctrd.client.namespace(NS)) as (leased, chain_id):
        yield leased, chain_id


def spec(container_id: str, args: list[str], *, terminal: bool = False) -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin:/usr/bin:/sbin", "TERM=xterm"],
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "hostname": container_id[:12],
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
            "cgroupsPath": f"/dockyard-test/{container_id}",
        },
    }


def read_fifo(path: Path) -> asyncio.Future[bytes]:
    """Read a FIFO to EOF in a thread (blocks until the shim opens it)."""

    def run() -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return asyncio.ensure_future(asyncio.to_thread(run))


async def make_container(
    ns: Namespace, chain: str, cid: str, args: list[str], *, terminal: bool = False
) -> None:
    await ns.prepare_snapshot(cid, chain)
    await ns.create_container(
        cid, image="busybox-fixture", spec=spec(cid, args, terminal=terminal),
        snapshot_key=cid, labels={"role": "test"}, extensions={"dockyard/config": b'{"a":1}'},
    )


async def cleanup(ns: Namespace, cid: str) -> None:
    if await ns.get_task(cid) is not None:
        await ns.kill_task(cid, signal.SIGKILL, all=True)
        await ns.wait_task(cid)
        await ns.delete_task(cid)
    await ns.delete_container(cid)
    await ns.remove_snapshot(cid)


async def test_container_records(rootfs: tuple[Namespace, str]) -> None:
    ns, chain = rootfs
    await make_container(ns, chain, "records-1", ["/bin/true"])
    try:
        record = await ns.get_container("records-1")
        assert (record.image, record.runtime, record.snapshotter, record.snapshot_key) == (
            "busybox-fixture", "io.containerd.runc.v2", "overlayfs", "records-1"
        )
        assert record.spec == spec("records-1", ["/bin/true"])
        assert dict(record.labels) == {"role": "test"}
        assert dict(record.extensions) == {"dockyard/config": b'{"a":1}'}
        assert record.created_at is not None

        updated = await ns.update_container("records-1", labels={"name": "/x", "role": ""},
                                            extensions={"dockyard/more": b"2"})
        assert dict(updated.labels) == {"name": "/x"}
        assert dict(updated.extensions) == {"dockyard/config": b'{"a":1}', "dockyard/more": b"2"}
        assert [c.id for c in await ns.list_containers(filter_eq("labels.name", "/x"))] == ["records-1"]
        with pytest.raises(errors.Conflict):
            await ns.create_container("records-1", image="i", spec={}, snapshot_key="records-1")
    finally:
        await cleanup(ns, "records-1")
    with pytest.raises(errors.NotFound):
        await ns.get_container("records-1")
    assert await ns.get_task("records-1") is None


async def test_run_to_exit_with_separate_streams_and_events(
    rootfs: tuple[Namespace, str], tmp_path: Path
) -> None:
    ns, chain = rootfs
    cid = "run-1"
    await make_container(ns, chain, cid, ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
    events: list[Event] = []

    async def collect() -> None:
        async for event in ns.subscribe('topic~="^/tasks/"'):
            events.append(event)
            if event.topic == "/tasks/delete":
                return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0.2)  # let the subscription reach containerd
    try:
        os.mkfifo(tmp_path / "out")
        os.mkfifo(tmp_path / "err")
        out, err = read_fifo(tmp_path / "out"), read_fifo(tmp_path / "err")
        pid = await ns.create_task(cid, stdout=str(tmp_path / "out"), stderr=str(tmp_path / "err"))
        assert pid > 0
        created = await ns.get_task(cid)
        assert created is not None and created.status == "created" and created.pid == pid
        assert await ns.start_task(cid) == pid
        status = await ns.wait_task(cid)
        assert status.code == 3 and status.exited_at is not None
        assert (await ns.get_task(cid)).status == "stopped"  # type: ignore[union-attr]
        deleted = await ns.delete_task(cid)
        assert deleted.code == 3
        assert await asyncio.wait_for(out, 10) == b"out\n"
        assert await asyncio.wait_for(err, 10) == b"err\n"
        await asyncio.wait_for(collector, 10)
    finally:
        collector.cancel()
        await cleanup(ns, cid)
    topics = [e.topic for e in events]
    assert topics == ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"]
    exit_event = events[2]
    assert exit_event.namespace == NS
    assert exit_event.payload["container_id"] == cid
    assert exit_event.payload["exit_status"] == 3
    assert exit_event.payload["pid"] == pid


async def test_stdin_exec_kill(rootfs: tuple[Namespace, str], tmp_path: Path) -> None:
    ns, chain = rootfs
    cid = "exec-1"
    await make_container(
        ns, chain, cid, ["/bin/sh", "-c", "read line; echo got:$line; exec sleep 1000"]
    )
    try:
        for name in ("in", "out", "err", "xout", "xerr"):
            os.mkfifo(tmp_path / name)
        out, err = read_fifo(tmp_path / "out"), read_fifo(tmp_path / "err")
        await ns.create_task(
            cid, stdin=str(tmp_path / "in"), stdout=str(tmp_path / "out"),
            stderr=str(tmp_path / "err"),
        )
        await ns.start_task(cid)

        def feed() -> None:
            with open(tmp_path / "in", "wb") as f:
                f.write(b"hello\n")

        await asyncio.to_thread(feed)
        await ns.close_io(cid)

        xout, xerr = read_fifo(tmp_path / "xout"), read_fifo(tmp_path / "xerr")
        await ns.exec_process(
            cid, "x1",
            process={"args": ["/bin/sh", "-c", "echo from-exec; exit 7"], "cwd": "/",
                     "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}, "terminal": False},
            stdout=str(tmp_path / "xout"), stderr=str(tmp_path / "xerr"),
        )
        assert (await ns.start_task(cid, "x1")) > 0
        assert (await ns.wait_task(cid, "x1")).code == 7
        assert await asyncio.wait_for(xout, 10) == b"from-exec\n"
        assert await asyncio.wait_for(xerr, 10) == b""
        assert (await ns.delete_process(cid, "x1")).code == 7
        assert await ns.get_task(cid, "x1") is None

        running = await ns.get_task(cid)
        assert running is not None and running.status == "running"
        assert running.pid in await ns.task_pids(cid)
        assert [t.id for t in await ns.list_tasks()] == [cid]
        with pytest.raises(errors.Conflict):
            await ns.delete_task(cid)

        await ns.kill_task(cid, signal.SIGKILL)
        assert (await ns.wait_task(cid)).code == 128 + signal.SIGKILL
        await ns.delete_task(cid)
        assert await asyncio.wait_for(out, 10) == b"got:hello\n"
        assert await asyncio.wait_for(err, 10) == b""
    finally:
        await cleanup(ns, cid)


async def test_terminal_resize(rootfs: tuple[Namespace, str], tmp_path: Path) -> None:
    ns, chain = rootfs
    cid = "tty-1"
    await make_container(ns, chain, cid, ["/bin/sh", "-c", "sleep 1; stty size"], terminal=True)
    try:
        os.mkfifo(tmp_path / "out")
        out = read_fifo(tmp_path / "out")
        await ns.create_task(cid, stdout=str(tmp_path / "out"), terminal=True)
        await ns.start_task(cid)
        await ns.resize_pty(cid, 123, 45)
        assert (await ns.wait_task(cid)).code == 0
        await ns.delete_task(cid)
        assert (await asyncio.wait_for(out, 10)).strip() == b"45 123"
    finally:
        await cleanup(ns, cid)


async def test_task_errors(rootfs: tuple[Namespace, str]) -> None:
    ns, _ = rootfs
    with pytest.raises(errors.NotFound):
        await ns.create_task("no-such-container")
    with pytest.raises(errors.NotFound):
        await ns.kill_task("no-such-container", signal.SIGTERM)
    with pytest.raises(errors.NotFound):
        await ns.wait_task("no-such-container")
