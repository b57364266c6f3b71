"""Build routes: ``POST /build`` (the classic builder's protocol) and ``POST /build/prune``.

Thin: the query and ``X-Registry-Config`` become :class:`BuildOptions` and an
auth lookup; the executor returns the JSON message stream. Option errors are
HTTP 400s; everything after the response head is a message in the stream.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dockyard import errors
from dockyard.build.executor import Builder, BuildOptions
from dockyard.engine.endpoint import Endpoint
from dockyard.http.responses import JsonResponse, StreamingResponse
from dockyard.http.router import Request, Router
from dockyard.registry import AuthConfig
from dockyard.registry.auth import auth_config_from_json
from dockyard.wire import reference

REGISTRY_CONFIG_HEADER = "x-registry-config"
#: How Docker Hub's credentials are keyed in the CLI's config file.
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")


def _json_query(request: Request, name: str) -> Any:
    text = request.query_str(name, "") or ""
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise errors.InvalidParameter(f"invalid {name} value: {exc}") from exc


def _string_map(value: Any, name: str, *, allow_null: bool) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(v, str) or (allow_null and v is None) for v in value.values()
    ):
        raise errors.InvalidParameter(f"invalid {name} value: expected a JSON object of strings")
    return {str(k): v for k, v in value.items()}


def _list_query(request: Request, name: str) -> tuple[str, ...]:
    out: list[str] = []
    for value in request.query.get(name, ()):
        out += [v for v in value.split(",") if v]
    return tuple(out)


def parse_options(request: Request) -> BuildOptions:
    """The ``POST /build`` query as BuildOptions (dockerd's names and rules)."""
    cache_from = _json_query(request, "cachefrom") or []
    if not isinstance(cache_from, list):
        raise errors.InvalidParameter("invalid cachefrom value: expected a JSON array")
    version = request.query_str("version", "1") or "1"
    if version not in ("1", ""):
        raise errors.InvalidParameter(f"BuildKit (version={version}) is not supported; use the classic builder")
    return BuildOptions(
        dockerfile=request.query_str("dockerfile", "") or "",
        tags=tuple(t for t in request.query.get("t", ()) if t),
        build_args=_string_map(_json_query(request, "buildargs"), "buildargs", allow_null=True),
        labels=_string_map(_json_query(request, "labels"), "labels", allow_null=False),
        target=request.query_str("target", "") or "",
        no_cache=request.query_bool("nocache"),
        pull=request.query_bool("pull"),
        quiet=request.query_bool("q"),
        network_mode=request.query_str("networkmode", "") or "",
        extra_hosts=_list_query(request, "extrahosts"),
        cache_from=tuple(str(c) for c in cache_from),
    )


def decode_registry_config(header: str | None) -> dict[str, AuthConfig]:
    """``X-Registry-Config``: base64url JSON of ``{registry: AuthConfig}``."""
    if not header or not header.strip():
        return {}
    text = header.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        try:
            value = json.loads(base64.b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError) as exc:
            raise errors.InvalidParameter("invalid X-Registry-Config header") from exc
    if not isinstance(value, dict):
        return {}
    return {str(k): auth_config_from_json(v) for k, v in value.items() if isinstance(v, dict)}


def auth_lookup(configs: dict[str, AuthConfig]) -> Any:
    def auth_for(ref: reference.Reference) -> AuthConfig | None:
        domain = ref.domain
        keys = DOCKER_HUB_KEYS if domain in ("docker.io", "index.docker.io") else (
            domain, f"https://{domain}", f"http://{domain}", f"https://{domain}/v1/")
        for key in keys:
            found = configs.get(key)
            if found is not None and not found.is_empty:
                return found
        return None

    return auth_for


def register(router: Router, builder: Builder, endpoint: Endpoint) -> None:
    async def build(request: Request) -> StreamingResponse:
        options = parse_options(request)
        auth_for = auth_lookup(decode_registry_config(request.headers.get(REGISTRY_CONFIG_HEADER)))
        chunks = await builder.build(endpoint, request.body, options, auth_for=auth_for)
        return StreamingResponse(status=200, chunks=chunks)

    async def prune(request: Request) -> JsonResponse:
        return JsonResponse(status=200, body=await builder.prune(endpoint))

    router.add("POST", "/build", build)
    router.add("POST", "/build/prune", prune)
