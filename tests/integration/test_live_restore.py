"""Live restore: a dockyard restart is invisible to running containers (logs, stop, ports, pause).

dockyard stops its embedded containerd at shutdown (SIGTERM); the shims are
not its children and keep the containers running, and the next containerd
reconnects them (a containerd left running after a SIGKILL is adopted by pid
file instead). The test checks that each container keeps its process and shim.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from conftest import DockerCLI

from dockyard.testing.daemons import discard, start_dockyard, stop
from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.probes import free_port, http_get_retry, wait_until

IMG = "dockyard-test/liverestore:latest"
TICK = "i=0; trap 'exit 9' TERM; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"
SERVE = "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www"


def _ticks(docker: DockerCLI, cid: str) -> list[int]:
    lines = docker.out("logs", cid).splitlines()
    assert all(line.startswith("tick ") for line in lines), lines[:5]
    return [int(line.split()[1]) for line in lines]


def _shims(docker: DockerCLI, cids: list[str]) -> dict[str, tuple[int, int]]:
    """Each container's (process pid, parent pid): the parent is its containerd shim."""
    found = {}
    for cid in cids:
        pid = json.loads(docker.out("inspect", cid))[0]["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        found[cid] = (pid, ppid)
    return found


def test_running_containers_survive_a_daemon_restart():
    root = Path(tempfile.mkdtemp(prefix="dockyard-live-"))
    daemon = start_dockyard(root)
    try:
        docker = DockerCLI(daemon)
        build_docker_archive(root / "img.tar", tags=[IMG])
        docker.run("load", "-i", str(root / "img.tar"))
        ticker = docker.out("run", "-d", "--log-opt", "max-size=2k", "--log-opt", "max-file=4",
                            IMG, "sh", "-c", TICK).strip()
        port = free_port()
        server = docker.out("run", "-d", "-p", f"127.0.0.1:{port}:8080", IMG, "sh", "-c", SERVE).strip()
        paused = docker.out("run", "-d", IMG, "sleep", "300").strip()
        docker.run("pause", paused)
        assert http_get_retry(f"http://127.0.0.1:{port}/") == "ok\n"
        wait_until(lambda: len(_ticks(docker, ticker)) >= 5)
        shims = _shims(docker, [ticker, server, paused])

        stop(daemon)
        assert daemon.process.returncode is not None
        # The container goes on while no dockyard reads its output: wait for
        # more than a pipe's worth of ticks is not needed, a few seconds' is.
        state_dir = root / "exec"
        assert state_dir.exists()
        time.sleep(1)  # only to let ticks accumulate while dockyard is down; nothing asserts on time

        daemon = start_dockyard(root)
        docker = DockerCLI(daemon)
        assert _shims(docker, [ticker, server, paused]) == shims  # same processes, same shims
        states = {cid: json.loads(docker.out("inspect", cid))[0]["State"] for cid in (ticker, server, paused)}
        assert states[ticker]["Status"] == "running"
        assert states[server]["Status"] == "running"
        assert states[paused]["Status"] == "paused" and states[paused]["Paused"] is True

        # Ticks written while dockyard was down and after it came back, in order, none lost.
        wait_until(lambda: len(_ticks(docker, ticker)) > 0 and _ticks(docker, ticker)[-1] >= 40)
        seen = _ticks(docker, ticker)
        assert seen == list(range(seen[0], seen[-1] + 1))
        assert http_get_retry(f"http://127.0.0.1:{port}/") == "ok\n"

        docker.run("stop", "-t", "10", ticker)
        assert json.loads(docker.out("inspect", ticker))[0]["State"]["ExitCode"] == 9
        docker.run("unpause", paused)
        assert json.loads(docker.out("inspect", paused))[0]["State"]["Status"] == "running"
        docker.run("rm", "-f", server, paused)
    finally:
        discard(daemon, root)
