"""Issue 8's "Must show" items that the other network test files do not already show
exactly as written: ping and nslookup by name, alias and short id (and a later joiner),
the issue's own httpd command on port 80, dockerd's errors for an overlapping subnet (403)
and a duplicate name (409), and a busy host port leaving no half-started container.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker as dockerpy
import pytest

from dockyard.testing.probes import free_port, wait_until

ISSUE_COMMAND = "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def image(busybox_image: str) -> str:
    return busybox_image


@pytest.fixture
def made(docker) -> Iterator[dict[str, list[str]]]:
    """What a test created, removed afterwards: containers first, then networks."""
    things: dict[str, list[str]] = {"containers": [], "networks": []}
    yield things
    if things["containers"]:
        docker.run("rm", "-f", *things["containers"], check=False)
    for name in things["networks"]:
        docker.run("network", "rm", name, check=False)


def network(docker, made, name: str, *args: str) -> str:
    made["networks"].append(name)
    return docker.out("network", "create", *args, name).strip()


def run(docker, made, *args: str) -> str:
    cid = docker.out("run", "-d", *args).strip()
    made["containers"].append(cid)
    return cid


def ip_of(docker, cid: str) -> str:
    return docker.out("exec", cid, "sh", "-c", "ip -4 -o addr show eth0").split()[3].split("/")[0]


def reaches(docker, cid: str, name: str, address: str) -> None:
    """`ping -c1 NAME` and `nslookup NAME` from ``cid`` succeed and give ``address``."""
    found = docker.run("exec", cid, "timeout", "10", "nslookup", name, check=False)
    assert found.returncode == 0 and f"Address: {address}" in found.stdout.decode(), (name, found)
    ping = docker.run("exec", cid, "ping", "-c1", "-W", "5", name, check=False)
    assert ping.returncode == 0 and f"({address})" in ping.stdout.decode(), (name, ping)


def test_ping_and_nslookup_by_name_alias_and_short_id(docker, image, made):
    network(docker, made, "dy-ms-net")
    network(docker, made, "dy-ms-other")
    b = run(docker, made, "--network", "dy-ms-net", "--name", "dy-ms-b", "--network-alias", "bee",
            image, "sleep", "300")
    a = run(docker, made, "--network", "dy-ms-net", "--name", "dy-ms-a", image, "sleep", "300")
    b_ip = ip_of(docker, b)
    for name in ("dy-ms-b", "bee", b[:12]):
        reaches(docker, a, name, b_ip)
    # A container on another network cannot resolve b.
    stranger = run(docker, made, "--network", "dy-ms-other", image, "sleep", "300")
    for name in ("dy-ms-b", "bee", b[:12]):
        missing = docker.run("exec", stranger, "timeout", "10", "nslookup", name, check=False)
        assert missing.returncode != 0 and "NXDOMAIN" in (missing.stdout + missing.stderr).decode()
        assert docker.run("exec", stranger, "ping", "-c1", "-W", "2", name, check=False).returncode != 0
    # A container that joins later resolves and is resolved.
    late = run(docker, made, "--network", "dy-ms-net", "--name", "dy-ms-late", image, "sleep", "300")
    late_ip = ip_of(docker, late)
    for name in ("dy-ms-b", "bee", b[:12]):
        reaches(docker, late, name, b_ip)
    for name in ("dy-ms-late", late[:12]):
        reaches(docker, a, name, late_ip)
        reaches(docker, b, name, late_ip)


def test_issue_httpd_command_answers_ok_on_the_port_docker_port_reports(docker, image, made):
    cid = run(docker, made, "-p", "127.0.0.1::80", image, "sh", "-c", ISSUE_COMMAND)
    host, _, port = docker.out("port", cid, "80").strip().rpartition(":")
    assert host == "127.0.0.1"
    deadline = time.monotonic() + 20
    while True:  # httpd may not be listening yet: the proxy then closes the connection
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                body = response.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert body.strip() == "ok"


def test_overlapping_subnet_and_duplicate_name_get_dockerds_errors(docker, dockyard, made):
    # Subnets are claimed across every daemon on the machine: take the first free /24 here.
    for third in range(120, 160):
        subnet = f"10.214.{third}.0/24"
        created = docker.run("network", "create", "--subnet", subnet, "dy-ms-sub", check=False)
        if created.returncode == 0:
            made["networks"].append("dy-ms-sub")
            break
        assert b"Pool overlaps" in created.stderr, created.stderr
    else:
        raise AssertionError("no free /24 in 10.214.120-159")
    half = subnet.replace("/24", "/25")
    cli = docker.run("network", "create", "--subnet", half, "dy-ms-overlap", check=False)
    assert cli.returncode != 0
    assert b"Pool overlaps with other one on this address space" in cli.stderr, cli.stderr
    client = dockerpy.APIClient(base_url=dockyard.host)
    try:
        ipam = dockerpy.types.IPAMConfig(pool_configs=[dockerpy.types.IPAMPool(subnet=half)])
        with pytest.raises(dockerpy.errors.APIError) as overlap:
            client.create_network("dy-ms-overlap", ipam=ipam)
        assert overlap.value.response.status_code == 403  # dockerd: ipamapi.ErrPoolOverlap is Forbidden
        assert "Pool overlaps with other one on this address space" in overlap.value.response.json()["message"]
        with pytest.raises(dockerpy.errors.APIError) as duplicate:
            client.create_network("dy-ms-sub")
        assert duplicate.value.response.status_code == 409
        assert duplicate.value.response.json()["message"] == "network with name dy-ms-sub already exists"
    finally:
        client.close()
    dup = docker.run("network", "create", "dy-ms-sub", check=False)
    assert dup.returncode != 0
    assert dup.stderr.decode().strip() == "Error response from daemon: network with name dy-ms-sub already exists"
    names = docker.out("network", "ls", "--format", "{{.Name}}").split()
    assert names.count("dy-ms-sub") == 1 and "dy-ms-overlap" not in names


def bridge_ports(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def assert_not_half_started(docker, dockyard, name: str, bridge: str, ports_on_bridge: int) -> None:
    """The failed container exists, created and not running, and holds no network resources."""
    body = json.loads(docker.out("inspect", name))[0]
    state = body["State"]
    assert state["Running"] is False and state["Pid"] == 0 and state["Status"] == "created", state
    assert body["NetworkSettings"]["Ports"] in ({}, None) or all(
        not bindings for bindings in body["NetworkSettings"]["Ports"].values()), body["NetworkSettings"]
    assert docker.run("top", name, check=False).returncode != 0
    cid = body["Id"]
    assert not (Path(dockyard.root) / "exec" / "netns" / cid).exists()
    assert cid not in Path("/proc/self/mountinfo").read_text()
    assert len(bridge_ports(bridge)) == ports_on_bridge
    assert cid not in subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                                     check=True).stdout


def test_busy_host_port_fails_the_start_and_leaves_no_half_started_container(docker, dockyard, image, made):
    netid = network(docker, made, "dy-ms-ports")
    bridge = "dy-" + netid[:12]
    port = free_port()
    first = run(docker, made, "--network", "dy-ms-ports", "-p", f"127.0.0.1:{port}:80", image,
                "sh", "-c", ISSUE_COMMAND)
    assert len(bridge_ports(bridge)) == 1
    # Published by another container of this daemon: dockerd's allocator message.
    made["containers"].append("dy-ms-busy")
    taken = docker.run("run", "-d", "--name", "dy-ms-busy", "--network", "dy-ms-ports",
                       "-p", f"127.0.0.1:{port}:80", image, "sleep", "300", check=False)
    assert taken.returncode != 0
    assert (f"Bind for 127.0.0.1:{port} failed: port is already allocated"
            in taken.stderr.decode()), taken.stderr
    assert_not_half_started(docker, dockyard, "dy-ms-busy", bridge, ports_on_bridge=1)
    # Held by another program on the host: dockerd's userland-proxy message.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        held = holder.getsockname()[1]
        made["containers"].append("dy-ms-held")
        refused = docker.run("run", "-d", "--name", "dy-ms-held", "--network", "dy-ms-ports",
                             "-p", f"127.0.0.1:{held}:80", image, "sleep", "300", check=False)
        assert refused.returncode != 0
        assert (f"Error starting userland proxy: listen tcp4 127.0.0.1:{held}: bind: address already in use"
                in refused.stderr.decode()), refused.stderr
        assert_not_half_started(docker, dockyard, "dy-ms-held", bridge, ports_on_bridge=1)
    # Nothing of the failed start lingers: once the port is free the same container starts.
    docker.run("rm", "-f", first)
    docker.run("start", "dy-ms-busy")
    wait_until(lambda: json.loads(docker.out("inspect", "dy-ms-busy"))[0]["State"]["Running"] is True)
    assert docker.out("port", "dy-ms-busy", "80").strip() == f"127.0.0.1:{port}"
