"""`POST /build` through docker-py and raw tars: results usable as any image
(push, rmi, pull, run against a real docker-registry), hostile contexts refused."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker as dockerpy
import pytest

from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.registry import RunningRegistry, start_registry, stop_registry

IMG = "dockyard-test/build-api:latest"


@pytest.fixture(autouse=True)
def classic_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-build-api-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def client(docker, dockyard, workdir) -> Iterator[dockerpy.DockerClient]:
    build_docker_archive(workdir / "base.tar", tags=[IMG])
    docker.run("load", "-i", str(workdir / "base.tar"))
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    try:
        yield py
    finally:
        py.close()


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RunningRegistry]:
    running = start_registry(workdir / "registry")
    yield running
    stop_registry(running)


def tar_context(members: list[tarfile.TarInfo], data: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            payload = data.get(member.name)
            if payload is not None:
                member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload) if payload is not None else None)
    return buffer.getvalue()


def file_member(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def test_docker_py_build_returns_image_and_log(client, workdir):
    context = workdir / "py"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {IMG}\nRUN echo from-run > /r\nCMD [\"cat\", \"/r\"]\n")
    image, log_stream = client.images.build(path=str(context), tag="built/py:1")
    logs = list(log_stream)
    log_text = "".join(entry.get("stream", "") for entry in logs)
    assert "Step 2/3 : RUN echo from-run > /r\n" in log_text
    assert f"Successfully built {image.short_id.removeprefix('sha256:')}" in log_text
    assert any(entry.get("aux", {}).get("ID") == image.id for entry in logs)
    assert "built/py:1" in image.tags
    assert client.containers.run("built/py:1", remove=True) == b"from-run\n"
    history = client.api.history("built/py:1")
    assert history[0]["CreatedBy"] == '/bin/sh -c #(nop)  CMD ["cat" "/r"]'
    assert history[1]["CreatedBy"] == "/bin/sh -c echo from-run > /r"
    with pytest.raises(dockerpy.errors.BuildError) as info:
        client.images.build(fileobj=io.BytesIO(f"FROM {IMG}\nRUN exit 4\n".encode()))
    assert "returned a non-zero code: 4" in str(info.value)


def test_build_push_rmi_pull_run(docker, client, registry, workdir):
    context = workdir / "push"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {IMG}\nCOPY payload.txt /\nCMD [\"cat\", \"/payload.txt\"]\n")
    (context / "payload.txt").write_text("pushed and pulled\n")
    target = f"{registry.host}/app:1"
    docker.run("build", "-t", target, str(context))
    built_id = docker.out("image", "inspect", "--format", "{{.Id}}", target).strip()
    docker.run("push", target)
    docker.run("rmi", target)
    docker.run("pull", target)
    assert docker.out("image", "inspect", "--format", "{{.Id}}", target).strip() == built_id
    assert docker.out("run", "--rm", target) == "pushed and pulled\n"
    saved = docker.run("save", target).stdout
    names = tarfile.open(fileobj=io.BytesIO(saved)).getnames()
    assert "manifest.json" in names


def raw_build(client: dockerpy.DockerClient, body: bytes) -> list[dict]:
    stream = client.api.build(fileobj=io.BytesIO(body), custom_context=True, decode=True)
    return list(stream)


@pytest.mark.parametrize("name", ["../escape.txt", "/abs.txt", "a/../../escape.txt"])
def test_context_entries_outside_the_root_are_refused(client, name):
    dockerfile = f"FROM {IMG}\nCOPY . /ctx/\n".encode()
    body = tar_context([file_member("Dockerfile"), file_member(name)],
                       {"Dockerfile": dockerfile, name: b"evil\n"})
    messages = raw_build(client, body)
    assert "error" in messages[-1]
    assert not Path("/escape.txt").exists() and not Path("/abs.txt").exists()


def test_writes_through_a_context_symlink_are_refused(client, workdir):
    target = workdir / "outside-target"
    target.mkdir()
    link = tarfile.TarInfo("link")
    link.type = tarfile.SYMTYPE
    link.linkname = str(target)
    body = tar_context([file_member("Dockerfile"), link, file_member("link/planted.txt")],
                       {"Dockerfile": f"FROM {IMG}\n".encode(), "link/planted.txt": b"planted\n"})
    messages = raw_build(client, body)
    assert "would be written through a symlink" in messages[-1]["error"]
    assert list(target.iterdir()) == []


def test_copy_through_symlink_to_host_etc_gets_no_host_file(client, docker):
    link = tarfile.TarInfo("etc")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc"
    dockerfile = f"FROM {IMG}\nCOPY etc/hostname etc/passwd /stolen/\n".encode()
    body = tar_context([file_member("Dockerfile"), link], {"Dockerfile": dockerfile})
    messages = raw_build(client, body)
    assert messages[-1]["errorDetail"]["message"].startswith(
        "COPY failed: file not found in build context or excluded by .dockerignore: stat etc/hostname")
    # A whole-directory COPY keeps the link as a link, never what it points at.
    body = tar_context([file_member("Dockerfile"), link],
                       {"Dockerfile": f"FROM {IMG}\nCOPY . /ctx/\nCMD [\"readlink\", \"/ctx/etc\"]\n".encode()})
    messages = raw_build(client, body)
    image_id = next(m["aux"]["ID"] for m in messages if "aux" in m)
    assert client.containers.run(image_id, remove=True) == b"/etc\n"


def test_plain_dockerfile_body_and_gzip_context(client):
    messages = raw_build(client, f"FROM {IMG}\nLABEL plain=1\n".encode())
    assert any("aux" in m for m in messages), messages
    import gzip

    body = gzip.compress(tar_context([file_member("Dockerfile")],
                                     {"Dockerfile": f"FROM {IMG}\nLABEL gz=1\n".encode()}))
    messages = raw_build(client, body)
    image_id = next(m["aux"]["ID"] for m in messages if "aux" in m)
    assert client.images.get(image_id).labels["gz"] == "1"


def test_bad_options_are_http_errors(client):
    response = client.api._post(client.api._url("/build"), params={"t": "Bad Tag"}, data=b"FROM scratch\n")
    assert response.status_code == 400
    response = client.api._post(client.api._url("/build"), params={"buildargs": "[1"}, data=b"FROM scratch\n")
    assert response.status_code == 400
    response = client.api._post(client.api._url("/build/prune"))
    assert response.status_code == 200
    assert set(json.loads(response.content)) == {"CachesDeleted", "SpaceReclaimed"}
