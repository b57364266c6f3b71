"""Debian's docker-compose 1.29.2 (Python, API 1.38) against dockyard (issue 9, "Must show")."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/busybox:latest"
PROJECT = "dyc"

COMPOSE_FILE = f"""\
version: "2.4"
services:
  web:
    image: {IMG}
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && echo web up && exec httpd -f -p 8080 -h /www"]
    ports:
      - "8080"
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"]
      interval: 200ms
      timeout: 5s
      retries: 10
  client:
    image: {IMG}
    command: ["sh", "-c", "wget -q -O - http://web:8080/ && exec sleep 1000"]
    depends_on:
      web:
        condition: service_healthy
volumes:
  data:
"""


@pytest.fixture(scope="module")
def image(docker, tmp_path_factory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("compose-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    yield IMG


@pytest.fixture
def compose(dockyard, image, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = dockyard.env()

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker-compose", "-p", PROJECT, "--no-ansi", *args], cwd=project, env=env,
                                capture_output=True, text=True, timeout=180)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {args} failed:\n{result.stdout}\n{result.stderr}\n"
                                 f"{dockyard.log_tail()}")
        return result

    yield run
    run("down", "-v", "--remove-orphans", check=False)


def wait_for_output(docker, container: str, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in docker.out("logs", container):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the logs of {container}")
        time.sleep(0.1)


def test_up_ps_logs_exec_second_up_down(compose, docker):
    compose("up", "-d")
    web, client = f"{PROJECT}_web_1", f"{PROJECT}_client_1"
    # The client started only once web was healthy, and found it by service name.
    assert json.loads(docker.out("inspect", "--format", "{{json .State.Health.Status}}", web)) == "healthy"
    wait_for_output(docker, client, "hello-from-web")

    ps = compose("ps").stdout
    assert web in ps and client in ps and "Up (healthy)" in ps

    logs = compose("logs", "--no-color").stdout
    assert "web up" in logs and "hello-from-web" in logs

    assert compose("exec", "-T", "web", "cat", "/www/index.html").stdout == "hello-from-web\n"
    assert compose("exec", "-T", "client", "nslookup", "web").returncode == 0

    port = compose("port", "web", "8080").stdout.strip().rsplit(":", 1)[1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        assert response.read() == b"hello-from-web\n"

    # The named volume is the project's, mounted at /data.
    mounts = json.loads(docker.out("inspect", "--format", "{{json .Mounts}}", web))
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", f"{PROJECT}_data", "/data")]

    ids = {name: docker.out("inspect", "--format", "{{.Id}}", name).strip() for name in (web, client)}
    second = compose("up", "-d")
    assert "Recreating" not in second.stderr, second.stderr
    assert "is up-to-date" in second.stderr
    assert {name: docker.out("inspect", "--format", "{{.Id}}", name).strip() for name in (web, client)} == ids

    compose("down", "-v")
    label = f"label=com.docker.compose.project={PROJECT}"
    assert docker.out("ps", "-aq", "--filter", label) == ""
    assert docker.out("network", "ls", "-q", "--filter", label) == ""
    assert docker.out("volume", "ls", "-q", "--filter", label) == ""
