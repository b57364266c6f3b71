"""`docker cp` with the real CLI, and the archive API's escape attempts (issue 4, "Must show").

Every escape test checks the host afterwards: the file the attacker aimed at
is untouched (or was never created), and the container got the file instead.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import socket
import stat
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    leftover = docker.out("ps", "-aq", "--no-trunc").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=60)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(self._path))


def api(docker, method: str, target: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = _UnixConnection(docker.daemon.socket_path)
    try:
        headers = {"Content-Type": "application/x-tar"} if body is not None else {}
        conn.request(method, "/v1.50" + target, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def put_archive(docker, container: str, path: str, data: bytes) -> tuple[int, bytes]:
    status, _, body = api(docker, "PUT", f"/containers/{container}/archive?path={quote(path)}", data)
    return status, body


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return out.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


def run_detached(docker, image: str, *args: str, name: str | None = None) -> str:
    name = name or f"cp-{uuid.uuid4().hex[:10]}"
    docker.run("run", "-d", "--name", name, *args, image, "sleep", "1000")
    return name


def cat(docker, container: str, path: str) -> bytes:
    return docker.run("exec", container, "cat", path).stdout


# --- round trips -------------------------------------------------------------------


def _make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "sub" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(root / "sub" / "script.sh", 0o751)
    (root / "sub" / "deeper" / "data").write_bytes(os.urandom(5000))
    os.chmod(root / "sub" / "deeper", 0o700)
    os.symlink("sub/script.sh", root / "link")
    os.symlink("/nowhere", root / "dangling")


def _tree_facts(root: Path) -> dict[str, tuple]:
    facts = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                facts[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                facts[rel] = ("dir", stat.S_IMODE(info.st_mode))
            else:
                facts[rel] = ("file", stat.S_IMODE(info.st_mode), hashlib.sha256(path.read_bytes()).hexdigest())
    return facts


@pytest.mark.parametrize("state", ["created", "running", "stopped"])
def test_tree_round_trip(docker, image, tmp_path, state):
    src = tmp_path / "tree"
    _make_tree(src)
    name = f"cp-{state}-{uuid.uuid4().hex[:8]}"
    if state == "created":
        docker.run("create", "--name", name, image, "sleep", "1000")
    else:
        run_detached(docker, image, name=name)
        if state == "stopped":
            docker.run("stop", "-t", "0", name)
    docker.run("cp", str(src), f"{name}:/tmp/")
    back = tmp_path / "back"
    back.mkdir()
    docker.run("cp", f"{name}:/tmp/tree", str(back))
    assert _tree_facts(back / "tree") == _tree_facts(src)
    docker.run("rm", "-f", name)


def test_big_file_sha256(docker, image, tmp_path):
    name = run_detached(docker, image)
    big = tmp_path / "big"
    with open(big, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(1 << 20))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    docker.run("cp", str(big), f"{name}:/big", timeout=300)
    inside = docker.out("exec", name, "sha256sum", "/big").split()[0]
    assert inside == digest
    out = tmp_path / "out"
    out.mkdir()
    docker.run("cp", f"{name}:/big", str(out), timeout=300)
    assert hashlib.sha256((out / "big").read_bytes()).hexdigest() == digest


def test_trailing_dot_and_slash(docker, image, tmp_path):
    name = run_detached(docker, image)
    docker.run("exec", name, "sh", "-c", "mkdir -p /src/d && echo a > /src/a && echo b > /src/d/b")
    # /src/. copies the contents, /src copies the directory itself.
    contents = tmp_path / "contents"
    docker.run("cp", f"{name}:/src/.", str(contents))
    assert sorted(os.listdir(contents)) == ["a", "d"]
    whole = tmp_path / "whole"
    whole.mkdir()
    docker.run("cp", f"{name}:/src", str(whole))
    assert sorted(os.listdir(whole)) == ["src"]
    # A file onto a missing path ending in / is refused; without the / it is renamed.
    (tmp_path / "f").write_text("f\n")
    failed = docker.run("cp", str(tmp_path / "f"), f"{name}:/missing/", check=False)
    assert failed.returncode != 0
    docker.run("cp", str(tmp_path / "f"), f"{name}:/renamed")
    assert cat(docker, name, "/renamed") == b"f\n"
    # A directory's contents into an existing directory.
    docker.run("cp", f"{str(contents)}/.", f"{name}:/tmp")
    assert cat(docker, name, "/tmp/d/b") == b"b\n"


def test_bind_mount_both_ways(docker, image, tmp_path):
    host_dir = tmp_path / "bound"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("host side\n")
    name = run_detached(docker, image, "-v", f"{host_dir}:/data")
    out = tmp_path / "out"
    out.mkdir()
    docker.run("cp", f"{name}:/data/from-host", str(out))
    assert (out / "from-host").read_text() == "host side\n"
    (tmp_path / "in").write_text("into the bind\n")
    docker.run("cp", str(tmp_path / "in"), f"{name}:/data/")
    assert (host_dir / "in").read_text() == "into the bind\n"
    # Stopped: the bind is still mounted for the copy.
    docker.run("stop", "-t", "0", name)
    (tmp_path / "in2").write_text("stopped\n")
    docker.run("cp", str(tmp_path / "in2"), f"{name}:/data/in2")
    assert (host_dir / "in2").read_text() == "stopped\n"
    # A symlink inside the bind that points at / leads to the container's root.
    os.symlink("/", host_dir / "up")
    docker.run("cp", f"{name}:/data/up/etc/passwd", str(out))
    assert (out / "passwd").read_bytes() != Path("/etc/passwd").read_bytes()
    assert b"root:x:0:0" in (out / "passwd").read_bytes()


def test_read_only_destinations_are_refused(docker, image, tmp_path):
    host_dir = tmp_path / "ro"
    host_dir.mkdir()
    ro_root = run_detached(docker, image, "--read-only")
    ro_bind = run_detached(docker, image, "-v", f"{host_dir}:/ro:ro")
    payload = tar_of((entry("x"), b"x"))
    status, body = put_archive(docker, ro_root, "/tmp", payload)
    assert (status, json.loads(body)) == (400, {"message": "container rootfs is marked read-only"})
    status, body = put_archive(docker, ro_bind, "/ro", payload)
    assert (status, json.loads(body)) == (400, {"message": "mounted volume is marked read-only"})
    assert os.listdir(host_dir) == []


def test_errors_before_the_head(docker, image):
    name = run_detached(docker, image)
    status, headers, body = api(docker, "GET", f"/containers/{name}/archive?path=/nope")
    assert (status, json.loads(body)) == (404, {"message": f"Could not find the file /nope in container {name}"})
    status, _, body = api(docker, "GET", f"/containers/{name}/archive?path=")
    assert (status, json.loads(body)) == (400, {"message": "bad parameter: pathcannot be empty"})
    status, headers, _ = api(docker, "HEAD", f"/containers/{name}/archive?path=/etc/passwd")
    assert status == 200
    stat_value = json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))
    assert stat_value["name"] == "passwd" and stat_value["linkTarget"] == ""
    status, body = put_archive(docker, name, "/etc/passwd", tar_of((entry("x"), b"x")))
    assert (status, json.loads(body)["message"]) == (400, "extraction point is not a directory")


# --- escapes -----------------------------------------------------------------------


@pytest.fixture()
def planted(docker, image) -> str:
    """A running container with escape symlinks at its root."""
    name = run_detached(docker, image)
    docker.run("exec", name, "sh", "-c",
               "ln -s / /x && ln -s ../../.. /y && mkdir -p /p/q && ln -s ../../../../ /p/q/up "
               "&& ln -s /etc /etclink && echo container-marker > /etc/marker")
    return name


def test_read_through_planted_links_stays_inside(docker, planted, tmp_path):
    host_hostname = Path("/etc/hostname").read_bytes() if Path("/etc/hostname").exists() else None
    container_hostname = cat(docker, planted, "/etc/hostname")
    for path in ("/x/etc/hostname", "/y/etc/hostname", "/p/q/up/etc/hostname", "/x/x/y/etc/hostname"):
        got = docker.run("cp", f"{planted}:{path}", "-").stdout
        with tarfile.open(fileobj=io.BytesIO(got)) as archive:
            member = archive.getmembers()[0]
            data = archive.extractfile(member).read()  # type: ignore[union-attr]
        assert data == container_hostname, path
        if host_hostname is not None:
            assert data != host_hostname or host_hostname == container_hostname
    for path in ("/x/etc/marker", "/y/etc/marker", "/etclink/marker", "/p/q/up/etc/marker"):
        out = tmp_path / uuid.uuid4().hex
        out.mkdir()
        docker.run("cp", f"{planted}:{path}", str(out))
        assert (out / "marker").read_text() == "container-marker\n"
    # The container's /etc/passwd, not the host's.
    out = tmp_path / "pw"
    out.mkdir()
    docker.run("cp", f"{planted}:/x/etc/passwd", str(out))
    assert (out / "passwd").read_bytes() == cat(docker, planted, "/etc/passwd")


def test_write_through_planted_links_stays_inside(docker, planted, tmp_path):
    unique = f"dockyard-escape-{uuid.uuid4().hex}"
    (tmp_path / unique).write_text("payload\n")
    for target in ("/x/etc/", "/y/etc/", "/p/q/up/etc/", "/etclink/"):
        docker.run("cp", str(tmp_path / unique), f"{planted}:{target}")
        assert not Path("/etc", unique).exists()
        assert cat(docker, planted, f"/etc/{unique}") == b"payload\n"
        docker.run("exec", planted, "rm", f"/etc/{unique}")
    # Into a link that names a directory: the link is followed in the container.
    docker.run("cp", str(tmp_path / unique), f"{planted}:/x")
    assert not Path("/", unique).exists()
    assert cat(docker, planted, f"/{unique}") == b"payload\n"


def test_hostile_tar_entries_stay_inside(docker, planted):
    unique = f"dockyard-evil-{uuid.uuid4().hex}"
    shadow_before = Path("/etc/shadow").read_bytes() if Path("/etc/shadow").exists() else None
    docker.run("exec", planted, "mkdir", "-p", "/drop/in")
    # ../ entries: refused (nothing written outside the destination).
    status, _ = put_archive(docker, planted, "/drop/in", tar_of((entry(f"../../../../{unique}"), b"evil")))
    assert status >= 400
    assert not Path("/", unique).exists() and not Path("/tmp", unique).exists()
    # An absolute name lands below the destination.
    status, _ = put_archive(docker, planted, "/drop/in", tar_of((entry(f"/{unique}-abs"), b"abs")))
    assert status == 200
    assert cat(docker, planted, f"/drop/in/{unique}-abs") == b"abs"
    assert not Path("/", f"{unique}-abs").exists()
    # A symlink entry to / and then a file written through it.
    status, _ = put_archive(docker, planted, "/drop/in", tar_of(
        (entry("escape", tarfile.SYMTYPE, "/"), None),
        (entry(f"escape/tmp/{unique}-through"), b"through"),
    ))
    assert not Path("/tmp", f"{unique}-through").exists()
    # A hard link to /etc/shadow, then content written into it.
    status, _ = put_archive(docker, planted, "/drop/in", tar_of(
        (entry("hard", tarfile.LNKTYPE, "/etc/shadow"), None),
    ))
    put_archive(docker, planted, "/drop/in", tar_of((entry("hard"), b"overwritten")))
    if shadow_before is not None:
        assert Path("/etc/shadow").read_bytes() == shadow_before
    # Extracting into a destination that is itself a planted link to /.
    status, _ = put_archive(docker, planted, "/x/tmp", tar_of((entry(f"{unique}-dest"), b"dest")))
    assert status == 200
    assert not Path("/tmp", f"{unique}-dest").exists()
    assert cat(docker, planted, f"/tmp/{unique}-dest") == b"dest"


def test_symlink_swap_race_stays_inside(docker, image):
    unique = f"dockyard-race-{uuid.uuid4().hex}"
    name = run_detached(docker, image)
    # The container flips /race/d between a directory and a link to / as fast as it can.
    swapper = subprocess.Popen(
        [docker.binary, "exec", name, "sh", "-c",
         "mkdir -p /race; end=$(($(date +%s)+6)); while [ $(date +%s) -lt $end ]; do "
         "rm -rf /race/d; mkdir /race/d; rm -rf /race/d; ln -s / /race/d; done"],
        env=docker.daemon.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        payload = tar_of((entry(unique), b"raced"), (entry(f"sub/{unique}"), b"raced"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            put_archive(docker, name, "/race/d", payload)
            api(docker, "GET", f"/containers/{name}/archive?path=/race/d/etc/hostname")
    finally:
        swapper.wait(timeout=30)
    assert not Path("/", unique).exists()
    assert not Path("/sub", unique).exists()


def test_dockerpy_put_and_get_archive(docker, image):
    import docker as dockerpy

    client = dockerpy.DockerClient(base_url=docker.daemon.host, version="1.50")
    try:
        container = client.containers.run(image, ["sleep", "1000"], detach=True)
        payload = tar_of((entry("dir", tarfile.DIRTYPE, mode=0o750), None), (entry("dir/f", mode=0o600), b"py\n"))
        assert container.put_archive("/tmp", payload) is True
        chunks, stat_value = container.get_archive("/tmp/dir")
        assert stat_value["name"] == "dir" and stat_value["mode"] & 0o777 == 0o750
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            assert archive.getnames() == ["dir", "dir/f"]
            assert archive.extractfile("dir/f").read() == b"py\n"  # type: ignore[union-attr]
            assert archive.getmember("dir/f").mode == 0o600
        container.remove(force=True)
    finally:
        client.close()
