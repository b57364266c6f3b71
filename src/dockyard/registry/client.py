"""The registry client: the OCI distribution protocol over httpx (async).

    async with RegistryClient(insecure_registries=..., mirrors=...) as client:
        await client.login("127.0.0.1:5000", auth)            # LoginResult
        repo = client.repository("docker.io", "library/alpine", auth=auth)
        image = await repo.resolve("3.20", platform)           # ResolvedImage
        async for chunk in repo.fetch_blob(layer.digest, layer.size): ...

        dest = client.repository("127.0.0.1:5000", "team/app", auth=auth, push=True)
        if not await dest.blob_exists(digest):
            await dest.upload_blob(digest, size, chunks, mount_from="team/base")
        await dest.put_manifest("v1", media_type, data)

A :class:`Repository` carries one repository, one set of credentials and the
scopes it needs; it answers each 401 by the challenge (Basic, or a Bearer
token from the realm, cached per registry, scopes and credentials in the
client) and retries once. For ``docker.io`` pulls it tries each mirror, then
the origin, and keeps the first endpoint that answered for later requests.

Errors are :mod:`dockyard.registry.errors`; no httpx exception leaves this
module (``httpio.translate`` maps them once). Blob content is verified against
its digest and size while it streams; the last chunk is only handed over
once both match, so a caller that stops at an exception has nothing
unverified to keep.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from dockyard.oci.image import Index, Manifest
from dockyard.registry import auth as authmod
from dockyard.registry.auth import AuthConfig, Challenge, TokenCache, TokenKey
from dockyard.registry.endpoints import (
    DOCKER_IO,
    DOCKER_IO_ENDPOINT,
    Endpoint,
    InsecurePolicy,
    mirror_endpoint,
    mirror_host,
    normalize_registry,
    registry_endpoints,
    split_host,
)
from dockyard.registry.errors import (
    RegistryProtocolError,
    RegistryUnauthorized,
    Unreachable,
    errcode_message,
)
from dockyard.registry.httpio import translate
from dockyard.registry.repository import Repository
from dockyard.registry.transport import wide_transport
from dockyard.wire.reference import Reference

__all__ = [
    "LoginResult",
    "PingResult",
    "RegistryClient",
    "Repository",
]

USER_AGENT = "dockyard/0.1.0"
#: Connect, read and write timeout: a registry that is down fails well within 30 s.
DEFAULT_TIMEOUT = 20.0
_LOGIN_SUCCEEDED = "Login Succeeded"


@dataclass(frozen=True, kw_only=True)
class LoginResult:
    status: str  # "Login Succeeded"
    identity_token: str = ""  # a refresh token the registry issued, for the CLI to keep


@dataclass(frozen=True, kw_only=True)
class PingResult:
    endpoint: Endpoint
    status: int  # 200 or 401
    challenges: tuple[Challenge, ...]


class RegistryClient:
    """Registries as dockerd configures them; one instance per daemon, closed at shutdown.

    ``insecure_registries`` and ``mirrors`` take daemon.json's values;
    ``docker_io_endpoint`` is Docker Hub's origin, replaced only by tests.
    ``certs_dir`` is a ``certs.d`` directory: ``HOST[:PORT]/*.crt`` are extra
    CAs, ``*.cert`` + ``*.key`` client certificates. ``clock`` is monotonic
    seconds, for token expiry.
    """

    def __init__(
        self,
        *,
        insecure_registries: Sequence[str] = (),
        mirrors: Sequence[str] = (),
        certs_dir: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        user_agent: str = USER_AGENT,
        trust_env: bool = True,
        clock: Callable[[], float] = time.monotonic,
        docker_io_endpoint: str = DOCKER_IO_ENDPOINT,
    ) -> None:
        self._docker_io = docker_io_endpoint
        self._policy = InsecurePolicy(insecure_registries)
        self._mirrors = tuple(m for m in mirrors if m.strip())
        self._certs_dir = certs_dir
        self._timeout = httpx.Timeout(timeout)
        self._user_agent = user_agent
        self._trust_env = trust_env
        self._clock = clock
        self._http: dict[tuple[str, bool], httpx.AsyncClient] = {}
        self._tokens = TokenCache()
        self._challenges: dict[str, tuple[Challenge, ...]] = {}  # by endpoint base URL
        self._answered: dict[str, str] = {}  # registry → base URL that last answered
        self._insecure: dict[str, bool] = {}

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._http = list(self._http.values()), {}
        for client in clients:
            await client.aclose()

    # Endpoints -----------------------------------------------------------------

    async def is_insecure(self, registry: str) -> bool:
        registry = normalize_registry(registry)
        if registry == DOCKER_IO:
            return False
        cached = self._insecure.get(registry)
        if cached is not None:
            return cached
        addresses: list[str] = []
        if self._policy.needs_lookup(registry):
            # dockerd resolves the name to match it against insecure CIDRs; a
            # name that does not resolve is treated as secure.
            try:
                infos = await asyncio.wait_for(
                    asyncio.get_running_loop().getaddrinfo(split_host(registry), None), 5
                )
                addresses = sorted({str(info[4][0]) for info in infos})
            except (OSError, TimeoutError):
                addresses = []
        result = self._policy.is_insecure(registry, addresses)
        self._insecure[registry] = result
        return result

    async def endpoints(self, registry: str, *, pull: bool) -> list[Endpoint]:
        """Endpoints to try for ``registry``, in order: mirrors first for docker.io pulls."""
        registry = normalize_registry(registry)
        out: list[Endpoint] = []
        if registry == DOCKER_IO and pull:
            for mirror in self._mirrors:
                out.append(mirror_endpoint(mirror, insecure=await self.is_insecure(mirror_host(mirror))))
        own = list(registry_endpoints(
            registry, insecure=await self.is_insecure(registry), docker_io=self._docker_io
        ))
        answered = self._answered.get(registry)
        own.sort(key=lambda ep: ep.base_url != answered)  # the scheme that worked last goes first
        return out + own

    def _ssl_context(self, host: str, verify: bool) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        directory = self._certs_dir / host if self._certs_dir is not None else None
        if directory is not None and directory.is_dir():
            for ca in sorted(directory.glob("*.crt")):
                context.load_verify_locations(cafile=str(ca))
            for cert in sorted(directory.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.exists():
                    raise RegistryProtocolError(f"missing key {key.name} for client certificate {cert.name}")
                context.load_cert_chain(str(cert), str(key))
        return context

    def _http_for(self, host: str, verify: bool) -> httpx.AsyncClient:
        key = (host, verify)
        client = self._http.get(key)
        if client is None:
            context = self._ssl_context(host, verify)
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
            client = httpx.AsyncClient(
                verify=context,  # for the proxies of trust_env
                transport=wide_transport(context, limits),
                timeout=self._timeout,
                headers={"User-Agent": self._user_agent},
                trust_env=self._trust_env,
                limits=limits,
            )
            self._http[key] = client
        return client

    def http(self, endpoint: Endpoint) -> httpx.AsyncClient:
        return self._http_for(endpoint.host, endpoint.verify_tls)

    def _http_for_url(self, url: str) -> httpx.AsyncClient:
        host = urllib.parse.urlsplit(url).netloc.lower()
        return self._http_for(host, not self._policy.is_insecure(host))

    # Ping and login --------------------------------------------------------------

    async def ping(self, registry: str) -> PingResult:
        """``GET /v2/`` on the first endpoint that answers; 200 or 401 are both fine.

        Raises Unreachable when no endpoint answers, RegistryProtocolError when
        one answers with anything else.
        """
        registry = normalize_registry(registry)
        endpoints = await self.endpoints(registry, pull=False)
        for i, endpoint in enumerate(endpoints):
            url = endpoint.base_url + "/v2/"
            try:
                with translate("GET", url):
                    response = await self.http(endpoint).get(url)
            except Unreachable:
                if i == len(endpoints) - 1:
                    raise
                continue
            if response.status_code not in (200, 401):
                raise RegistryProtocolError(
                    f"{url} does not appear to be a v2 registry: "
                    f"{response.status_code} {response.reason_phrase}"
                )
            challenges = authmod.parse_challenges(response.headers.get_list("www-authenticate"))
            self._challenges[endpoint.base_url] = challenges
            self._answered[registry] = endpoint.base_url
            return PingResult(endpoint=endpoint, status=response.status_code, challenges=challenges)
        raise Unreachable(f"no endpoint for {registry}")  # endpoints() is never empty

    async def login(self, registry: str, auth: AuthConfig) -> LoginResult:
        """Check ``auth`` against the registry for real, as ``POST /auth`` does.

        ``registry`` may be a ``serveraddress`` URL. Raises RegistryUnauthorized
        with the registry's (or its token service's) reason when refused.
        """
        ping = await self.ping(registry)
        url = ping.endpoint.base_url + "/v2/"
        bearer = next((c for c in ping.challenges if c.scheme == "bearer"), None)
        basic = next((c for c in ping.challenges if c.scheme == "basic"), None)
        identity_token = ""
        if bearer is not None:
            if auth.registry_token:
                header = "Bearer " + auth.registry_token
            else:
                try:
                    token, _ = await self.token(ping.endpoint, bearer, (), auth, offline=True)
                except RegistryUnauthorized as exc:
                    raise RegistryUnauthorized(f'Get "{url}": {exc.message}') from exc
                header = "Bearer " + token.value
                identity_token = token.refresh_token
        elif basic is not None:
            header = authmod.basic_authorization(auth.username, auth.password)
        else:
            # An open registry: dockerd reports success without sending anything.
            return LoginResult(status=_LOGIN_SUCCEEDED)
        with translate("GET", url):
            response = await self.http(ping.endpoint).get(url, headers={"Authorization": header})
        if response.status_code == 200:
            return LoginResult(status=_LOGIN_SUCCEEDED, identity_token=identity_token)
        raise RegistryUnauthorized(
            f"login attempt to {url} failed with status: {response.status_code} {response.reason_phrase}"
        )

    async def token(
        self,
        endpoint: Endpoint,
        challenge: Challenge,
        scopes: Sequence[str],
        auth: AuthConfig | None,
        *,
        offline: bool = False,
    ) -> tuple[authmod.Token, TokenKey]:
        """A Bearer token for ``scopes`` from the challenge's realm, cached unless ``offline``."""
        key = TokenKey(
            registry=endpoint.base_url,
            realm=challenge.realm,
            service=challenge.params.get("service", ""),
            scopes=tuple(scopes),
            credentials=auth.cache_key() if auth is not None else "",
        )
        now = self._clock()
        if not offline:
            cached = self._tokens.get(key, now)
            if cached is not None:
                return cached, key
        if not challenge.realm.startswith(("http://", "https://")):
            raise RegistryProtocolError(f"invalid token realm {challenge.realm!r}")
        request = authmod.token_request(challenge, scopes, auth, offline=offline)
        client = self._http_for_url(request.url)
        with translate(request.method, request.url):
            response = await client.request(
                request.method, request.url, headers=dict(request.headers),
                data=dict(request.form) if request.form is not None else None,
            )  # fmt: skip
        if response.status_code != 200:
            message = errcode_message(response.content) or (
                f"token auth attempt for registry: {request.method} {challenge.realm} request failed "
                f"with status: {response.status_code} {response.reason_phrase}"
            )
            if response.status_code in (401, 403):
                raise RegistryUnauthorized(message)
            raise RegistryProtocolError(message)
        token = authmod.parse_token_response(response.content, now)
        self._tokens.put(key, token)
        return token, key

    # Repositories ----------------------------------------------------------------

    def repository(
        self,
        registry: str,
        path: str,
        *,
        auth: AuthConfig | None = None,
        push: bool = False,
        mount_from: Sequence[str] = (),
    ) -> Repository:
        """A handle on ``registry/path`` with these credentials.

        ``push`` asks for push scope and disables mirrors; ``mount_from`` names
        repositories of the same registry blobs may be mounted from (pull scope
        on them is requested with the same token).
        """
        return Repository(self, normalize_registry(registry), path, auth, push, tuple(mount_from))

    def repository_of(
        self,
        ref: Reference,
        *,
        auth: AuthConfig | None = None,
        push: bool = False,
        mount_from: Sequence[str] = (),
    ) -> Repository:
        """:meth:`repository` for a parsed reference's domain and path."""
        return self.repository(ref.domain, ref.path, auth=auth, push=push, mount_from=mount_from)

    def remember_answer(self, endpoint: Endpoint) -> None:
        """Try ``endpoint`` first next time (the scheme of an insecure registry that worked)."""
        if not endpoint.mirror:
            self._answered[endpoint.registry] = endpoint.base_url

