"""Bridge networking: `docker run` latency on the default network, and TCP throughput
host → container through a published port, against a dockerd that networks too.

The shared pair's dockerd runs with ``--bridge none``, so this benchmark starts a
second dockerd of its own with a bridge (``dyref0``), iptables and the userland
proxy, dockerd's defaults, and discards it (bridge and chains included) at the end.
Traffic goes only over 127.0.0.1 to the benchmark's own containers.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.containers import IMAGE
from bench.harness import Pair, Result, docker
from dockyard.testing.daemons import RunningDaemon, discard, start_dockerd

REF_BRIDGE = "dyref0"
PORT = 5001
_CHUNK = 1 << 20


@contextmanager
def networked_dockerd(pair: Pair) -> Iterator[RunningDaemon]:
    """A dockerd with its own bridge, the benchmark image loaded (from ``containers.load_image``)."""
    root = pair.workdir / "dockerd-net"
    daemon = start_dockerd(root, bridge=REF_BRIDGE)
    try:
        docker(daemon, "load", "-i", str(pair.workdir / "busybox.tar"))
        yield daemon
    finally:
        discard(daemon, root)


def _run_latency(daemon: RunningDaemon, count: int) -> float:
    docker(daemon, "run", "--rm", IMAGE, "true")  # warm caches
    times = []
    for _ in range(count):
        start = time.perf_counter()
        docker(daemon, "run", "--rm", IMAGE, "true")
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def _wait_listening(daemon: RunningDaemon, cid: str, timeout: float = 30) -> None:
    """Until the container's nc listens: before that the proxy accepts and then drops us."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if f":{PORT} " in docker(daemon, "exec", cid, "netstat", "-ltn").decode():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{daemon.name}: nc in {cid[:12]} is not listening after {timeout}s")


def _send(port: int, size: int) -> float:
    """Seconds to push ``size`` bytes and read back the container's count of them."""
    block = b"\0" * _CHUNK
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        left = size
        while left:
            sent = sock.send(block[:min(left, _CHUNK)])
            left -= sent
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(64):
            answer += chunk
    elapsed = time.perf_counter() - start
    if answer.strip() != str(size).encode():
        raise RuntimeError(f"the container counted {answer!r}, not {size} bytes")
    return elapsed


def _throughput(daemon: RunningDaemon, size: int, repeats: int) -> float:
    """Best MB/s of ``repeats`` transfers, each to a fresh `nc -l … -e wc -c` container."""
    best = float("inf")
    for _ in range(repeats):
        cid = docker(daemon, "run", "-d", "-p", f"127.0.0.1::{PORT}", IMAGE,
                     "nc", "-l", "-p", str(PORT), "-e", "wc", "-c").decode().strip()
        try:
            ports = json.loads(docker(daemon, "inspect", cid))[0]["NetworkSettings"]["Ports"]
            host_port = int(ports[f"{PORT}/tcp"][0]["HostPort"])
            _wait_listening(daemon, cid)
            best = min(best, _send(host_port, size))
        finally:
            docker(daemon, "rm", "-f", cid)
    return size / best / 1e6


def bench_network(pair: Pair, *, count: int, size: int, repeats: int) -> list[Result]:
    with networked_dockerd(pair) as reference:
        both = (("dockyard", pair.dockyard), ("dockerd", reference))
        latency = {name: _run_latency(daemon, count) for name, daemon in both}
        rate = {name: _throughput(daemon, size, repeats) for name, daemon in both}
    return [
        Result(name=f"docker run --rm true, bridge (median of {count})", unit="s",
               dockyard=latency["dockyard"], dockerd=latency["dockerd"]),
        Result(name=f"TCP host→container via -p ({size >> 20} MiB)", unit="MB/s",
               dockyard=rate["dockyard"], dockerd=rate["dockerd"], lower_is_better=False),
    ]
