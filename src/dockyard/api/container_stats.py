"""Routes for ``GET /containers/{id}/stats`` and ``POST /containers/{id}/update``.

Thin: parse, call :class:`~dockyard.engine.container_stats.ContainerStats` or
:class:`~dockyard.engine.container_update.ContainerUpdater`, serialize. The
stats stream is one JSON document a line, as dockerd writes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from dockyard import errors
from dockyard.engine.container_stats import ContainerStats
from dockyard.engine.container_update import ContainerUpdater
from dockyard.engine.endpoint import Endpoint
from dockyard.http.responses import JsonResponse, StreamingResponse
from dockyard.http.router import Request, Router

UPDATE_BODY_LIMIT = 1 << 20


def register(router: Router, stats: ContainerStats, updater: ContainerUpdater, endpoint: Endpoint) -> None:
    """Add the routes, bound to ``endpoint``."""

    async def get_stats(request: Request) -> StreamingResponse:
        documents = await stats.stats(endpoint, request.path_params["id"],
                                      stream=request.query_bool("stream", True),
                                      one_shot=request.query_bool("one-shot"))

        async def body() -> AsyncIterator[bytes]:
            async for document in documents:
                yield (json.dumps(document, separators=(",", ":")) + "\n").encode()

        return StreamingResponse(status=200, chunks=body())

    async def update(request: Request) -> JsonResponse:
        body = await request.json(UPDATE_BODY_LIMIT)
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: the body must be an object")
        return JsonResponse(status=200, body=await updater.update(endpoint, request.path_params["id"], body))

    router.add("GET", "/containers/{id}/stats", get_stats)
    router.add("POST", "/containers/{id}/update", update)
