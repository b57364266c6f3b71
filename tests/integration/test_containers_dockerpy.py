"""docker-py against dockyard: the container calls a Python user makes first."""

from __future__ import annotations

from collections.abc import Iterator

import docker as dockerpy
import pytest

from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/py:latest"


@pytest.fixture(scope="module")
def client(docker, dockyard, tmp_path_factory) -> Iterator[dockerpy.DockerClient]:
    path = tmp_path_factory.mktemp("py-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    try:
        yield py
        for container in py.containers.list(all=True):
            container.remove(force=True)
    finally:
        py.close()


def test_run_returns_output(client):
    assert client.containers.run(IMG, "echo hi", remove=True) == b"hi\n"


def test_run_nonzero_raises_container_error(client):
    with pytest.raises(dockerpy.errors.ContainerError) as info:
        client.containers.run(IMG, ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3


def test_detach_logs_wait_remove(client):
    container = client.containers.run(IMG, ["sh", "-c", "echo a; sleep 0.2; echo b"], detach=True)
    try:
        assert b"".join(container.logs(stream=True, follow=True)) == b"a\nb\n"
        assert container.wait() == {"StatusCode": 0, "Error": None}
        container.reload()
        assert container.status == "exited"
        assert container.attrs["State"]["ExitCode"] == 0
        assert container.logs(stdout=True, stderr=False) == b"a\nb\n"
    finally:
        container.remove()
    assert container.id not in [c.id for c in client.containers.list(all=True)]


def test_missing_image_is_image_not_found(client):
    with pytest.raises(dockerpy.errors.ImageNotFound):
        client.containers.create("dockyard-test/absent:1", "true")


def test_kill_and_exit_code(client):
    container = client.containers.run(IMG, ["sleep", "60"], detach=True)
    try:
        container.kill()
        assert container.wait()["StatusCode"] == 137
    finally:
        container.remove(force=True)
