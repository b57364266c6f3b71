"""The image service against a real containerd: load, list, inspect, save,
tag, rmi, history, import, prune — and hostile archives that must leave nothing."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.containerd import Namespace
from dockyard.engine import image_load
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.images import ImageService, ImageUser
from dockyard.testing import fixtures
from dockyard.testing.containerd_fixture import ContainerdUnderTest, embedded_containerd
from dockyard.wire import archive, jsonmessage
from dockyard.wire import filters as wire_filters

TAG = "dockyard-test/busybox:latest"


class Body:
    """A request body in memory, read in small pieces like a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    async def read(self, max_bytes: int = 65536) -> bytes:
        chunk = self._data[self._pos : self._pos + min(max_bytes, 100_000)]
        self._pos += len(chunk)
        return chunk


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    out = bytearray()
    async for chunk in chunks:
        out += chunk
    return bytes(out)


def messages(data: bytes) -> list[dict]:
    return list(jsonmessage.iter_messages(data))


@pytest.fixture(scope="module")
async def ctrd() -> AsyncIterator[ContainerdUnderTest]:
    async with embedded_containerd(prefix="dockyard-ctrd-images-") as running:
        yield running


_counter = iter(range(10_000))


@pytest.fixture(params=["containerd-unpacks", "staged"])
async def env(ctrd: ContainerdUnderTest, tmp_path: Path, request: pytest.FixtureRequest):
    """A fresh namespace per test, so 'nothing left behind' can be checked exactly;
    loads unpacked by containerd, or staged while they stream in (as the daemon
    does with its own containerd), leaving nothing staged either way."""
    name = f"images-{next(_counter)}"
    await ctrd.client.create_namespace(name)
    endpoint = Endpoint(name="test", namespace=name)
    staging = tmp_path / "unpack-load" if request.param == "staged" else None
    service = ImageService(containerd=ctrd.client, tmp_dir=tmp_path / "tmp", staging_root=staging)
    yield service, endpoint, ctrd.client.namespace(name)
    if staging is not None:
        assert list(staging.iterdir()) == []


async def leftovers(ns: Namespace) -> tuple[list, list, list]:
    return await ns.list_images(), await ns.list_blobs(), await ns.list_snapshots()


async def load(service: ImageService, endpoint: Endpoint, data: bytes) -> list[dict]:
    return messages(await collect(await service.load(endpoint, Body(data))))


NO_FILTERS = wire_filters.parse("")


async def test_load_list_inspect_save_reload_tag_rmi(env) -> None:
    service, endpoint, ns = env
    image = fixtures.build_image(extra_layers=[{"etc/hello": b"hello\n"}])
    out = await load(service, endpoint, fixtures.assemble_docker_archive([image]))
    assert out == [{"stream": f"Loaded image: {TAG}\n"}]

    listed = await service.list_images(endpoint, filters=NO_FILTERS)
    assert len(listed) == 1
    summary = listed[0]
    assert summary["Id"] == image.id
    assert summary["RepoTags"] == [TAG]
    assert summary["Created"] == 1704067200
    assert summary["Size"] > 1_000_000
    assert summary["Labels"] == {"org.dockyard.fixture": "busybox"}
    assert list(summary) == [
        "Containers", "Created", "Id", "Labels", "ParentId", "RepoDigests", "RepoTags",
        "SharedSize", "Size",
    ]

    info = await service.inspect(endpoint, "dockyard-test/busybox")
    assert info["Id"] == image.id
    assert info["RootFS"] == {"Type": "layers", "Layers": list(image.diff_ids)}
    assert info["Config"]["Cmd"] == ["sh"]
    assert info["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert info["Created"] == "2024-01-01T00:00:00Z"
    assert info["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"
    for name in (image.id, image.id[7:], image.id[7:19], image.id[7:10]):
        assert (await service.inspect(endpoint, name))["Id"] == image.id
    with pytest.raises(errors.NotFound, match="No such image: busybox:latest"):
        await service.inspect(endpoint, "busybox")

    # Snapshots are committed under chain ids, and GC labels hold everything.
    chain = fixtures.sha256((image.diff_ids[0] + " " + image.diff_ids[1]).encode())
    assert (await ns.stat_snapshot(chain)).kind == "committed"

    saved = await collect(await service.save(endpoint, [TAG]))
    with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == [TAG]
        assert manifest[0]["Config"] == "blobs/sha256/" + image.id[7:]
        assert "index.json" in names and "oci-layout" in names

    history = await service.history(endpoint, TAG)
    assert history[0]["Id"] == image.id and history[0]["Tags"] == [TAG]
    assert [h["Id"] for h in history[1:]] == ["<missing>", "<missing>"]
    assert history[1]["Size"] > 0 and history[0]["Size"] == 0

    # Tag, then rmi by id needs force (two repositories); rmi by tag only untags.
    await service.tag(endpoint, TAG, repo="other/repo", tag="v1")
    assert sorted((await service.inspect(endpoint, image.id))["RepoTags"]) == sorted(
        [TAG, "other/repo:v1"]
    )
    with pytest.raises(errors.Conflict, match="image is referenced in multiple repositories"):
        await service.remove(endpoint, image.id[7:19])
    assert await service.remove(endpoint, "other/repo:v1") == [{"Untagged": "other/repo:v1"}]
    assert await service.remove(endpoint, TAG) == [{"Untagged": TAG}, {"Deleted": image.id}]
    assert await leftovers(ns) == ([], [], [])

    # Loading what we saved gives the same image back.
    out = await load(service, endpoint, saved)
    assert out == [{"stream": f"Loaded image: {TAG}\n"}]
    assert (await service.inspect(endpoint, TAG))["Id"] == image.id


@pytest.mark.parametrize("compression", [archive.Compression.GZIP, archive.Compression.ZSTD])
async def test_compressed_layers_and_compressed_archive(env, compression) -> None:
    service, endpoint, ns = env
    image = fixtures.build_image(compression=compression)
    data = fixtures.assemble_docker_archive([image])
    out = await load(service, endpoint, gzip.compress(data, mtime=0))
    assert out == [{"stream": f"Loaded image: {TAG}\n"}]
    info = await service.inspect(endpoint, TAG)
    assert info["Id"] == image.id
    blobs = {b.digest: b for b in await ns.list_blobs()}
    layer = blobs[image.layer_digests[0]]
    assert layer.labels["containerd.io/uncompressed"] == image.diff_ids[0]


async def test_loading_twice_and_in_two_compressions_is_one_image(env) -> None:
    service, endpoint, ns = env
    plain = fixtures.build_image()
    gz = fixtures.build_image(tags=("other:gz",), compression=archive.Compression.GZIP)
    for data in [fixtures.assemble_docker_archive([plain])] * 2 + [fixtures.assemble_docker_archive([gz])]:
        out = await load(service, endpoint, data)
        assert "error" not in out[0], out
    listed = await service.list_images(endpoint, filters=NO_FILTERS)
    assert [(s["Id"], sorted(s["RepoTags"])) for s in listed] == [(plain.id, sorted([TAG, "other:gz"]))]
    assert await ns.list_leases() == []
    assert len(await ns.list_images()) == 2


async def test_oci_layout_load(env) -> None:
    service, endpoint, ns = env
    image = fixtures.build_image(compression=archive.Compression.GZIP)
    data = fixtures.tar_bytes(fixtures.oci_layout_members(image))
    out = await load(service, endpoint, data)
    assert out == [{"stream": f"Loaded image: {TAG}\n"}]
    assert (await service.inspect(endpoint, TAG))["Id"] == image.id


async def test_untagged_load_is_dangling_then_prunable(env) -> None:
    service, endpoint, ns = env
    image = fixtures.build_image(tags=())
    out = await load(service, endpoint, fixtures.assemble_docker_archive([image]))
    assert out == [{"stream": f"Loaded image ID: {image.id}\n"}]
    listed = await service.list_images(endpoint, filters=wire_filters.parse('{"dangling":["true"]}'))
    assert [s["Id"] for s in listed] == [image.id] and listed[0]["RepoTags"] == []
    pruned = await service.prune(endpoint, filters=NO_FILTERS)
    assert pruned["ImagesDeleted"] == [{"Deleted": image.id}]
    assert pruned["SpaceReclaimed"] > 0
    assert await leftovers(ns) == ([], [], [])


async def test_tag_moved_away_leaves_dangling(env) -> None:
    service, endpoint, ns = env
    first = fixtures.build_image()
    second = fixtures.build_image(extra_layers=[{"x": b"2"}])
    await load(service, endpoint, fixtures.assemble_docker_archive([first]))
    await load(service, endpoint, fixtures.assemble_docker_archive([second]))
    listed = {s["Id"]: s["RepoTags"] for s in await service.list_images(endpoint, filters=NO_FILTERS)}
    assert listed == {first.id: [], second.id: [TAG]}
    # In use by a stopped container: prune keeps it, rmi by id needs force.
    async def users(ep, image_id):
        return [ImageUser(id="c" * 64, running=False)] if image_id == first.id else []
    service.set_containers_using(users)
    assert (await service.prune(endpoint, filters=NO_FILTERS))["ImagesDeleted"] is None
    with pytest.raises(errors.Conflict, match="being used by stopped container cccccccccccc"):
        await service.remove(endpoint, first.id)
    assert await service.remove(endpoint, first.id, force=True) == [{"Deleted": first.id}]


async def test_list_filters(env) -> None:
    service, endpoint, ns = env
    await load(service, endpoint, fixtures.assemble_docker_archive([fixtures.build_image()]))
    ref = wire_filters.parse('{"reference":["dockyard-test/*"]}')
    assert len(await service.list_images(endpoint, filters=ref)) == 1
    ref = wire_filters.parse('{"reference":["busybox"]}')
    assert await service.list_images(endpoint, filters=ref) == []
    label = wire_filters.parse('{"label":["org.dockyard.fixture=busybox"]}')
    assert len(await service.list_images(endpoint, filters=label)) == 1
    with pytest.raises(errors.InvalidParameter):
        await service.list_images(endpoint, filters=wire_filters.parse('{"nope":["x"]}'))


async def test_import_with_changes(env) -> None:
    service, endpoint, ns = env
    rootfs = fixtures.busybox_layer()
    chunks = await service.import_image(
        endpoint, Body(gzip.compress(rootfs, mtime=0)), repo="imported", tag="v1",
        changes=['CMD ["echo", "hi"]', "ENV A=1 B=two", "WORKDIR /srv", "EXPOSE 80", "USER tester"],
    )
    out = messages(await collect(chunks))
    assert len(out) == 1 and out[0]["status"].startswith("sha256:")
    info = await service.inspect(endpoint, "imported:v1")
    assert info["Id"] == out[0]["status"]
    assert info["Config"]["Cmd"] == ["echo", "hi"]
    assert info["Config"]["Env"] == ["A=1", "B=two"]
    assert info["Config"]["WorkingDir"] == "/srv"
    assert info["Config"]["User"] == "tester"
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert info["Comment"] == "Imported from -"
    with pytest.raises(errors.InvalidParameter, match="is not a valid change command"):
        await service.import_image(endpoint, Body(rootfs), changes=["RUN true"])


def _hostile_layer(entries: list[fixtures.LayerEntry]) -> bytes:
    return fixtures.layer_tar(entries)


def _archive_with_layer(layer: bytes, *, diff_id: str | None = None) -> bytes:
    image = fixtures.FixtureImage(
        config=fixtures.image_config([diff_id or fixtures.sha256(layer)]),
        layers=(layer,),
        diff_ids=(diff_id or fixtures.sha256(layer),),
        tags=(TAG,),
    )
    return fixtures.assemble_docker_archive([image])


SYM = tarfile.SYMTYPE
LNK = tarfile.LNKTYPE


def _hostile_archives() -> dict[str, bytes]:
    good = fixtures.files_layer({"ok": b"ok"})
    f = fixtures.LayerEntry
    cases = {
        "dotdot": _archive_with_layer(_hostile_layer([f(path="../escape", data=b"x")])),
        "absolute": _archive_with_layer(_hostile_layer([f(path="/etc/x", data=b"x")])),
        "symlink-root-then-write": _archive_with_layer(
            _hostile_layer([f(path="a", kind=SYM, linkname="/"), f(path="a/etc/x", data=b"x")])
        ),
        "symlink-up": _archive_with_layer(_hostile_layer([f(path="a", kind=SYM, linkname="../..")])),
        "hardlink-out": _archive_with_layer(_hostile_layer([f(path="h", kind=LNK, linkname="../../etc/passwd")])),
        "wrong-digest": _archive_with_layer(good, diff_id=fixtures.sha256(b"something else")),
        "truncated-gzip": _archive_with_layer(gzip.compress(good, mtime=0)[:-20]),
        "missing-layer": fixtures.tar_bytes(
            [m for m in fixtures.docker_archive_members([fixtures.build_image()]) if not m.path.endswith("layer.tar")]
        ),
        "outer-dotdot": fixtures.tar_bytes([fixtures.ArchiveMember(path="../manifest.json", data=b"[]")]),
    }
    # A header that claims 10 GB of data that is not there.
    info = tarfile.TarInfo("big")
    info.size = 10 << 30
    huge = info.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 1024
    cases["huge-member"] = _archive_with_layer(huge, diff_id=fixtures.sha256(huge))
    return cases


WHY = {
    "dotdot": "path escapes the archive root",
    "absolute": "absolute path in archive",
    "symlink-root-then-write": "would be written through a symlink",
    "symlink-up": "points outside the root",
    "hardlink-out": "points outside the root",
    "wrong-digest": "invalid diffID for layer 0",
    "truncated-gzip": "invalid compressed layer",
    "missing-layer": "named in manifest.json is missing",
    "outer-dotdot": "path escapes the archive root",
    "huge-member": "the layer tar is truncated",
}


@pytest.mark.parametrize("case", sorted(WHY))
async def test_hostile_archive_leaves_nothing(env, case) -> None:
    service, endpoint, ns = env
    data = _hostile_archives()[case]
    try:
        out = await load(service, endpoint, data)
    except errors.InvalidParameter as exc:
        message = exc.message  # refused before the head: a 400
    else:
        assert len(out) == 1 and "error" in out[0], out
        message = out[0]["errorDetail"]["message"]
    assert WHY[case] in message
    assert await leftovers(ns) == ([], [], [])
    assert await ns.list_leases() == []


def _image_of(layers: list[bytes], diff_ids: list[str], tags: tuple[str, ...] = (TAG,)) -> fixtures.FixtureImage:
    return fixtures.FixtureImage(
        config=fixtures.image_config(diff_ids), layers=tuple(layers), diff_ids=tuple(diff_ids), tags=tags,
    )


# Layers are ingested several at once and unpacked as they come in; the error
# must still be the one a layer-by-layer load meets first: ingest errors (in
# layer order) before diff id mismatches, whichever layer finishes first.
FIRST_FAILURE = {
    "hostile-after-wrong-diff-id": (
        lambda good, bad: [good(0), (good(1), fixtures.sha256(b"x")), good(2), bad],
        "path escapes the archive root",
    ),
    "truncated-before-hostile": (
        lambda good, bad: [good(0), gzip.compress(good(1), mtime=0)[:-20], good(2), good(3), bad],
        "invalid compressed layer",
    ),
    "wrong-diff-ids-first-one-named": (
        lambda good, bad: [good(0), good(1), (good(2), fixtures.sha256(b"x")), (good(3), fixtures.sha256(b"y"))],
        "invalid diffID for layer 2",
    ),
}


@pytest.mark.parametrize("case", sorted(FIRST_FAILURE))
async def test_first_failure_in_layer_order_wins_and_nothing_is_left(env, case) -> None:
    service, endpoint, ns = env
    build, why = FIRST_FAILURE[case]
    f = fixtures.LayerEntry
    layers: list[bytes] = []
    diff_ids: list[str] = []
    for item in build(lambda i: fixtures.files_layer({f"f{i}": b"%d" % i * 100_000}),
                      _hostile_layer([f(path="../escape", data=b"x")])):
        layer, diff_id = item if isinstance(item, tuple) else (item, fixtures.sha256(item))
        layers.append(layer)
        diff_ids.append(diff_id)
    out = await load(service, endpoint, fixtures.assemble_docker_archive([_image_of(layers, diff_ids)]))
    assert len(out) == 1 and why in out[0]["errorDetail"]["message"], out
    assert await leftovers(ns) == ([], [], [])
    assert await ns.list_leases() == []


async def test_many_layers_shared_between_images(env) -> None:
    service, endpoint, ns = env
    base = fixtures.build_image(extra_layers=[{f"l{i}": b"%d" % i * 300_000} for i in range(5)])
    gz = gzip.compress(fixtures.files_layer({"top": b"t" * 200_000}), mtime=0)
    top = fixtures.files_layer({"top": b"t" * 200_000})
    child = _image_of([*base.layers, gz], [*base.diff_ids, fixtures.sha256(top)], tags=("child:1",))
    out = await load(service, endpoint, fixtures.assemble_docker_archive([base, child]))
    assert out == [{"stream": f"Loaded image: {TAG}\n"}, {"stream": "Loaded image: child:1\n"}]
    for image, tag in ((base, TAG), (child, "child:1")):
        info = await service.inspect(endpoint, tag)
        assert info["Id"] == image.id
        assert info["RootFS"]["Layers"] == list(image.diff_ids)
    chain = ""
    for diff_id in child.diff_ids:
        chain = fixtures.sha256(f"{chain} {diff_id}".encode()) if chain else diff_id
        assert (await ns.stat_snapshot(chain)).kind == "committed"
    assert len(await ns.list_blobs()) == len(child.layers) + 4  # two configs, two manifests
    assert await ns.list_leases() == []


async def test_not_a_tar_is_refused_before_the_head(env) -> None:
    service, endpoint, ns = env
    with pytest.raises(errors.InvalidParameter):
        await service.load(endpoint, Body(b"this is not a tar archive at all" * 100))


async def test_staged_load_is_installed_without_containerd_applying_it(
    ctrd: ContainerdUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The staged layers are what the snapshots get: containerd's diff service
    # is never asked (the staged trees themselves are checked against it in
    # test_layer_stage.py).
    async def not_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("containerd unpacked a staged layer")

    monkeypatch.setattr(image_load, "unpack_layer", not_called)
    name = f"images-{next(_counter)}"
    await ctrd.client.create_namespace(name)
    endpoint = Endpoint(name="test", namespace=name)
    ns = ctrd.client.namespace(name)
    staging = tmp_path / "unpack-load"
    service = ImageService(containerd=ctrd.client, tmp_dir=tmp_path / "tmp", staging_root=staging)
    plain = fixtures.files_layer({"etc/plain": b"p" * 100_000})
    zipped = fixtures.files_layer({"etc/zipped": b"z" * 100_000})
    image = _image_of(
        [plain, gzip.compress(zipped, mtime=0)], [fixtures.sha256(plain), fixtures.sha256(zipped)]
    )
    out = await load(service, endpoint, fixtures.assemble_docker_archive([image]))
    assert out == [{"stream": f"Loaded image: {TAG}\n"}]
    chain = [image.diff_ids[0], fixtures.sha256(f"{image.diff_ids[0]} {image.diff_ids[1]}".encode())]
    for chain_id in chain:
        assert (await ns.stat_snapshot(chain_id)).kind == "committed"
    assert (await service.inspect(endpoint, TAG))["Id"] == image.id
    assert list(staging.iterdir()) == []
    assert await ns.list_leases() == []
