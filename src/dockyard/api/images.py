"""Image routes: list, inspect, history, tag, remove, prune, load, save, import,
and (given the registry services) pull, push and ``/distribution/{name}/json``.

Thin: parse the query, call ImageService, serialize. Errors are dockyard.errors
and become HTTP statuses in ``http/responses.py``.
"""

from __future__ import annotations

import json

from dockyard import errors
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.image_pull import ImagePuller, parse_pull_reference
from dockyard.engine.image_push import ImagePusher
from dockyard.engine.images import ImageService
from dockyard.errors import InvalidParameter
from dockyard.http.responses import AnyResponse, JsonResponse, Response, StreamingResponse
from dockyard.http.router import Handler, Request, Router
from dockyard.registry import DEFAULT_PLATFORM, AuthConfig, decode_registry_auth, parse_platform
from dockyard.registry.auth import auth_config_from_json
from dockyard.wire import filters as wire_filters

TAR = "application/x-tar"
AUTH_HEADER = "x-registry-auth"


def register(
    router: Router,
    service: ImageService,
    endpoint: Endpoint,
    *,
    pull: Handler | None = None,
    puller: ImagePuller | None = None,
    pusher: ImagePusher | None = None,
) -> None:
    """Add the image routes. ``pull`` handles ``POST /images/create?fromImage=``
    (``puller``'s handler when not given); ``fromSrc`` (import) is handled here.
    ``pusher`` adds ``POST /images/{name}/push``, ``puller`` also
    ``GET /distribution/{name}/json``."""

    async def pull_image(request: Request) -> StreamingResponse:
        assert puller is not None
        ref = parse_pull_reference(request.query_str("fromImage", "") or "", request.query_str("tag", "") or "")
        platform_text = request.query_str("platform", "") or ""
        try:
            chunks = await puller.pull(
                endpoint,
                ref=ref,
                platform=parse_platform(platform_text) if platform_text else DEFAULT_PLATFORM,
                auth=decode_registry_auth(request.headers.get(AUTH_HEADER)),
            )
        except errors.Unauthorized as exc:
            # The spec gives this route no 401, and dockerd answers 500: the CLI
            # would otherwise stop at an interactive "Login prior to pull" prompt.
            raise errors.SystemError(exc.message) from exc
        return StreamingResponse(status=200, chunks=chunks)

    if pull is None and puller is not None:
        pull = pull_image

    async def push(request: Request) -> StreamingResponse:
        assert pusher is not None
        header = request.headers.get(AUTH_HEADER)
        auth: AuthConfig | None
        if header:
            auth = decode_registry_auth(header)
        else:
            # The legacy form, still used by docker-py: credentials as the JSON body.
            body = await request.read_all(1 << 20)
            try:
                auth = auth_config_from_json(json.loads(body))
            except ValueError as exc:
                reason = "EOF" if not body.strip() else str(exc)
                raise InvalidParameter(f"Bad parameters and missing X-Registry-Auth: {reason}") from exc
        chunks = await pusher.push(
            endpoint, request.path_params["name"], tag=request.query_str("tag", "") or "",
            auth=None if auth is None or auth.is_empty else auth,
        )  # fmt: skip
        return StreamingResponse(status=200, chunks=chunks)

    async def distribution(request: Request) -> JsonResponse:
        assert puller is not None
        body = await puller.distribution_inspect(
            request.path_params["name"], auth=decode_registry_auth(request.headers.get(AUTH_HEADER))
        )
        return JsonResponse(status=200, body=body)

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
    if pusher is not None:
        router.add("POST", "/images/{name:path}/push", push)
    if puller is not None:
        router.add("GET", "/distribution/{name:path}/json", distribution)
