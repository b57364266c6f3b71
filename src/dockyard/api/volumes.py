"""Volume routes: ``/volumes`` list, create, inspect, remove, prune (API 1.50 shapes)."""

from __future__ import annotations

from typing import Any

from dockyard import errors
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.volumes import VolumeService
from dockyard.http.responses import JsonResponse, Response
from dockyard.http.router import Request, Router
from dockyard.wire import filters as wire_filters


def _str_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise errors.InvalidParameter(f"invalid {field}: expected an object of strings")
    return dict(value)


def register(router: Router, service: VolumeService, endpoint: Endpoint) -> None:
    async def list_volumes(request: Request) -> JsonResponse:
        filters = wire_filters.parse(request.query_str("filters", "") or "")
        volumes = await service.list_volumes(endpoint, filters)
        return JsonResponse(status=200, body={"Volumes": [v.body() for v in volumes], "Warnings": None})

    async def create(request: Request) -> JsonResponse:
        body = await request.json()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: expected an object")
        name = body.get("Name") or ""
        if not isinstance(name, str):
            raise errors.InvalidParameter("invalid Name: expected a string")
        volume = await service.create(endpoint, name=name, driver=body.get("Driver") or "local",
                                      options=_str_map(body.get("DriverOpts"), "DriverOpts"),
                                      labels=_str_map(body.get("Labels"), "Labels"))
        return JsonResponse(status=201, body=volume.body())

    async def inspect(request: Request) -> JsonResponse:
        volume = await service.get(endpoint, request.path_params["name"])
        return JsonResponse(status=200, body=volume.body())

    async def remove(request: Request) -> Response:
        await service.remove(endpoint, request.path_params["name"], force=request.query_bool("force"))
        return Response(status=204)

    async def prune(request: Request) -> JsonResponse:
        filters = wire_filters.parse(request.query_str("filters", "") or "")
        body = await service.prune(endpoint, filters, api_version=request.api_version)
        return JsonResponse(status=200, body=body)

    router.add("GET", "/volumes", list_volumes)
    router.add("POST", "/volumes/create", create)
    router.add("POST", "/volumes/prune", prune)
    router.add("GET", "/volumes/{name}", inspect)
    router.add("DELETE", "/volumes/{name}", remove)
