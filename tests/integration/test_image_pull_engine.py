"""ImagePuller / ImagePusher against a real containerd and a real docker-registry.

Progress messages in dockerd's order, "Already exists", shared downloads of two
concurrent pulls, and failures (tampered blob, missing tag) that must leave
nothing in the content store.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.containerd import Namespace
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.image_pull import ImagePuller, parse_pull_reference, short_id
from dockyard.engine.image_push import ImagePusher
from dockyard.engine.image_store import ImageStore
from dockyard.registry import RegistryClient
from dockyard.testing.containerd_fixture import ContainerdUnderTest, embedded_containerd
from dockyard.oci.image import DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, Descriptor, Manifest, encode_manifest
from dockyard.testing.fixtures import compress, files_layer, image_config, sha256
from dockyard.testing.registry import (
    RunningRegistry,
    SmallImage,
    push_image,
    small_image,
    start_registry,
    stop_registry,
)
from dockyard.wire import jsonmessage
from dockyard.wire.archive import Compression


@pytest.fixture(scope="module")
def registry() -> Iterator[RunningRegistry]:
    root = Path(tempfile.mkdtemp(prefix="dockyard-pull-engine-"))
    running = start_registry(root / "open")
    yield running
    stop_registry(running)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
async def ctrd() -> AsyncIterator[ContainerdUnderTest]:
    async with embedded_containerd(prefix="dockyard-ctrd-pull-") as running:
        yield running


_counter = iter(range(10_000))


class Env:
    def __init__(self, ctrd: ContainerdUnderTest, client: RegistryClient, name: str) -> None:
        self.endpoint = Endpoint(name="test", namespace=name)
        self.ns: Namespace = ctrd.client.namespace(name)
        self.store = ImageStore()
        self.client = client
        self.puller = ImagePuller(containerd=ctrd.client, store=self.store, registry=client)
        self.pusher = ImagePusher(containerd=ctrd.client, store=self.store, registry=client)

    async def pull(self, text: str, tag: str = "") -> list[dict]:
        chunks = await self.puller.pull(self.endpoint, ref=parse_pull_reference(text, tag))
        return list(jsonmessage.iter_messages(b"".join([c async for c in chunks])))


@pytest.fixture
async def env(ctrd: ContainerdUnderTest) -> AsyncIterator[Env]:
    name = f"pull-{next(_counter)}"
    await ctrd.client.create_namespace(name)
    async with RegistryClient() as client:
        yield Env(ctrd, client, name)


def blob_file(registry: RunningRegistry, digest: str) -> Path:
    hex_part = digest.split(":", 1)[1]
    return registry.root / "storage/docker/registry/v2/blobs/sha256" / hex_part[:2] / hex_part / "data"


def blob_gets(registry: RunningRegistry, digest: str) -> int:
    return sum(1 for line in registry.log().splitlines() if f'"GET /v2/' in line and f"/blobs/{digest} " in line)


async def test_pull_messages_records_and_up_to_date(registry: RunningRegistry, env: Env) -> None:
    image = small_image("engine-pull")
    async with RegistryClient() as client:
        digest = await push_image(client, registry.host, "engine/pull", "v1", image)
    name = f"{registry.host}/engine/pull"
    got = await env.pull(name, "v1")
    ids = [short_id(sha256(layer)) for layer in image.layers]
    assert got[0] == {"status": "Pulling from engine/pull", "id": "v1"}
    assert got[1:3] == [{"status": "Pulling fs layer", "progressDetail": {}, "id": i} for i in ids]
    for layer_id, layer in zip(ids, image.layers, strict=True):
        mine = [m for m in got if m.get("id") == layer_id]
        assert [m["status"] for m in mine] == [
            "Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting", "Pull complete",
        ]  # fmt: skip
        assert mine[1]["progressDetail"] == {"current": len(layer), "total": len(layer)}
        assert mine[1]["progress"] == jsonmessage.progress_bar(len(layer), len(layer))
    # Extraction in layer order.
    extracted = [m["id"] for m in got if m.get("status") == "Pull complete"]
    assert extracted == ids
    assert got[-2:] == [
        {"status": f"Digest: {digest}"},
        {"status": f"Status: Downloaded newer image for {name}:v1"},
    ]
    stored = await env.store.lookup(env.ns, f"{name}:v1")
    assert stored.id == sha256(image.config)
    assert stored.repo_digests == [f"{name}@{digest}"]
    assert sorted(r.name for r in await env.ns.list_images()) == [f"{name}:v1", f"{name}@{digest}"]

    again = await env.pull(name, "v1")
    assert again == [
        {"status": "Pulling from engine/pull", "id": "v1"},
        {"status": f"Digest: {digest}"},
        {"status": f"Status: Image is up to date for {name}:v1"},
    ]
    by_digest = await env.pull(name, digest)
    assert by_digest[0] == {"status": "Pulling from engine/pull", "id": f"{name}@{digest}"}
    assert by_digest[-1] == {"status": f"Status: Image is up to date for {name}@{digest}"}


async def test_layers_already_present_are_not_fetched_again(registry: RunningRegistry, env: Env) -> None:
    base = small_image("engine-shared")
    async with RegistryClient() as client:
        await push_image(client, registry.host, "engine/shared-a", "v1", base)
        await push_image(client, registry.host, "engine/shared-b", "v1", base)
    await env.pull(f"{registry.host}/engine/shared-a", "v1")
    before = blob_gets(registry, sha256(base.layers[0]))
    got = await env.pull(f"{registry.host}/engine/shared-b", "v1")
    # The same image under another name: no layer messages at all, as dockerd.
    assert [m.get("status") for m in got][1:] == [f"Digest: {base.digest}",
                                                   f"Status: Downloaded newer image for {registry.host}/engine/shared-b:v1"]
    assert blob_gets(registry, sha256(base.layers[0])) == before


def image_of(*tars: bytes) -> SmallImage:
    """A gzip schema-2 image of these layer tars (small_image's shape, layers chosen)."""
    layers = tuple(compress(t, Compression.GZIP) for t in tars)
    config = image_config([sha256(t) for t in tars])
    manifest = Manifest(
        media_type=DOCKER_MANIFEST,
        config=Descriptor(media_type=DOCKER_CONFIG, digest=sha256(config), size=len(config)),
        layers=tuple(Descriptor(media_type=DOCKER_LAYER_GZIP, digest=sha256(b), size=len(b)) for b in layers),
    )
    return SmallImage(config=config, layers=layers, manifest=encode_manifest(manifest))


async def test_already_exists_for_a_blob_in_the_content_store(registry: RunningRegistry, env: Env) -> None:
    base = files_layer({"etc/base": b"shared"})
    first = image_of(base, files_layer({"one": b"1"}))
    second = image_of(base, files_layer({"two": b"2"}))
    async with RegistryClient() as client:
        await push_image(client, registry.host, "engine/exists", "one", first)
        await push_image(client, registry.host, "engine/exists", "two", second)
    await env.pull(f"{registry.host}/engine/exists", "one")
    got = await env.pull(f"{registry.host}/engine/exists", "two")
    shared, own = (short_id(sha256(layer)) for layer in second.layers)
    assert got[1:3] == [
        {"status": "Already exists", "progressDetail": {}, "id": shared},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": own},
    ]
    assert [m["status"] for m in got if m.get("id") == shared] == ["Already exists"]
    assert blob_gets(registry, sha256(second.layers[0])) == 1
    assert (await env.store.lookup(env.ns, f"{registry.host}/engine/exists:two")).id == sha256(second.config)


async def test_concurrent_pulls_share_downloads(registry: RunningRegistry, env: Env) -> None:
    image = small_image("engine-concurrent")
    async with RegistryClient() as client:
        await push_image(client, registry.host, "engine/concurrent", "v1", image)
    name = f"{registry.host}/engine/concurrent"
    one, two = await asyncio.gather(env.pull(name, "v1"), env.pull(name, "v1"))
    for got in (one, two):
        assert got[-1]["status"].startswith("Status: ")
        assert not [m for m in got if "error" in m]
    for layer in image.layers:
        assert blob_gets(registry, sha256(layer)) == 1
    assert (await env.store.lookup(env.ns, f"{name}:v1")).id == sha256(image.config)
    assert await env.ns.list_leases() == []


async def test_tampered_blob_fails_the_pull_and_leaves_nothing(registry: RunningRegistry, env: Env) -> None:
    image = small_image("engine-tamper")
    async with RegistryClient() as client:
        await push_image(client, registry.host, "engine/tamper", "v1", image)
    good, bad = image.layers
    blob_file(registry, sha256(bad)).write_bytes(bytes([bad[0] ^ 0xFF]) + bad[1:])
    got = await env.pull(f"{registry.host}/engine/tamper", "v1")
    assert got[-1] == {
        "errorDetail": {"message": f"filesystem layer verification failed for digest {sha256(bad)}"},
        "error": f"filesystem layer verification failed for digest {sha256(bad)}",
    }
    await asyncio.sleep(0.2)  # the download's own lease is dropped just after the pull ends
    assert await env.ns.list_images() == []
    assert await env.ns.list_blobs() == []
    assert [s for s in await env.ns.list_snapshots()] == []
    assert await env.ns.list_leases() == []


async def test_missing_tag_is_an_error_before_any_output(registry: RunningRegistry, env: Env) -> None:
    with pytest.raises(errors.NotFound) as info:
        await env.pull(f"{registry.host}/engine/pull", "nope")
    assert info.value.message == (
        f"manifest for {registry.host}/engine/pull:nope not found: manifest unknown: manifest unknown"
    )
    assert await env.ns.list_blobs() == []


async def test_push_then_pull_all_tags(registry: RunningRegistry, env: Env) -> None:
    image = small_image("engine-push")
    async with RegistryClient() as client:
        await push_image(client, registry.host, "engine/src", "v1", image)
    await env.pull(f"{registry.host}/engine/src", "v1")
    stored = await env.store.lookup(env.ns, f"{registry.host}/engine/src:v1")
    for tag in ("a", "b"):
        await env.store.tag(env.ns, f"{registry.host}/engine/dst:{tag}", stored.target)
    chunks = await env.pusher.push(env.endpoint, f"{registry.host}/engine/dst")
    got = list(jsonmessage.iter_messages(b"".join([c async for c in chunks])))
    assert got[0] == {"status": f"The push refers to repository [{registry.host}/engine/dst]"}
    statuses = [m.get("status") for m in got]
    assert "Mounted from engine/src" in statuses  # the blobs came from engine/src: mounted, not sent
    assert f"a: digest: {image.digest} size: {len(image.manifest)}" in statuses
    assert got[-1] == {"progressDetail": {}, "aux": {"Tag": "b", "Digest": image.digest, "Size": len(image.manifest)}}

    fresh = await env.pull(f"{registry.host}/engine/dst")  # every tag (docker pull -a)
    # In the registry's order, as dockerd does (distribution lists newest first here).
    async with RegistryClient() as client:
        order = list(await client.repository(registry.host, "engine/dst").list_tags())
    assert [m["id"] for m in fresh if m.get("status", "").startswith("Pulling from")] == order
    assert sorted(order) == ["a", "b"]
    # Both tags were pushed from here: nothing changes locally.
    assert fresh[-1] == {"status": f"Status: Image is up to date for {registry.host}/engine/dst"}
