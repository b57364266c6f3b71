"""Container routes: create, inspect, list, start, wait, attach, logs, resize, kill, stop, remove.

Thin: parse the query, call the engine, serialize. Errors are dockyard.errors
and become HTTP statuses in ``http/responses.py``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from dockyard import errors
from dockyard.engine import container_io
from dockyard.engine.containers import ContainerService, WaitResult
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.logs import LogsOptions
from dockyard.http.responses import AnyResponse, Hijacked, JsonResponse, Response, StreamingResponse
from dockyard.http.router import Request, Router
from dockyard.wire import duration
from dockyard.wire import filters as wire_filters

#: Create bodies are small; dockerd reads them with no explicit limit, 16 MiB is plenty.
CREATE_BODY_LIMIT = 16 << 20


def _since_until(request: Request, name: str) -> int | None:
    text = request.query_str(name, "") or ""
    if not text or text == "0":
        return None
    # The CLI sends unix "seconds.nanoseconds" already (moby's ParseTimestamps).
    seconds, nanos = duration.parse_timestamps(text, 0)
    return seconds * 1_000_000_000 + nanos


def register(router: Router, service: ContainerService, endpoint: Endpoint) -> None:
    """Add the container routes, bound to ``endpoint``."""

    async def create(request: Request) -> JsonResponse:
        body = await request.json(CREATE_BODY_LIMIT)
        if body is None:
            raise errors.InvalidParameter("config cannot be empty in order to create a container")
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: the body must be an object")
        result = await service.create(endpoint, body, name=request.query_str("name", "") or None)
        return JsonResponse(status=201, body=result)

    async def list_containers(request: Request) -> JsonResponse:
        rows = await service.list(
            endpoint,
            all=request.query_bool("all"),
            limit=request.query_int("limit", -1),
            filters=wire_filters.parse(request.query_str("filters", "") or ""),
        )
        return JsonResponse(status=200, body=rows)

    async def inspect(request: Request) -> JsonResponse:
        return JsonResponse(status=200, body=await service.inspect(endpoint, request.path_params["id"]))

    async def start(request: Request) -> Response:
        await service.start_container(endpoint, request.path_params["id"])
        return Response(status=204)

    async def wait(request: Request) -> StreamingResponse:
        future = await service.wait(endpoint, request.path_params["id"], request.query_str("condition", "") or "")

        async def body() -> AsyncIterator[bytes]:
            # The head goes out now (the CLI waits for it before starting the
            # container); the one JSON chunk follows when the condition is met.
            try:
                result: WaitResult = await future
            finally:
                if not future.done():
                    future.cancel()
            error = {"Message": result.error} if result.error else None
            yield (json.dumps({"Error": error, "StatusCode": result.status_code}, separators=(",", ":")) + "\n").encode()

        return StreamingResponse(status=200, chunks=body())

    async def attach(request: Request) -> AnyResponse:
        options = container_io.AttachOptions(
            stream=request.query_bool("stream"),
            logs=request.query_bool("logs"),
            stdin=request.query_bool("stdin"),
            stdout=request.query_bool("stdout"),
            stderr=request.query_bool("stderr"),
            detach_keys=request.query_str("detachKeys", "") or "",
        )
        await container_io.attach(service, endpoint, request.path_params["id"], options,
                                  api_version=request.api_version, upgrade=request.upgrade)
        return Hijacked()

    async def logs(request: Request) -> StreamingResponse:
        tail_text = request.query_str("tail", "all") or "all"
        tail: int | None = None
        if tail_text != "all":
            try:
                tail = int(tail_text)
            except ValueError:
                tail = None
            if tail is not None and tail < 0:
                tail = None
        options = LogsOptions(
            follow=request.query_bool("follow"),
            since_ns=_since_until(request, "since"),
            until_ns=_since_until(request, "until"),
            tail=tail,
            timestamps=request.query_bool("timestamps"),
            stdout=request.query_bool("stdout"),
            stderr=request.query_bool("stderr"),
        )
        tty, chunks = await container_io.logs(service, endpoint, request.path_params["id"], options)
        media = container_io.stream_media_type(tty=tty, api_version=request.api_version)
        return StreamingResponse(status=200, content_type=media, chunks=chunks)

    async def resize(request: Request) -> Response:
        await service.resize(endpoint, request.path_params["id"],
                             height=request.query_int("h", 0), width=request.query_int("w", 0))
        return Response(status=200, content_type="text/plain; charset=utf-8")

    async def kill(request: Request) -> Response:
        await service.kill(endpoint, request.path_params["id"], request.query_str("signal", "") or None)
        return Response(status=204)

    async def stop(request: Request) -> Response:
        timeout_text = request.query_str("t", "") or request.query_str("timeout", "") or ""
        timeout = None
        if timeout_text:
            timeout = request.query_int("t" if request.query_str("t") else "timeout", 10)
        await service.stop(endpoint, request.path_params["id"], timeout=timeout,
                           signal=request.query_str("signal", "") or None)
        return Response(status=204)

    async def remove(request: Request) -> Response:
        await service.remove(endpoint, request.path_params["id"], force=request.query_bool("force"),
                             volumes=request.query_bool("v"))
        return Response(status=204)

    router.add("POST", "/containers/create", create)
    router.add("GET", "/containers/json", list_containers)
    router.add("GET", "/containers/{id}/json", inspect)
    router.add("POST", "/containers/{id}/start", start)
    router.add("POST", "/containers/{id}/wait", wait)
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("GET", "/containers/{id}/logs", logs)
    router.add("POST", "/containers/{id}/resize", resize)
    router.add("POST", "/containers/{id}/kill", kill)
    router.add("POST", "/containers/{id}/stop", stop)
    router.add("DELETE", "/containers/{id}", remove)

