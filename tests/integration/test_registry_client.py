"""The registry client against the real CNCF registry (Debian's docker-registry) on 127.0.0.1.

Open registry: push, pull, platforms, tags, mounts, tampering, errors, mirrors.
Auth (htpasswd Basic and Bearer tokens) lives in test_registry_client_auth.py.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard import errors as domain
from dockyard.oci.image import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
    encode_index,
)
from dockyard.registry import (
    DigestMismatch,
    ManifestRefused,
    RegistryClient,
    RegistryNotFound,
    Unreachable,
    parse_platform,
)
from dockyard.testing.fixtures import sha256
from dockyard.testing.registry import (
    RunningRegistry,
    chunks_of,
    free_port,
    push_image as push,
    small_image,
    start_registry,
    stop_registry,
)


def blob_file(registry: RunningRegistry, digest: str) -> Path:
    hex_part = digest.split(":", 1)[1]
    return registry.root / "storage/docker/registry/v2/blobs/sha256" / hex_part[:2] / hex_part / "data"


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-registry-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RunningRegistry]:
    running = start_registry(workdir / "open")
    yield running
    stop_registry(running)


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    async with RegistryClient() as c:
        yield c


async def test_ping_open_registry_falls_back_to_http(registry: RunningRegistry, client: RegistryClient) -> None:
    # 127.0.0.1 is insecure by default: HTTPS (unverified) is tried, then HTTP answers.
    ping = await client.ping(registry.host)
    assert ping.status == 200
    assert ping.endpoint.base_url == f"http://{registry.host}"
    assert ping.challenges == ()
    assert (await client.login(registry.host, _auth("a", "b"))).status == "Login Succeeded"


async def test_push_then_pull_by_tag_and_digest(registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("roundtrip")
    digest = await push(client, registry.host, "test/roundtrip", "v1", image)
    assert digest == image.digest

    repo = client.repository(registry.host, "test/roundtrip")
    by_tag = await repo.get_manifest("v1")
    assert (by_tag.media_type, by_tag.digest, by_tag.data) == (DOCKER_MANIFEST, image.digest, image.manifest)
    by_digest = await repo.get_manifest(image.digest)
    assert by_digest.data == image.manifest
    assert isinstance(by_digest.value, Manifest)
    assert await repo.head_manifest("v1") == (DOCKER_MANIFEST, image.digest, len(image.manifest))
    assert await repo.head_manifest("nope") is None

    resolved = await repo.resolve("v1")
    assert resolved.top_digest == resolved.manifest_digest == image.digest
    for desc, blob in zip(resolved.manifest.layers, image.layers, strict=True):
        got = b"".join([c async for c in repo.fetch_blob(desc.digest, desc.size)])
        assert got == blob
    config = await repo.read_blob(resolved.manifest.config.digest, resolved.manifest.config.size, limit=1 << 20)
    assert config == image.config


async def test_push_twice_finds_blobs_and_same_digest(registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("twice", oci=True)
    first = await push(client, registry.host, "test/twice", "a", image)
    repo = client.repository(registry.host, "test/twice", push=True)
    for blob in (image.config, *image.layers):
        assert await repo.blob_exists(sha256(blob))
    assert not await repo.blob_exists(sha256(b"never pushed"))
    second = await push(client, registry.host, "test/twice", "b", image)
    assert first == second == image.digest
    fetched = await client.repository(registry.host, "test/twice").get_manifest("b")
    assert fetched.media_type == OCI_MANIFEST


async def test_cross_repository_mount(registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("mount")
    await push(client, registry.host, "test/mount-source", "v1", image)
    dest = client.repository(registry.host, "test/mount-dest", push=True, mount_from=["test/mount-source"])
    layer = image.layers[0]
    assert not await dest.blob_exists(sha256(layer))
    assert await dest.upload_blob(sha256(layer), len(layer), layer, mount_from="test/mount-source") == "mounted"
    assert await dest.blob_exists(sha256(layer))
    # Mounting from a repository without the blob falls back to an upload.
    other = image.layers[1]
    assert await dest.upload_blob(sha256(other), len(other), other, mount_from="test/empty") == "uploaded"


async def test_upload_with_wrong_content_is_refused(registry: RunningRegistry, client: RegistryClient) -> None:
    repo = client.repository(registry.host, "test/badupload", push=True)
    blob = b"some content"
    with pytest.raises(DigestMismatch):
        await repo.upload_blob(sha256(b"other content"), len(blob), chunks_of(blob, 4))
    with pytest.raises(DigestMismatch):
        await repo.upload_blob(sha256(blob), len(blob) - 1, chunks_of(blob, 4))
    assert not await repo.blob_exists(sha256(blob))
    assert not await repo.blob_exists(sha256(b"other content"))


async def test_index_platform_selection(registry: RunningRegistry, client: RegistryClient) -> None:
    amd = small_image("amd64", oci=True)
    arm = small_image("arm64", oci=True)
    await push(client, registry.host, "test/multi", "amd64-only", amd)
    await push(client, registry.host, "test/multi", "arm64-only", arm)
    index = Index(
        media_type=OCI_INDEX,
        manifests=(
            Descriptor(media_type=OCI_MANIFEST, digest=amd.digest, size=len(amd.manifest),
                       platform=Platform(os="linux", architecture="amd64")),
            Descriptor(media_type=OCI_MANIFEST, digest=arm.digest, size=len(arm.manifest),
                       platform=Platform(os="linux", architecture="arm64", variant="v8")),
        ),
    )  # fmt: skip
    data = encode_index(index)
    repo = client.repository(registry.host, "test/multi", push=True)
    assert await repo.put_manifest("multi", OCI_INDEX, data) == sha256(data)

    default = await repo.resolve("multi")
    assert (default.top_digest, default.top_media_type) == (sha256(data), OCI_INDEX)
    assert default.manifest_digest == amd.digest
    arm64 = await repo.resolve("multi", parse_platform("linux/arm64/v8"))
    assert arm64.manifest_digest == arm.digest
    assert (await repo.resolve("multi", parse_platform("arm64"))).manifest_digest == arm.digest
    with pytest.raises(ManifestRefused) as info:
        await repo.resolve("multi", parse_platform("linux/s390x"))
    assert info.value.message == "no matching manifest for linux/s390x in the manifest list entries"


async def test_list_tags(registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("tags")
    for tag in ("3.20", "latest", "edge"):
        await push(client, registry.host, "test/tags", tag, image)
    assert sorted(await client.repository(registry.host, "test/tags").list_tags()) == ["3.20", "edge", "latest"]
    with pytest.raises(RegistryNotFound):
        await client.repository(registry.host, "test/no-such-repo").list_tags()


async def test_unknown_manifest_is_not_found_with_dockerds_message(
    registry: RunningRegistry, client: RegistryClient
) -> None:
    await push(client, registry.host, "test/unknown", "v1", small_image("unknown"))
    repo = client.repository(registry.host, "test/unknown")
    with pytest.raises(RegistryNotFound) as info:
        await repo.get_manifest("nope")
    assert info.value.message == (
        f"manifest for {registry.host}/test/unknown:nope not found: manifest unknown: manifest unknown"
    )
    assert isinstance(info.value, domain.NotFound) and info.value.status == 404
    missing = "sha256:" + "0" * 64
    with pytest.raises(RegistryNotFound) as info:
        await repo.get_manifest(missing)
    assert info.value.message.startswith(f"manifest for {registry.host}/test/unknown@{missing} not found: ")
    with pytest.raises(RegistryNotFound):
        await client.repository(registry.host, "test/never-pushed").get_manifest("latest")


async def test_tampered_blob_is_a_digest_mismatch(registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("tamper")
    await push(client, registry.host, "test/tamper", "v1", image)
    repo = client.repository(registry.host, "test/tamper")
    same_size, other_size = image.layers
    path = blob_file(registry, sha256(same_size))
    path.write_bytes(bytes([same_size[0] ^ 0xFF]) + same_size[1:])  # one byte flipped
    with pytest.raises(DigestMismatch) as info:
        async for _ in repo.fetch_blob(sha256(same_size), len(same_size)):
            pass
    assert info.value.message == f"filesystem layer verification failed for digest {sha256(same_size)}"
    assert info.value.status == 500

    blob_file(registry, sha256(other_size)).write_bytes(other_size + b"extra")
    received = []
    with pytest.raises(DigestMismatch):
        async for chunk in repo.fetch_blob(sha256(other_size), len(other_size)):
            received.append(chunk)
    assert received == []  # refused on the declared length, before any byte


async def test_fetch_without_digest_check_still_checks_size(registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("tamper-size-only")
    await push(client, registry.host, "test/tamper-size-only", "v1", image)
    repo = client.repository(registry.host, "test/tamper-size-only")
    same_size, other_size = image.layers
    flipped = bytes([same_size[0] ^ 0xFF]) + same_size[1:]
    blob_file(registry, sha256(same_size)).write_bytes(flipped)
    # The digest is the caller's to check (the puller leaves it to containerd's commit).
    got = [chunk async for chunk in repo.fetch_blob(sha256(same_size), len(same_size), check_digest=False)]
    assert b"".join(got) == flipped

    blob_file(registry, sha256(other_size)).write_bytes(other_size + b"extra")
    received = []
    with pytest.raises(DigestMismatch) as info:
        async for chunk in repo.fetch_blob(sha256(other_size), len(other_size), check_digest=False):
            received.append(chunk)
    assert info.value.message == (
        f"filesystem layer verification failed for digest {sha256(other_size)}: "
        f"registry sends {len(other_size) + 5} bytes, expected {len(other_size)}"
    )
    assert received == []


async def test_tampered_manifest_by_digest_is_refused(registry: RunningRegistry, client: RegistryClient) -> None:
    image = small_image("tamper-manifest")
    await push(client, registry.host, "test/tamper-manifest", "v1", image)
    path = blob_file(registry, image.digest)
    path.write_bytes(image.manifest.replace(b'"schemaVersion":2', b'"schemaVersion":2 '))
    with pytest.raises(DigestMismatch):
        await client.repository(registry.host, "test/tamper-manifest").get_manifest(image.digest)


async def test_manifest_with_absurd_sizes_or_types_is_refused(
    registry: RunningRegistry, client: RegistryClient
) -> None:
    image = small_image("absurd")
    await push(client, registry.host, "test/absurd", "v1", image)
    repo = client.repository(registry.host, "test/absurd", push=True)
    manifest = json.loads(image.manifest)
    # distribution checks blobs exist, not sizes: store a manifest that lies.
    manifest["layers"][0]["size"] = 1 << 50
    data = json.dumps(manifest).encode()
    await repo.put_manifest("absurd", DOCKER_MANIFEST, data)
    with pytest.raises(ManifestRefused, match="absurd size"):
        await repo.get_manifest("absurd")
    # The registry itself refuses a body whose mediaType contradicts Content-Type,
    # so that refusal of ours is covered by the unit tests.


async def test_mirror_serves_docker_io_then_origin_fallback(workdir: Path) -> None:
    mirror = start_registry(workdir / "mirror")
    origin = start_registry(workdir / "origin")
    try:
        async with RegistryClient() as pusher:
            image = small_image("alpine")
            await push(pusher, mirror.host, "library/alpine", "3.20", image)
            only_origin = small_image("origin-only")
            await push(pusher, origin.host, "library/busybox", "1", only_origin)
        dead = f"http://127.0.0.1:{free_port()}"
        async with RegistryClient(
            mirrors=[dead, mirror.url], docker_io_endpoint=origin.url
        ) as client:
            repo = client.repository("docker.io", "library/alpine")
            fetched = await repo.get_manifest("3.20")
            assert fetched.digest == image.digest
            assert repo.endpoint is not None and repo.endpoint.base_url == mirror.url
            blob = b"".join([c async for c in repo.fetch_blob(sha256(image.layers[0]), len(image.layers[0]))])
            assert blob == image.layers[0]
            # Not on the mirror: the origin answers.
            other = client.repository("index.docker.io", "library/busybox")
            assert (await other.get_manifest("1")).digest == only_origin.digest
            assert other.endpoint is not None and other.endpoint.base_url == origin.url
            # Pushes never go to mirrors.
            assert (await client.endpoints("docker.io", pull=False))[0].base_url == origin.url
        assert '"GET /v2/library/alpine/manifests/3.20 HTTP/1.1" 200' in mirror.log()

        stop_registry(mirror)
        stop_registry(origin)
        async with RegistryClient(mirrors=[mirror.url], docker_io_endpoint=origin.url) as client:
            with pytest.raises(Unreachable) as info:
                await client.repository("docker.io", "library/alpine").get_manifest("3.20")
            message = info.value.message
            assert f'"{origin.url}/v2/library/alpine/manifests/3.20"' in message
            assert f"registry mirror {mirror.url}" in message
            assert isinstance(info.value, domain.Unavailable)
    finally:
        stop_registry(mirror)
        stop_registry(origin)


async def test_registry_down_is_unreachable(client: RegistryClient) -> None:
    host = f"127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as info:
        await client.repository(host, "x/y").get_manifest("latest")
    assert info.value.message == (
        f'Get "http://{host}/v2/x/y/manifests/latest": dial tcp {host}: connect: connection refused'
    )
    with pytest.raises(Unreachable) as info:
        await client.ping(host)
    # dockerd 20.10 says the same of its /v2/ ping.
    assert info.value.message == f'Get "http://{host}/v2/": dial tcp {host}: connect: connection refused'



def _auth(username: str, password: str):  # type: ignore[no-untyped-def]
    from dockyard.registry import AuthConfig

    return AuthConfig(username=username, password=password)
