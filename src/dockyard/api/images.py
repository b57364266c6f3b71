"""Image routes: list, inspect, history, tag, remove, prune, load, save, import.

Thin: parse the query, call ImageService, serialize. Errors are dockyard.errors
and become HTTP statuses in ``http/responses.py``.
"""

from __future__ import annotations

from dockyard.engine.endpoint import Endpoint
from dockyard.errors import InvalidParameter
from dockyard.engine.images import ImageService
from dockyard.http.responses import AnyResponse, JsonResponse, Response, StreamingResponse
from dockyard.http.router import Handler, Request, Router
from dockyard.wire import filters as wire_filters

TAR = "application/x-tar"


def register(
    router: Router, service: ImageService, endpoint: Endpoint, *, pull: Handler | None = None
) -> None:
    """Add the image routes. ``pull`` handles ``POST /images/create?fromImage=``
    (the registry client's); ``fromSrc`` (import) is handled here."""

    async def list_images(request: Request) -> JsonResponse:
        body = await service.list_images(
            endpoint,
            filters=wire_filters.parse(request.query_str("filters", "") or ""),
            all=request.query_bool("all"),
            shared_size=request.query_bool("shared-size"),
            api_version=request.api_version,
        )
        return JsonResponse(status=200, body=body)

    async def inspect(request: Request) -> JsonResponse:
        body = await service.inspect(
            endpoint, request.path_params["name"], api_version=request.api_version
        )
        return JsonResponse(status=200, body=body)

    async def history(request: Request) -> JsonResponse:
        return JsonResponse(status=200, body=await service.history(endpoint, request.path_params["name"]))

    async def tag(request: Request) -> Response:
        await service.tag(
            endpoint,
            request.path_params["name"],
            repo=request.query_str("repo", "") or "",
            tag=request.query_str("tag", "") or "",
        )
        return Response(status=201)

    async def remove(request: Request) -> JsonResponse:
        body = await service.remove(
            endpoint,
            request.path_params["name"],
            force=request.query_bool("force"),
            prune=not request.query_bool("noprune"),
        )
        return JsonResponse(status=200, body=body)

    async def prune(request: Request) -> JsonResponse:
        body = await service.prune(
            endpoint, filters=wire_filters.parse(request.query_str("filters", "") or "")
        )
        return JsonResponse(status=200, body=body)

    async def load(request: Request) -> StreamingResponse:
        chunks = await service.load(endpoint, request.body, quiet=request.query_bool("quiet"))
        return StreamingResponse(status=200, chunks=chunks)

    async def save_one(request: Request) -> StreamingResponse:
        chunks = await service.save(endpoint, [request.path_params["name"]])
        return StreamingResponse(status=200, content_type=TAR, chunks=chunks)

    async def save_many(request: Request) -> StreamingResponse:
        chunks = await service.save(endpoint, list(request.query.get("names", ())))
        return StreamingResponse(status=200, content_type=TAR, chunks=chunks)

    async def create(request: Request) -> AnyResponse:
        if request.query_str("fromImage") and pull is not None:
            return await pull(request)
        if request.query_str("fromSrc") not in (None, "-"):
            raise InvalidParameter("importing from a URL is not supported; send the tarball as the body")
        chunks = await service.import_image(
            endpoint,
            request.body,
            repo=request.query_str("repo", "") or "",
            tag=request.query_str("tag", "") or "",
            message=request.query_str("message", "") or "",
            changes=list(request.query.get("changes", ())),
        )
        return StreamingResponse(status=200, chunks=chunks)

    router.add("GET", "/images/json", list_images)
    router.add("POST", "/images/load", load)
    router.add("GET", "/images/get", save_many)
    router.add("POST", "/images/prune", prune)
    router.add("POST", "/images/create", create)
    router.add("GET", "/images/{name:path}/get", save_one)
    router.add("GET", "/images/{name:path}/json", inspect)
    router.add("GET", "/images/{name:path}/history", history)
    router.add("POST", "/images/{name:path}/tag", tag)
    router.add("DELETE", "/images/{name:path}", remove)
