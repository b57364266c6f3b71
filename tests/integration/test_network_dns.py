"""The embedded DNS server in a real network namespace: UDP and TCP, forwarding to a local
upstream, and answers that survive a daemon restart (issue 8).

The upstream here is a test-owned server on 127.0.0.2:53 named by a private resolv.conf, so
no query ever leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DockerCLI

from dockyard.network import dns_wire, netns
from dockyard.network.dns import EmbeddedDns
from dockyard.testing.daemons import discard, start_dockyard, stop
from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/netdns:latest"

TCP_CLIENT = """
import socket, struct, sys
query = bytes.fromhex(sys.argv[1])
s = socket.create_connection(("127.0.0.11", 53), timeout=10)
s.sendall(struct.pack("!H", len(query)) + query)
head = s.recv(2, socket.MSG_WAITALL)
sys.stdout.write(s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL).hex())
"""

UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(bytes.fromhex(sys.argv[1]), ("127.0.0.11", 53))
sys.stdout.write(s.recv(4096).hex())
"""


def query(name: str, qtype: int = dns_wire.TYPE_A, ident: int = 0x1234) -> bytes:
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + dns_wire.encode_name(name) + struct.pack("!HH", qtype, 1)


async def ask_in(path: Path, client: str, data: bytes) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net={path}", sys.executable, "-c", client, data.hex(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    return bytes.fromhex(out.decode())


class Upstream(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        q = dns_wire.parse_query(data)
        self.seen.append(q.name)
        assert self.transport is not None
        self.transport.sendto(dns_wire.answer_a(q, ["192.0.2.7"], ttl=5), addr)


def test_udp_tcp_and_forwarding_in_a_namespace(tmp_path):
    async def main() -> None:
        path = tmp_path / "ns"
        await netns.create(path)
        upstream = Upstream()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: upstream, local_addr=("127.0.0.2", 53))
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("search example.test\nnameserver 127.0.0.2\n")
        dns = EmbeddedDns(lambda cid, name: ["10.214.9.9"] if (cid, name) == ("c1", "web") else None,
                          resolv_conf=resolv)
        try:
            subprocess.run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], check=True)
            await dns.serve("c1", path)
            await dns.serve("c1", path)  # idempotent
            q = query("WEB")
            expected = dns_wire.answer_a(dns_wire.parse_query(q), ["10.214.9.9"])
            assert await ask_in(path, UDP_CLIENT, q) == expected
            assert await ask_in(path, TCP_CLIENT, q) == expected
            aaaa = query("web", dns_wire.TYPE_AAAA)
            assert await ask_in(path, UDP_CLIENT, aaaa) == dns_wire.answer_empty(dns_wire.parse_query(aaaa))
            bare = query("nosuch")
            assert await ask_in(path, UDP_CLIENT, bare) == dns_wire.answer_nxdomain(dns_wire.parse_query(bare))
            dotted = query("svc.example.test", ident=0x4321)
            assert await ask_in(path, UDP_CLIENT, dotted) == dns_wire.answer_a(
                dns_wire.parse_query(dotted), ["192.0.2.7"], ttl=5)
            assert upstream.seen == ["svc.example.test"]  # bare names never went upstream
            await dns.stop("c1")
            assert not dns.serving("c1")
        finally:
            await dns.close()
            transport.close()
            await netns.delete(path)

    asyncio.run(main())


@pytest.fixture
def own_daemon() -> Iterator[tuple[DockerCLI, Path]]:
    root = Path(tempfile.mkdtemp(prefix="dockyard-dns-"))
    cli = DockerCLI(start_dockyard(root))
    try:
        yield cli, root
    finally:
        current = cli.daemon  # the test replaces it when it restarts the daemon
        subprocess.run(["docker", "rm", "-f", "dy-r-a", "dy-r-b"], env=current.env(), capture_output=True)
        subprocess.run(["docker", "network", "rm", "dy-r-net"], env=current.env(), capture_output=True)
        discard(current, root)


def test_networks_and_names_survive_a_restart(own_daemon, tmp_path):
    docker, root = own_daemon
    archive = tmp_path / "img.tar"
    build_docker_archive(archive, tags=[IMG])
    docker.run("load", "-i", str(archive))
    docker.run("network", "create", "--label", "keep=1", "dy-r-net")
    before = json.loads(docker.out("network", "inspect", "dy-r-net"))[0]
    a = docker.out("run", "-d", "--network", "dy-r-net", "--name", "dy-r-a", IMG, "sleep", "300").strip()
    b = docker.out("run", "-d", "--network", "dy-r-net", "--name", "dy-r-b", IMG, "sleep", "300").strip()
    stop(docker.daemon)
    docker.daemon = start_dockyard(root)
    after = json.loads(docker.out("network", "inspect", "dy-r-net"))[0]
    assert (after["Id"], after["IPAM"], after["Labels"]) == (before["Id"], before["IPAM"], before["Labels"])
    address = docker.out("exec", a, "sh", "-c", "ip -4 -o addr show eth0").split()[3].split("/")[0]
    deadline = time.monotonic() + 20
    while True:
        found = docker.run("exec", b, "timeout", "10", "nslookup", "dy-r-a", check=False)
        if f"Address: {address}" in found.stdout.decode():
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.2)
