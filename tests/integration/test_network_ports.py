"""Published ports (`-p`, `-P`, `docker port`, ps/inspect Ports), issue 8."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import pytest

from dockyard.testing.probes import free_port, http_get_retry

SERVE = "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    leftover = docker.out("ps", "-aq", "--no-trunc").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


def test_fixed_port_on_loopback(docker, image):
    port = free_port()
    cid = docker.out("run", "-d", "-p", f"127.0.0.1:{port}:8080", image, "sh", "-c", SERVE).strip()
    try:
        assert http_get_retry(f"http://127.0.0.1:{port}/") == "ok\n"
        assert docker.out("port", cid).strip() == f"8080/tcp -> 127.0.0.1:{port}"
        settings = json.loads(docker.out("inspect", cid))[0]["NetworkSettings"]
        assert settings["Ports"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
        ports = docker.out("ps", "--filter", f"id={cid}", "--format", "{{.Ports}}").strip()
        assert ports == f"127.0.0.1:{port}->8080/tcp"
    finally:
        docker.run("rm", "-f", cid)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)


def test_container_port_only_picks_a_free_host_port(docker, image):
    cid = docker.out("run", "-d", "-p", "127.0.0.1::8080", "-p", "9999/udp", image, "sh", "-c", SERVE).strip()
    try:
        line = docker.out("port", cid, "8080").strip()
        host, _, port = line.rpartition(":")
        assert host == "127.0.0.1" and int(port) > 0
        assert http_get_retry(f"http://127.0.0.1:{port}/") == "ok\n"
        udp = docker.out("port", cid, "9999/udp").strip()
        assert udp.startswith("0.0.0.0:") and int(udp.rpartition(":")[2]) > 0
    finally:
        docker.run("rm", "-f", cid)


def test_publish_all_publishes_exposed_ports(docker, image):
    cid = docker.out("run", "-d", "-P", "--expose", "8080", image, "sh", "-c", SERVE).strip()
    try:
        port = int(docker.out("port", cid, "8080/tcp").split()[0].rpartition(":")[2])
        assert http_get_retry(f"http://127.0.0.1:{port}/") == "ok\n"
    finally:
        docker.run("rm", "-f", cid)


def test_busy_port_fails_the_start(docker, image):
    port = free_port()
    first = docker.out("run", "-d", "-p", f"127.0.0.1:{port}:8080", image, "sleep", "300").strip()
    try:
        result = docker.run("run", "-d", "--name", "busy-port", "-p", f"127.0.0.1:{port}:8080", image,
                            "sleep", "300", check=False)
        assert result.returncode != 0
        assert f"Bind for 127.0.0.1:{port} failed: port is already allocated" in result.stderr.decode()
        state = json.loads(docker.out("inspect", "busy-port"))[0]["State"]
        assert state["Running"] is False
        # The failed container holds nothing: after the first goes, the port is free again.
        docker.run("rm", "-f", first)
        second = docker.out("run", "-d", "-p", f"127.0.0.1:{port}:8080", image, "sh", "-c", SERVE).strip()
        assert http_get_retry(f"http://127.0.0.1:{port}/") == "ok\n"
        docker.run("rm", "-f", second)
    finally:
        docker.run("rm", "-f", first, "busy-port", check=False)


def test_another_container_reaches_a_published_port_through_the_gateway(docker, image):
    port = free_port()
    cid = docker.out("run", "-d", "-p", f"{port}:8080", image, "sh", "-c", SERVE).strip()
    try:
        http_get_retry(f"http://127.0.0.1:{port}/")
        gateway = json.loads(docker.out("inspect", cid))[0]["NetworkSettings"]["Gateway"]
        out = docker.out("run", "--rm", image, "timeout", "10", "wget", "-qO-", f"http://{gateway}:{port}/")
        assert out == "ok\n"
    finally:
        docker.run("rm", "-f", cid)
