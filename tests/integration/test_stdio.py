"""StdioHub over real FIFOs, with a real child process standing in for the shim.

The child's stdio is opened on the FIFOs exactly as the shim opens them
(write ends of stdout/stderr, read end of stdin), so EOF, blocking and
backpressure are the kernel's, not a model's.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
from pathlib import Path

import pytest

from dockyard.engine.fifo import FifoSet, create_fifos, remove_fifos
from dockyard.engine.logs import LogsOptions, decode_entry, parse_time, read_logs
from dockyard.engine.stdio import NoStdin, StdinBusy, StdioHub, Subscription, write_output
from dockyard.testing.memstream import memory_stream_pair
from dockyard.wire.stdcopy import STDERR, STDOUT, Demuxer

TIMEOUT = 30


def spawn(command: str, fifos: FifoSet) -> subprocess.Popen[bytes]:
    """Run ``sh -c command`` on the FIFOs; our copies of its ends are closed at once."""
    files = []
    try:
        stdin = open(fifos.stdin, "rb") if fifos.stdin else subprocess.DEVNULL  # noqa: SIM115
        if fifos.stdin:
            files.append(stdin)
        stdout = open(fifos.stdout, "wb")  # noqa: SIM115
        files.append(stdout)
        stderr = open(fifos.stderr, "wb") if fifos.stderr else subprocess.STDOUT  # noqa: SIM115
        if fifos.stderr:
            files.append(stderr)
        return subprocess.Popen(["sh", "-c", command], stdin=stdin, stdout=stdout, stderr=stderr)
    finally:
        for f in files:
            f.close()


async def collect(subscription: Subscription) -> dict[int, bytes]:
    out = {STDOUT: b"", STDERR: b""}
    async for stream, data in subscription:
        out[stream] += data
    return out


async def reap(process: subprocess.Popen[bytes]) -> int:
    return await asyncio.wait_for(asyncio.to_thread(process.wait), TIMEOUT)


def normalized_log(path: Path) -> list[bytes]:
    """The log's lines with each time replaced by T (after checking it parses)."""
    lines = path.read_bytes().splitlines(keepends=True)
    out = []
    for line in lines:
        match = re.search(rb'"time":"([^"]+)"\}\n\Z', line)
        assert match, line
        parse_time(match.group(1).decode())
        out.append(line[:match.start(1)] + b"T" + line[match.end(1):])
    return out


@pytest.fixture
def fifos(tmp_path: Path) -> FifoSet:
    made = create_fifos(tmp_path / "fifos", "c0ffee", stdin=True)
    yield made
    remove_fifos(made)


def test_create_fifos(tmp_path: Path) -> None:
    made = create_fifos(tmp_path / "exec", "abc", stdin=False, stderr=False)
    assert made.stdin is None and made.stderr is None
    assert made.stdout == tmp_path / "exec" / "abc-stdout"
    assert oct(os.stat(made.stdout).st_mode & 0o777) == "0o600"
    assert made.as_strings() == ("", str(made.stdout), "")
    again = create_fifos(tmp_path / "exec", "abc", stdin=True, stderr=False)  # a stale FIFO is replaced
    assert again.stdin == tmp_path / "exec" / "abc-stdin"
    remove_fifos(again)
    assert not again.stdout.exists()


async def test_stdout_and_stderr_stay_separate_and_reach_every_subscriber(fifos: FifoSet, tmp_path: Path) -> None:
    log = tmp_path / "container-json.log"
    async with StdioHub(fifos, log_path=log) as hub:
        both = hub.subscribe()
        other = hub.subscribe()
        only_err = hub.subscribe(stdout=False)
        child = spawn("echo out; echo err >&2; printf '<&>\\t\\n'; printf 'no newline' >&2", fifos)
        hub.process_started()
        results = await asyncio.wait_for(asyncio.gather(collect(both), collect(other), collect(only_err)), TIMEOUT)
        await hub.wait_closed()
        assert await reap(child) == 0
    expected = {STDOUT: b"out\n<&>\t\n", STDERR: b"err\nno newline"}
    assert results[0] == expected
    assert results[1] == expected
    assert results[2] == {STDOUT: b"", STDERR: b"err\nno newline"}
    lines = normalized_log(log)
    assert [line for line in lines if b'"stdout"' in line] == [
        b'{"log":"out\\n","stream":"stdout","time":"T"}\n',
        b'{"log":"\\u003c\\u0026\\u003e\\u0009\\n","stream":"stdout","time":"T"}\n',
    ]
    assert [line for line in lines if b'"stderr"' in line] == [
        b'{"log":"err\\n","stream":"stderr","time":"T"}\n',
        b'{"log":"no newline","stream":"stderr","time":"T"}\n',
    ]


async def test_no_false_eof_before_the_writer_connects(fifos: FifoSet) -> None:
    async with StdioHub(fifos, log_path=None) as hub:
        sub = hub.subscribe()
        await asyncio.sleep(0.3)
        assert not hub.output_ended
        child = spawn("echo late", fifos)
        assert await asyncio.wait_for(collect(sub), TIMEOUT) == {STDOUT: b"late\n", STDERR: b""}
        await reap(child)


async def test_subscription_after_the_end_ends_at_once(fifos: FifoSet) -> None:
    async with StdioHub(fifos, log_path=None) as hub:
        child = spawn("true", fifos)
        await asyncio.wait_for(hub.wait_closed(), TIMEOUT)
        assert await collect(hub.subscribe()) == {STDOUT: b"", STDERR: b""}
        await reap(child)


async def test_20_mib_through_stdin_and_cat(fifos: FifoSet, tmp_path: Path) -> None:
    payload = os.urandom(20 << 20)
    eofs = []
    async with StdioHub(fifos, log_path=tmp_path / "log", on_stdin_eof=lambda: eofs.append(True)) as hub:
        sub = hub.subscribe(stderr=False)
        client, server = memory_stream_pair()
        child = spawn("cat", fifos)
        hub.process_started()

        async def send() -> None:
            view = memoryview(payload)
            for start in range(0, len(payload), 1 << 18):
                await client.write(bytes(view[start:start + (1 << 18)]))
            await client.send_eof()

        sender = asyncio.create_task(send())
        copied, output = await asyncio.wait_for(
            asyncio.gather(hub.attach_stdin(server, close_on_eof=True), collect(sub)), TIMEOUT)
        await sender
        assert copied is True
        assert await reap(child) == 0  # cat saw EOF: the half-close closed stdin
    assert eofs == [True]
    assert hashlib.sha256(output[STDOUT]).hexdigest() == hashlib.sha256(payload).hexdigest()
    # Every byte is in the log too, cut into partial entries where no newline came.
    assert sum(1 for _ in (tmp_path / "log").open("rb")) >= len(payload) // (16 * 1024)


async def test_stdin_close_waits_for_process_start(fifos: FifoSet) -> None:
    eofs = []
    async with StdioHub(fifos, log_path=None, on_stdin_eof=lambda: eofs.append(True)) as hub:
        sub = hub.subscribe()
        client, server = memory_stream_pair()
        await client.write(b"typed before start\n")
        await client.send_eof()
        copy = asyncio.create_task(hub.attach_stdin(server, close_on_eof=True))
        await asyncio.sleep(0.2)
        assert not copy.done() and eofs == []  # held: closing now would drop the buffered bytes
        child = spawn("cat", fifos)
        hub.process_started()
        assert await asyncio.wait_for(copy, TIMEOUT) is True
        assert await asyncio.wait_for(collect(sub), TIMEOUT) == {STDOUT: b"typed before start\n", STDERR: b""}
        assert await reap(child) == 0
    assert eofs == [True]


async def test_without_stdin_once_eof_leaves_stdin_open(fifos: FifoSet) -> None:
    async with StdioHub(fifos, log_path=None) as hub:
        sub = hub.subscribe()
        child = spawn("head -n 2", fifos)
        hub.process_started()
        for line in (b"first\n", b"second\n"):
            client, server = memory_stream_pair()
            await client.write(line)
            await client.send_eof()
            assert await asyncio.wait_for(hub.attach_stdin(server, close_on_eof=False), TIMEOUT) is True
        assert await asyncio.wait_for(collect(sub), TIMEOUT) == {STDOUT: b"first\nsecond\n", STDERR: b""}
        assert await reap(child) == 0


async def test_one_stdin_writer_at_a_time(fifos: FifoSet, tmp_path: Path) -> None:
    async with StdioHub(fifos, log_path=None) as hub:
        claim = hub.claim_stdin(close_on_eof=True)
        with pytest.raises(StdinBusy):
            hub.claim_stdin(close_on_eof=True)
        claim.release()
        hub.claim_stdin(close_on_eof=False).release()
        child = spawn("true", fifos)
        await reap(child)
    no_stdin = create_fifos(tmp_path / "f2", "x", stdin=False)
    async with StdioHub(no_stdin, log_path=None) as hub:
        with pytest.raises(NoStdin):
            hub.claim_stdin(close_on_eof=True)
        await reap(spawn("true", no_stdin))


async def test_slow_and_gone_subscribers_lose_nothing(fifos: FifoSet) -> None:
    async with StdioHub(fifos, log_path=None, subscriber_limit=64 << 10) as hub:
        slow, fast, idle = hub.subscribe(), hub.subscribe(), hub.subscribe()
        child = spawn("head -c 8388608 /dev/urandom | tee /dev/stderr", fifos)

        async def read_slowly() -> dict[int, bytes]:
            out = {STDOUT: b"", STDERR: b""}
            async for stream, data in slow:
                out[stream] += data
                if len(out[STDOUT]) < (1 << 20):
                    await asyncio.sleep(0.01)
            return out

        tasks = asyncio.gather(read_slowly(), collect(fast))
        await asyncio.sleep(0.5)
        # The idle subscriber holds everything up until it goes away.
        assert not hub.output_ended
        hub.unsubscribe(idle)
        slow_out, fast_out = await asyncio.wait_for(tasks, TIMEOUT)
        assert await reap(child) == 0
    assert len(fast_out[STDOUT]) == 8 << 20
    assert slow_out == fast_out
    assert fast_out[STDERR] == fast_out[STDOUT]


async def test_reopen_while_the_writer_lives(fifos: FifoSet) -> None:
    """A daemon restart: our ends close and reopen while the process runs.

    As the shim does, the test holds a read end of each output FIFO (so the
    process never gets EPIPE while we are away) and a write end of stdin
    (closed by the CloseIO hook).
    """
    shim_readers = [os.open(p, os.O_RDONLY | os.O_NONBLOCK) for p in (fifos.stdout, fifos.stderr)]
    shim_stdin = os.open(fifos.stdin, os.O_RDWR | os.O_NONBLOCK)
    try:
        first = StdioHub(fifos, log_path=None)
        await first.start()
        sub = first.subscribe()
        child = spawn("echo one; read go; echo two; cat", fifos)
        assert await asyncio.wait_for(anext(sub), TIMEOUT) == (STDOUT, b"one\n")
        await first.aclose()
        second = StdioHub(fifos, log_path=None, on_stdin_eof=lambda: os.close(shim_stdin))
        async with second:
            sub = second.subscribe()
            client, server = memory_stream_pair()
            await client.write(b"go\nfor cat\n")
            await client.send_eof()
            second.process_started()
            await asyncio.wait_for(second.attach_stdin(server, close_on_eof=True), TIMEOUT)
            assert await asyncio.wait_for(collect(sub), TIMEOUT) == {STDOUT: b"two\nfor cat\n", STDERR: b""}
        assert await reap(child) == 0
    finally:
        for fd in shim_readers:
            os.close(fd)


async def test_finish_after_exit_when_eof_never_comes(tmp_path: Path) -> None:
    """The process died while no hub was open: stderr never sees a writer, so only finish() ends it."""
    fifos = create_fifos(tmp_path / "f", "gone", stdin=False)
    keep = [os.open(p, os.O_RDONLY | os.O_NONBLOCK) for p in (fifos.stdout, fifos.stderr)]
    try:
        await reap(spawn("printf 'written while we were away'", fifos))
        async with StdioHub(fifos, log_path=tmp_path / "log") as hub:
            sub = hub.subscribe()
            await asyncio.sleep(0.2)
            assert not hub.output_ended
            await asyncio.wait_for(hub.finish(grace=0.2), TIMEOUT)
            assert hub.output_ended
            assert await collect(sub) == {STDOUT: b"written while we were away", STDERR: b""}
        assert normalized_log(tmp_path / "log") == [
            b'{"log":"written while we were away","stream":"stdout","time":"T"}\n']
    finally:
        for fd in keep:
            os.close(fd)


@pytest.mark.parametrize("tty", [False, True])
async def test_write_output_framing(tmp_path: Path, tty: bool) -> None:
    made = create_fifos(tmp_path / "f", "t", stdin=False, stderr=not tty)
    async with StdioHub(made, log_path=None) as hub:
        sub = hub.subscribe()
        client, server = memory_stream_pair()
        child = spawn("echo out; sleep 0.1; echo err >&2", made)
        await asyncio.wait_for(write_output(sub, server, tty=tty), TIMEOUT)
        await server.send_eof()
        await reap(child)
    received = b""
    while chunk := await client.read():
        received += chunk
    if tty:
        assert received == b"out\nerr\n"
    else:
        frames = Demuxer().feed(received)
        assert [(f.stream, f.data) for f in frames] == [(STDOUT, b"out\n"), (STDERR, b"err\n")]
        assert received[:8] == b"\x01\x00\x00\x00\x00\x00\x00\x04"


# --- docker logs over a log the hub wrote -------------------------------------------

async def logs(path: Path, hub: StdioHub | None = None, **options) -> list[tuple[int, bytes]]:
    live = hub.log_signal if hub is not None else None
    return [event async for event in read_logs(path, LogsOptions(**options), live=live)]


async def test_logs_tail_since_until_timestamps(fifos: FifoSet, tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with StdioHub(fifos, log_path=log) as hub:
        child = spawn("seq 1 1000; echo oops >&2; sleep 0.3; echo later", fifos)
        await asyncio.wait_for(hub.wait_closed(), TIMEOUT)
        await reap(child)
    everything = await logs(log)
    assert [d for s, d in everything if s == STDOUT] == [b"%d\n" % i for i in range(1, 1001)] + [b"later\n"]
    assert [d for s, d in everything if s == STDERR] == [b"oops\n"]
    assert await logs(log, tail=2, stderr=False) == [(STDOUT, b"later\n")]
    assert [d for _, d in await logs(log, tail=3)][-1] == b"later\n"
    assert await logs(log, tail=0) == []
    assert await logs(log, stdout=False) == [(STDERR, b"oops\n")]

    entries = [decode_entry(line) for line in log.read_bytes().splitlines()]
    later = entries[-1].time_ns
    assert later - max(e.time_ns for e in entries[:-1]) >= 200_000_000
    assert await logs(log, since_ns=later - 100_000_000) == [(STDOUT, b"later\n")]
    assert (STDOUT, b"later\n") not in await logs(log, until_ns=later - 100_000_000)
    assert len(await logs(log, until_ns=later - 100_000_000)) == 1001

    stamped = await logs(log, tail=1, timestamps=True)
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z later\n", stamped[0][1])
    assert await logs(tmp_path / "missing") == []


async def test_logs_follow_until_the_process_ends(fifos: FifoSet, tmp_path: Path) -> None:
    log = tmp_path / "log"
    async with StdioHub(fifos, log_path=log) as hub:
        child = spawn("echo before; sleep 0.3; read line; echo \"$line\"; echo bye >&2", fifos)
        await asyncio.sleep(0.1)
        follower = asyncio.create_task(logs(log, hub, follow=True, tail=5))
        await asyncio.sleep(0.5)
        assert not follower.done()
        client, server = memory_stream_pair()
        await client.write(b"typed\n")
        await client.send_eof()
        hub.process_started()
        await hub.attach_stdin(server, close_on_eof=True)
        events = await asyncio.wait_for(follower, TIMEOUT)
        await reap(child)
    assert events == [(STDOUT, b"before\n"), (STDOUT, b"typed\n"), (STDERR, b"bye\n")]
    # Following a finished process drains and stops.
    assert await logs(log, hub, follow=True) == events
