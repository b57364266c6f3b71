"""httpio.body_pieces: how a streamed blob body is cut into pieces for the content store."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import httpx

from dockyard.registry.httpio import body_pieces


def _streamed(parts: list[bytes], headers: dict[str, str] | None = None) -> httpx.Response:
    async def stream() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    return httpx.Response(200, headers=headers, content=stream())


async def _pieces(response: httpx.Response, min_size: int) -> list[bytes]:
    return [piece async for piece in body_pieces(response, min_size)]


async def test_small_reads_are_joined_up_to_the_minimum() -> None:
    parts = [bytes([i]) * 3 for i in range(7)]
    got = await _pieces(_streamed(parts), 8)
    assert got == [parts[0] + parts[1] + parts[2], parts[3] + parts[4] + parts[5], parts[6]]


async def test_big_reads_pass_through_whole() -> None:
    parts = [b"a" * 10, b"b" * 2, b"c" * 9, b"d" * 12]
    got = await _pieces(_streamed(parts), 8)
    assert got == [parts[0], parts[1] + parts[2], parts[3]]


async def test_empty_body_gives_no_pieces() -> None:
    assert await _pieces(_streamed([]), 8) == []
    assert await _pieces(_streamed([b"", b"x", b""]), 8) == [b"x"]


async def test_content_encoding_is_decoded() -> None:
    blob = bytes(range(256)) * 64
    encoded = gzip.compress(blob)
    response = _streamed([encoded[:100], encoded[100:]], {"Content-Encoding": "gzip"})
    assert b"".join(await _pieces(response, 1 << 20)) == blob
    identity = _streamed([encoded], {"Content-Encoding": "identity"})
    assert await _pieces(identity, 1 << 20) == [encoded]
