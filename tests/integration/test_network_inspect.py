"""docker inspect's NetworkSettings and the built-in networks (`docker network ls/inspect`), issue 8."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator

import pytest

from dockyard.network.service import DEFAULT_SUBNET


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    leftover = docker.out("ps", "-aq", "--no-trunc").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


def test_inspect_shows_the_bridge_endpoint(docker, image):
    cid = docker.out("run", "-d", image, "sleep", "300").strip()
    try:
        settings = json.loads(docker.out("inspect", cid))[0]["NetworkSettings"]
        bridge = settings["Networks"]["bridge"]
        inside = docker.out("exec", cid, "ip", "-4", "-o", "addr", "show", "eth0").split()[3]
        mac = docker.out("exec", cid, "cat", "/sys/class/net/eth0/address").strip()
        assert f"{bridge['IPAddress']}/{bridge['IPPrefixLen']}" == inside
        assert ipaddress.ip_address(bridge["IPAddress"]) in ipaddress.ip_network(DEFAULT_SUBNET)
        assert bridge["MacAddress"] == mac
        assert bridge["Gateway"] == str(next(ipaddress.ip_network(DEFAULT_SUBNET).hosts()))
        network = json.loads(docker.out("network", "inspect", "bridge"))[0]
        assert bridge["NetworkID"] == network["Id"]
        assert len(bridge["EndpointID"]) == 64
        for key in ("IPAddress", "Gateway", "MacAddress", "IPPrefixLen", "EndpointID"):
            assert settings[key] == bridge[key]
        assert docker.out("inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid).strip() == bridge["IPAddress"]
        member = network["Containers"][cid]
        assert member["IPv4Address"] == inside and member["MacAddress"] == mac
        name = docker.out("inspect", "-f", "{{.Name}}", cid).strip().lstrip("/")
        assert member["Name"] == name
        row = json.loads(docker.out("ps", "--no-trunc", "--filter", f"id={cid}", "--format", "{{json .}}"))
        assert row["Networks"] == "bridge"
    finally:
        docker.run("rm", "-f", cid)
    network = json.loads(docker.out("network", "inspect", "bridge"))[0]
    assert cid not in network["Containers"]


def test_stopped_container_has_no_address(docker, image):
    cid = docker.out("run", image, "true").strip() or docker.out("ps", "-lq", "--no-trunc").strip()
    try:
        settings = json.loads(docker.out("inspect", cid))[0]["NetworkSettings"]
        assert settings["Networks"]["bridge"]["IPAddress"] == ""
    finally:
        docker.run("rm", "-f", cid)


def test_network_ls_lists_the_builtin_networks(docker):
    rows = [json.loads(line) for line in docker.out("network", "ls", "--format", "{{json .}}").splitlines()]
    assert {(r["Name"], r["Driver"], r["Scope"]) for r in rows} >= {
        ("bridge", "bridge", "local"), ("host", "host", "local"), ("none", "null", "local")}
    only = docker.out("network", "ls", "-q", "--no-trunc", "--filter", "name=host").split()
    host = json.loads(docker.out("network", "inspect", "host"))[0]
    assert only == [host["Id"]]
    assert json.loads(docker.out("network", "inspect", host["Id"][:12]))[0]["Name"] == "host"


def test_network_inspect_shapes(docker, dockerd, ref_docker):
    ours = json.loads(docker.out("network", "inspect", "bridge", "host", "none"))
    bridge = ours[0]
    assert bridge["IPAM"]["Config"] == [{"Subnet": DEFAULT_SUBNET,
                                         "Gateway": str(next(ipaddress.ip_network(DEFAULT_SUBNET).hosts()))}]
    assert bridge["Options"]["com.docker.network.bridge.name"] == "dockyard0"
    theirs = json.loads(ref_docker.out("network", "inspect", "host", "none"))
    for mine, ref in zip(ours[1:], theirs, strict=True):
        assert set(ref) <= set(mine)
        for key in ("Name", "Scope", "Driver", "EnableIPv6", "Internal", "Attachable", "Ingress",
                    "ConfigFrom", "ConfigOnly", "Options", "Labels", "Containers"):
            assert mine[key] == ref[key], key


def test_unknown_network_is_404(docker):
    result = docker.run("network", "inspect", "nosuchnet", check=False)
    assert result.returncode != 0
    assert "network nosuchnet not found" in result.stderr.decode()
