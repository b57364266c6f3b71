"""Bytes handed from the event loop to one worker thread, a bounded number ahead.

    feed = ThreadFeed(16)                     # made in the event loop
    await feed.put(chunk) ...; feed.close()   # the event loop's side
    while (chunk := feed.get()) is not None:  # the thread's side
        ...
    feed.drain()                              # a thread that gave up

``put`` waits while ``size`` chunks are unread, so memory stays bounded and
a slow thread slows its source down. A thread that stops working must still
``drain``: the source's ``put`` would wait for it forever otherwise.
"""

from __future__ import annotations

import asyncio
import queue


class ThreadFeed:
    """One event loop puts, one thread gets; ``None`` marks the end."""

    def __init__(self, size: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Semaphore(size)
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._closed = False  # the loop's side: no more puts
        self._ended = False  # the thread's side: the end was taken

    @property
    def closed(self) -> bool:
        return self._closed

    async def put(self, chunk: bytes) -> None:
        """Queue ``chunk`` (empty ones and those after ``close`` are dropped)."""
        if self._closed or not chunk:
            return
        await self._room.acquire()
        self._chunks.put(chunk)

    def close(self) -> None:
        """No more chunks; idempotent."""
        if not self._closed:
            self._closed = True
            self._chunks.put(None)

    def get(self) -> bytes | None:
        """The next chunk, blocking; None at the end (and after it, at once)."""
        if self._ended:
            return None
        chunk = self._chunks.get()
        if chunk is None:
            self._ended = True
        else:
            self._loop.call_soon_threadsafe(self._room.release)
        return chunk

    def drain(self) -> None:
        """Take and drop everything up to the end."""
        while self.get() is not None:
            pass
