"""`docker run` end to end with the real `docker` CLI against dockyard (issue 3, "Must show")."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.terminal import TerminalSession
from dockyard.wire.stdcopy import Demuxer


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    # Nothing of ours may outlive the module (a shim would outlive the daemon).
    leftover = docker.out("ps", "-aq", "--no-trunc").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


def test_stdout_and_stderr_stay_separate(docker, image):
    result = docker.run("run", "--rm", image, "sh", "-c", "echo out; echo err >&2")
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")
    shell = f"{docker.binary} run --rm {image} sh -c 'echo out; echo err >&2'"
    only_out = subprocess.run(["sh", "-c", shell + " 2>/dev/null"], capture_output=True, env=docker.daemon.env())
    assert only_out.stdout == b"out\n"
    only_err = subprocess.run(["sh", "-c", shell + " >/dev/null"], capture_output=True, env=docker.daemon.env())
    assert (only_err.stdout, only_err.stderr) == (b"", b"err\n")


def test_stdin_is_copied_and_closed(docker, image):
    assert docker.run("run", "--rm", "-i", image, "cat", input=b"hello\n").stdout == b"hello\n"
    data = os.urandom(20 << 20)
    out = docker.run("run", "--rm", "-i", image, "cat", input=data).stdout
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest()


def test_exit_codes(docker, image):
    assert docker.run("run", "--rm", image, "sh", "-c", "exit 42", check=False).returncode == 42
    missing = docker.run("run", image, "nosuchcommand", check=False)
    assert missing.returncode == 127
    assert b'exec: "nosuchcommand": executable file not found in $PATH' in missing.stderr
    refused = docker.run("run", "--rm", "--cap-add", "NOPE", image, "true", check=False)
    assert refused.returncode == 125


def test_rm_leaves_nothing_behind(docker, image):
    before = set(docker.out("ps", "-aq", "--no-trunc").split())
    docker.run("run", "--rm", "--name", "rm-test", image, "true")
    after = set(docker.out("ps", "-aq", "--no-trunc").split())
    assert after == before
    # The name is free again.
    docker.run("run", "--rm", "--name", "rm-test", image, "true")


def test_detached_logs_follow_tail_since(docker, image):
    cid = docker.out("run", "-d", image, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.2; done").strip()
    try:
        assert docker.out("logs", "-f", cid) == "line1\nline2\nline3\n"
        assert docker.run("wait", cid).stdout == b"0\n"
        assert docker.out("logs", "--tail", "2", cid) == "line2\nline3\n"
        stamped = docker.out("logs", "-t", cid).splitlines()
        second = stamped[1].split(" ", 1)[0]
        assert docker.out("logs", "--since", second, cid) == "line2\nline3\n"
        assert docker.out("logs", "--since", "2030-01-01T00:00:00Z", cid) == ""
    finally:
        docker.run("rm", "-f", cid)


def test_name_conflict_and_ps(docker, image):
    cid = docker.out("create", "--name", "named-one", "--label", "team=a", image, "true").strip()
    try:
        clash = docker.run("create", "--name", "named-one", image, "true", check=False)
        assert clash.returncode == 1
        assert (f'Conflict. The container name "/named-one" is already in use by container "{cid}". '
                "You have to remove (or rename) that container to be able to reuse that name.").encode() in clash.stderr
        assert docker.out("ps", "-aq", "--no-trunc", "--filter", "name=named-one").split() == [cid]
        assert docker.out("ps", "-aq", "--no-trunc", "--filter", "label=team=a").split() == [cid]
        assert cid not in docker.out("ps", "-q", "--no-trunc")
        assert docker.out("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}").strip() == "Created"
        docker.run("start", "-a", cid)
        status = docker.out("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}").strip()
        assert status.startswith("Exited (0) ") and status.endswith(" ago")
        assert docker.out("ps", "-aq", "--no-trunc", "--filter", "exited=0", "--filter", "name=named-one").split() == [cid]
        assert docker.out("ps", "-lq", "--no-trunc") == cid + "\n"
        state = json.loads(docker.out("inspect", cid))[0]
        assert state["Name"] == "/named-one"
        assert state["State"]["Status"] == "exited" and state["Config"]["Labels"]["team"] == "a"
        assert state["Config"]["Cmd"] == ["true"] and state["Path"] == "true" and state["Args"] == []
    finally:
        docker.run("rm", "-f", cid)


def test_running_container_remove_needs_force(docker, image):
    cid = docker.out("run", "-d", image, "sleep", "60").strip()
    refused = docker.run("rm", cid, check=False)
    assert refused.returncode != 0 and b"container is running" in refused.stderr
    assert json.loads(docker.out("inspect", cid))[0]["State"]["Running"] is True
    docker.run("rm", "-f", cid)
    assert docker.run("inspect", cid, check=False).returncode != 0


def test_twenty_concurrent_runs(docker, image):
    def one(i: int) -> tuple[int, bytes]:
        result = docker.run("run", "--rm", image, "sh", "-c", f"echo run{i}; exit {i}", check=False)
        return result.returncode, result.stdout

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(1, 21)))
    assert results == [(i, f"run{i}\n".encode()) for i in range(1, 21)]


def test_tty_and_resize(docker, image):
    argv = [docker.binary, "run", "--rm", "-it", image, "sh", "-c",
            "tty; stty size; while read x; do stty size; done"]
    with TerminalSession(argv, docker.daemon.env(), rows=27, cols=91) as term:
        term.read_until(b"27 91")
        assert b"/dev/pts/" in term.output
        assert term.resize_until_seen(33, 120)
        term.write(b"\x04")
    assert term.exit_code == 0


def _attach(sock_path: Path, cid: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(str(sock_path))
    sock.sendall(f"POST /v1.50/containers/{cid}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                 "Host: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101 UPGRADED")
    assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    return sock


def _read_all(sock: socket.socket) -> dict[int, bytes]:
    demuxer = Demuxer()
    out = {1: b"", 2: b""}
    while chunk := sock.recv(65536):
        for frame in demuxer.feed(chunk):
            out[frame.stream] += frame.data
    sock.close()
    return out


def test_two_clients_attached_both_get_everything(docker, dockyard, image):
    script = "seq 1 20000; echo done >&2"
    cid = docker.out("create", image, "sh", "-c", script).strip()
    try:
        first, second = _attach(dockyard.socket_path, cid), _attach(dockyard.socket_path, cid)
        docker.run("start", cid)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            outputs = list(pool.map(_read_all, [first, second]))
        expected = "".join(f"{i}\n" for i in range(1, 20001)).encode()
        assert outputs == [{1: expected, 2: b"done\n"}] * 2
        # logs=1 replays what was logged, then the stream ends with the stopped container's output.
        assert docker.out("logs", cid).encode() == expected
    finally:
        docker.run("rm", "-f", cid)


def _post_create(sock_path: Path, body: dict) -> tuple[int, dict]:
    data = json.dumps(body).encode()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(sock_path))
        sock.sendall(b"POST /v1.50/containers/create HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
                     b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"chunked" in head.lower():
        size, _, rest = payload.partition(b"\r\n")
        payload = rest[: int(size, 16)]
    return status, json.loads(payload)


def test_create_ignores_unknown_keys_and_refuses_unimplemented(docker, dockyard, image):
    status, body = _post_create(dockyard.socket_path, {"Image": image, "Cmd": ["true"], "NoSuchKey": 1})
    assert status == 201 and len(body["Id"]) == 64
    docker.run("rm", body["Id"])
    status, body = _post_create(dockyard.socket_path, {
        "Image": image, "Cmd": ["true"],
        "HostConfig": {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x",
                                    "CgroupPermissions": "rwm"}]}})
    assert status == 400 and body == {"message": "HostConfig.Devices is not supported"}


def test_missing_image_is_404(dockyard):
    status, body = _post_create(dockyard.socket_path, {"Image": "dockyard-test/nope:1", "Cmd": ["true"]})
    assert status == 404 and body["message"] == "No such image: dockyard-test/nope:1"


def test_run_options_reach_the_process(docker, image):
    out = docker.out(
        "run", "--rm", "-e", "A=1", "-w", "/made/here", "-u", "1000:1000", "--hostname", "box",
        "--add-host", "db:10.1.2.3", "--dns", "9.9.9.9", "--network", "none", image,
        "sh", "-c", "echo $A; pwd; id -u; id -g; hostname; grep db /etc/hosts; cat /etc/resolv.conf; ls /sys/class/net")
    lines = out.splitlines()
    assert lines[:5] == ["1", "/made/here", "1000", "1000", "box"]
    assert "10.1.2.3\tdb" in lines
    assert "nameserver 9.9.9.9" in lines
    assert lines[-1] == "lo"


def test_rmi_of_image_in_use_is_refused(docker, image, tmp_path):
    tag = "dockyard-test/inuse:1"
    build_docker_archive(tmp_path / "x.tar", tags=[tag])
    docker.run("load", "-i", str(tmp_path / "x.tar"))
    cid = docker.out("run", "-d", tag, "sleep", "60").strip()
    try:
        image_id = docker.out("inspect", "--format", "{{.Image}}", cid).strip()
        refused = docker.run("rmi", "-f", image_id, check=False)
        assert refused.returncode != 0 and b"running container" in refused.stderr
    finally:
        docker.run("rm", "-f", cid)
