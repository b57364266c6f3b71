"""StdioHub with the real shim on the other end of the FIFOs (containerd + runc, busybox)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.containerd import Namespace
from dockyard.engine.fifo import create_fifos
from dockyard.engine.logs import LogsOptions, read_logs
from dockyard.engine.stdio import StdioHub
from dockyard.testing.containerd_fixture import (
    ContainerdUnderTest,
    busybox_rootfs,
    embedded_containerd,
    remove_test_cgroups,
)
from dockyard.testing.memstream import memory_stream_pair
from dockyard.wire.stdcopy import STDERR, STDOUT

NS = "stdio-test"
TIMEOUT = 30


@pytest.fixture(scope="module")
async def ctrd() -> AsyncIterator[ContainerdUnderTest]:
    async with embedded_containerd(prefix="dockyard-ctrd-stdio-") as running:
        await running.client.create_namespace(NS)
        yield running
    remove_test_cgroups("dockyard-stdio-test")


@pytest.fixture(scope="module")
async def rootfs(ctrd: ContainerdUnderTest) -> AsyncIterator[tuple[Namespace, str]]:
    async with busybox_rootfs(ctrd.client.namespace(NS)) as (leased, chain_id):
        yield leased, chain_id


def spec(container_id: str, args: list[str], *, terminal: bool) -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "process": {"terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": args,
                    "env": ["PATH=/bin:/usr/bin:/sbin", "TERM=xterm"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        ],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")],
                  "cgroupsPath": f"/dockyard-stdio-test/{container_id}"},
    }


@contextlib.asynccontextmanager
async def container(ns: Namespace, chain: str, cid: str, args: list[str], *, terminal: bool = False):
    await ns.prepare_snapshot(cid, chain)
    await ns.create_container(cid, image="busybox-fixture", spec=spec(cid, args, terminal=terminal),
                              snapshot_key=cid)
    try:
        yield
    finally:
        if await ns.get_task(cid) is not None:
            with contextlib.suppress(Exception):
                await ns.kill_task(cid, signal.SIGKILL, all=True)
            await ns.wait_task(cid)
            await ns.delete_task(cid)
        await ns.delete_container(cid)
        await ns.remove_snapshot(cid)


async def collect(subscription) -> dict[int, bytes]:
    out = {STDOUT: b"", STDERR: b""}
    async for stream, data in subscription:
        out[stream] += data
    return out


async def test_task_stdio_through_the_shim(rootfs: tuple[Namespace, str], tmp_path: Path) -> None:
    ns, chain = rootfs
    cid = "stdio-1"
    payload = os.urandom(4 << 20)
    async with container(ns, chain, cid, ["/bin/sh", "-c", "cat; echo err >&2; exit 5"]):
        fifos = create_fifos(tmp_path / "fifos", cid, stdin=True)
        log = tmp_path / "json.log"
        async with StdioHub(fifos, log_path=log, on_stdin_eof=lambda: ns.close_io(cid)) as hub:
            sub = hub.subscribe()
            client, server = memory_stream_pair()
            stdin, stdout, stderr = fifos.as_strings()
            await ns.create_task(cid, stdin=stdin, stdout=stdout, stderr=stderr)
            await ns.start_task(cid)
            hub.process_started()

            async def send() -> None:
                await client.write(payload)
                await client.send_eof()

            _, copied, output = await asyncio.wait_for(asyncio.gather(
                send(), hub.attach_stdin(server, close_on_eof=True), collect(sub)), TIMEOUT)
            assert copied is True
            assert (await asyncio.wait_for(ns.wait_task(cid), TIMEOUT)).code == 5
            await hub.finish(grace=2)
        assert hashlib.sha256(output[STDOUT]).digest() == hashlib.sha256(payload).digest()
        assert output[STDERR] == b"err\n"
        events = [e async for e in read_logs(log, LogsOptions(stdout=False))]
        assert events == [(STDERR, b"err\n")]


async def test_tty_task(rootfs: tuple[Namespace, str], tmp_path: Path) -> None:
    ns, chain = rootfs
    cid = "stdio-tty"
    async with container(ns, chain, cid, ["/bin/sh", "-c", "read x; echo \"got $x\""], terminal=True):
        fifos = create_fifos(tmp_path / "fifos", cid, stdin=True, stderr=False)
        async with StdioHub(fifos, log_path=tmp_path / "log", on_stdin_eof=lambda: ns.close_io(cid)) as hub:
            sub = hub.subscribe()
            stdin, stdout, _ = fifos.as_strings()
            await ns.create_task(cid, stdin=stdin, stdout=stdout, terminal=True)
            await ns.start_task(cid)
            hub.process_started()
            client, server = memory_stream_pair()
            await client.write(b"hi\r")
            copy = asyncio.create_task(hub.attach_stdin(server, close_on_eof=False))
            output = await asyncio.wait_for(collect(sub), TIMEOUT)
            assert (await asyncio.wait_for(ns.wait_task(cid), TIMEOUT)).code == 0
            copy.cancel()
            await hub.finish(grace=2)
        assert output[STDERR] == b""
        assert output[STDOUT].endswith(b"got hi\r\n")  # the terminal echoes "hi" first
