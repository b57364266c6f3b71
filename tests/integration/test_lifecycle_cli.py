"""stop/kill/restart, pause/unpause, rename, top and `ps --filter before/since` (issue 7)
with the real `docker` CLI and docker-py against dockyard.

Waits are on conditions (``docker wait``, inspect polled with a deadline), never
on sleeps; no wall-clock assertions.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import docker as dockerpy
import pytest


LABEL = "lifecycle-test=yes"
#: pid 1 ignores signals it has no handler for: this one traps USR1 (exit 7) and ignores TERM.
TRAP_USR1 = 'trap "exit 7" USR1; while true; do sleep 0.1; done'


def stamp() -> str:
    now = time.time_ns()
    return f"{now // 1_000_000_000}.{now % 1_000_000_000:09d}"


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    docker.remove_labelled(LABEL)


@pytest.fixture(scope="module")
def client(dockyard) -> Iterator[dockerpy.DockerClient]:
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    yield py
    py.close()


def run_detached(docker, image: str, *args: str) -> str:
    name = "lc-" + secrets.token_hex(4)
    docker.run("run", "-d", "--name", name, "--label", LABEL, *args, image, *(() if "--" in args else ()))
    return name


def start(docker, image: str, *cmd: str, options: tuple[str, ...] = ()) -> str:
    name = "lc-" + secrets.token_hex(4)
    docker.run("run", "-d", "--name", name, "--label", LABEL, *options, image, *cmd)
    return name


def state(docker, name: str) -> dict:
    return json.loads(docker.out("inspect", "--format", "{{json .State}}", name))


def actions(docker, since: str, name: str) -> list[str]:
    out = docker.out("events", "--since", since, "--until", stamp(), "--filter", f"container={name}",
                     "--format", "{{.Action}}", timeout=30)
    return out.split()


def test_stop_escalates_to_sigkill_after_t(docker, image):
    name = start(docker, image, "sh", "-c", TRAP_USR1)
    docker.run("stop", "-t", "2", name)
    s = state(docker, name)
    assert (s["Status"], s["Running"], s["ExitCode"]) == ("exited", False, 137)


def test_stop_uses_the_stop_signal(docker, image):
    name = start(docker, image, "sh", "-c", TRAP_USR1, options=("--stop-signal", "USR1"))
    docker.run("stop", name)
    assert state(docker, name)["ExitCode"] == 7


def test_stop_of_a_stopped_container_is_304(docker, client, image):
    name = start(docker, image, "true")
    docker.run("wait", name)
    response = client.api._post(client.api._url("/containers/{0}/stop", name))
    assert response.status_code == 304
    assert docker.run("stop", name).returncode == 0  # the CLI treats 304 as success


def test_kill_with_names_and_numbers(docker, image):
    by_name = start(docker, image, "sh", "-c", TRAP_USR1)
    docker.run("kill", "-s", "USR1", by_name)
    assert docker.out("wait", by_name).strip() == "7"
    by_number = start(docker, image, "sh", "-c", TRAP_USR1)
    docker.run("kill", "-s", "10", by_number)
    assert docker.out("wait", by_number).strip() == "7"
    sig_prefixed = start(docker, image, "sh", "-c", TRAP_USR1)
    docker.run("kill", "--signal", "SIGUSR1", sig_prefixed)
    assert docker.out("wait", sig_prefixed).strip() == "7"
    plain = start(docker, image, "sleep", "300")
    docker.run("kill", plain)
    assert docker.out("wait", plain).strip() == "137"


def test_kill_errors(docker, image):
    name = start(docker, image, "true")
    docker.run("wait", name)
    result = docker.run("kill", name, check=False)
    assert result.returncode != 0
    container_id = docker.out("inspect", "--format", "{{.Id}}", name).strip()
    assert f"container {container_id} is not running" in result.stderr.decode()
    running = start(docker, image, "sleep", "300")
    bad = docker.run("kill", "-s", "NOSUCH", running, check=False)
    assert bad.returncode != 0 and "Invalid signal: NOSUCH" in bad.stderr.decode()
    docker.run("rm", "-f", running)


def test_restart_running_and_stopped(docker, image):
    name = start(docker, image, "sh", "-c", TRAP_USR1)
    first = state(docker, name)
    since = stamp()
    docker.run("restart", "-t", "1", name)
    second = state(docker, name)
    assert second["Running"] and second["Pid"] != first["Pid"]
    assert second["StartedAt"] != first["StartedAt"]
    assert actions(docker, since, name) == ["kill", "kill", "die", "stop", "start", "restart"]
    docker.run("kill", name)
    docker.run("wait", name)
    docker.run("restart", name)
    assert state(docker, name)["Running"]
    docker.run("rm", "-f", name)


def test_pause_and_unpause(docker, image):
    name = start(docker, image, "sleep", "300")
    since = stamp()
    docker.run("pause", name)
    s = state(docker, name)
    assert (s["Status"], s["Paused"], s["Running"]) == ("paused", True, True)
    row = docker.out("ps", "--filter", f"name={name}", "--format", "{{.Status}}").strip()
    assert row.endswith("(Paused)")
    again = docker.run("pause", name, check=False)
    assert again.returncode != 0 and "is already paused" in again.stderr.decode()
    assert docker.out("ps", "-q", "--filter", "status=paused", "--filter", f"name={name}").strip()
    docker.run("unpause", name)
    s = state(docker, name)
    assert (s["Status"], s["Paused"]) == ("running", False)
    not_paused = docker.run("unpause", name, check=False)
    assert not_paused.returncode != 0 and "is not paused" in not_paused.stderr.decode()
    assert actions(docker, since, name) == ["pause", "unpause"]
    docker.run("rm", "-f", name)


def test_rename(docker, image):
    name = start(docker, image, "sleep", "300")
    other = start(docker, image, "true")
    new = name + "-renamed"
    since = stamp()
    docker.run("rename", name, new)
    assert docker.out("inspect", "--format", "{{.Name}}", new).strip() == "/" + new
    assert docker.run("inspect", name, check=False).returncode != 0
    taken = docker.run("rename", new, other, check=False)
    assert taken.returncode != 0
    assert f'The container name "/{other}" is already in use' in taken.stderr.decode()
    got = json.loads(docker.out("events", "--since", since, "--until", stamp(), "--filter", "event=rename",
                                "--filter", f"container={new}", "--format", "{{json .}}").strip())
    assert got["Actor"]["Attributes"]["oldName"] == "/" + name
    assert got["Actor"]["Attributes"]["name"] == new
    docker.run("rm", "-f", new, other)


def test_top(docker, image):
    name = start(docker, image, "sleep", "300")
    lines = docker.out("top", name).splitlines()
    assert lines[0].split()[:2] == ["UID", "PID"]
    assert any(line.endswith("sleep 300") for line in lines[1:])
    custom = docker.out("top", name, "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert [line.split()[1] for line in custom[1:]] == ["sleep"]
    docker.run("kill", name)
    docker.run("wait", name)
    stopped = docker.run("top", name, check=False)
    assert stopped.returncode != 0 and "is not running" in stopped.stderr.decode()


def test_ps_before_and_since(docker, image):
    a = start(docker, image, "true")
    b = start(docker, image, "true")
    c = start(docker, image, "true")
    for n in (a, b, c):
        docker.run("wait", n)
    names = lambda *f: docker.out("ps", "--format", "{{.Names}}", "--filter", LABEL.join(["label=", ""]),
                                  *sum((("--filter", x) for x in f), ())).split()
    assert names(f"since={a}")[:2] == [c, b]
    assert a not in names(f"since={a}")
    assert b in names(f"before={c}") and a in names(f"before={c}") and c not in names(f"before={c}")
    assert names(f"since={a}", f"before={c}") == [b]
    missing = docker.run("ps", "--filter", "since=nosuchcontainer", check=False)
    assert missing.returncode != 0 and "No such container: nosuchcontainer" in missing.stderr.decode()


def test_dockerpy_lifecycle(client, image):
    container = client.containers.run(image, ["sleep", "300"], detach=True, labels={"lifecycle-test": "yes"})
    try:
        container.pause()
        container.reload()
        assert container.status == "paused"
        container.unpause()
        top = container.top()
        assert "PID" in top["Titles"] and any("sleep" in p[-1] for p in top["Processes"])
        container.rename(container.name + "-py")
        container.restart(timeout=1)
        container.reload()
        assert container.status == "running" and container.name.endswith("-py")
        container.kill(signal="SIGKILL")
        assert container.wait(timeout=30)["StatusCode"] == 137
        container.start()
        container.stop(timeout=1)
        container.reload()
        assert (container.status, container.attrs["State"]["ExitCode"]) == ("exited", 137)
    finally:
        container.remove(force=True)
