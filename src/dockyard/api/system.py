"""System routes: ``/_ping``, ``/version``, ``/info``."""

from __future__ import annotations

from dockyard.engine.endpoint import Endpoint
from dockyard.engine.system import API_VERSION, SystemService
from dockyard.http.responses import JsonResponse, Response
from dockyard.http.router import Request, Router

# What dockerd sends with every ping; the CLI reads these before any other call.
PING_HEADERS = (
    ("Api-Version", API_VERSION),
    ("Builder-Version", "1"),
    ("Docker-Experimental", "false"),
    ("Ostype", "linux"),
    ("Cache-Control", "no-cache, no-store, must-revalidate"),
    ("Pragma", "no-cache"),
)


def register(router: Router, service: SystemService, endpoint: Endpoint) -> None:
    async def ping(request: Request) -> Response:
        body = b"" if request.method == "HEAD" else b"OK"
        return Response(
            status=200, body=body, content_type="text/plain; charset=utf-8", headers=PING_HEADERS
        )

    async def version(request: Request) -> Response:
        return JsonResponse(status=200, body=service.version())

    async def info(request: Request) -> Response:
        return JsonResponse(status=200, body=await service.info(endpoint))

    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    router.add("GET", "/version", version)
    router.add("GET", "/info", info)
