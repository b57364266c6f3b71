"""The default bridge network on the CNI plugins, through the real `docker` CLI (issue 8)."""

from __future__ import annotations

import ipaddress
import subprocess
import time
from collections.abc import Iterator

import pytest

from dockyard.network.service import BRIDGE_NAME, DEFAULT_SUBNET, SHARED_IPAM_DIR
from dockyard.testing.probes import wait_until

POOL = ipaddress.ip_network(DEFAULT_SUBNET)


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    leftover = docker.out("ps", "-aq", "--no-trunc").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


def container_ip(docker, cid: str) -> str:
    return docker.out("exec", cid, "sh", "-c", "ip -4 -o addr show eth0").split()[3].split("/")[0]


def bridge_ports() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", BRIDGE_NAME], capture_output=True,
                         text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.strip()}


def test_container_gets_an_address_in_the_pool_and_hosts_line(docker, image):
    cid = docker.out("run", "-d", "--hostname", "web", image, "sleep", "300").strip()
    try:
        address = container_ip(docker, cid)
        assert ipaddress.ip_address(address) in POOL
        hosts = docker.out("exec", cid, "cat", "/etc/hosts")
        assert hosts.endswith(f"{address}\tweb\n")
        routes = docker.out("exec", cid, "ip", "route")
        assert f"default via {next(POOL.hosts())}" in routes
        links = docker.out("exec", cid, "ip", "-o", "link")
        assert "lo:" in links and "UP" in links.split("lo:")[1].splitlines()[0]
    finally:
        docker.run("rm", "-f", cid)


def test_one_container_reaches_another_by_ip(docker, image):
    server = docker.out("run", "-d", image, "sh", "-c",
                        "mkdir -p /www && echo hello > /www/index.html && httpd -f -p 8080 -h /www").strip()
    try:
        address = container_ip(docker, server)
        body = ""
        for _ in range(50):  # until httpd listens
            result = docker.run("run", "--rm", image, "timeout", "5", "wget", "-qO-",
                                f"http://{address}:8080/", check=False)
            body = result.stdout.decode()
            if result.returncode == 0:
                break
            time.sleep(0.2)
        assert body == "hello\n"
    finally:
        docker.run("rm", "-f", server)


def test_rm_leaves_no_namespace_veth_or_address(docker, image, dockyard):
    cid = docker.out("run", "-d", image, "sleep", "300").strip()
    netns = dockyard.root / "exec" / "netns" / cid
    assert netns.exists()
    # The host end of the veth, by its index (other daemons may share dockyard0).
    peer = docker.out("exec", cid, "cat", "/sys/class/net/eth0/iflink").strip()
    host_end = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    veth = next(line.split(":")[1].strip().split("@")[0] for line in host_end.splitlines()
                if line.split(":")[0] == peer)
    assert veth in bridge_ports()
    address = container_ip(docker, cid)
    ipam = SHARED_IPAM_DIR / "bridge" / address
    assert ipam.exists(), "host-local records the address"
    docker.run("rm", "-f", cid)
    assert not netns.exists()
    assert veth not in bridge_ports()
    assert subprocess.run(["ip", "link", "show", veth], capture_output=True).returncode != 0
    assert not ipam.exists()
    assert not (dockyard.root / "exec" / "network" / f"{cid}.json").exists()
    assert cid not in open("/proc/self/mountinfo").read()


def test_stopped_container_gives_its_network_back_and_gets_it_again(docker, image, dockyard):
    cid = docker.out("run", "-d", image, "sleep", "300").strip()
    try:
        netns = dockyard.root / "exec" / "netns" / cid
        docker.run("kill", cid)
        wait_until(lambda: not netns.exists())
        docker.run("start", cid)
        assert ipaddress.ip_address(container_ip(docker, cid)) in POOL
        assert netns.exists()
    finally:
        docker.run("rm", "-f", cid)


def test_network_none_has_only_loopback(docker, image):
    out = docker.out("run", "--rm", "--network", "none", image, "ip", "-o", "link")
    names = [line.split(":")[1].strip() for line in out.splitlines()]
    assert names == ["lo"]


def test_network_host_sees_the_host_interfaces(docker, image):
    out = docker.out("run", "--rm", "--network", "host", image, "ip", "-o", "link")
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    host = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    host_names = {line.split(":")[1].strip().split("@")[0] for line in host.splitlines()}
    assert "eth0" in host_names and names >= {"lo", "eth0"}
