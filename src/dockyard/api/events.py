"""``GET /events``: the endpoint's event stream, one JSON object per line.

Thin: parse ``since``/``until``/``filters``, stream from the engine's
:class:`~dockyard.engine.events.EventBus`. The head goes out at once (the CLI
waits for it); with ``until`` in the past only the history is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard import errors
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.events import ACCEPTED_FILTERS, EventBus, encode_event
from dockyard.http.responses import StreamingResponse, encode_json
from dockyard.http.router import Request, Router
from dockyard.wire import duration
from dockyard.wire import filters as wire_filters


def _timestamp(request: Request, name: str) -> int | None:
    """moby's ``ParseTimestamps(value, -1)``: absent means unset; ``0`` is the epoch."""
    text = request.query_str(name, "") or ""
    if not text:
        return None
    seconds, nanos = duration.parse_timestamps(text, -1)  # raises InvalidTime, a 400
    return seconds * 1_000_000_000 + nanos


def register(router: Router, bus: EventBus, endpoint: Endpoint) -> None:
    """Add ``GET /events``, bound to ``endpoint``."""

    async def events(request: Request) -> StreamingResponse:
        since = _timestamp(request, "since")
        until = _timestamp(request, "until")
        filters = wire_filters.parse(request.query_str("filters", "") or "")
        filters.validate(ACCEPTED_FILTERS)
        if since is not None and until is not None and until < since:
            raise errors.InvalidParameter("`since` time cannot be after `until` time")

        async def chunks() -> AsyncIterator[bytes]:
            async for event in bus.stream(endpoint.namespace, since_ns=since, until_ns=until, filters=filters):
                yield encode_json(encode_event(event))

        return StreamingResponse(status=200, content_type="application/json", chunks=chunks())

    router.add("GET", "/events", events)
