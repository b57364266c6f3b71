"""Containers outlive the daemon: state, names, logs and running tasks survive a restart."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from conftest import DockerCLI

from dockyard.testing.daemons import discard, start_dockyard, stop
from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/restart:latest"


def test_state_survives_a_daemon_restart():
    root = Path(tempfile.mkdtemp(prefix="dockyard-restart-"))
    daemon = start_dockyard(root)
    try:
        docker = DockerCLI(daemon)
        build_docker_archive(root / "img.tar", tags=[IMG])
        docker.run("load", "-i", str(root / "img.tar"))
        exited = docker.out("run", "-d", "--name", "exited", IMG, "sh", "-c", "echo bye; exit 3").strip()
        assert docker.out("wait", exited) == "3\n"
        created = docker.out("create", "--name", "created", IMG, "true").strip()
        running = docker.out("run", "-d", "--name", "running", IMG, "sh", "-c",
                             "echo up; trap 'exit 7' TERM; while true; do sleep 0.1; done").strip()
        before = {cid: json.loads(docker.out("inspect", cid))[0]["State"] for cid in (exited, created, running)}

        stop(daemon)
        daemon = start_dockyard(root)
        docker = DockerCLI(daemon)

        after = {cid: json.loads(docker.out("inspect", cid))[0]["State"] for cid in (exited, created, running)}
        assert after == before
        assert after[exited]["ExitCode"] == 3 and after[created]["Status"] == "created"
        assert docker.out("logs", exited) == "bye\n"
        clash = docker.run("create", "--name", "exited", IMG, "true", check=False)
        assert clash.returncode != 0 and b"is already in use" in clash.stderr
        # The adopted task is still ours: stop reaches it and its exit code is recorded.
        docker.run("stop", "-t", "10", running)
        assert json.loads(docker.out("inspect", running))[0]["State"]["ExitCode"] == 7
        assert docker.out("logs", running) == "up\n"
        assert docker.out("start", "-a", created) == ""
        docker.run("rm", "-f", exited, created, running)
        assert docker.out("ps", "-aq") == ""
    finally:
        discard(daemon, root)
