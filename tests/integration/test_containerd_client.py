"""The containerd client against a real containerd: content, images, snapshots,
diff, leases and error translation."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.containerd import Containerd, Descriptor, ImageRecord, Namespace
from dockyard.testing.containerd_fixture import ContainerdUnderTest, embedded_containerd

NS = "client-test"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def small_layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mtime = 1704067200
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


@pytest.fixture(scope="module")
async def ctrd() -> AsyncIterator[ContainerdUnderTest]:
    async with embedded_containerd(prefix="dockyard-ctrd-client-") as running:
        await running.client.create_namespace(NS, {"purpose": "test"})
        yield running


@pytest.fixture
def ns(ctrd: ContainerdUnderTest) -> Namespace:
    return ctrd.client.namespace(NS)


async def test_version_and_namespaces(ctrd: ContainerdUnderTest) -> None:
    assert (await ctrd.client.version()).startswith("1.6.")
    await ctrd.client.create_namespace(NS)  # idempotent
    assert NS in await ctrd.client.list_namespaces()


async def test_unreachable_address_is_unavailable(tmp_path: Path) -> None:
    async with Containerd(str(tmp_path / "nothing.sock")) as client:
        with pytest.raises(errors.Unavailable, match="did not answer within 0.3s"):
            await client.wait_ready(0.3)


async def test_write_read_and_label_blob(ns: Namespace) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several write messages, odd tail
    digest = digest_of(data)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    async with ns.lease() as leased:
        info = await leased.write_blob(
            "test-write-1", pieces(), expected_digest=digest, expected_size=len(data),
            labels={"a": "1"},
        )
        assert (info.digest, info.size, dict(info.labels)) == (digest, len(data), {"a": "1"})

        read = b"".join([chunk async for chunk in leased.read_blob(digest)])
        assert read == data
        assert b"".join([c async for c in leased.read_blob(digest, offset=len(data) - 5)]) == data[-5:]
        assert await leased.read_blob_bytes(digest, len(data)) == data
        with pytest.raises(errors.InvalidParameter):
            await leased.read_blob_bytes(digest, 1000)

        updated = await leased.update_blob_labels(digest, {"b": "2", "a": ""})
        assert dict(updated.labels) == {"b": "2"}
        assert (await leased.blob_info(digest)) == updated

        # Writing it again is a success that only applies the labels.
        again = await leased.write_blob("test-write-2", data, expected_digest=digest, labels={"c": "3"})
        assert dict(again.labels) == {"b": "2", "c": "3"}

        await leased.delete_blob(digest)
        assert await leased.blob_info(digest) is None
        with pytest.raises(errors.NotFound):
            await leased.delete_blob(digest)


async def test_write_without_expected_digest(ns: Namespace) -> None:
    async with ns.lease() as leased:
        info = await leased.write_blob("test-nodigest", b"plain bytes")
        assert info.digest == digest_of(b"plain bytes")
        assert info.size == 11


async def test_digest_mismatch_is_invalid_and_aborts_ingest(ns: Namespace) -> None:
    wrong = digest_of(b"something else")
    async with ns.lease() as leased:
        with pytest.raises(errors.InvalidParameter, match="does not match"):
            await leased.write_blob("test-mismatch", b"actual bytes", expected_digest=wrong)
        with pytest.raises(errors.InvalidParameter, match="does not match"):
            await leased.write_blob(
                "test-mismatch", b"actual bytes", expected_digest=digest_of(b"actual bytes"),
                expected_size=5,
            )
        assert await leased.blob_info(wrong) is None
        # The ingest was aborted: the same ref opens cleanly and commits.
        info = await leased.write_blob("test-mismatch", b"actual bytes")
        assert info.digest == digest_of(b"actual bytes")


async def test_failing_source_aborts_ingest(ns: Namespace) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 10
        raise OSError("client went away")

    async with ns.lease() as leased:
        with pytest.raises(OSError, match="client went away"):
            await leased.write_blob("test-broken", broken())
        # No stale ingest: a new write under the same ref starts from zero.
        info = await leased.write_blob("test-broken", b"fresh")
        assert info.size == 5


async def test_lease_deletion_collects_its_content(ctrd: ContainerdUnderTest, ns: Namespace) -> None:
    kept, dropped = b"referenced by an image", b"only in the lease"
    async with ns.lease() as leased:
        await leased.write_blob("test-gc-kept", kept, expected_digest=digest_of(kept))
        await leased.write_blob("test-gc-dropped", dropped, expected_digest=digest_of(dropped))
        await leased.create_image(
            ImageRecord(
                name="gc-test:kept",
                target=Descriptor(
                    media_type="application/octet-stream", digest=digest_of(kept), size=len(kept)
                ),
            )
        )
        assert await leased.blob_info(digest_of(dropped)) is not None
        lease_id = leased.lease_id
    assert lease_id not in await ns.list_leases()
    # The lease was deleted synchronously: GC already ran.
    assert await ns.blob_info(digest_of(dropped)) is None
    assert await ns.blob_info(digest_of(kept)) is not None
    await ns.delete_image("gc-test:kept", sync=True)
    assert await ns.blob_info(digest_of(kept)) is None


async def test_failed_block_leaves_nothing(ns: Namespace) -> None:
    data = b"half an import"
    with pytest.raises(RuntimeError):
        async with ns.lease() as leased:
            await leased.write_blob("test-failed-load", data, expected_digest=digest_of(data))
            raise RuntimeError("load failed")
    assert await ns.blob_info(digest_of(data)) is None


async def test_image_crud(ns: Namespace) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    async with ns.lease() as leased:
        await leased.write_blob("test-img", config, expected_digest=digest_of(config))
        target = Descriptor(
            media_type="application/vnd.oci.image.config.v1+json",
            digest=digest_of(config),
            size=len(config),
            annotations={"k": "v"},
        )
        created = await leased.create_image(
            ImageRecord(name="docker.io/library/crud:1", target=target, labels={"l": "1"})
        )
        assert created.target == target
        assert created.created_at is not None and created.updated_at is not None
        with pytest.raises(errors.Conflict):
            await leased.create_image(ImageRecord(name="docker.io/library/crud:1", target=target))

        got = await leased.get_image("docker.io/library/crud:1")
        assert (got.name, got.target, dict(got.labels)) == (created.name, target, {"l": "1"})

        updated = await leased.update_image(
            ImageRecord(name=got.name, target=target, labels={"l": "2", "m": "3"}), fields=["labels.m"]
        )
        assert dict(updated.labels) == {"l": "1", "m": "3"}

        await leased.create_image(ImageRecord(name="docker.io/library/crud:2", target=target))
        names = sorted(i.name for i in await leased.list_images())
        assert {"docker.io/library/crud:1", "docker.io/library/crud:2"} <= set(names)
        only = await leased.list_images("name==docker.io/library/crud:2")
        assert [i.name for i in only] == ["docker.io/library/crud:2"]

        await leased.delete_image("docker.io/library/crud:1")
        await leased.delete_image("docker.io/library/crud:2", sync=True)
        with pytest.raises(errors.NotFound, match="not found"):
            await leased.get_image("docker.io/library/crud:1")
        with pytest.raises(errors.NotFound):
            await leased.delete_image("docker.io/library/crud:1")


async def test_error_translation_keeps_cause(ns: Namespace) -> None:
    with pytest.raises(errors.NotFound) as caught:
        await ns.get_image("no-such-image:latest")
    assert caught.value.message == 'image "no-such-image:latest": not found'
    assert type(caught.value.__cause__).__module__.startswith("grpc")


async def test_apply_layer_and_diff(ns: Namespace) -> None:
    tar = small_layer({"hello.txt": b"hello from a layer\n", "etc/conf": b"x=1\n"})
    blob = gzip.compress(tar, mtime=0)
    desc = Descriptor(media_type=LAYER_GZIP, digest=digest_of(blob), size=len(blob))
    async with ns.lease() as leased:
        await leased.write_blob("test-layer", blob, expected_digest=desc.digest)
        mounts = await leased.prepare_snapshot("extract-1", "")
        assert mounts and mounts[0].type in {"bind", "overlay"}
        applied = await leased.apply_layer(desc, mounts)
        assert applied.digest == digest_of(tar)  # the diff ID: uncompressed
        assert applied.media_type == LAYER_TAR
        chain_id = applied.digest
        await leased.commit_snapshot(chain_id, "extract-1", labels={"test": "layer"})

        info = await leased.stat_snapshot(chain_id)
        assert info is not None
        assert (info.name, info.parent, info.kind, dict(info.labels)) == (
            chain_id, "", "committed", {"test": "layer"}
        )
        assert await leased.stat_snapshot("extract-1") is None
        assert await leased.snapshot_usage(chain_id) > 0

        # A read-only view of a one-layer snapshot is a bind mount of its files.
        view = await leased.view_snapshot("view-1", chain_id)
        assert view[0].type == "bind" and "ro" in view[0].options
        assert (Path(view[0].source) / "hello.txt").read_bytes() == b"hello from a layer\n"
        assert await leased.snapshot_mounts("view-1") == view

        # A container layer on top, changed, and diffed back into a blob.
        rw = await leased.prepare_snapshot("rw-1", chain_id)
        assert rw[0].type == "overlay"
        upperdir = next(o for o in rw[0].options if o.startswith("upperdir="))[len("upperdir="):]
        Path(upperdir, "new.txt").write_bytes(b"added\n")
        diff = await leased.diff_mounts(
            view, rw, media_type=LAYER_TAR, ref="test-diff-1", labels={"d": "1"}
        )
        assert diff.media_type == LAYER_TAR
        diff_bytes = await leased.read_blob_bytes(diff.digest, 1 << 20)
        assert diff.digest == digest_of(diff_bytes)
        with tarfile.open(fileobj=io.BytesIO(diff_bytes)) as t:
            assert t.getnames() == ["new.txt"]

        names = {s.name for s in await leased.list_snapshots()}
        assert {chain_id, "view-1", "rw-1"} <= names
        with pytest.raises(errors.Conflict):
            await leased.prepare_snapshot("rw-1", chain_id)
        with pytest.raises(errors.NotFound):
            await leased.prepare_snapshot("rw-2", "sha256:" + "0" * 64)

        await leased.remove_snapshot("rw-1")
        await leased.remove_snapshot("view-1")
        await leased.remove_snapshot(chain_id)
        with pytest.raises(errors.NotFound):
            await leased.remove_snapshot(chain_id)


async def test_apply_corrupt_layer_fails_cleanly(ns: Namespace) -> None:
    junk = b"this is not a tar stream" * 100
    desc = Descriptor(media_type=LAYER_GZIP, digest=digest_of(junk), size=len(junk))
    async with ns.lease() as leased:
        await leased.write_blob("test-junk", junk, expected_digest=desc.digest)
        mounts = await leased.prepare_snapshot("junk-1", "")
        with pytest.raises(errors.DockyardError):
            await leased.apply_layer(desc, mounts)
        await leased.remove_snapshot("junk-1")
