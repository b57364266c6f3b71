"""The in-memory ByteStream twin behaves like a socket pair where stdio code cares."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.testing.memstream import memory_stream_pair


async def test_bytes_flow_both_ways_and_half_close() -> None:
    left, right = memory_stream_pair()
    await left.write(b"hello")
    assert await right.read(3) == b"hel"
    assert await right.read() == b"lo"
    await left.send_eof()
    assert await right.read() == b""
    assert await right.read() == b""
    # the other direction still works after the half-close
    await right.write(b"still")
    assert await left.read() == b"still"
    with pytest.raises(BrokenPipeError):
        await left.write(b"after eof")


async def test_close_breaks_the_peers_writes_and_ends_its_reads() -> None:
    left, right = memory_stream_pair()
    await left.aclose()
    await left.aclose()
    assert await right.read() == b""
    with pytest.raises(BrokenPipeError):
        await right.write(b"x")
    assert await left.read() == b""


async def test_writes_block_when_the_peer_does_not_read() -> None:
    left, right = memory_stream_pair(max_buffer=4)
    writer = asyncio.create_task(left.write(b"0123456789"))
    await asyncio.sleep(0)
    assert not writer.done()
    with pytest.raises(RuntimeError):
        await left.write(b"second writer")
    assert await right.read(8) == b"01234567"
    await asyncio.wait_for(writer, 1)
    assert await right.read() == b"89"


async def test_blocked_writer_sees_peer_close() -> None:
    left, right = memory_stream_pair(max_buffer=1)
    writer = asyncio.create_task(left.write(b"abc"))
    await asyncio.sleep(0)
    await right.aclose()
    with pytest.raises(BrokenPipeError):
        await asyncio.wait_for(writer, 1)
