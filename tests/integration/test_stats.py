"""GET /containers/{id}/stats (issue 7 item 3): real cgroup v1 figures, with the real `docker` CLI and docker-py."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import docker as dockerpy
import pytest


LABEL = "stats-test=yes"
BUSY = "while true; do :; done"


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    docker.remove_labelled(LABEL)


@pytest.fixture(scope="module")
def client(dockyard) -> Iterator[dockerpy.DockerClient]:
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    yield py
    py.close()


def run(docker, image: str, *args: str) -> str:
    name = "st-" + secrets.token_hex(4)
    docker.run("run", "-d", "--name", name, "--label", LABEL, *args)
    return name


def test_one_shot_figures_of_a_busy_container(docker, client, image):
    name = run(docker, image, "-m", "64m", image, "sh", "-c", BUSY)
    stats = client.api.stats(name, stream=False, one_shot=True)
    assert stats["name"] == "/" + name
    assert stats["id"] == docker.out("inspect", "--format", "{{.Id}}", name).strip()
    cpu = stats["cpu_stats"]
    assert cpu["cpu_usage"]["total_usage"] > 0
    assert cpu["system_cpu_usage"] > 0
    assert cpu["online_cpus"] >= 1
    assert stats["precpu_stats"]["cpu_usage"]["total_usage"] == 0  # one-shot: no previous sample
    memory = stats["memory_stats"]
    assert memory["usage"] > 0
    assert memory["limit"] == 64 * 1024 * 1024
    assert "total_rss" in memory["stats"] or "rss" in memory["stats"]
    assert stats["pids_stats"]["current"] >= 1
    assert "eth0" in stats["networks"]
    assert stats["networks"]["eth0"]["rx_packets"] >= 0
    docker.run("rm", "-f", name)


def test_not_one_shot_has_a_previous_sample(docker, client, image):
    name = run(docker, image, image, "sh", "-c", BUSY)
    stats = client.api.stats(name, stream=False)
    assert stats["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] >= stats["precpu_stats"]["cpu_usage"]["total_usage"]
    assert stats["preread"] != "0001-01-01T00:00:00Z"
    # without a limit the limit is the host's memory
    meminfo = open("/proc/meminfo").read().split("\n")[0].split()
    assert stats["memory_stats"]["limit"] == int(meminfo[1]) * 1024
    docker.run("rm", "-f", name)


def test_stream_ends_when_the_container_stops(docker, client, image):
    name = run(docker, image, image, "sleep", "1000")
    stream = client.api.stats(name, stream=True, decode=True)
    first = next(stream)
    second = next(stream)
    assert second["precpu_stats"] == first["cpu_stats"]
    docker.run("kill", name)
    rest = list(stream)  # the daemon ends the stream once the container is gone
    assert len(rest) <= 2
    docker.run("rm", "-f", name)


def test_docker_stats_no_stream_row(docker, image):
    name = run(docker, image, "-m", "64m", image, "sh", "-c", BUSY)
    out = docker.out("stats", "--no-stream", "--format", "{{json .}}", name)
    row = json.loads(out)
    assert row["Name"] == name
    assert row["MemUsage"].endswith("/ 64MiB")
    assert row["PIDs"] != "0"
    assert row["CPUPerc"].endswith("%")
    table = docker.out("stats", "--no-stream", name)
    assert name in table and "64MiB" in table
    docker.run("rm", "-f", name)


def test_stats_of_a_stopped_container(docker, client, image):
    name = run(docker, image, image, "true")
    docker.run("wait", name)
    stats = client.api.stats(name, stream=False)
    assert stats["name"] == "/" + name
    assert stats["read"] == "0001-01-01T00:00:00Z"


def test_stats_of_a_missing_container(client):
    with pytest.raises(dockerpy.errors.NotFound):
        client.api.stats("no-such-container-xyz", stream=False)
