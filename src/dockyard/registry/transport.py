"""The registry client's HTTP transport: httpx's own, reading the network in
big pieces.

httpcore asks its network stream for 64 KiB at a time. anyio's asyncio
stream hands on what the event loop's transport received (up to 256 KiB a
time), split to that size, copying the rest back each time, and every read
resumes and pauses the socket's reading (two epoll calls). A blob download at
hundreds of MB/s spent more of the event loop's time there than anywhere
else. Here each read asks for up to READ_SIZE bytes, so it hands on a whole
receive at once; h11 buffers whatever it is given, so nothing else changes.

httpx builds its connection pool itself and takes no network backend, so
:func:`wide_transport` puts a pool of its own, configured the same way, in
its place. A newer httpx that stores its pool differently keeps its own
(tests/integration/test_registry_transport.py then fails).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

#: The most one read of a connection asks for.
READ_SIZE = 1 << 20


class _WideStream(httpcore.AsyncNetworkStream):
    """A network stream whose reads ask for at least READ_SIZE bytes."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, READ_SIZE), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _WideStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class WideReads(httpcore.AsyncNetworkBackend):
    """httpcore's asyncio backend (anyio's), its streams reading big pieces."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return _WideStream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _WideStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def wide_transport(ssl_context: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport for direct connections, on a pool that reads wide."""
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits)
    if isinstance(getattr(transport, "_pool", None), httpcore.AsyncConnectionPool):
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=WideReads(),
        )
    return transport

