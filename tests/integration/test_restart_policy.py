"""Restart policies carried out by dockyard (issue 7 item 2), with the real `docker` CLI and docker-py.

Waits poll inspect with a deadline; nothing asserts a duration.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker as dockerpy
import pytest

from dockyard.testing.daemons import discard, start_dockyard, stop
from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.probes import wait_until

IMG = "dockyard-test/restart:latest"
LABEL = "restart-test=yes"


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    docker.remove_labelled(LABEL)


def state(docker, name: str) -> dict:
    return json.loads(docker.out("inspect", "--format", "{{json .State}}", name))


def restart_count(docker, name: str) -> int:
    return int(docker.out("inspect", "--format", "{{.RestartCount}}", name).strip())


def run(docker, image: str, *args: str) -> str:
    name = "rp-" + secrets.token_hex(4)
    docker.run("run", "-d", "--name", name, "--label", LABEL, *args)
    return name


def test_on_failure_retries_then_stays_exited(docker, image):
    name = run(docker, image, "--restart", "on-failure:2", image, "sh", "-c", "exit 1")
    wait_until(lambda: restart_count(docker, name) == 2 and state(docker, name)["Status"] == "exited",
               timeout=60, what="two restarts then exited")
    s = state(docker, name)
    assert (s["ExitCode"], s["Restarting"], s["Running"]) == (1, False, False)
    policy = json.loads(docker.out("inspect", "--format", "{{json .HostConfig.RestartPolicy}}", name))
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}


def test_on_failure_does_not_restart_success(docker, image):
    name = run(docker, image, "--restart", "on-failure", image, "true")
    assert docker.out("wait", name).strip() == "0"
    assert state(docker, name)["Status"] == "exited"
    assert restart_count(docker, name) == 0


def test_always_restarts_after_exit_and_stop_cancels(docker, image):
    name = run(docker, image, "--restart", "always", image, "sh", "-c", "sleep 0.2; exit 3")
    wait_until(lambda: restart_count(docker, name) >= 2, timeout=60, what="two restarts")
    docker.run("stop", "-t", "1", name)
    s = state(docker, name)
    assert (s["Status"], s["Restarting"], s["Running"]) == ("exited", False, False)
    count = restart_count(docker, name)
    # A manual stop holds: the container stays exited; a start makes it count afresh.
    assert state(docker, name)["Status"] == "exited"
    docker.run("start", name)
    wait_until(lambda: restart_count(docker, name) >= 1, timeout=60, what="a restart after docker start")
    assert count >= 2
    docker.run("rm", "-f", name)


def test_always_survives_stop_start_cycle(docker, image):
    name = run(docker, image, "--restart", "always", image, "sleep", "1000")
    docker.run("stop", "-t", "0", name)
    assert state(docker, name)["Status"] == "exited"
    docker.run("start", name)
    assert state(docker, name)["Status"] == "running"
    docker.run("kill", name)
    assert state(docker, name)["Status"] == "exited"  # a kill by the user also holds it
    docker.run("rm", "-f", name)


def test_update_restart_policy(docker, image):
    name = run(docker, image, image, "sh", "-c", "sleep 0.2; exit 4")
    docker.run("update", "--restart", "on-failure:1", name)
    policy = json.loads(docker.out("inspect", "--format", "{{json .HostConfig.RestartPolicy}}", name))
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 1}
    wait_until(lambda: restart_count(docker, name) == 1 and state(docker, name)["Status"] == "exited",
               timeout=60, what="one restart after update")
    assert state(docker, name)["ExitCode"] == 4


def test_update_refuses_policy_with_autoremove(docker, image):
    name = run(docker, image, "--rm", image, "sleep", "1000")
    result = docker.run("update", "--restart", "always", name, check=False)
    assert result.returncode != 0
    assert b"AutoRemove" in result.stderr
    docker.run("rm", "-f", name)


def test_docker_py_restart_policy(dockyard, image):
    client = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    try:
        container = client.containers.run(image, ["sh", "-c", "exit 2"], detach=True, labels={"restart-test": "yes"},
                                          restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
        def done() -> bool:
            container.reload()
            return container.attrs["RestartCount"] == 1 and container.status == "exited"
        wait_until(done, timeout=60, what="docker-py restart")
        container.remove(force=True)
    finally:
        client.close()


def test_always_restarts_at_daemon_start():
    root = Path(tempfile.mkdtemp(prefix="dockyard-restart-"))
    daemon = start_dockyard(root)
    try:
        env = daemon.env()
        def cli(*args: str) -> str:
            out = subprocess.run(["docker", *args], env=env, capture_output=True, timeout=120)
            assert out.returncode == 0, out.stderr.decode() + daemon.log_tail()
            return out.stdout.decode()
        archive = root / "busybox.tar"
        build_docker_archive(archive, tags=[IMG])
        cli("load", "-i", str(archive))
        cli("run", "-d", "--name", "always", "--restart", "always", IMG, "sleep", "1000")
        cli("run", "-d", "--name", "unless", "--restart", "unless-stopped", IMG, "sleep", "1000")
        cli("run", "-d", "--name", "plain", IMG, "sleep", "1000")
        for name in ("always", "unless", "plain"):
            cli("stop", "-t", "0", name)
        # The exit path reaps the task after `docker stop` returns; a daemon stopped before that
        # leaves containerd a bundle it does not clean up (reported), so wait for the reaping.
        bundles = root / "exec" / "containerd" / "io.containerd.runtime.v2.task" / "dockyard"
        wait_until(lambda: not any(bundles.iterdir()) if bundles.exists() else True, timeout=60, what="tasks reaped")
        stop(daemon)
        daemon = start_dockyard(root)

        def status(name: str) -> str:
            return cli("inspect", "--format", "{{.State.Status}}", name).strip()
        wait_until(lambda: status("always") == "running", timeout=60, what="always started at daemon start")
        assert status("unless") == "exited"
        assert status("plain") == "exited"
    finally:
        discard(daemon, root)


def test_kill_and_stop_during_the_back_off(docker, image):
    for verb in ("kill", "stop"):
        name = run(docker, image, "--restart", "always", image, "sh", "-c", "exit 1")
        wait_until(lambda: state(docker, name)["Restarting"], timeout=60, what="the restarting state")
        s = state(docker, name)
        assert (s["Status"], s["Running"], s["Pid"]) == ("restarting", True, 0)
        assert docker.out("ps", "--filter", f"name={name}", "--format", "{{.Status}}").startswith("Restarting (1)")
        docker.run(verb, name)
        s = state(docker, name)
        assert (s["Status"], s["Restarting"], s["Running"]) == ("exited", False, False)
        count = restart_count(docker, name)
        docker.run("rm", "-f", name)
        assert count >= 1
