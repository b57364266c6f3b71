"""Pure parts of engine/events: the wire object, moby's filter, the bounded history."""

from __future__ import annotations

import asyncio
import json

from dockyard.engine.events import Event, EventBus, container_attributes, encode_event, matches
from dockyard.http.responses import encode_json
from dockyard.wire import filters


def test_container_event_bytes_match_dockerd_field_order():
    event = Event(type="container", action="die", actor_id="abc",
                  attributes=container_attributes(name="/web", image="busybox", labels={"a": "1"},
                                                  extra={"exitCode": "3"}),
                  time_ns=1_700_000_000_123_456_789)
    assert encode_json(encode_event(event)) == (
        b'{"status":"die","id":"abc","from":"busybox","Type":"container","Action":"die",'
        b'"Actor":{"ID":"abc","Attributes":{"a":"1","image":"busybox","name":"web","exitCode":"3"}},'
        b'"scope":"local","time":1700000000,"timeNano":1700000000123456789}\n')


def test_image_event_has_no_from_and_network_event_no_legacy_fields():
    image = encode_event(Event(type="image", action="tag", actor_id="sha256:x", attributes={"name": "a:b"}, time_ns=5))
    assert list(image) == ["status", "id", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    other = encode_event(Event(type="network", action="create", actor_id="n", time_ns=5))
    assert "status" not in other and "id" not in other


def _f(**values: list[str]) -> filters.Filters:
    return filters.parse(json.dumps({k: {v: True for v in vs} for k, vs in values.items()}))


def test_matches_follows_moby_rules():
    ev = Event(type="container", action="exec_start: sh -c", actor_id="abcdef",
               attributes={"name": "web", "image": "busybox:1.36", "x": "y"})
    assert matches(ev, _f())
    assert matches(ev, _f(event=["exec_start"]))
    assert matches(ev, _f(container=["abc"])) and matches(ev, _f(container=["web"]))
    assert not matches(ev, _f(container=["zzz"]))
    assert matches(ev, _f(image=["busybox"])) and matches(ev, _f(image=["busybox:1.36"]))
    assert not matches(ev, _f(image=["alpine"]))
    assert matches(ev, _f(label=["x=y"])) and not matches(ev, _f(label=["x=z"]))
    assert not matches(ev, _f(type=["image"]))
    assert not matches(ev, _f(network=["n"]))


def test_history_is_bounded_per_namespace_and_cut_by_since_until():
    clock = iter(range(100, 1000, 10))
    bus = EventBus(history_size=3, clock=lambda: next(clock))
    for i in range(5):
        bus.publish("a", type="container", action=f"a{i}", actor_id="x")
    bus.publish("b", type="container", action="b0", actor_id="y")
    assert [e.action for e in bus.history("a", since_ns=0)] == ["a2", "a3", "a4"]
    assert [e.action for e in bus.history("a", since_ns=130, until_ns=140)] == ["a3", "a4"]
    assert bus.history("a") == []  # neither since nor until: no replay
    assert [e.action for e in bus.history("b", since_ns=0)] == ["b0"]


def test_stream_replays_then_follows_without_gaps():
    async def main() -> list[str]:
        bus = EventBus()
        bus.publish("a", type="container", action="before", actor_id="x")
        got: list[str] = []

        async def consume() -> None:
            async for event in bus.stream("a", since_ns=0):
                got.append(event.action)
                if event.action == "last":
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        bus.publish("a", type="container", action="during", actor_id="x")
        bus.publish("b", type="container", action="elsewhere", actor_id="x")
        bus.publish("a", type="container", action="last", actor_id="x")
        await asyncio.wait_for(task, 5)
        return got

    assert asyncio.run(main()) == ["before", "during", "last"]


def test_stream_with_past_until_ends_after_history():
    async def main() -> list[str]:
        bus = EventBus(clock=iter(range(1, 100)).__next__)
        bus.publish("a", type="image", action="pull", actor_id="x")
        return [e.action async for e in bus.stream("a", until_ns=1)]

    assert asyncio.run(main()) == ["pull"]
