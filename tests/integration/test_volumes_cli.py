"""Volumes with the real `docker` CLI (issue 9 item 1, "Must show")."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator

import pytest

from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/volumes:latest"
VOLIMG = "dockyard-test/volumes-volume:latest"


@pytest.fixture(scope="module")
def image(docker, tmp_path_factory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("volumes-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG], extra_layers=[{"data/seed.txt": b"seed\n"}])
    docker.run("load", "-i", str(path))
    yield IMG
    leftover = docker.out("ps", "-aq", "--no-trunc").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


@pytest.fixture(scope="module")
def volume_image(docker, image) -> str:
    cid = docker.out("create", image, "true").strip()
    docker.run("commit", "--change", "VOLUME /data", cid, VOLIMG)
    docker.run("rm", cid)
    return VOLIMG


def volumes(docker) -> set[str]:
    return set(docker.out("volume", "ls", "-q").split())


def test_named_volume_outlives_run_rm(docker, image) -> None:
    docker.run("run", "--rm", "-v", "persist:/v", image, "sh", "-c", "echo hello > /v/f")
    assert docker.out("run", "--rm", "-v", "persist:/v:ro", image, "cat", "/v/f") == "hello\n"
    info = json.loads(docker.out("volume", "inspect", "persist"))[0]
    assert info["Name"] == "persist" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Mountpoint"].endswith("/volumes/dockyard/persist/_data")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["CreatedAt"])
    assert info["Labels"] is None and info["Options"] is None
    docker.run("volume", "rm", "persist")
    assert "persist" not in volumes(docker)
    missing = docker.run("volume", "inspect", "persist", check=False)
    assert missing.returncode == 1 and b"no such volume" in missing.stderr


def test_volume_on_image_path_starts_with_image_files(docker, image) -> None:
    assert docker.out("run", "--rm", "-v", "seeded:/data", image, "cat", "/data/seed.txt") == "seed\n"
    # Not empty any more: a second use sees what the first left, not a fresh copy.
    docker.run("run", "--rm", "-v", "seeded:/data", image, "sh", "-c", "rm /data/seed.txt; echo x > /data/y")
    assert docker.out("run", "--rm", "-v", "seeded:/data", image, "ls", "-A", "/data") == "y\n"
    out = docker.out("run", "--rm", "--mount", "type=volume,src=nocopy,dst=/data,volume-nocopy",
                     image, "ls", "-A", "/data")
    assert out == ""
    out = docker.out("run", "--rm", "--mount", "type=volume,src=copied,dst=/data", image, "cat", "/data/seed.txt")
    assert out == "seed\n"
    docker.run("volume", "rm", "seeded", "nocopy", "copied")


def test_volume_in_use_cannot_be_removed(docker, image) -> None:
    cid = docker.out("create", "-v", "inuse:/v", image, "true").strip()
    refused = docker.run("volume", "rm", "inuse", check=False)
    assert refused.returncode == 1
    assert f"remove inuse: volume is in use - [{cid}]" in refused.stderr.decode()
    mounts = json.loads(docker.out("inspect", cid))[0]["Mounts"]
    assert mounts == [{"Type": "volume", "Name": "inuse", "Source": mounts[0]["Source"], "Destination": "/v",
                       "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
    assert mounts[0]["Source"].endswith("/volumes/dockyard/inuse/_data")
    # ps shows volume names, as dockerd does.
    assert docker.out("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Mounts}}").strip() == "inuse"
    docker.run("rm", cid)
    assert "inuse" in volumes(docker)  # rm of the container keeps a named volume
    docker.run("volume", "rm", "inuse")


def test_anonymous_volumes(docker, image) -> None:
    before = volumes(docker)
    docker.run("run", "--rm", "-v", "/x", image, "sh", "-c", "echo > /x/f")
    assert volumes(docker) == before  # --rm removes anonymous volumes
    cid = docker.out("create", "-v", "/x", "-v", "named-beside:/n", image, "true").strip()
    mounts = {m["Destination"]: m for m in json.loads(docker.out("inspect", cid))[0]["Mounts"]}
    anonymous = mounts["/x"]["Name"]
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)
    assert volumes(docker) == before | {anonymous, "named-beside"}
    docker.run("rm", "-v", cid)
    assert volumes(docker) == before | {"named-beside"}  # rm -v keeps named volumes
    docker.run("volume", "rm", "named-beside")


def test_image_volume_gets_image_content(docker, volume_image) -> None:
    before = volumes(docker)
    assert docker.out("run", "--rm", volume_image, "cat", "/data/seed.txt") == "seed\n"
    assert volumes(docker) == before
    cid = docker.out("create", volume_image, "true").strip()
    mounts = json.loads(docker.out("inspect", cid))[0]["Mounts"]
    assert [m["Destination"] for m in mounts] == ["/data"]
    docker.run("rm", "-v", cid)
    # A named volume on the VOLUME path replaces the anonymous one.
    assert docker.out("run", "--rm", "-v", "over:/data", volume_image, "cat", "/data/seed.txt") == "seed\n"
    assert volumes(docker) == before | {"over"}
    docker.run("volume", "rm", "over")


def test_volumes_from(docker, image) -> None:
    docker.run("create", "--name", "vf-source", "-v", "vfvol:/shared", "-v", "/anon", image, "true")
    try:
        docker.run("run", "--rm", "--volumes-from", "vf-source", image, "sh", "-c",
                   "echo one > /shared/f; echo two > /anon/g")
        out = docker.out("run", "--rm", "--volumes-from", "vf-source:ro", image, "cat", "/shared/f", "/anon/g")
        assert out == "one\ntwo\n"
        refused = docker.run("run", "--rm", "--volumes-from", "vf-source:ro", image, "touch", "/shared/h",
                             check=False)
        assert refused.returncode == 1 and b"Read-only file system" in refused.stderr
    finally:
        docker.run("rm", "-v", "vf-source")
    docker.run("volume", "rm", "vfvol")


def test_cp_reaches_into_volumes(docker, image, tmp_path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"copied in\n")
    docker.run("create", "--name", "cp-vol", "-v", "cpvol:/vol", image, "true")
    try:
        docker.run("cp", str(src), "cp-vol:/vol/in.txt")
        assert docker.out("run", "--rm", "-v", "cpvol:/vol", image, "cat", "/vol/in.txt") == "copied in\n"
        docker.run("run", "--rm", "-v", "cpvol:/vol", image, "sh", "-c", "echo from run > /vol/out.txt")
        docker.run("cp", "cp-vol:/vol/out.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_bytes() == b"from run\n"
        docker.run("create", "--name", "cp-vol-ro", "-v", "cpvol:/vol:ro", image, "true")
        refused = docker.run("cp", str(src), "cp-vol-ro:/vol/again.txt", check=False)
        assert refused.returncode == 1 and b"mounted volume is marked read-only" in refused.stderr
        docker.run("cp", "cp-vol-ro:/vol/in.txt", str(tmp_path / "back.txt"))
        assert (tmp_path / "back.txt").read_bytes() == b"copied in\n"
    finally:
        docker.run("rm", "-f", "cp-vol", "cp-vol-ro")
    docker.run("volume", "rm", "cpvol")


def test_tmpfs_local_volume(docker, image) -> None:
    docker.run("volume", "create", "--driver", "local", "--opt", "type=tmpfs", "--opt", "device=tmpfs",
               "--opt", "o=size=1m,mode=1777", "tmpvol")
    info = json.loads(docker.out("volume", "inspect", "tmpvol"))[0]
    assert info["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m,mode=1777"}
    assert not os.path.ismount(info["Mountpoint"])
    cid = docker.out("create", "-v", "tmpvol:/t", image, "sh", "-c", "grep ' /t ' /proc/mounts").strip()
    assert os.path.ismount(info["Mountpoint"])  # mounted at its first use
    docker.run("start", "-a", cid)
    out = docker.out("logs", cid)
    assert out.startswith("tmpfs /t tmpfs ") and "size=1024k" in out
    docker.run("rm", cid)
    assert not os.path.ismount(info["Mountpoint"])  # unmounted when unused
    docker.run("volume", "rm", "tmpvol")
    bad = docker.run("volume", "create", "--opt", "bogus=1", "badvol", check=False)
    assert bad.returncode == 1 and b'create badvol: invalid option: "bogus"' in bad.stderr
    bad = docker.run("volume", "create", "--opt", "type=tmpfs", "--opt", "o=size=1m", "--opt", "type=ext4", "badvol",
                     check=False)
    assert bad.returncode == 1 and b'create badvol: missing required option: "device"' in bad.stderr


def test_labels_filters_and_prune(docker, image) -> None:
    docker.run("volume", "create", "--label", "suite=volumes", "--label", "k=v", "labelled-a")
    docker.run("volume", "create", "--label", "suite=volumes", "labelled-b")
    assert json.loads(docker.out("volume", "inspect", "labelled-a"))[0]["Labels"] == {"suite": "volumes", "k": "v"}
    listed = docker.out("volume", "ls", "-q", "--filter", "label=suite=volumes").split()
    assert sorted(listed) == ["labelled-a", "labelled-b"]
    assert docker.out("volume", "ls", "-q", "--filter", "label=k").split() == ["labelled-a"]
    assert docker.out("volume", "ls", "-q", "--filter", "name=elled-b").split() == ["labelled-b"]
    cid = docker.out("create", "-v", "labelled-a:/a", "-v", "/anon", image, "true").strip()
    anonymous = next(m["Name"] for m in json.loads(docker.out("inspect", cid))[0]["Mounts"]
                     if m["Destination"] == "/anon")
    dangling = set(docker.out("volume", "ls", "-q", "--filter", "dangling=true").split())
    assert "labelled-b" in dangling and "labelled-a" not in dangling and anonymous not in dangling
    in_use = set(docker.out("volume", "ls", "-q", "--filter", "dangling=false").split())
    assert in_use >= {"labelled-a", anonymous}
    docker.run("rm", cid)  # without -v: the anonymous volume stays, unused
    out = docker.out("volume", "prune", "-f")
    assert anonymous in out.split()
    assert "labelled-a" in volumes(docker) and "labelled-b" in volumes(docker)
    out = docker.out("volume", "prune", "-a", "-f", "--filter", "label=suite=volumes")
    assert {"labelled-a", "labelled-b"} <= set(out.split())
    assert not {"labelled-a", "labelled-b"} & volumes(docker)


def _stamp() -> str:
    now = time.time_ns()
    return f"{now // 1_000_000_000}.{now % 1_000_000_000:09d}"


def test_volume_events(docker, image) -> None:
    since = _stamp()
    docker.run("volume", "create", "evvol")
    docker.run("run", "--rm", "-v", "/anon-ev", image, "true")
    docker.run("volume", "rm", "evvol")
    until = _stamp()
    out = docker.out("events", "--since", since, "--until", until, "--filter", "type=volume",
                     "--format", "{{.Actor.ID}} {{.Action}} {{.Actor.Attributes.driver}}", timeout=30)
    lines = out.splitlines()
    assert len(lines) == 4, lines
    assert lines[0] == "evvol create local" and lines[3] == "evvol destroy local"
    anonymous = lines[1].split()[0]
    assert re.fullmatch(r"[0-9a-f]{64}", anonymous)
    assert lines[1:3] == [f"{anonymous} create local", f"{anonymous} destroy local"]
