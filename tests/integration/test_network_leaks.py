"""Teardown leaves nothing (issue 8): after 100 create/start/remove cycles of a container on a
user network with a published port, interfaces, iptables rules, network namespaces, mounts and
the daemon's own sockets are back where they started.

The cycles go through docker-py against the daemon socket (100 CLI round trips would triple
the time). Other engineers' test daemons may create and remove interfaces and rules on this
machine at the same time, so the host-wide snapshots are compared as sets and only what
differs *and belongs to this test* (its bridge, its subnet, its containers' ids, its
daemon's root and process) fails it; the raw counts are in the failure message.
"""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker as dockerpy
import pytest

from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.probes import wait_until

IMG = "dockyard-test/netleaks:latest"
NETWORK = "dy-t-leaks"
CYCLES = 100


@pytest.fixture(scope="module")
def image(docker, tmp_path_factory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("netleaks-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    yield IMG


def lines_of(*argv: str) -> list[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()


def _listening_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            # TCP LISTEN is state 0A; an unconnected UDP socket (a relay) is 07.
            if fields[3] in ("0A", "07"):
                inodes.add(fields[9])
    return inodes


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    links: list[str]            # `ip -o link`, one line per interface
    rules: list[str]            # `iptables-save` of nat and filter
    mounts: list[str]           # /proc/self/mountinfo lines under the daemon's root
    netns_files: list[str]      # files in the daemon's netns directory
    fds: int                    # the daemon process's open descriptors
    listeners: int              # of which host-namespace listening sockets (proxies)

    @property
    def nsfs(self) -> list[str]:
        return [m for m in self.mounts if " - nsfs " in m]

    def counts(self) -> dict[str, int]:
        return {"links": len(self.links), "iptables": len(self.rules), "mounts": len(self.mounts),
                "nsfs": len(self.nsfs), "netns files": len(self.netns_files), "fds": self.fds,
                "listeners": self.listeners}


def snapshot(root: Path, pid: int) -> Snapshot:
    prefix = str(root)
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
              if line.split()[4].startswith(prefix)]
    netns_dir = root / "exec" / "netns"
    fds = list(Path(f"/proc/{pid}/fd").iterdir())
    sockets = set()
    for fd in fds:
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:["):-1])
    rules = [line for line in (lines_of("iptables-save", "-t", "nat") + lines_of("iptables-save", "-t", "filter"))
             # Packet counters and the timestamp comments change on their own.
             if not line.startswith("#")]
    rules = [re.sub(r"\[\d+:\d+\]", "[]", line) for line in rules]
    return Snapshot(links=[re.sub(r"^\d+: ", "", line) for line in lines_of("ip", "-o", "link")],
                    rules=rules, mounts=mounts,
                    netns_files=sorted(p.name for p in netns_dir.iterdir()) if netns_dir.exists() else [],
                    fds=len(fds), listeners=len(sockets & _listening_inodes()))


def test_hundred_cycles_leave_nothing_behind(dockyard, docker, image):
    pid = dockyard.process.pid
    # Before any client of ours connects: its keep-alive connections are closed before "after".
    before = snapshot(dockyard.root, pid)
    client = dockerpy.DockerClient(base_url=dockyard.host, timeout=60)
    network = client.networks.create(NETWORK)
    ids: list[str] = []
    try:
        bridge = "dy-" + network.id[:12]
        subnet = network.attrs["IPAM"]["Config"][0]["Subnet"]
        for cycle in range(CYCLES):
            container = client.containers.run(IMG, ["sleep", "300"], detach=True, network=NETWORK,
                                              ports={"80/tcp": ("127.0.0.1", None)})
            ids.append(container.id)
            if cycle % 25 == 0:
                # The port really is published: the proxy accepts on the reported host port.
                container.reload()
                binding = container.attrs["NetworkSettings"]["Ports"]["80/tcp"][0]
                assert binding["HostIp"] == "127.0.0.1"
                with socket.create_connection(("127.0.0.1", int(binding["HostPort"])), timeout=10):
                    pass
            container.remove(force=True)
        assert client.containers.list(all=True, filters={"network": NETWORK}) == []
        client.close()
        ours = re.compile("|".join([re.escape(bridge), re.escape(subnet.rsplit(".", 1)[0] + "."),
                                    *(re.escape(cid) for cid in ids)]))

        def leaked() -> dict[str, list[str]]:
            after = snapshot(dockyard.root, pid)
            new_rules = [r for r in set(after.rules) - set(before.rules) if ours.search(r)]
            # A rule of ours jumps to a chain of its own (ipMasq's CNI-…): count those chains too.
            chains = {m.group(1) for r in new_rules for m in [re.search(r"-j (CNI-\S+)", r)] if m}
            new_rules += [r for r in set(after.rules) - set(before.rules)
                          if any(r.startswith((f":{c} ", f"-A {c} ")) for c in chains)]
            return {
                "links": [ln for ln in set(after.links) - set(before.links) if f"master {bridge} " in ln],
                "iptables": sorted(set(new_rules)),
                "mounts": sorted(set(after.mounts) - set(before.mounts)),
                "netns files": sorted(set(after.netns_files) - set(before.netns_files)),
                "fds": [f"{after.fds - before.fds} more"] if after.fds > before.fds else [],
                "listeners": [f"{after.listeners - before.listeners} more"]
                if after.listeners > before.listeners else [],
            }

        # Teardown is complete when `rm -f` answers; the wait only absorbs the client's
        # connections, which the daemon closes when it reads their EOF.
        try:
            wait_until(lambda: not any(leaked().values()), timeout=15)
        except AssertionError:
            after = snapshot(dockyard.root, pid)
            raise AssertionError(f"left behind: {leaked()}\ncounts before {before.counts()}\n"
                                 f"counts after  {after.counts()}") from None
    finally:
        for cid in ids:
            try:
                client.containers.get(cid).remove(force=True)
            except dockerpy.errors.NotFound:
                pass
        network.remove()
        client.close()
    # The network's bridge goes with it.
    wait_until(lambda: not any(line.startswith(f"{bridge}:") for line in snapshot(dockyard.root, pid).links))
