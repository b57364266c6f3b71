"""The embedded DNS server at 127.0.0.11:53 inside containers on user networks.

dockerd DNATs 127.0.0.11:53 inside the container's namespace to a listener
of its own. Here the namespace is ours, so the listener lives in it: a helper
thread joins the namespace (``setns``), makes a UDP and a TCP socket bound to
127.0.0.11:53 (``lo`` has 127.0.0.0/8, so no address needs adding) and exits;
a socket keeps the namespace it was made in, and the daemon's event loop
serves both. Names the ``lookup`` callback knows are answered here; names
with a dot are forwarded, from the daemon's own namespace, to the host's
resolvers; other single-label names are NXDOMAIN (never sent off the machine,
as no upstream could know a bare container name).

Raises only ``DnsError`` (a ``dockyard.errors.SystemError``) from ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

from dockyard import errors
from dockyard.network import dns_wire

__all__ = ["DNS_ADDRESS", "DnsError", "EmbeddedDns", "Lookup", "host_nameservers"]

log = logging.getLogger(__name__)

DNS_ADDRESS = "127.0.0.11"
CLONE_NEWNET = 0x40000000
UPSTREAM_TIMEOUT = 3.0

#: (container id, lower-case name) → IPv4 addresses, or None when the name is not ours.
Lookup = Callable[[str, str], "list[str] | None"]


class DnsError(errors.SystemError):
    """The listener could not be made inside the namespace."""


def host_nameservers(resolv_conf: str) -> list[str]:
    """The ``nameserver`` addresses of a resolv.conf text, in order."""
    found = []
    for line in resolv_conf.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found


def _sockets_in(netns_path: Path) -> tuple[socket.socket, socket.socket]:
    """UDP and TCP sockets bound to 127.0.0.11:53 inside ``netns_path`` (runs in a throwaway thread)."""
    result: list[tuple[socket.socket, socket.socket]] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            finally:
                os.close(fd)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                udp.bind((DNS_ADDRESS, 53))
                tcp.bind((DNS_ADDRESS, 53))
                tcp.listen(64)
                udp.setblocking(False)
                tcp.setblocking(False)
            except BaseException:
                udp.close()
                tcp.close()
                raise
            result.append((udp, tcp))
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)

    # A thread of its own, never a pool thread: it leaves this daemon's namespace for good.
    thread = threading.Thread(target=work, name="dns-setns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise DnsError(f"cannot listen on {DNS_ADDRESS}:53 in {netns_path}: {failure[0]}") from failure[0]
    return result[0]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDns, container_id: str) -> None:
        self._server = server
        self._container_id = container_id
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._server._spawn(self._reply(data, addr))

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        answer = await self._server.answer(self._container_id, data)
        if answer is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)


class _Listener:
    def __init__(self, udp: asyncio.DatagramTransport, tcp: asyncio.Server) -> None:
        self.udp = udp
        self.tcp = tcp

    async def close(self) -> None:
        self.udp.close()
        self.tcp.close()
        with contextlib.suppress(Exception):
            await self.tcp.wait_closed()


class EmbeddedDns:
    """One listener per container namespace; answers from ``lookup``, forwards the rest."""

    def __init__(self, lookup: Lookup, *, resolv_conf: Path = Path("/etc/resolv.conf")) -> None:
        self._lookup = lookup
        self._resolv_conf = resolv_conf
        self._listeners: dict[str, _Listener] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def serving(self, container_id: str) -> bool:
        return container_id in self._listeners

    async def serve(self, container_id: str, netns_path: Path) -> None:
        """Listen inside the container's namespace (idempotent)."""
        if container_id in self._listeners:
            return
        udp_sock, tcp_sock = await asyncio.to_thread(_sockets_in, netns_path)
        loop = asyncio.get_running_loop()
        try:
            udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self, container_id), sock=udp_sock)

            async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                await self._serve_tcp(container_id, reader, writer)

            tcp = await asyncio.start_server(on_tcp, sock=tcp_sock)
        except BaseException:
            udp_sock.close()
            tcp_sock.close()
            raise
        self._listeners[container_id] = _Listener(udp, tcp)

    async def stop(self, container_id: str) -> None:
        listener = self._listeners.pop(container_id, None)
        if listener is not None:
            await listener.close()

    async def close(self) -> None:
        for container_id in list(self._listeners):
            await self.stop(container_id)
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def _serve_tcp(self, container_id: str, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                data = await reader.readexactly(struct.unpack("!H", head)[0])
                answer = await self.answer(container_id, data)
                if answer is None:
                    break
                writer.write(struct.pack("!H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, container_id: str, data: bytes) -> bytes | None:
        """The reply to one query message; None when it cannot be read at all."""
        try:
            query = dns_wire.parse_query(data)
        except dns_wire.DnsFormatError:
            return None
        if query.opcode != 0 or query.qclass != dns_wire.CLASS_IN:
            return dns_wire.answer_servfail(query)
        addresses = self._lookup(container_id, query.name)
        if addresses is not None:
            if query.qtype == dns_wire.TYPE_A:
                return dns_wire.answer_a(query, addresses)
            return dns_wire.answer_empty(query)
        if "." not in query.name:
            return dns_wire.answer_nxdomain(query)
        return await self._forward(query, data)

    async def _forward(self, query: dns_wire.Query, data: bytes) -> bytes:
        try:
            text = await asyncio.to_thread(self._resolv_conf.read_text)
        except OSError:
            text = ""
        loop = asyncio.get_running_loop()
        for server in host_nameservers(text):
            family = socket.AF_INET6 if ":" in server else socket.AF_INET
            received: asyncio.Future[bytes] = loop.create_future()

            class _Upstream(asyncio.DatagramProtocol):
                def datagram_received(self, reply: bytes, addr: tuple[str, int]) -> None:
                    if len(reply) >= 2 and reply[:2] == data[:2] and not received.done():
                        received.set_result(reply)

            try:
                transport, _ = await loop.create_datagram_endpoint(
                    _Upstream, remote_addr=(server, 53), family=family)
            except OSError:
                continue
            try:
                transport.sendto(data)
                return await asyncio.wait_for(received, UPSTREAM_TIMEOUT)
            except (TimeoutError, asyncio.TimeoutError, OSError):
                continue
            finally:
                transport.close()
        return dns_wire.answer_servfail(query)
