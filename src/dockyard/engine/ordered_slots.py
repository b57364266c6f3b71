"""A semaphore that lets its waiters in by key, lowest first, instead of by arrival.

    slots = OrderedSlots(2)
    async with slots.hold((pull_number, layer_index)):
        ...  # at most 2 holders at once

Pulls use it for the commit of each layer's blob (the check and the commit,
or containerd hashing it where dockyard could not): the layer an unpack needs
next goes first, instead of every finished download contending for
containerd's metadata lock and all of them being ready late.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator


class OrderedSlots:
    """At most ``size`` holders; a freed slot goes to the waiter with the lowest
    key (ties: the earlier one). Cancelling a waiter leaves the others' order."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("OrderedSlots needs at least one slot")
        self._free = size
        self._waiters: list[tuple[object, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, future in self._waiters if not future.done())

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        await self._acquire(key)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, key: object) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (key, next(self._arrivals), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # granted just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1
