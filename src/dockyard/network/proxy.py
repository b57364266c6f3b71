"""Host ports: one allocator for the whole daemon, and a userland proxy per binding.

Each published port is a socket dockyard binds on the host (``HostIp``,
``HostPort``) and forwards to the container's address, as dockerd's
``docker-proxy`` does; holding the socket is also what reserves the port, so
a port taken by anything else on the host fails at bind. Ports are allocated
across every endpoint of the daemon: ``0.0.0.0:P`` conflicts with any
``ip:P`` of the same protocol.

Raises ``PortAllocated`` (dockerd's ``Bind for IP:PORT failed: port is
already allocated``) and ``PortBindError`` (the bind itself failed); both are
``dockyard.errors.SystemError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import Sequence
from typing import Any

from dockyard import errors
from dockyard.network.ports import BoundPort, PortRequest

__all__ = ["PortAllocated", "PortBindError", "PortPublisher"]

log = logging.getLogger(__name__)

#: Where a host port is picked when none is given (Linux's default ephemeral range, as dockerd).
DYNAMIC_PORTS = range(32768, 61000)
_CHUNK = 256 * 1024


class PortAllocated(errors.SystemError):
    """The host port is already published by this daemon."""


class PortBindError(errors.SystemError):
    """The host socket could not be bound (in use by another program, bad address)."""


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class _UdpRelay(asyncio.DatagramProtocol):
    """Datagrams from each client go out on their own socket to the container; replies come back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.upstreams: dict[Any, asyncio.DatagramTransport] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        upstream = self.upstreams.get(addr)
        if upstream is not None:
            upstream.sendto(data)
            return
        asyncio.get_running_loop().create_task(self._open(data, addr))

    async def _open(self, data: bytes, addr: Any) -> None:
        relay = self

        class Reply(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, _: Any) -> None:
                if relay.transport is not None:
                    relay.transport.sendto(reply, addr)

        loop = asyncio.get_running_loop()
        upstream, _ = await loop.create_datagram_endpoint(Reply, remote_addr=self.target)
        self.upstreams[addr] = upstream
        upstream.sendto(data)

    def close(self) -> None:
        for upstream in self.upstreams.values():
            upstream.close()
        if self.transport is not None:
            self.transport.close()


class PortPublisher:
    """Binds, forwards and releases host ports for containers."""

    def __init__(self) -> None:
        self._taken: dict[tuple[str, str, int], str] = {}  # (proto, ip, port) → container id
        self._closers: dict[str, list[Any]] = {}
        self._lock = asyncio.Lock()

    def _conflict(self, proto: str, ip: str, port: int) -> bool:
        if (proto, ip, port) in self._taken:
            return True
        if ip == "0.0.0.0":
            return any(p == proto and n == port for p, _, n in self._taken)
        return (proto, "0.0.0.0", port) in self._taken

    def _bind(self, request: PortRequest, port: int) -> socket.socket:
        kind = socket.SOCK_STREAM if request.protocol == "tcp" else socket.SOCK_DGRAM
        sock = socket.socket(socket.AF_INET, kind)
        try:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((request.host_ip, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return sock

    def _pick(self, request: PortRequest) -> tuple[int, socket.socket]:
        if request.host_port:
            if self._conflict(request.protocol, request.host_ip, request.host_port):
                raise PortAllocated(f"Bind for {request.host_ip}:{request.host_port} failed: port is already allocated")
            try:
                return request.host_port, self._bind(request, request.host_port)
            except OSError as err:
                reason = "address already in use" if err.errno == errno.EADDRINUSE else err.strerror
                raise PortBindError(
                    f"Error starting userland proxy: listen {request.protocol}4 "
                    f"{request.host_ip}:{request.host_port}: bind: {reason}") from err
        for port in DYNAMIC_PORTS:
            if self._conflict(request.protocol, request.host_ip, port):
                continue
            with contextlib.suppress(OSError):
                return port, self._bind(request, port)
        raise PortBindError("no free host port in the dynamic range")

    async def publish(self, container_id: str, requests: Sequence[PortRequest], target_ip: str) -> list[BoundPort]:
        """Bind every request and forward it to ``target_ip``; all or nothing."""
        bound: list[BoundPort] = []
        async with self._lock:
            try:
                for request in requests:
                    port, sock = self._pick(request)
                    self._taken[(request.protocol, request.host_ip, port)] = container_id
                    closers = self._closers.setdefault(container_id, [])
                    try:
                        closers.append(await self._serve(sock, request, (target_ip, request.container_port)))
                    except BaseException:
                        sock.close()
                        raise
                    bound.append(BoundPort(container_port=request.container_port, protocol=request.protocol,
                                           host_ip=request.host_ip, host_port=port))
            except BaseException:
                await self._release(container_id)
                raise
        return bound

    async def _serve(self, sock: socket.socket, request: PortRequest, target: tuple[str, int]) -> Any:
        loop = asyncio.get_running_loop()
        if request.protocol == "udp":
            _, relay = await loop.create_datagram_endpoint(lambda: _UdpRelay(target), sock=sock)
            return relay
        connections: set[asyncio.Task[Any]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                connections.add(task)
            try:
                up_reader, up_writer = await asyncio.open_connection(*target)
            except OSError:
                writer.close()
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                writer.close()
                up_writer.close()
                if task is not None:
                    connections.discard(task)

        server = await asyncio.start_server(handle, sock=sock)

        class Closer:
            def close(self) -> None:
                server.close()
                for task in list(connections):
                    task.cancel()

        return Closer()

    async def unpublish(self, container_id: str) -> None:
        """Close the container's sockets and free its ports (idempotent)."""
        async with self._lock:
            await self._release(container_id)

    async def _release(self, container_id: str) -> None:
        for closer in self._closers.pop(container_id, []):
            closer.close()
        for key in [k for k, owner in self._taken.items() if owner == container_id]:
            del self._taken[key]

    async def close(self) -> None:
        async with self._lock:
            for container_id in list(self._closers):
                await self._release(container_id)
