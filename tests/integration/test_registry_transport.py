"""The registry client's transport (registry/transport.py) against a real
socket on 127.0.0.1: a whole receive per read, and everything else as httpx's."""

from __future__ import annotations

import asyncio
import os
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest

from dockyard.registry.transport import READ_SIZE, wide_transport

BODY = os.urandom(8 * 1024 * 1024 + 3)
#: What httpcore asks its stream for, and so the biggest piece it hands on otherwise.
HTTPCORE_READ = 64 * 1024


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /body "):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)
            else:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[str]:
    running = await asyncio.start_server(_serve, "127.0.0.1", 0)
    port = running.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.close()
        await running.wait_closed()


async def pieces(client: httpx.AsyncClient, url: str) -> list[bytes]:
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        # Let the whole body reach this side's socket buffer: each receive
        # then finds more than one read of httpcore's asks for.
        await asyncio.sleep(0.2)
        return [piece async for piece in response.aiter_raw()]


def limits() -> httpx.Limits:
    return httpx.Limits(max_connections=4, max_keepalive_connections=2)


async def test_a_read_hands_on_a_whole_receive(server: str) -> None:
    transport = wide_transport(ssl.create_default_context(), limits())
    async with httpx.AsyncClient(transport=transport) as client:
        got = await pieces(client, server + "/body")
        assert b"".join(got) == BODY
        assert HTTPCORE_READ < max(len(piece) for piece in got) <= READ_SIZE
        # The connection is kept and reused, as httpx's own is.
        again = await pieces(client, server + "/body")
        assert b"".join(again) == BODY
        missing = await client.get(server + "/other")
        assert (missing.status_code, missing.content) == (404, b"no")


async def test_httpx_alone_hands_on_its_small_reads(server: str) -> None:
    # What the transport changes: without it, no piece is over httpcore's ask.
    async with httpx.AsyncClient() as client:
        got = await pieces(client, server + "/body")
    assert b"".join(got) == BODY
    assert max(len(piece) for piece in got) == HTTPCORE_READ


async def test_errors_are_httpx_errors(server: str) -> None:
    transport = wide_transport(ssl.create_default_context(), limits())
    async with httpx.AsyncClient(transport=transport, timeout=0.5) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:1/")
        # No TLS there: the server waits for a request and the handshake times out.
        with pytest.raises(httpx.ConnectTimeout):
            await client.get("https://" + server.removeprefix("http://") + "/body")
