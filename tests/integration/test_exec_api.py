"""Exec over the Engine API: docker-py and raw HTTP against dockyard (issue 4, exec part)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import docker as dockerpy
import pytest

from dockyard.testing.fixtures import build_docker_archive
from dockyard.wire.stdcopy import Demuxer

IMG = "dockyard-test/exec-api:latest"


@pytest.fixture(scope="module")
def client(docker, dockyard, tmp_path_factory) -> Iterator[dockerpy.DockerClient]:
    path = tmp_path_factory.mktemp("exec-api-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    try:
        yield py
        for container in py.containers.list(all=True, filters={"ancestor": IMG}):
            container.remove(force=True)
    finally:
        py.close()


@pytest.fixture
def ctr(client) -> Iterator[dockerpy.models.containers.Container]:
    container = client.containers.run(IMG, "sleep 1000", detach=True, user="nobody")
    yield container
    try:
        container.remove(force=True)
    except dockerpy.errors.NotFound:
        pass  # the test removed it


def _connect(sock_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(30)
    sock.connect(str(sock_path))
    return sock


def _request(sock_path: Path, method: str, path: str, body: dict | None = None) -> tuple[int, bytes, bytes]:
    data = json.dumps(body).encode() if body is not None else b""
    with _connect(sock_path) as sock:
        sock.sendall(f"{method} /v1.50{path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        decoded = b""
        while payload:
            size, _, rest = payload.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            decoded += rest[: int(size, 16)]
            payload = rest[int(size, 16) + 2:]
        payload = decoded
    return int(head.split()[1]), head, payload


def _create(sock_path: Path, cid: str, body: dict) -> str:
    status, _, payload = _request(sock_path, "POST", f"/containers/{cid}/exec", body)
    assert status == 201, payload
    exec_id = json.loads(payload)["Id"]
    assert len(exec_id) == 64 and int(exec_id, 16) >= 0
    return exec_id


def _read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        byte = sock.recv(1)
        assert byte, head
        head += byte
    return head


def _demux_all(sock: socket.socket) -> dict[int, bytes]:
    demuxer = Demuxer()
    out = {1: b"", 2: b""}
    while chunk := sock.recv(65536):
        for frame in demuxer.feed(chunk):
            out[frame.stream] += frame.data
    assert demuxer.pending == 0
    return out


def test_exec_run_demux_and_exit_code(client, ctr):
    result = ctr.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True)
    assert result.exit_code == 3
    assert result.output == (b"out\n", b"err\n")
    assert ctr.exec_run("id -u").output == b"65534\n"
    assert ctr.exec_run("id -u", user="root").output == b"0\n"
    assert ctr.exec_run("pwd", workdir="/tmp").output == b"/tmp\n"
    assert ctr.exec_run(["sh", "-c", "echo $X"], environment={"X": "y"}).output == b"y\n"
    missing = ctr.exec_run("nosuchcommand")
    assert missing.exit_code == 127
    assert b'exec: "nosuchcommand": executable file not found in $PATH' in missing.output


def test_inspect_through_the_lifetime(client, ctr, dockyard):
    api = client.api
    exec_id = api.exec_create(ctr.id, ["sh", "-c", "read x; exit 5"], stdin=True, tty=False,
                              privileged=True)["Id"]
    # DetachKeys is a Go []byte: base64 in JSON. exec_create sends none: an empty one.
    assert api.exec_inspect(exec_id) == {
        "ID": exec_id, "Running": False, "ExitCode": None,
        "ProcessConfig": {"tty": False, "entrypoint": "sh", "arguments": ["-c", "read x; exit 5"],
                          "privileged": True, "user": "nobody"},
        "OpenStdin": True, "OpenStderr": True, "OpenStdout": True, "CanRemove": False,
        "ContainerID": ctr.id, "DetachKeys": "", "Pid": 0,
    }
    sock = api.exec_start(exec_id, socket=True)._sock
    try:
        # As in dockerd, the stream opens before the process has started (and has a pid).
        deadline = time.monotonic() + 10
        while (running := api.exec_inspect(exec_id))["Pid"] == 0:
            assert running["Running"] is True and time.monotonic() < deadline
            time.sleep(0.01)
        assert running["Running"] is True and running["ExitCode"] is None
        sock.sendall(b"line\n")
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    finally:
        sock.close()
    done = api.exec_inspect(exec_id)
    assert (done["Running"], done["ExitCode"], done["Pid"]) == (False, 5, running["Pid"])
    keyed = _create(dockyard.socket_path, ctr.id, {"Cmd": ["true"], "DetachKeys": "ctrl-p,ctrl-q"})
    assert api.exec_inspect(keyed)["DetachKeys"] == "EBE="


def test_stdin_begins_after_the_json_body(ctr, dockyard):
    exec_id = _create(dockyard.socket_path, ctr.id, {"Cmd": ["cat"], "AttachStdin": True, "AttachStdout": True,
                                                     "AttachStderr": True})
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    with _connect(dockyard.socket_path) as sock:
        # Head, body and stdin in one write: stdin is what follows the body.
        sock.sendall(f"POST /v1.50/exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                     f"Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body + b"stdin bytes\n")
        sock.shutdown(socket.SHUT_WR)
        head = _read_head(sock)
        assert head.startswith(b"HTTP/1.1 101 UPGRADED\r\n")
        assert b"Content-Type: application/vnd.docker.multiplexed-stream\r\n" in head
        assert _demux_all(sock) == {1: b"stdin bytes\n", 2: b""}


def test_start_without_upgrade_is_a_plain_200_stream(ctr, dockyard):
    exec_id = _create(dockyard.socket_path, ctr.id, {"Cmd": ["sh", "-c", "echo out; echo err >&2"],
                                                     "AttachStdout": True, "AttachStderr": True})
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    with _connect(dockyard.socket_path) as sock:
        sock.sendall(f"POST /v1.50/exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = _read_head(sock)
        # dockerd's legacy answer: 200 with the raw-stream type, frames all the same.
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Type: application/vnd.docker.raw-stream\r\n" in head
        assert _demux_all(sock) == {1: b"out\n", 2: b"err\n"}


def test_tty_start_is_raw(ctr, dockyard):
    exec_id = _create(dockyard.socket_path, ctr.id, {"Cmd": ["sh", "-c", "tty; echo err >&2"], "Tty": True,
                                                     "AttachStdout": True, "AttachStderr": True,
                                                     "ConsoleSize": [12, 34]})
    body = json.dumps({"Detach": False, "Tty": True}).encode()
    with _connect(dockyard.socket_path) as sock:
        sock.sendall(f"POST /v1.50/exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\n"
                     f"Upgrade: tcp\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        head = _read_head(sock)
        assert b"Content-Type: application/vnd.docker.raw-stream\r\n" in head
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.startswith(b"/dev/pts/") and raw.endswith(b"\r\nerr\r\n")


def test_detached_start_answers_200_without_a_body(client, ctr, dockyard):
    exec_id = _create(dockyard.socket_path, ctr.id, {"Cmd": ["sleep", "1000"]})
    status, head, payload = _request(dockyard.socket_path, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert (status, payload) == (200, b"") and b"content-type" not in head.lower()
    status, head, payload = _request(dockyard.socket_path, "POST", f"/exec/{exec_id}/resize?h=10&w=20")
    assert (status, payload) == (200, b"") and b"content-type" not in head.lower()
    info = client.api.exec_inspect(exec_id)
    assert info["Running"] is True and info["Pid"] > 0
    # Started once only.
    status, _, payload = _request(dockyard.socket_path, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert (status, json.loads(payload)) == (409, {"message": f"exec command {exec_id} is already running"})
    # Execs end with their container.
    ctr.kill()
    deadline = time.monotonic() + 10
    while client.api.exec_inspect(exec_id)["Running"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 137
    # The exec's exit and its container's arrive from containerd in either
    # order: the container's is what this start must see.
    ctr.wait(timeout=10)
    status, _, payload = _request(dockyard.socket_path, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert (status, json.loads(payload)) == (409, {"message": f"container {ctr.id} is not running"})


def test_detached_start_error_is_an_http_error(client, ctr, dockyard):
    exec_id = _create(dockyard.socket_path, ctr.id, {"Cmd": ["nosuchcommand"]})
    status, _, payload = _request(dockyard.socket_path, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 400
    assert 'exec: "nosuchcommand": executable file not found in $PATH' in json.loads(payload)["message"]
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 127
    status, _, payload = _request(dockyard.socket_path, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert (status, json.loads(payload)) == (409, {"message": f"exec command {exec_id} has already run"})


def test_errors(client, ctr, dockyard):
    sock = dockyard.socket_path
    missing = "0" * 64
    for method, path in (("GET", f"/exec/{missing}/json"), ("POST", f"/exec/{missing}/start"),
                         ("POST", f"/exec/{missing}/resize?h=1&w=1")):
        status, _, payload = _request(sock, method, path, {} if method == "POST" else None)
        assert (status, json.loads(payload)) == (404, {"message": f"No such exec instance: {missing}"})
    status, _, payload = _request(sock, "POST", f"/containers/{ctr.id}/exec", {"Cmd": []})
    assert (status, json.loads(payload)) == (400, {"message": "No exec command specified"})
    status, _, payload = _request(sock, "POST", "/containers/nosuchcontainer/exec", {"Cmd": ["true"]})
    assert (status, json.loads(payload)) == (404, {"message": "No such container: nosuchcontainer"})
    status, _, payload = _request(sock, "POST", f"/containers/{ctr.id}/exec", {"Cmd": ["id"], "User": "nosuchuser"})
    assert status == 400
    assert json.loads(payload)["message"] == "unable to find user nosuchuser: no matching entries in passwd file"
    exec_id = _create(sock, ctr.id, {"Cmd": ["true"]})
    status, _, payload = _request(sock, "POST", f"/exec/{exec_id}/resize?h=x&w=1", {})
    assert status == 400
    assert json.loads(payload)["message"].startswith('invalid resize height "x"')
    stopped = client.containers.create(IMG, "true")
    try:
        status, _, payload = _request(sock, "POST", f"/containers/{stopped.id}/exec", {"Cmd": ["true"]})
        assert (status, json.loads(payload)) == (409, {"message": f"container {stopped.id} is not running"})
    finally:
        stopped.remove()
    # A removed container takes its exec instances with it.
    ctr.remove(force=True)
    status, _, payload = _request(sock, "GET", f"/exec/{exec_id}/json")
    assert (status, json.loads(payload)) == (404, {"message": f"No such exec instance: {exec_id}"})
