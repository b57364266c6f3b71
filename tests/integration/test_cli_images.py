"""Images through the real `docker` CLI, and interop with a real dockerd."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest

from dockyard.testing.fixtures import (
    ArchiveMember,
    FixtureImage,
    LayerEntry,
    assemble_docker_archive,
    build_docker_archive,
    build_image,
    docker_archive_members,
    files_layer,
    image_config,
    layer_tar,
    tar_bytes,
)

TAG = "dockyard-test/busybox:latest"
SHARED_CONFIG_FIELDS = ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels", "ExposedPorts")


@pytest.fixture(scope="module")
def fixture_archive(tmp_path_factory) -> tuple[Path, FixtureImage]:
    path = tmp_path_factory.mktemp("fixture") / "busybox.tar"
    image = build_docker_archive(path, tags=[TAG], extra_layers=[{"srv/hello.txt": b"hello\n"}])
    return path, image


@pytest.fixture(scope="module")
def loaded(docker, fixture_archive) -> FixtureImage:
    path, image = fixture_archive
    out = docker.out("load", "-i", str(path))
    assert f"Loaded image: {TAG}" in out
    return image


def test_images_lists_the_loaded_image(docker, loaded):
    rows = [json.loads(line) for line in docker.out("images", "--format", "{{json .}}").splitlines()]
    row = next(r for r in rows if r["Repository"] == "dockyard-test/busybox")
    assert row["Tag"] == "latest"
    assert loaded.id.removeprefix("sha256:").startswith(row["ID"])
    assert docker.out("images", "-q", "--no-trunc", TAG).strip() == loaded.id
    assert docker.out("images", "-q", "--filter", "reference=nothing/*").strip() == ""
    assert docker.out("images", "-q", "--filter", "label=org.dockyard.fixture=busybox").strip()


def test_inspect_matches_real_dockerd(docker, ref_docker, loaded, fixture_archive):
    path, _ = fixture_archive
    ref_docker.run("load", "-i", str(path))
    ours = json.loads(docker.out("image", "inspect", TAG))[0]
    theirs = json.loads(ref_docker.out("image", "inspect", TAG))[0]
    assert ours["Id"] == theirs["Id"] == loaded.id
    assert ours["RepoTags"] == theirs["RepoTags"] == [TAG]
    assert ours["RootFS"]["Layers"] == theirs["RootFS"]["Layers"] == list(loaded.diff_ids)
    assert ours["Architecture"] == theirs["Architecture"]
    assert ours["Os"] == theirs["Os"]
    # v1.50 omits empty fields that dockerd 20.10 sends as "" or null: compare values.
    for field in SHARED_CONFIG_FIELDS:
        assert (ours["Config"].get(field) or None) == (theirs["Config"].get(field) or None), field


def test_save_is_loaded_and_run_by_real_dockerd(docker, ref_docker, loaded, tmp_path):
    saved = tmp_path / "saved.tar"
    docker.run("tag", TAG, "dockyard-test/saved:v1")
    docker.run("save", "-o", str(saved), "dockyard-test/saved:v1")
    ref_docker.run("load", "-i", str(saved))
    out = ref_docker.out("run", "--rm", "--network", "none", "dockyard-test/saved:v1",
                         "cat", "/srv/hello.txt")
    assert out == "hello\n"
    ids = ref_docker.out("image", "inspect", "--format", "{{.Id}}", "dockyard-test/saved:v1").strip()
    assert ids == loaded.id
    docker.run("rmi", "dockyard-test/saved:v1")


def test_save_then_load_round_trips(docker, loaded, tmp_path):
    saved = tmp_path / "rt.tar"
    docker.run("save", "-o", str(saved), TAG)
    docker.run("tag", TAG, "dockyard-test/other:1")
    docker.run("rmi", TAG)
    docker.run("rmi", "dockyard-test/other:1")
    assert docker.run("image", "inspect", TAG, check=False).returncode != 0
    docker.run("load", "-i", str(saved))
    assert docker.out("image", "inspect", "--format", "{{.Id}}", TAG).strip() == loaded.id


def test_tag_and_rmi_untag_then_delete(docker, loaded):
    docker.run("tag", TAG, "dockyard-test/tagged:one")
    out = docker.out("rmi", "dockyard-test/tagged:one")
    assert out.strip() == "Untagged: dockyard-test/tagged:one"
    assert docker.out("image", "inspect", "--format", "{{.Id}}", TAG).strip() == loaded.id
    missing = docker.run("rmi", "dockyard-test/nothing:here", check=False)
    assert missing.returncode != 0
    assert b"No such image: dockyard-test/nothing:here" in missing.stderr


def test_history(docker, loaded):
    out = docker.out("history", "--no-trunc", "--format", "{{.ID}} {{.CreatedBy}}", TAG)
    lines = out.splitlines()
    assert lines[0].startswith(loaded.id)
    assert any("ADD file:busybox" in line for line in lines)


def test_import_with_changes(docker, tmp_path):
    rootfs = tmp_path / "rootfs.tar.gz"
    rootfs.write_bytes(gzip.compress(files_layer({"hello/world.txt": b"hi\n"})))
    docker.run("import", "--change", "CMD [\"/bin/true\"]", "--change", "ENV A=b",
               "--change", "WORKDIR /hello", str(rootfs), "dockyard-test/imported:1")
    config = json.loads(docker.out("image", "inspect", "dockyard-test/imported:1"))[0]["Config"]
    assert config["Cmd"] == ["/bin/true"]
    assert "A=b" in config["Env"]
    assert config["WorkingDir"] == "/hello"
    docker.run("rmi", "dockyard-test/imported:1")


def _with_layer(layer: bytes) -> bytes:
    """An archive whose single layer is ``layer``, with a config naming its real digest."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    image = FixtureImage(config=image_config([diff_id]), layers=(layer,), diff_ids=(diff_id,),
                         tags=("dockyard-test/hostile:1",), compression=build_image().compression)
    return assemble_docker_archive([image])


HOSTILE = {
    "dotdot": _with_layer(layer_tar([LayerEntry(path="../escape.txt", data=b"x")])),
    "absolute": _with_layer(layer_tar([LayerEntry(path="/etc/escape.txt", data=b"x")])),
    "symlink-then-write": _with_layer(layer_tar([
        LayerEntry(path="a", kind=b"2", linkname="/"),
        LayerEntry(path="a/tmp/escape.txt", data=b"x"),
    ])),
    "outer-dotdot": tar_bytes([ArchiveMember(path="../manifest.json", data=b"[]")]),
    "missing-layer": tar_bytes([m for m in docker_archive_members([build_image(tags=["dockyard-test/hostile:1"])])
                                if not m.path.endswith("layer.tar")]),
    "truncated-gzip": gzip.compress(assemble_docker_archive([build_image(tags=["dockyard-test/hostile:1"])]))[:5000],
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_archives_fail_and_leave_nothing(docker, loaded, tmp_path, name):
    before = docker.out("images", "-a", "-q", "--no-trunc")
    path = tmp_path / f"{name}.tar"
    path.write_bytes(HOSTILE[name])
    result = docker.run("load", "-i", str(path), check=False)
    assert result.returncode != 0, result.stdout
    assert docker.out("images", "-a", "-q", "--no-trunc") == before
    assert docker.run("image", "inspect", "dockyard-test/hostile:1", check=False).returncode != 0
    assert not Path("/escape.txt").exists() and not Path("/etc/escape.txt").exists()
    assert not Path("/tmp/escape.txt").exists()
    docker.run("version")  # still serving
