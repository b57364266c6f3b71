"""The foundation through the real `docker` CLI: version, info, the daemon's own rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dockyard.testing.containerd_fixture import unmount_under
from dockyard.testing.daemons import REPO_ROOT, start_dockyard, stop


def test_docker_version_shows_dockyard(docker):
    version = json.loads(docker.out("version", "--format", "{{json .}}"))
    server = version["Server"]
    assert "dockyard" in server["Platform"]["Name"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", server["Version"])
    assert server["ApiVersion"] == "1.50"
    assert server["MinAPIVersion"] == "1.24"
    components = {c["Name"]: c for c in server["Components"]}
    assert components["containerd"]["Version"].startswith("1.6")
    assert components["runc"]["Version"].startswith("1.1")
    # The CLI negotiated 1.50: it did not downgrade.
    assert version["Client"]["ApiVersion"] == "1.50"


def test_docker_info_real_figures(docker, dockyard):
    info = json.loads(docker.out("info", "--format", "{{json .}}"))
    assert info["Driver"] == "overlayfs"
    assert info["NCPU"] == os.cpu_count()
    assert info["MemTotal"] > 0
    assert info["DockerRootDir"] == str(dockyard.root / "data")
    assert info["OSType"] == "linux"
    assert info["CgroupVersion"] in ("1", "2")
    assert "runc" in info["Runtimes"]
    assert info["ID"]


def test_info_id_survives_restart():
    root = Path(tempfile.mkdtemp(prefix="dockyard-restart-"))
    try:
        _info_id_survives_restart(root)
    finally:
        _remove_root(root)


def _info_id_survives_restart(root: Path) -> None:
    env_of = lambda d: d.env()  # noqa: E731
    first = start_dockyard(root)
    try:
        id1 = subprocess.run(["docker", "info", "--format", "{{.ID}}"], env=env_of(first),
                             capture_output=True, check=True).stdout
    finally:
        stop(first)
    assert first.process.returncode == 0, first.log_tail()
    assert "Traceback" not in first.log_tail(200)
    second = start_dockyard(root)
    try:
        id2 = subprocess.run(["docker", "info", "--format", "{{.ID}}"], env=env_of(second),
                             capture_output=True, check=True).stdout
    finally:
        stop(second)
    assert id1 == id2 and id1.strip()


def test_second_daemon_on_same_data_root_is_refused(dockyard):
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.cli", "serve", "-H", f"unix://{dockyard.root}/other.sock",
         "--data-root", str(dockyard.root / "data"), "--exec-root", str(dockyard.root / "exec2")],
        capture_output=True, timeout=60,
    )
    assert result.returncode != 0
    assert b"already running" in result.stderr
    assert b"Traceback" not in result.stderr


def test_non_loopback_tcp_without_tls_is_refused(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.cli", "serve", "-H", "tcp://0.0.0.0:23750",
         "--data-root", str(tmp_path / "d"), "--exec-root", str(tmp_path / "e")],
        capture_output=True, timeout=60,
    )
    assert result.returncode != 0
    assert b"TLS" in result.stderr
    assert b"Traceback" not in result.stderr


def test_socket_mode_is_0660(dockyard):
    assert dockyard.socket_path.stat().st_mode & 0o777 == 0o660


def _raw(dockyard, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(dockyard.socket_path))
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_ping_headers_and_errors(dockyard):
    head = _raw(dockyard, b"HEAD /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    for header in (b"Api-Version: 1.50", b"Ostype: linux", b"Builder-Version: 1",
                   b"Docker-Experimental: false", b"Cache-Control: no-cache"):
        assert header.lower() in head.lower()
    too_new = _raw(dockyard, b"GET /v1.51/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert too_new.startswith(b"HTTP/1.1 400")
    assert b'{"message":"client version 1.51 is too new. Maximum supported API version is 1.50"}' in too_new
    missing = _raw(dockyard, b"GET /v1.50/nothing HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 404")
    assert missing.endswith(b'{"message":"page not found"}\n')


def test_sigterm_shuts_down_cleanly():
    root = Path(tempfile.mkdtemp(prefix="dockyard-term-"))
    try:
        daemon = start_dockyard(root)
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(60) == 0
        log = daemon.log_tail(400)
        assert "Traceback" not in log
        assert not daemon.socket_path.exists()
        # containerd was ours and is gone with us: its pid file names no live process.
        pid_file = root / "exec" / "containerd" / "containerd.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip() or 0)
            assert pid == 0 or not Path(f"/proc/{pid}").exists()
    finally:
        _remove_root(root)


def _remove_root(root: Path) -> None:
    """What a stopped test daemon left under ``root``: its mounts, then the files."""
    unmount_under(root)
    shutil.rmtree(root, ignore_errors=True)


def test_make_serve_prints_docker_host_and_serves(tmp_path):
    sock = tmp_path / "serve.sock"
    host = f"unix://{sock}"
    process = subprocess.Popen(
        ["make", "-s", "serve", f"HOST={host}", f"DATA_ROOT={tmp_path / 'data'}",
         f"EXEC_ROOT={tmp_path / 'exec'}"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        first_line = process.stdout.readline().decode().strip()
        assert first_line == f"export DOCKER_HOST={host}"
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        env = dict(os.environ, DOCKER_HOST=host, DOCKER_CONFIG=str(tmp_path / "cfg"))
        out = subprocess.run(["docker", "version", "--format", "{{.Server.Platform.Name}}"],
                             env=env, capture_output=True, timeout=60)
        assert "dockyard" in out.stdout.decode(), out.stderr
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    rest = process.stdout.read().decode(errors="replace")
    assert "Traceback" not in rest, rest
    assert not sock.exists()
