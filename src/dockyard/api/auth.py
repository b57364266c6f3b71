"""``POST /auth`` (``docker login``): credentials checked against the registry for real.

Answers ``{"IdentityToken": "…", "Status": "Login Succeeded"}`` once the
registry accepted them (``/v2/`` with Basic credentials, or a token from its
token service); otherwise the registry client's RegistryUnauthorized (401)
carries the registry's reason, and the CLI exits non-zero with it.
"""

from __future__ import annotations

from dockyard.engine.endpoint import Endpoint
from dockyard.http.responses import JsonResponse
from dockyard.http.router import Request, Router
from dockyard.registry import RegistryClient
from dockyard.registry.auth import auth_config_from_json

#: An empty ``serveraddress`` means Docker Hub (the CLI sends its v1 index URL).
DEFAULT_SERVER = "docker.io"


def register(router: Router, registry: RegistryClient, endpoint: Endpoint) -> None:
    """Add ``POST /auth``. Logins are per request: nothing is stored daemon-side."""

    async def login(request: Request) -> JsonResponse:
        auth = auth_config_from_json(await request.json())
        result = await registry.login(auth.server_address or DEFAULT_SERVER, auth)
        # Go's AuthenticateOKBody field order.
        return JsonResponse(status=200, body={"IdentityToken": result.identity_token, "Status": result.status})

    router.add("POST", "/auth", login)
