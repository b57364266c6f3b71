"""`docker export`, `docker diff`, `docker commit` and `docker container prune` with the real CLI (issue 4)."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    leftover = docker.out("ps", "-aq", "--no-trunc").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_diff_lists_exactly_the_changes(docker, image):
    name = _name("diff")
    docker.run("run", "--name", name, image, "sh", "-c",
               "echo x > /etc/x && sync")
    base = f"{name}-base"
    docker.run("commit", name, base)
    child = _name("diff-child")
    docker.run("run", "--name", child, base, "sh", "-c", "touch /new; rm /etc/x; mkdir -p /a/b; echo y > /a/b/c")
    assert docker.out("diff", child).splitlines() == ["A /a", "A /a/b", "A /a/b/c", "C /etc", "D /etc/x", "A /new"]
    # A fresh container has no changes, its mount points (hosts, hostname, /proc...) included.
    fresh = _name("diff-fresh")
    docker.run("run", "--name", fresh, image, "true")
    assert docker.out("diff", fresh) == ""


def test_diff_of_a_running_container(docker, image):
    name = _name("diff-run")
    docker.run("run", "-d", "--name", name, image, "sleep", "1000")
    docker.run("exec", name, "sh", "-c", "echo hi > /tmp/file")
    assert docker.out("diff", name).splitlines() == ["C /tmp", "A /tmp/file"]


def test_export_lists_the_containers_files(docker, image, tmp_path):
    name = _name("export")
    docker.run("run", "--name", name, image, "sh", "-c", "mkdir /exported && echo data > /exported/file")
    data = docker.run("export", name).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        assert archive.extractfile("exported/file").read() == b"data\n"  # type: ignore[union-attr]
    assert "bin/sh" in names and "etc/passwd" in names and "exported" in names
    assert not any(n.startswith(("/", "./")) for n in names)
    # -o writes a tar of the same entries (mtimes may differ: /etc/hosts is rewritten at start).
    docker.run("export", "-o", str(tmp_path / "out.tar"), name)
    with tarfile.open(tmp_path / "out.tar") as archive:
        assert archive.getnames() == names


def test_commit_with_change_author_and_message(docker, image):
    name = _name("commit")
    docker.run("run", "--name", name, image, "sh", "-c", "mkdir -p /made && echo made > /made/file")
    repo = f"dockyard-test/committed-{uuid.uuid4().hex[:8]}"
    image_id = docker.out("commit", "--change", 'CMD ["echo","hi"]', "-a", "Jane <jane@example.com>",
                          "-m", "a message", name, f"{repo}:v1").strip()
    assert image_id.startswith("sha256:")
    assert docker.run("run", "--rm", f"{repo}:v1").stdout == b"hi\n"
    assert docker.run("run", "--rm", f"{repo}:v1", "cat", "/made/file").stdout == b"made\n"
    inspected = json.loads(docker.out("image", "inspect", f"{repo}:v1"))[0]
    assert inspected["Id"] == image_id
    assert inspected["Author"] == "Jane <jane@example.com>"
    assert inspected["Comment"] == "a message"
    assert inspected["Config"]["Cmd"] == ["echo", "hi"]
    history = json.loads(docker.out("history", "--format", "{{json .}}", "--no-trunc", f"{repo}:v1").splitlines()[0])
    assert history["Comment"] == "a message"


def test_commit_of_a_running_container_pauses_and_resumes_it(docker, image):
    name = _name("commit-run")
    docker.run("run", "-d", "--name", name, image, "sh", "-c", "echo running > /state; sleep 1000")
    docker.run("exec", name, "touch", "/also")
    image_id = docker.out("commit", name).strip()
    assert docker.out("inspect", "-f", "{{.State.Status}}", name).strip() == "running"
    assert docker.run("run", "--rm", image_id, "cat", "/state").stdout == b"running\n"
    docker.run("exec", name, "true")  # still answers: it was resumed


def test_commit_keeps_the_container_config_and_bad_changes_are_400(docker, image):
    name = _name("commit-cfg")
    docker.run("create", "--name", name, "-e", "FOO=bar", "-w", "/tmp", image, "sh", "-c", "echo $FOO; pwd")
    tag = f"dockyard-test/cfg-{uuid.uuid4().hex[:8]}"
    docker.run("commit", name, tag)
    assert docker.run("run", "--rm", tag).stdout == b"bar\n/tmp\n"
    bad = docker.run("commit", "--change", "FROM nothing", name, check=False)
    assert bad.returncode != 0 and b"from is not a valid change command" in bad.stderr.lower()


def test_container_prune(docker, image):
    keep = _name("prune-keep")
    docker.run("run", "-d", "--name", keep, image, "sleep", "1000")
    gone = _name("prune-gone")
    docker.run("run", "--name", gone, image, "true")
    labelled = _name("prune-label")
    docker.run("run", "--name", labelled, "--label", "keep=yes", image, "true")
    out = docker.out("container", "prune", "-f", "--filter", "label!=keep=yes")
    assert "Deleted Containers:" in out
    names = docker.out("ps", "-a", "--format", "{{.Names}}").split()
    assert keep in names and labelled in names and gone not in names
