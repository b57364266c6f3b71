"""Container routes for restart, pause, unpause, rename and top.

Thin: parse the query, call :class:`~dockyard.engine.container_lifecycle.ContainerLifecycle`,
serialize. Errors become HTTP statuses in ``http/responses.py``.
"""

from __future__ import annotations

from dockyard.engine.container_lifecycle import ContainerLifecycle
from dockyard.engine.endpoint import Endpoint
from dockyard.http.responses import JsonResponse, Response
from dockyard.http.router import Request, Router


def _timeout(request: Request) -> int | None:
    """``t`` (or the older ``timeout``), absent meaning the container's StopTimeout."""
    for name in ("t", "timeout"):
        if request.query_str(name, "") or "":
            return request.query_int(name, 10)
    return None


def register(router: Router, lifecycle: ContainerLifecycle, endpoint: Endpoint) -> None:
    """Add the routes, bound to ``endpoint``."""

    async def restart(request: Request) -> Response:
        await lifecycle.restart(endpoint, request.path_params["id"], timeout=_timeout(request),
                                signal=request.query_str("signal", "") or None)
        return Response(status=204)

    async def pause(request: Request) -> Response:
        await lifecycle.pause(endpoint, request.path_params["id"])
        return Response(status=204)

    async def unpause(request: Request) -> Response:
        await lifecycle.unpause(endpoint, request.path_params["id"])
        return Response(status=204)

    async def rename(request: Request) -> Response:
        await lifecycle.rename(endpoint, request.path_params["id"], request.query_str("name", "") or "")
        return Response(status=204)

    async def top(request: Request) -> JsonResponse:
        body = await lifecycle.top(endpoint, request.path_params["id"], request.query_str("ps_args", "") or "")
        return JsonResponse(status=200, body=body)

    router.add("POST", "/containers/{id}/restart", restart)
    router.add("POST", "/containers/{id}/pause", pause)
    router.add("POST", "/containers/{id}/unpause", unpause)
    router.add("POST", "/containers/{id}/rename", rename)
    router.add("GET", "/containers/{id}/top", top)
