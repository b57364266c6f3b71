"""Volumes through docker-py (issue 9, "Must show"), plus copy-up ownership and modes."""

from __future__ import annotations

from collections.abc import Iterator

import docker as dockerpy
import pytest

from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/volumes-py:latest"
OWNED = "dockyard-test/volumes-owned:latest"


@pytest.fixture(scope="module")
def client(docker, dockyard, tmp_path_factory) -> Iterator[dockerpy.DockerClient]:
    path = tmp_path_factory.mktemp("volumes-py-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    try:
        yield py
        for container in py.containers.list(all=True):
            container.remove(force=True)
    finally:
        py.close()


def test_volumes_api(client) -> None:
    created = client.volumes.create("pyvol", labels={"by": "docker-py"})
    assert created.name == "pyvol" and created.attrs["Labels"] == {"by": "docker-py"}
    assert client.volumes.get("pyvol").attrs["Mountpoint"] == created.attrs["Mountpoint"]
    assert "pyvol" in [v.name for v in client.volumes.list(filters={"label": "by=docker-py"})]
    out = client.containers.run(IMG, "sh -c 'echo py > /v/f && cat /v/f'", remove=True,
                                volumes={"pyvol": {"bind": "/v", "mode": "rw"}})
    assert out == b"py\n"
    out = client.containers.run(IMG, "cat /v/f", remove=True, volumes=["pyvol:/v:ro"])
    assert out == b"py\n"
    container = client.containers.create(IMG, "true", volumes={"pyvol": {"bind": "/v", "mode": "ro"}})
    with pytest.raises(dockerpy.errors.APIError) as info:
        client.volumes.get("pyvol").remove()
    assert info.value.status_code == 409
    assert f"remove pyvol: volume is in use - [{container.id}]" in str(info.value.explanation)
    [mount] = client.api.inspect_container(container.id)["Mounts"]
    assert (mount["Name"], mount["Destination"], mount["RW"], mount["Mode"]) == ("pyvol", "/v", False, "ro")
    container.remove(v=True)  # a named volume survives rm -v
    client.volumes.get("pyvol").remove()
    with pytest.raises(dockerpy.errors.NotFound):
        client.volumes.get("pyvol")
    pruned = client.volumes.prune()
    assert set(pruned) == {"VolumesDeleted", "SpaceReclaimed"}


def test_copy_up_keeps_owner_and_mode(client, docker) -> None:
    cid = docker.out("create", IMG, "sh", "-c",
                     "mkdir -p /owned/sub && echo x > /owned/sub/f && chown -R 1000:1001 /owned"
                     " && chmod 0750 /owned && chmod 0604 /owned/sub/f").strip()
    docker.run("start", "-a", cid)
    docker.run("commit", cid, OWNED)
    docker.run("rm", cid)
    out = client.containers.run(OWNED, "stat -c '%u:%g %a %n' /owned /owned/sub /owned/sub/f", remove=True,
                                volumes={"owned": {"bind": "/owned", "mode": "rw"}})
    assert out.decode().splitlines() == ["1000:1001 750 /owned", "1000:1001 755 /owned/sub",
                                         "1000:1001 604 /owned/sub/f"]
    client.volumes.get("owned").remove()
