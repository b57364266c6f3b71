"""Interop with the reference dockerd (Debian's 20.10): what dockyard saves,
dockerd loads and runs; what dockerd saves, dockyard loads — same image Id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.engine.endpoint import Endpoint
from dockyard.engine.images import ImageService
from dockyard.testing import fixtures
from dockyard.testing.containerd_fixture import ContainerdUnderTest, embedded_containerd
from dockyard.wire import archive, jsonmessage

TAG = "dockyard-test/busybox:latest"


class Body:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    async def read(self, max_bytes: int = 65536) -> bytes:
        chunk = self._data[self._pos : self._pos + max_bytes]
        self._pos += len(chunk)
        return chunk


async def collect(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([c async for c in chunks])


@pytest.fixture(scope="module")
async def ctrd() -> AsyncIterator[ContainerdUnderTest]:
    async with embedded_containerd(prefix="dockyard-ctrd-interop-") as running:
        await running.client.create_namespace("interop")
        yield running


@pytest.fixture
def service(ctrd: ContainerdUnderTest, tmp_path: Path) -> ImageService:
    return ImageService(containerd=ctrd.client, tmp_dir=tmp_path)


ENDPOINT = Endpoint(name="interop", namespace="interop")


@pytest.mark.parametrize("compression", [archive.Compression.NONE, archive.Compression.GZIP, archive.Compression.ZSTD])
async def test_dockerd_loads_and_runs_what_we_save(service: ImageService, ref_docker, compression) -> None:
    tag = f"dockyard-test/interop:{compression.value}"
    image = fixtures.build_image(tags=(tag,), extra_layers=[{"etc/hello": b"hello from dockyard\n"}],
                                 compression=compression)
    out = await collect(await service.load(ENDPOINT, Body(fixtures.assemble_docker_archive([image]))))
    assert list(jsonmessage.iter_messages(out)) == [{"stream": f"Loaded image: {tag}\n"}]
    saved = await collect(await service.save(ENDPOINT, [tag]))
    loaded = ref_docker.out("load", input=saved)
    assert f"Loaded image: {tag}" in loaded
    assert ref_docker.out("image", "inspect", "--format", "{{.Id}}", tag).strip() == image.id
    ran = ref_docker.out("run", "--rm", "--network", "none", tag, "cat", "/etc/hello")
    assert ran == "hello from dockyard\n"
    ref_docker.run("rmi", tag)


async def test_we_load_what_dockerd_saves(service: ImageService, ref_docker, tmp_path: Path) -> None:
    tag = "dockyard-test/from-dockerd:latest"
    image = fixtures.build_image(tags=(tag,), extra_layers=[{"x": b"y"}])
    ref_docker.out("load", input=fixtures.assemble_docker_archive([image]))
    saved = ref_docker.run("save", tag).stdout
    ref_docker.run("rmi", tag)
    out = await collect(await service.load(ENDPOINT, Body(saved)))
    assert list(jsonmessage.iter_messages(out)) == [{"stream": f"Loaded image: {tag}\n"}]
    assert (await service.inspect(ENDPOINT, tag))["Id"] == image.id
