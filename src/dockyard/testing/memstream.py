"""In-memory twin of ``dockyard.streams.ByteStream`` for tests.

``memory_stream_pair()`` returns two connected ends: bytes written on one are
read on the other. It behaves like a socket pair where it matters to stdio
code: ``send_eof`` is a half-close (the peer reads ``b""``, the other
direction keeps working), ``aclose`` closes both directions (the peer's
writes raise ``BrokenPipeError``), writes block while the peer has more than
``max_buffer`` bytes unread, and two concurrent writers on one end raise
``RuntimeError`` because that is a bug in the code under test.
"""

from __future__ import annotations

import asyncio

DEFAULT_MAX_BUFFER = 1024 * 1024


class _Pipe:
    """One direction: a buffer, an end-of-input flag, a closed-reader flag."""

    def __init__(self, max_buffer: int) -> None:
        self.buffer = bytearray()
        self.eof = False  # the writer half-closed or closed
        self.reader_gone = False  # the reading end was closed
        self.max_buffer = max_buffer
        self.changed = asyncio.Condition()

    async def notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


class MemoryByteStream:
    """One end of an in-memory connection; satisfies ``ByteStream``."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing
        self._writing = False
        self._closed = False

    async def read(self, max_bytes: int = 65536) -> bytes:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        pipe = self._in
        async with pipe.changed:
            await pipe.changed.wait_for(lambda: bool(pipe.buffer) or pipe.eof or self._closed)
            if self._closed:
                return b""
            data = bytes(pipe.buffer[:max_bytes])
            del pipe.buffer[:max_bytes]
            pipe.changed.notify_all()  # a blocked writer may go on
            return data

    async def write(self, data: bytes) -> None:
        if self._writing:
            raise RuntimeError("concurrent writes on one stream")
        pipe = self._out
        if self._closed or pipe.eof or pipe.reader_gone:
            raise BrokenPipeError("stream closed for writing")
        self._writing = True
        try:
            async with pipe.changed:
                pipe.buffer += data
                pipe.changed.notify_all()
                await pipe.changed.wait_for(
                    lambda: len(pipe.buffer) <= pipe.max_buffer or pipe.reader_gone or self._closed
                )
                if pipe.reader_gone:
                    raise BrokenPipeError("peer closed the stream")
        finally:
            self._writing = False

    async def send_eof(self) -> None:
        if self._writing:
            raise RuntimeError("send_eof while another task is writing")
        if not self._out.eof:
            self._out.eof = True
            await self._out.notify()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._out.eof = True
        self._in.reader_gone = True
        self._in.buffer.clear()
        await self._out.notify()
        await self._in.notify()


def memory_stream_pair(*, max_buffer: int = DEFAULT_MAX_BUFFER) -> tuple[MemoryByteStream, MemoryByteStream]:
    """Two connected ends, like ``socket.socketpair()`` without the kernel."""
    left_to_right = _Pipe(max_buffer)
    right_to_left = _Pipe(max_buffer)
    return MemoryByteStream(right_to_left, left_to_right), MemoryByteStream(left_to_right, right_to_left)
