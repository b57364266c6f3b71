"""ThreadFeed: chunks from the event loop to one thread, at most ``size`` ahead."""

from __future__ import annotations

import asyncio
import threading

from dockyard.thread_feed import ThreadFeed


def test_chunks_arrive_in_order_and_none_marks_the_end() -> None:
    async def main() -> list[bytes | None]:
        feed = ThreadFeed(2)
        got: list[bytes | None] = []

        def consume() -> None:
            while (chunk := feed.get()) is not None:
                got.append(chunk)
            got.append(feed.get())  # after the end: None at once, never blocks

        thread = threading.Thread(target=consume)
        thread.start()
        for chunk in (b"a", b"", b"bb", b"ccc", b"dddd"):
            await feed.put(chunk)
        feed.close()
        feed.close()
        await feed.put(b"after close")
        await asyncio.to_thread(thread.join, 10)
        return got

    assert asyncio.run(main()) == [b"a", b"bb", b"ccc", b"dddd", None]


def test_put_waits_while_size_chunks_are_unread() -> None:
    async def main() -> tuple[bool, bool]:
        feed = ThreadFeed(2)
        await feed.put(b"1")
        await feed.put(b"2")
        third = asyncio.ensure_future(feed.put(b"3"))
        await asyncio.sleep(0)
        blocked = not third.done()
        assert await asyncio.to_thread(feed.get) == b"1"  # its room comes back through the loop
        await asyncio.wait_for(third, 10)
        return blocked, third.done()

    assert asyncio.run(main()) == (True, True)


def test_drain_takes_everything_so_the_source_never_waits() -> None:
    async def main() -> bool:
        feed = ThreadFeed(1)
        drained = threading.Event()

        def give_up() -> None:
            feed.drain()
            drained.set()

        thread = threading.Thread(target=give_up)
        thread.start()
        for n in range(50):
            await asyncio.wait_for(feed.put(bytes([n])), 10)
        feed.close()
        await asyncio.to_thread(thread.join, 10)
        return drained.is_set() and feed.get() is None

    assert asyncio.run(main()) is True
