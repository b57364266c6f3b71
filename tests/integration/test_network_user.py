"""User-defined networks, their embedded DNS and container:NAME, through the real `docker` CLI (issue 8)."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterator

import pytest

from dockyard.network.user import AUTO_POOL
from dockyard.testing.probes import wait_until


@pytest.fixture(scope="module")
def image(busybox_image: str) -> str:
    return busybox_image


def ip_of(docker, cid: str) -> str:
    return docker.out("exec", cid, "sh", "-c", "ip -4 -o addr show eth0").split()[3].split("/")[0]


def lookup(docker, cid: str, name: str) -> subprocess.CompletedProcess:
    return docker.run("exec", cid, "timeout", "10", "nslookup", name, check=False)


def links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


@pytest.fixture
def net(docker) -> Iterator[Callable[..., str]]:
    made: list[str] = []
    containers: list[str] = []

    def make(name: str, *args: str) -> str:
        made.append(name)
        return docker.out("network", "create", *args, name).strip()

    make.containers = containers  # type: ignore[attr-defined]
    yield make
    containers.extend(docker.out("ps", "-aq", "--no-trunc", "--filter", "name=dy-t-").split())
    if containers:
        docker.run("rm", "-f", *containers, check=False)
    for name in made:
        docker.run("network", "rm", name, check=False)


def run(docker, net, *args: str) -> str:
    cid = docker.out("run", "-d", *args).strip()
    net.containers.append(cid)
    return cid


def test_dns_names_aliases_short_ids_and_isolation(docker, image, net):
    netid = net("dy-t-front")
    other = net("dy-t-back")
    bridge = "dy-" + netid[:12]
    web = run(docker, net, "--network", "dy-t-front", "--name", "dy-t-web", "--network-alias", "www",
              image, "sh", "-c", "mkdir -p /www && echo ok > /www/index.html && httpd -f -p 8080 -h /www")
    client = run(docker, net, "--network", "dy-t-front", "--name", "dy-t-client", image, "sleep", "300")
    web_ip = ip_of(docker, web)
    assert ipaddress.ip_address(web_ip) in ipaddress.ip_network(AUTO_POOL)
    assert bridge in links()
    resolv = docker.out("exec", client, "cat", "/etc/resolv.conf")
    assert "nameserver 127.0.0.11\n" in resolv and "options ndots:0\n" in resolv
    for name in ("dy-t-web", "www", web[:12]):
        found = lookup(docker, client, name)
        assert found.returncode == 0, found
        assert f"Address: {web_ip}" in found.stdout.decode()
    wait_until(lambda: docker.run("exec", client, "timeout", "5", "wget", "-q", "-O", "-",
                                  "http://dy-t-web:8080/", check=False).stdout == b"ok\n")
    assert docker.run("exec", client, "ping", "-c1", "-W", "5", "www", check=False).returncode == 0
    # Another network does not see the name.
    stranger = run(docker, net, "--network", "dy-t-back", image, "sleep", "300")
    missing = lookup(docker, stranger, "dy-t-web")
    assert missing.returncode != 0
    assert "NXDOMAIN" in (missing.stdout + missing.stderr).decode()
    # A container that joins later resolves and is resolved.
    late = run(docker, net, "--network", "dy-t-front", "--name", "dy-t-late", image, "sleep", "300")
    assert f"Address: {ip_of(docker, late)}" in lookup(docker, client, "dy-t-late").stdout.decode()
    assert f"Address: {web_ip}" in lookup(docker, late, "www").stdout.decode()
    # Inspect lists the containers with their addresses.
    body = json.loads(docker.out("network", "inspect", "dy-t-front"))[0]
    assert body["Id"] == netid and body["Driver"] == "bridge"
    assert body["Containers"][web]["IPv4Address"].startswith(web_ip + "/")
    assert set(body["Containers"]) == {web, client, late}
    assert other
    # In use → 409.
    busy = docker.run("network", "rm", "dy-t-front", check=False)
    assert busy.returncode != 0 and b"has active endpoints" in busy.stderr


def test_create_options_fixed_ip_ls_filters_and_teardown(docker, image, net):
    before_links = links()
    net("dy-t-fixed", "--subnet", "10.214.250.0/24", "--gateway", "10.214.250.1",
        "--ip-range", "10.214.250.128/25", "--label", "tier=db", "-o", "x.y=z", "--internal")
    dup = docker.run("network", "create", "dy-t-fixed", check=False)
    assert dup.returncode != 0 and b"network with name dy-t-fixed already exists" in dup.stderr
    overlap = docker.run("network", "create", "--subnet", "10.214.250.0/25", "dy-t-overlap", check=False)
    assert overlap.returncode != 0 and b"overlaps" in overlap.stderr
    body = json.loads(docker.out("network", "inspect", "dy-t-fixed"))[0]
    assert body["IPAM"]["Config"] == [{"Subnet": "10.214.250.0/24", "Gateway": "10.214.250.1",
                                       "IPRange": "10.214.250.128/25"}]
    assert body["Internal"] is True and body["Labels"] == {"tier": "db"} and body["Options"] == {"x.y": "z"}
    assert docker.out("network", "ls", "-q", "--filter", "label=tier=db", "--no-trunc").split() == [body["Id"]]
    assert "dy-t-fixed" in docker.out("network", "ls", "--filter", "type=custom", "--format", "{{.Name}}")
    assert "dy-t-fixed" not in docker.out("network", "ls", "--filter", "type=builtin", "--format", "{{.Name}}")
    assert "dy-t-fixed" in docker.out("network", "ls", "--filter", "dangling=true", "--format", "{{.Name}}")
    fixed = run(docker, net, "--network", "dy-t-fixed", "--ip", "10.214.250.77", "--name", "dy-t-db",
                image, "sleep", "300")
    assert ip_of(docker, fixed) == "10.214.250.77"
    ranged = run(docker, net, "--network", "dy-t-fixed", image, "sleep", "300")
    assert ipaddress.ip_address(ip_of(docker, ranged)) in ipaddress.ip_network("10.214.250.128/25")
    assert "default" not in docker.out("exec", ranged, "ip", "route")  # --internal
    # container:NAME shares the namespace.
    joined = run(docker, net, "--network", "container:dy-t-db", image, "sleep", "300")
    assert ip_of(docker, joined) == "10.214.250.77"
    docker.run("rm", "-f", *net.containers)
    net.containers.clear()
    docker.run("network", "rm", "dy-t-fixed")
    # No bridge or veth of ours is left (others' may have ended meanwhile).
    wait_until(lambda: links() <= before_links)
    assert "dy-t-fixed" not in docker.out("network", "ls", "--format", "{{.Name}}")


def test_prune_removes_unused_networks(docker, net):
    net("dy-t-prune1", "--label", "p=1")
    net("dy-t-prune2")
    out = docker.out("network", "prune", "-f", "--filter", "label=p=1")
    assert "dy-t-prune1" in out and "dy-t-prune2" not in out
    names = docker.out("network", "ls", "--format", "{{.Name}}").split()
    assert "dy-t-prune1" not in names and "dy-t-prune2" in names


def eth_ip(docker, cid: str, ifname: str) -> str:
    return docker.out("exec", cid, "sh", "-c", f"ip -4 -o addr show {ifname}").split()[3].split("/")[0]


def test_connect_and_disconnect(docker, image, net):
    net("dy-t-conn")
    net("dy-t-home")
    srv = run(docker, net, "--network", "dy-t-conn", "--name", "dy-t-srv", image, "sleep", "300")
    joiner = run(docker, net, "--network", "dy-t-home", "--name", "dy-t-joiner", image, "sleep", "300")
    assert "NXDOMAIN" in lookup(docker, joiner, "dy-t-srv").stdout.decode()
    docker.run("network", "connect", "--alias", "jj", "dy-t-conn", "dy-t-joiner")
    joined_ip = eth_ip(docker, joiner, "eth1")
    assert f"Address: {ip_of(docker, srv)}" in lookup(docker, joiner, "dy-t-srv").stdout.decode()
    assert f"Address: {joined_ip}" in lookup(docker, srv, "jj").stdout.decode()
    members = json.loads(docker.out("network", "inspect", "dy-t-conn"))[0]["Containers"]
    assert members[joiner]["IPv4Address"].startswith(joined_ip + "/")
    again = docker.run("network", "connect", "dy-t-conn", "dy-t-joiner", check=False)
    assert again.returncode != 0 and b"already exists" in again.stderr
    docker.run("network", "disconnect", "dy-t-conn", "dy-t-joiner")
    assert "eth1" not in docker.out("exec", joiner, "ip", "-o", "link")
    assert "NXDOMAIN" in lookup(docker, joiner, "dy-t-srv").stdout.decode()
    # A created container connected with --ip gets it at start.
    later = docker.out("create", "--network", "dy-t-home", "--name", "dy-t-later", image, "sleep", "300").strip()
    net.containers.append(later)
    subnet = json.loads(docker.out("network", "inspect", "dy-t-conn"))[0]["IPAM"]["Config"][0]["Subnet"]
    fixed = str(ipaddress.ip_network(subnet)[200])
    docker.run("network", "connect", "--ip", fixed, "dy-t-conn", "dy-t-later")
    docker.run("start", later)
    assert eth_ip(docker, later, "eth1") == fixed
    assert f"Address: {ip_of(docker, srv)}" in lookup(docker, later, "dy-t-srv").stdout.decode()
