"""docker push / pull / login / run-pulls-first through the real `docker` CLI and
docker-py against dockyard, with real docker-registry instances on 127.0.0.1
(open and htpasswd Basic auth); pull progress compared with the reference dockerd."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker as docker_py
import pytest

from dockyard.testing.fixtures import FixtureImage, build_docker_archive
from dockyard.testing.registry import RunningRegistry, start_registry, stop_registry

SOURCE_TAG = "dockyard-test/registry-src:latest"
USER, PASSWORD = "alice", "s3cret"


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-registry-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(workdir: Path) -> Iterator[RunningRegistry]:
    running = start_registry(workdir / "open")
    yield running
    stop_registry(running)


@pytest.fixture(scope="module")
def auth_registry(workdir: Path) -> Iterator[RunningRegistry]:
    running = start_registry(workdir / "htpasswd", users={USER: PASSWORD})
    yield running
    stop_registry(running)


@pytest.fixture(scope="module")
def source(docker, workdir: Path) -> FixtureImage:
    path = workdir / "fixture.tar"
    image = build_docker_archive(path, tags=[SOURCE_TAG], extra_layers=[{"srv/registry.txt": b"pushed\n"}])
    docker.run("load", "-i", str(path))
    return image


def image_id(docker, name: str) -> str:
    return docker.out("image", "inspect", "--format", "{{.Id}}", name).strip()


def test_push_rmi_pull_gives_the_same_image(docker, registry: RunningRegistry, source: FixtureImage) -> None:
    target = f"{registry.host}/cli/roundtrip:1"
    docker.run("tag", SOURCE_TAG, target)
    first = docker.out("push", target)
    assert first.startswith(f"The push refers to repository [{registry.host}/cli/roundtrip]\n")
    assert "Pushed" in first
    digest_line = first.strip().splitlines()[-1]
    assert digest_line.startswith("1: digest: sha256:") and " size: " in digest_line
    digest = digest_line.split()[2]

    again = docker.out("push", target)
    assert "Layer already exists" in again and "Pushed" not in again
    assert again.strip().splitlines()[-1] == digest_line  # the same bytes: the same digest

    docker.run("rmi", target, SOURCE_TAG)  # the image is gone: the pull has to fetch it all
    assert docker.run("image", "inspect", source.id, check=False).returncode == 1
    pulled = docker.out("pull", target)
    docker.run("tag", target, SOURCE_TAG)  # the other tests' source again
    assert pulled.splitlines()[0] == "1: Pulling from cli/roundtrip"
    assert "Pull complete" in pulled
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {target}" in pulled
    assert image_id(docker, target) == source.id

    up_to_date = docker.out("pull", target)
    assert f"Status: Image is up to date for {target}" in up_to_date
    inspect = json.loads(docker.out("image", "inspect", target))[0]
    assert f"{registry.host}/cli/roundtrip@{digest}" in inspect["RepoDigests"]
    rows = docker.out("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
    assert f"{registry.host}/cli/roundtrip 1 {digest}" in rows.splitlines()

    by_digest = docker.out("pull", f"{registry.host}/cli/roundtrip@{digest}")
    assert f"Status: Image is up to date for {registry.host}/cli/roundtrip@{digest}" in by_digest


def test_create_of_a_missing_image_pulls_it_first(docker, registry: RunningRegistry, source: FixtureImage) -> None:
    target = f"{registry.host}/cli/implicit:v1"
    docker.run("tag", SOURCE_TAG, target)
    docker.run("push", target)
    docker.run("rmi", target)
    # The CLI's own path: create → 404 "No such image" → pull → create again.
    result = docker.run("create", "--name", "dockyard-implicit-pull", target, "true")
    err = result.stderr.decode()
    assert f"Unable to find image '{target}' locally" in err
    assert f"Status: Downloaded newer image for {target}" in err
    try:
        assert image_id(docker, target) == source.id
    finally:
        docker.run("rm", "-f", "dockyard-implicit-pull")


def test_pull_of_a_missing_tag_fails_with_dockerds_message(docker, registry: RunningRegistry) -> None:
    result = docker.run("pull", f"{registry.host}/cli/roundtrip:nope", check=False)
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"Error response from daemon: manifest for {registry.host}/cli/roundtrip:nope not found: "
        "manifest unknown: manifest unknown"
    )


def test_pull_all_tags(docker, registry: RunningRegistry, source: FixtureImage) -> None:
    for tag in ("x", "y"):
        docker.run("tag", SOURCE_TAG, f"{registry.host}/cli/all:{tag}")
        docker.run("push", f"{registry.host}/cli/all:{tag}")
        docker.run("rmi", f"{registry.host}/cli/all:{tag}")
    out = docker.out("pull", "-a", f"{registry.host}/cli/all")
    assert "x: Pulling from cli/all" in out and "y: Pulling from cli/all" in out
    assert out.splitlines()[-2] == f"Status: Downloaded newer image for {registry.host}/cli/all"
    assert image_id(docker, f"{registry.host}/cli/all:x") == image_id(docker, f"{registry.host}/cli/all:y") == source.id


def test_login_push_and_pull_with_basic_auth(docker, auth_registry: RunningRegistry, source: FixtureImage) -> None:
    host = auth_registry.host
    target = f"{host}/private/app:1"
    docker.run("tag", SOURCE_TAG, target)

    refused = docker.run("push", target, check=False)
    assert refused.returncode == 1
    assert "no basic auth credentials" in refused.stderr.decode()

    bad = docker.run("login", "-u", USER, "--password-stdin", host, input=b"wrong\n", check=False)
    assert bad.returncode == 1
    assert f"login attempt to http://{host}/v2/ failed with status: 401 Unauthorized" in bad.stderr.decode()

    good = docker.run("login", "-u", USER, "--password-stdin", host, input=PASSWORD.encode() + b"\n")
    assert "Login Succeeded" in good.stdout.decode()
    try:
        assert "Pushed" in docker.out("push", target)
        docker.run("rmi", target)
        assert f"Status: Downloaded newer image for {target}" in docker.out("pull", target)
        assert image_id(docker, target) == source.id
    finally:
        docker.run("logout", host)
    docker.run("rmi", target)
    # A 401 makes the CLI offer a login prompt; stdin at EOF declines it.
    anonymous = docker.run("pull", target, check=False, input=b"")
    assert anonymous.returncode == 1
    assert "no basic auth credentials" in anonymous.stderr.decode()


def test_docker_py_push_pull_login_and_distribution(
    dockyard, auth_registry: RunningRegistry, registry: RunningRegistry, source: FixtureImage
) -> None:
    client = docker_py.DockerClient(base_url=dockyard.host)
    try:
        with pytest.raises(docker_py.errors.APIError) as info:
            client.login(USER, "wrong", registry=auth_registry.host, reauth=True)
        assert info.value.response.status_code == 401
        assert client.login(USER, PASSWORD, registry=auth_registry.host, reauth=True)["Status"] == "Login Succeeded"

        repo = f"{registry.host}/py/app"
        client.images.get(SOURCE_TAG).tag(repo, "2")
        lines = list(client.api.push(repo, "2", stream=True, decode=True))
        aux = [line["aux"] for line in lines if "aux" in line]
        assert aux and aux[-1]["Tag"] == "2" and aux[-1]["Size"] > 0
        digest = aux[-1]["Digest"]

        dist = client.api.inspect_distribution(f"{repo}:2")
        assert dist["Descriptor"]["digest"] == digest
        assert dist["Descriptor"]["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert dist["Platforms"] == [{"architecture": "amd64", "os": "linux"}]
        with pytest.raises(docker_py.errors.NotFound):
            client.api.inspect_distribution(f"{repo}:missing")

        client.images.remove(f"{repo}:2")
        image = client.images.pull(repo, tag="2")
        assert image.id == source.id
        assert f"{repo}@{digest}" in image.attrs["RepoDigests"]

        private = f"{auth_registry.host}/py/private"
        client.images.get(SOURCE_TAG).tag(private, "1")
        auth = {"username": USER, "password": PASSWORD}
        pushed = list(client.api.push(private, "1", stream=True, decode=True, auth_config=auth))
        assert not [line for line in pushed if "error" in line], pushed
        client.images.remove(f"{private}:1")
        assert client.images.pull(private, tag="1", auth_config=auth).id == source.id
    finally:
        client.close()


def _per_layer(messages: list[dict]) -> dict[str, list[str]]:
    """Each layer's statuses in order, repeats collapsed (progress updates).

    dockerd's transfer watchers keep only the latest update of a layer, so a
    quick "Verifying Checksum" is sometimes overtaken by "Download complete"
    there; it is left out of the comparison.
    """
    out: dict[str, list[str]] = {}
    for message in messages:
        if "progressDetail" not in message or "id" not in message:
            continue
        if message["status"] == "Verifying Checksum":
            continue
        statuses = out.setdefault(message["id"], [])
        if not statuses or statuses[-1] != message["status"]:
            statuses.append(message["status"])
    return out


def test_pull_progress_matches_dockerd(dockyard, dockerd, registry: RunningRegistry, docker, workdir: Path) -> None:
    target = f"{registry.host}/cli/progress"
    archive = workdir / "progress.tar"
    image = build_docker_archive(archive, tags=[f"{target}:p"], extra_layers=[{"srv/progress.txt": b"p\n"}])
    docker.run("load", "-i", str(archive))
    docker.run("push", f"{target}:p")
    docker.run("rmi", f"{target}:p")  # its only name: dockyard has to download it too
    assert docker.run("image", "inspect", image.id, check=False).returncode == 1
    streams = []
    for daemon in (dockyard, dockerd):
        api = docker_py.APIClient(base_url=daemon.host)
        try:
            streams.append(list(api.pull(target, tag="p", stream=True, decode=True)))
        finally:
            api.close()
    ours, theirs = streams
    assert ours[0] == theirs[0] == {"status": "Pulling from cli/progress", "id": "p"}
    assert ours[-2:] == theirs[-2:]  # Digest: …, Status: Downloaded newer image for …
    mine, reference = _per_layer(ours), _per_layer(theirs)
    assert mine.keys() == reference.keys()
    # The busybox base layer may already be in either daemon (other tests): compare
    # the layers both had to download.
    fetched = [i for i in mine if "Already exists" not in mine[i] + reference[i]]
    assert fetched
    for layer_id in fetched:
        assert mine[layer_id] == reference[layer_id], layer_id
    downloading = [m for m in ours if m.get("status") == "Downloading"]
    assert downloading and all(m["progress"].startswith("[") for m in downloading)
