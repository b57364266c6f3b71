"""OrderedSlots: a bounded number of holders, waiters admitted by key then arrival."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from dockyard.engine.ordered_slots import OrderedSlots


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    """Let the other tasks run until ``condition`` holds (fails after ``timeout``)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0)


class Holders:
    """Tasks that take a slot, record their key, and keep it until released one by one."""

    def __init__(self, slots: OrderedSlots) -> None:
        self.slots = slots
        self.admitted: list[object] = []
        self.inside: set[object] = set()
        self.most_inside = 0
        self.gates: dict[object, asyncio.Event] = {}
        self.tasks: dict[object, asyncio.Task[None]] = {}

    def start(self, name: object, key: object) -> asyncio.Task[None]:
        self.gates[name] = asyncio.Event()
        task = asyncio.create_task(self._hold(name, key))
        self.tasks[name] = task
        return task

    async def _hold(self, name: object, key: object) -> None:
        async with self.slots.hold(key):
            self.admitted.append(name)
            self.inside.add(name)
            self.most_inside = max(self.most_inside, len(self.inside))
            await self.gates[name].wait()
            self.inside.discard(name)

    async def release(self, name: object) -> None:
        self.gates[name].set()
        await self.tasks[name]


async def free_slots(slots: OrderedSlots, size: int) -> int:
    """How many holders get in at once now (checked by filling it up)."""
    holders = Holders(slots)
    for n in range(size + 1):
        holders.start(("probe", n), 0)
    await until(lambda: len(holders.inside) + slots.waiting == size + 1)
    count = len(holders.inside)
    # The probes still waiting are cancelled (a lost slot would keep them
    # waiting forever); those inside leave.
    for name, task in holders.tasks.items():
        if name not in holders.inside:
            task.cancel()
    for name in list(holders.inside):
        holders.gates[name].set()
    await asyncio.gather(*holders.tasks.values(), return_exceptions=True)
    return count


@pytest.mark.parametrize("size", [0, -1])
def test_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(ValueError):
        OrderedSlots(size)


def test_at_most_size_holders() -> None:
    async def main() -> tuple[int, list[object], int]:
        slots = OrderedSlots(3)
        holders = Holders(slots)
        for n in range(10):
            holders.start(n, n)
        await until(lambda: len(holders.inside) == 3 and slots.waiting == 7)
        assert holders.inside == {0, 1, 2}
        for n in range(10):
            await holders.release(n)
            if n < 7:
                # each release lets exactly one more in
                await until(lambda: len(holders.inside) == 3)
                assert slots.waiting == 10 - 3 - (n + 1)
        return holders.most_inside, holders.admitted, await free_slots(slots, 3)

    most, admitted, free = asyncio.run(main())
    assert most == 3
    assert admitted == list(range(10))
    assert free == 3


def test_size_one_is_a_mutex() -> None:
    async def main() -> tuple[int, int]:
        slots = OrderedSlots(1)
        holders = Holders(slots)
        for n in range(4):
            holders.start(n, 0)
        await until(lambda: len(holders.inside) == 1 and slots.waiting == 3)
        for n in range(4):
            await holders.release(n)
        return holders.most_inside, await free_slots(slots, 1)

    assert asyncio.run(main()) == (1, 1)


def test_waiters_admitted_lowest_key_first_whatever_their_arrival() -> None:
    async def main() -> list[object]:
        slots = OrderedSlots(1)
        holders = Holders(slots)
        holders.start("first", 100)
        await until(lambda: holders.inside == {"first"})
        keys = [(2, 5), (1, 9), (2, 0), (0, 3), (1, 1)]
        for key in keys:
            holders.start(key, key)
            await until(lambda: slots.waiting == len(holders.tasks) - 1)
        await holders.release("first")
        for key in sorted(keys):
            await until(lambda: holders.inside == {key})
            await holders.release(key)
        return holders.admitted

    assert asyncio.run(main()) == ["first", (0, 3), (1, 1), (1, 9), (2, 0), (2, 5)]


def test_equal_keys_go_by_arrival() -> None:
    async def main() -> list[object]:
        slots = OrderedSlots(2)
        holders = Holders(slots)
        holders.start("a", 0)
        holders.start("b", 0)
        await until(lambda: holders.inside == {"a", "b"})
        for name, key in [("late-1", 5), ("x1", 1), ("late-2", 5), ("x2", 1), ("late-3", 5)]:
            holders.start(name, key)
            await until(lambda: slots.waiting == len(holders.tasks) - 2)
        for name in ["a", "b", "x1", "x2", "late-1", "late-2", "late-3"]:
            await until(lambda: name in holders.inside)
            await holders.release(name)
        return holders.admitted

    assert asyncio.run(main()) == ["a", "b", "x1", "x2", "late-1", "late-2", "late-3"]


def test_new_arrival_with_a_lower_key_passes_earlier_waiters() -> None:
    async def main() -> list[object]:
        slots = OrderedSlots(1)
        holders = Holders(slots)
        holders.start("first", 0)
        await until(lambda: holders.inside == {"first"})
        holders.start("waiting", 10)
        await until(lambda: slots.waiting == 1)
        holders.start("urgent", 1)
        await until(lambda: slots.waiting == 2)
        for name in ["first", "urgent", "waiting"]:
            await until(lambda: name in holders.inside)
            await holders.release(name)
        return holders.admitted

    assert asyncio.run(main()) == ["first", "urgent", "waiting"]


def test_cancelled_waiter_loses_no_slot_and_blocks_nobody() -> None:
    async def main() -> tuple[list[object], bool, int, int]:
        slots = OrderedSlots(1)
        holders = Holders(slots)
        holders.start("holder", 0)
        await until(lambda: holders.inside == {"holder"})
        holders.start("cancelled", 1)  # would be next
        holders.start("next", 2)
        await until(lambda: slots.waiting == 2)
        holders.tasks["cancelled"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await holders.tasks["cancelled"]
        waiting_after_cancel = slots.waiting
        await holders.release("holder")
        await until(lambda: holders.inside == {"next"})
        await holders.release("next")
        return holders.admitted, holders.tasks["cancelled"].cancelled(), waiting_after_cancel, await free_slots(slots, 1)

    admitted, cancelled, waiting_after_cancel, free = asyncio.run(main())
    assert admitted == ["holder", "next"]
    assert cancelled is True
    assert waiting_after_cancel == 1
    assert free == 1


def test_cancelled_last_waiter_leaves_the_slot_free() -> None:
    async def main() -> tuple[list[object], int]:
        slots = OrderedSlots(2)
        holders = Holders(slots)
        holders.start("a", 0)
        holders.start("b", 0)
        await until(lambda: holders.inside == {"a", "b"})
        holders.start("gone", 0)
        await until(lambda: slots.waiting == 1)
        holders.tasks["gone"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await holders.tasks["gone"]
        assert slots.waiting == 0
        await holders.release("a")
        await holders.release("b")
        return holders.admitted, await free_slots(slots, 2)

    assert asyncio.run(main()) == (["a", "b"], 2)


def test_waiter_granted_and_cancelled_at_once_passes_the_slot_on() -> None:
    async def main() -> tuple[list[object], int]:
        slots = OrderedSlots(1)
        holders = Holders(slots)
        entered: list[object] = []
        async with slots.hold(0):
            entered.append("main")
            holders.start("granted", 1)
            holders.start("after", 2)
            await until(lambda: slots.waiting == 2)
        # The block's exit handed the slot to "granted" without suspending:
        # cancel it before it could run, as a timeout firing at that moment would.
        assert slots.waiting == 1
        holders.tasks["granted"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await holders.tasks["granted"]
        await until(lambda: holders.inside == {"after"})
        await holders.release("after")
        return [*entered, *holders.admitted], await free_slots(slots, 1)

    assert asyncio.run(main()) == (["main", "after"], 1)


def test_waiter_granted_and_cancelled_with_nobody_after_frees_the_slot() -> None:
    async def main() -> int:
        slots = OrderedSlots(1)
        holders = Holders(slots)
        async with slots.hold(0):
            holders.start("granted", 1)
            await until(lambda: slots.waiting == 1)
        holders.tasks["granted"].cancel()
        with pytest.raises(asyncio.CancelledError):
            await holders.tasks["granted"]
        assert holders.admitted == []
        return await free_slots(slots, 1)

    assert asyncio.run(main()) == 1


def test_failure_inside_the_block_releases_the_slot() -> None:
    async def main() -> int:
        slots = OrderedSlots(1)
        with pytest.raises(RuntimeError, match="inside"):
            async with slots.hold(0):
                raise RuntimeError("inside")
        return await free_slots(slots, 1)

    assert asyncio.run(main()) == 1
