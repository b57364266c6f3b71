"""The event bus behind ``GET /events``: one in-memory stream per endpoint.

Services publish (container and image actions); each endpoint (containerd
namespace) has its own bounded history, so ``since`` can replay what
happened recently (moby keeps 256 events; so do we), and its own
subscribers, so a job never sees another job's events.

``Event`` values, ``encode_event`` (the wire object, legacy fields included)
and ``matches`` (moby's event filter) are pure; ``EventBus`` is the only
stateful part and does no I/O. Publishing never blocks and never raises: a
subscriber that cannot keep up is dropped (its stream ends) rather than
slowing the daemon.

Errors: ``dockyard.errors.InvalidParameter`` (via ``InvalidFilter``) for a
filter key moby does not accept; nothing else.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dockyard.wire.filters import Filters

__all__ = [
    "ACCEPTED_FILTERS",
    "HISTORY_SIZE",
    "Event",
    "EventBus",
    "container_attributes",
    "encode_event",
    "matches",
]

#: moby's eventsLimit: how many past events ``since`` can reach.
HISTORY_SIZE = 256
#: Events a subscriber may have waiting before it is dropped.
SUBSCRIBER_BACKLOG = 4096
#: Filter keys moby's ``/events`` accepts (unknown keys are a 400).
ACCEPTED_FILTERS = frozenset({
    "config", "container", "daemon", "event", "image", "label", "network", "node",
    "plugin", "scope", "secret", "service", "type", "volume",
})

TYPE_CONTAINER = "container"
TYPE_IMAGE = "image"


@dataclass(frozen=True, kw_only=True)
class Event:
    """One event as moby's ``events.Message`` holds it (legacy fields derived)."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_ns: int = 0


def container_attributes(*, name: str, image: str, labels: Mapping[str, str] | None,
                         extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """moby's container event attributes: the labels, then ``image`` and ``name``
    (without its ``/``), then the action's own (``exitCode``, ``signal``…)."""
    attributes = {str(k): str(v) for k, v in (labels or {}).items()}
    attributes["image"] = image
    attributes["name"] = name.lstrip("/")
    attributes.update(extra or {})
    return attributes


def encode_event(event: Event) -> dict[str, Any]:
    """The JSON object dockerd writes, in Go's field order.

    Container and image events also carry the deprecated ``status``/``id``
    (and ``from`` for containers) that compose v1 and old clients read.
    """
    body: dict[str, Any] = {}
    if event.type in (TYPE_CONTAINER, TYPE_IMAGE):
        body["status"] = event.action
        body["id"] = event.actor_id
        if event.type == TYPE_CONTAINER and event.attributes.get("image"):
            body["from"] = event.attributes["image"]
    body["Type"] = event.type
    body["Action"] = event.action
    body["Actor"] = {"ID": event.actor_id, "Attributes": dict(event.attributes)}
    body["scope"] = "local"
    body["time"] = event.time_ns // 1_000_000_000
    body["timeNano"] = event.time_ns
    return body


def _strip_tag(image: str) -> str:
    """``name:tag`` → ``name`` (a registry port is not a tag; digests are kept)."""
    if "@" in image:
        return image
    slash = image.rfind("/")
    colon = image.rfind(":")
    return image[:colon] if colon > slash else image


def matches(event: Event, filters: Filters) -> bool:
    """moby's ``events.Filter.Include``, for the filters dockyard has events for.

    ``event`` values like ``exec_start: sh`` also match their action prefix;
    ``container`` matches an id prefix or the name; ``image`` the reference
    with or without its tag.
    """
    action = event.action
    if not (filters.exact_match("event", action) or filters.exact_match("event", action.split(":", 1)[0])):
        return False
    if not filters.exact_match("type", event.type):
        return False
    if not filters.exact_match("scope", "local"):
        return False
    if not filters.match_kv_list("label", event.attributes):
        return False
    if filters.get("container"):
        if event.type != TYPE_CONTAINER:
            return False
        name = event.attributes.get("name", "")
        if not (filters.fuzzy_match("container", event.actor_id) or filters.fuzzy_match("container", name)):
            return False
    if filters.get("image"):
        if event.type not in (TYPE_CONTAINER, TYPE_IMAGE):
            return False
        image = event.attributes.get("name" if event.type == TYPE_IMAGE else "image", "")
        legacy_id = event.actor_id
        if not any(filters.exact_match("image", v)
                   for v in (legacy_id, image, _strip_tag(legacy_id), _strip_tag(image))):
            return False
    for key, kind in (("network", "network"), ("volume", "volume"), ("daemon", "daemon"),
                      ("plugin", "plugin"), ("service", "service"), ("node", "node"),
                      ("secret", "secret"), ("config", "config")):
        if filters.get(key) and event.type != kind:
            return False
    return True


class _Subscriber:
    def __init__(self, filters: Filters) -> None:
        self.filters = filters
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.pending = 0

    def offer(self, event: Event) -> bool:
        """Queue ``event`` if it matches; False when the backlog is full (drop me)."""
        if not matches(event, self.filters):
            return True
        if self.pending >= SUBSCRIBER_BACKLOG:
            return False
        self.pending += 1
        self.queue.put_nowait(event)
        return True


class _Channel:
    def __init__(self, size: int) -> None:
        self.history: collections.deque[Event] = collections.deque(maxlen=size)
        self.subscribers: set[_Subscriber] = set()
        self.last_ns = 0


class EventBus:
    """Per-endpoint (namespace) event streams with a bounded history.

    ``clock`` gives unix nanoseconds; times never go backwards within one
    endpoint, so ``since`` and ``until`` cut the history cleanly.
    """

    def __init__(self, *, history_size: int = HISTORY_SIZE, clock: Callable[[], int] = time.time_ns) -> None:
        self._size = history_size
        self._clock = clock
        self._channels: dict[str, _Channel] = {}

    def _channel(self, namespace: str) -> _Channel:
        channel = self._channels.get(namespace)
        if channel is None:
            channel = self._channels[namespace] = _Channel(self._size)
        return channel

    def publish(self, namespace: str, *, type: str, action: str, actor_id: str,
                attributes: Mapping[str, str] | None = None) -> Event:
        """Record an event and hand it to the endpoint's subscribers; never blocks."""
        channel = self._channel(namespace)
        now = max(self._clock(), channel.last_ns)
        channel.last_ns = now
        event = Event(type=type, action=action, actor_id=actor_id, attributes=dict(attributes or {}), time_ns=now)
        channel.history.append(event)
        for subscriber in list(channel.subscribers):
            if not subscriber.offer(event):
                channel.subscribers.discard(subscriber)
                subscriber.queue.put_nowait(None)
        return event

    def publish_container(self, namespace: str, *, container_id: str, name: str, image: str,
                          labels: Mapping[str, str] | None, action: str,
                          extra: Mapping[str, str] | None = None) -> Event:
        """A container event with moby's attributes (see :func:`container_attributes`)."""
        return self.publish(namespace, type=TYPE_CONTAINER, action=action, actor_id=container_id,
                            attributes=container_attributes(name=name, image=image, labels=labels, extra=extra))

    def publish_image(self, namespace: str, *, image_id: str, name: str, action: str,
                      labels: Mapping[str, str] | None = None) -> Event:
        """An image event: actor ``image_id`` (a reference for pull/push), attribute ``name``."""
        attributes = {str(k): str(v) for k, v in (labels or {}).items()}
        attributes["name"] = name
        return self.publish(namespace, type=TYPE_IMAGE, action=action, actor_id=image_id, attributes=attributes)

    def history(self, namespace: str, *, since_ns: int | None = None, until_ns: int | None = None,
                filters: Filters | None = None) -> list[Event]:
        """moby's ``loadBufferedEvents``: nothing unless ``since`` or ``until`` is set."""
        if since_ns is None and until_ns is None:
            return []
        filters = filters or Filters()
        return [e for e in self._channel(namespace).history
                if e.time_ns >= (since_ns or 0) and (until_ns is None or e.time_ns <= until_ns)
                and matches(e, filters)]

    @contextlib.contextmanager
    def _subscribed(self, namespace: str, filters: Filters) -> Iterator[_Subscriber]:
        channel = self._channel(namespace)
        subscriber = _Subscriber(filters)
        channel.subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            channel.subscribers.discard(subscriber)

    async def stream(self, namespace: str, *, since_ns: int | None = None, until_ns: int | None = None,
                     filters: Filters | None = None) -> AsyncIterator[Event]:
        """Past events (with ``since``/``until``), then live ones until ``until`` passes.

        With ``until`` already past it yields only the history and ends. The
        subscription is taken in the same step as the history snapshot, so
        no event is missed or repeated between them.
        """
        filters = filters or Filters()
        with self._subscribed(namespace, filters) as subscriber:
            for event in self.history(namespace, since_ns=since_ns, until_ns=until_ns, filters=filters):
                yield event
            if until_ns is not None and until_ns <= self._clock():
                return
            while True:
                if until_ns is None:
                    item = await subscriber.queue.get()
                else:
                    remaining = (until_ns - self._clock()) / 1e9
                    if remaining <= 0:
                        return
                    try:
                        item = await asyncio.wait_for(subscriber.queue.get(), remaining)
                    except TimeoutError:
                        return
                if item is None:
                    return
                subscriber.pending -= 1
                if until_ns is not None and item.time_ns > until_ns:
                    return
                yield item
