"""Login, pull and push against docker-registry behind htpasswd Basic auth and behind
token auth (Bearer) with the in-process token server of dockyard.testing.registry."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard import errors as domain
from dockyard.registry import AuthConfig, RegistryClient, RegistryUnauthorized
from dockyard.testing.fixtures import sha256
from dockyard.testing.registry import (
    TOKEN_SERVICE,
    RunningRegistry,
    TokenServer,
    make_ca,
    make_server_cert,
    push_image,
    small_image,
    start_registry,
    stop_registry,
)

USERS = {"alice": "wonderland"}
GOOD = AuthConfig(username="alice", password="wonderland")
BAD = AuthConfig(username="alice", password="looking-glass")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-registry-auth-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def basic_registry(workdir: Path) -> Iterator[RunningRegistry]:
    running = start_registry(workdir / "basic", users=USERS)
    yield running
    stop_registry(running)


@pytest.fixture(scope="module")
def token_server(workdir: Path) -> Iterator[TokenServer]:
    with TokenServer(directory=workdir / "token-server", users=USERS) as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(workdir: Path, token_server: TokenServer) -> Iterator[RunningRegistry]:
    running = start_registry(workdir / "token", token=token_server)
    yield running
    stop_registry(running)


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    async with RegistryClient() as c:
        yield c


# Basic -------------------------------------------------------------------------


async def test_basic_login(basic_registry: RunningRegistry, client: RegistryClient) -> None:
    result = await client.login(basic_registry.host, GOOD)
    assert (result.status, result.identity_token) == ("Login Succeeded", "")
    # The CLI's serveraddress may be a URL.
    assert (await client.login(f"http://{basic_registry.host}/", GOOD)).status == "Login Succeeded"
    with pytest.raises(RegistryUnauthorized) as info:
        await client.login(basic_registry.host, BAD)
    assert info.value.message == (
        f"login attempt to http://{basic_registry.host}/v2/ failed with status: 401 Unauthorized"
    )
    assert isinstance(info.value, domain.Unauthorized) and info.value.status == 401


async def test_basic_push_pull(basic_registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("basic")
    repo = client.repository(basic_registry.host, "team/app", auth=GOOD, push=True)
    for blob in (image.config, *image.layers):
        await repo.upload_blob(sha256(blob), len(blob), blob)
    assert await repo.put_manifest("v1", "application/vnd.docker.distribution.manifest.v2+json",
                                   image.manifest) == image.digest  # fmt: skip
    pulled = client.repository(basic_registry.host, "team/app", auth=GOOD)
    assert (await pulled.get_manifest("v1")).data == image.manifest

    with pytest.raises(RegistryUnauthorized) as info:
        await client.repository(basic_registry.host, "team/app").head_manifest("v1")
    # dockerd 20.10's words for the same pull, byte for byte.
    assert info.value.message == (
        f'Head "http://{basic_registry.host}/v2/team/app/manifests/v1": no basic auth credentials'
    )
    with pytest.raises(RegistryUnauthorized) as info:
        await client.repository(basic_registry.host, "team/app", auth=BAD).get_manifest("v1")
    assert info.value.message == "unauthorized: authentication required"


# Bearer ------------------------------------------------------------------------


async def test_token_login(token_registry: RunningRegistry, token_server: TokenServer,
                           client: RegistryClient) -> None:  # fmt: skip
    token_server.requests.clear()
    result = await client.login(token_registry.host, GOOD)
    assert result.status == "Login Succeeded"
    assert result.identity_token  # the refresh token asked for with offline_token=true
    (seen,) = token_server.requests
    assert (seen.method, seen.username, seen.offline_token, seen.service) == ("GET", "alice", True, TOKEN_SERVICE)

    with pytest.raises(RegistryUnauthorized) as info:
        await client.login(token_registry.host, BAD)
    assert info.value.message == (
        f'Get "http://{token_registry.host}/v2/": unauthorized: incorrect username or password'
    )

    # An identity token logs in through the refresh-token grant, without the password.
    token_server.requests.clear()
    again = await client.login(token_registry.host, AuthConfig(identity_token=result.identity_token))
    assert again.status == "Login Succeeded"
    assert [(r.method, r.grant_type, r.username) for r in token_server.requests] == [
        ("POST", "refresh_token", "alice")
    ]
    with pytest.raises(RegistryUnauthorized):
        await client.login(token_registry.host, AuthConfig(identity_token="not-a-token"))


async def test_token_push_pull_and_cache(token_registry: RunningRegistry, token_server: TokenServer,
                                         client: RegistryClient) -> None:  # fmt: skip
    image = small_image("bearer")
    token_server.requests.clear()
    await push_image(client, token_registry.host, "team/bearer", "v1", image, GOOD)
    scopes = {s for r in token_server.requests for s in r.scopes}
    assert scopes == {"repository:team/bearer:pull,push"}
    assert all(r.method == "GET" and r.username == "alice" for r in token_server.requests)
    # One token served the whole push: the first 401 taught the challenge, the cache did the rest.
    assert len(token_server.requests) == 1

    token_server.requests.clear()
    for _ in range(2):  # a second handle with the same credentials reuses the cached token
        repo = client.repository(token_registry.host, "team/bearer", auth=GOOD)
        assert (await repo.get_manifest("v1")).digest == image.digest
        layer = image.layers[0]
        assert b"".join([c async for c in repo.fetch_blob(sha256(layer), len(layer))]) == layer
    assert [r.scopes for r in token_server.requests] == [("repository:team/bearer:pull",)]

    # With an identity token, the pull takes its token by the refresh grant.
    login = await client.login(token_registry.host, GOOD)
    token_server.requests.clear()
    repo = client.repository(token_registry.host, "team/bearer", auth=AuthConfig(identity_token=login.identity_token))
    assert (await repo.get_manifest("v1")).digest == image.digest
    assert [(r.method, r.grant_type) for r in token_server.requests] == [("POST", "refresh_token")]

    # Anonymous callers get a token without access; the registry refuses it.
    with pytest.raises(RegistryUnauthorized) as info:
        await client.repository(token_registry.host, "team/bearer").get_manifest("v1")
    assert info.value.message == "unauthorized: authentication required"
    with pytest.raises(RegistryUnauthorized) as info:
        await client.repository(token_registry.host, "team/bearer", auth=BAD).get_manifest("v1")
    assert info.value.message == "unauthorized: incorrect username or password"


async def test_token_expiry_fetches_a_new_token(token_registry: RunningRegistry, token_server: TokenServer) -> None:
    now = [1000.0]
    async with RegistryClient(clock=lambda: now[0]) as client:
        image = small_image("expiry")
        await push_image(client, token_registry.host, "team/expiry", "v1", image, GOOD)
        token_server.requests.clear()
        repo = client.repository(token_registry.host, "team/expiry", auth=GOOD)
        await repo.get_manifest("v1")
        await repo.get_manifest("v1")
        assert len(token_server.requests) == 1
        now[0] += token_server.expires_in  # past expires_in
        await repo.get_manifest("v1")
        assert len(token_server.requests) == 2


async def test_cross_repository_mount_with_tokens(token_registry: RunningRegistry, token_server: TokenServer,
                                                  client: RegistryClient) -> None:  # fmt: skip
    image = small_image("bearer-mount")
    await push_image(client, token_registry.host, "team/base", "v1", image, GOOD)
    token_server.requests.clear()
    dest = client.repository(token_registry.host, "team/derived", auth=GOOD, push=True, mount_from=["team/base"])
    layer = image.layers[0]
    assert await dest.upload_blob(sha256(layer), len(layer), layer, mount_from="team/base") == "mounted"
    assert set(token_server.requests[-1].scopes) == {"repository:team/base:pull", "repository:team/derived:pull,push"}


async def test_registry_token_is_sent_as_bearer(token_registry: RunningRegistry, token_server: TokenServer,
                                                client: RegistryClient) -> None:  # fmt: skip
    image = small_image("registry-token")
    await push_image(client, token_registry.host, "team/rt", "v1", image, GOOD)
    token = token_server.issue(username="alice", scopes=["repository:team/rt:pull"], service=TOKEN_SERVICE)
    token_server.requests.clear()
    repo = client.repository(token_registry.host, "team/rt", auth=AuthConfig(registry_token=token))
    assert (await repo.get_manifest("v1")).digest == image.digest
    assert token_server.requests == []


# TLS ---------------------------------------------------------------------------


async def test_tls_registry_with_ca_in_certs_dir(workdir: Path) -> None:
    ca = make_ca(workdir / "ca")
    server = make_server_cert(workdir / "tls-server", ca)
    registry = start_registry(workdir / "tls", tls=server)
    try:
        certs = workdir / "certs.d" / registry.host
        certs.mkdir(parents=True)
        shutil.copy(ca.certificate, certs / "ca.crt")
        async with RegistryClient(certs_dir=workdir / "certs.d") as client:
            ping = await client.ping(registry.host)
            assert ping.endpoint.base_url == f"https://{registry.host}"
            image = small_image("tls")
            await push_image(client, registry.host, "team/tls", "v1", image)
            fetched = await client.repository(registry.host, "team/tls").get_manifest("v1")
            assert fetched.digest == image.digest
    finally:
        stop_registry(registry)
