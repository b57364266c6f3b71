"""Exec routes: create, start (hijacked, legacy 200 or detached), resize, inspect.

Thin: parse the body or query, call the engine, serialize. Errors are
dockyard.errors and become HTTP statuses in ``http/responses.py``.
"""

from __future__ import annotations

from dockyard import errors
from dockyard.engine import container_io
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.exec import ExecService, parse_exec_options, parse_start_options
from dockyard.http.responses import AnyResponse, Hijacked, JsonResponse, Response
from dockyard.http.router import Request, Router
from dockyard.streams import ByteStream

#: Exec bodies are small; this only bounds a misbehaving client.
BODY_LIMIT = 1 << 20
_UINT32_MAX = (1 << 32) - 1


def _uint32(request: Request, name: str, label: str) -> int:
    """moby's httputils.Uint32Value: absent or empty is 0."""
    text = request.query_str(name, "") or ""
    if not text:
        return 0
    if not text.isdigit() or int(text) > _UINT32_MAX:
        reason = "value out of range" if text.isdigit() else "invalid syntax"
        raise errors.InvalidParameter(
            f'invalid resize {label} "{text}": strconv.ParseUint: parsing "{text}": {reason}')
    return int(text)


def register(router: Router, service: ExecService, endpoint: Endpoint) -> None:
    """Add the exec routes, bound to ``endpoint``."""

    async def create(request: Request) -> JsonResponse:
        options = parse_exec_options(await request.json(BODY_LIMIT), api_version=request.api_version)
        exec_id = await service.create(endpoint, request.path_params["id"], options)
        return JsonResponse(status=201, body={"Id": exec_id})

    async def start(request: Request) -> AnyResponse:
        options = parse_start_options(await request.json(BODY_LIMIT), api_version=request.api_version)
        if options.detach:
            await service.start(endpoint, request.path_params["id"], options, upgrade=None)
            return Response(status=200)
        # dockerd answers a request without Upgrade with 200 and the raw-stream
        # type, whatever the framing (stdcopy frames unless Tty).
        if "upgrade" in request.headers:
            media = container_io.stream_media_type(tty=options.tty, api_version=request.api_version)
        else:
            media = container_io.MEDIA_RAW

        async def upgrade() -> ByteStream:
            return await request.upgrade(media)

        await service.start(endpoint, request.path_params["id"], options, upgrade=upgrade)
        return Hijacked()

    async def resize(request: Request) -> Response:
        height = _uint32(request, "h", "height")
        width = _uint32(request, "w", "width")
        await service.resize(endpoint, request.path_params["id"], height=height, width=width)
        return Response(status=200)  # dockerd: 200, no type, no body

    async def inspect(request: Request) -> JsonResponse:
        return JsonResponse(status=200, body=service.inspect(endpoint, request.path_params["id"]))

    router.add("POST", "/containers/{id}/exec", create)
    router.add("POST", "/exec/{id}/start", start)
    router.add("POST", "/exec/{id}/resize", resize)
    router.add("GET", "/exec/{id}/json", inspect)
