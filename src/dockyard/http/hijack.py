"""The hijack: an HTTP connection handed over to a handler as a raw byte stream.

Docker's attach and exec-start switch protocols. When the client sent an
``Upgrade`` header the answer is ``101 UPGRADED`` with ``Connection: Upgrade``
and ``Upgrade: tcp``; older clients get the legacy ``200 OK`` with no length,
and the raw stream runs until close. dockerd writes that head itself, bypassing
its HTTP library, and so do we (``upgrade_head``); then the bytes the parser
had already buffered past the request (h11's ``trailing_data``) are the first
bytes the handler reads, as httpcore's ``AsyncHTTP11UpgradeStream`` does.

``HijackedStream`` satisfies ``dockyard.streams.ByteStream``. Errors: reads
treat a reset like end of input (``b""``); writes raise ``BrokenPipeError``
once the peer is gone; two concurrent writers raise ``RuntimeError`` (a bug).
"""

from __future__ import annotations

import asyncio
import contextlib

from dockyard.http.responses import STANDARD_HEADERS


def upgrade_head(*, content_type: str, upgrade: bool) -> bytes:
    """The response head dockerd writes on a hijacked connection (pure)."""
    if upgrade:
        lines = [
            "HTTP/1.1 101 UPGRADED",
            f"Content-Type: {content_type}",
            "Connection: Upgrade",
            "Upgrade: tcp",
        ]
    else:
        lines = ["HTTP/1.1 200 OK", f"Content-Type: {content_type}"]
    lines.extend(f"{name}: {value}" for name, value in STANDARD_HEADERS)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HijackedStream:
    """A ByteStream over an asyncio connection, starting with ``prefix`` bytes.

    Owns the connection's writing side from its creation: the HTTP adapter
    writes nothing more. ``send_eof`` is ``shutdown(SHUT_WR)``; reads go on.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, prefix: bytes) -> None:
        self._reader = reader
        self._writer = writer
        self._prefix = memoryview(prefix)
        self._writing = False
        self._eof_sent = False
        self._closed = False

    async def read(self, max_bytes: int = 65536) -> bytes:
        if self._prefix:
            chunk, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            return bytes(chunk)
        if self._closed:
            return b""
        try:
            return await self._reader.read(max_bytes)
        except ConnectionError:
            # A reset is the end of the client's input as far as stdin goes.
            return b""

    async def write(self, data: bytes) -> None:
        if self._writing:
            raise RuntimeError("concurrent writes on a hijacked stream")
        if self._closed or self._eof_sent or self._writer.transport.is_closing():
            raise BrokenPipeError("hijacked stream is closed for writing")
        self._writing = True
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError as exc:
            raise BrokenPipeError(str(exc)) from exc
        finally:
            self._writing = False

    async def send_eof(self) -> None:
        if self._writing:
            raise RuntimeError("send_eof while another task is writing")
        if self._eof_sent or self._closed:
            return
        self._eof_sent = True
        with contextlib.suppress(ConnectionError, OSError):
            # The transport shuts down writing once its buffer is flushed.
            self._writer.write_eof()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
