"""Daemon memory (RSS), idle and with many running containers, against both daemons.

Like for like: each daemon is measured with its own containerd (dockerd
starts one as its child, dockyard supervises one as its child), i.e. the
daemon's process and its descendants. The shims (one per container for both,
re-parented away from containerd when they start) are found by their
``-address`` naming the daemon's root, and reported in a separate figure: a
shim's RSS is the same Go binary either way, so the figure without shims is the
one that compares the daemons themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bench.containers import IMAGE
from bench.harness import Pair, Result, docker
from dockyard.testing.daemons import RunningDaemon

SHIM = "containerd-shim"


def _children() -> dict[int, list[int]]:
    """Each live process's children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def _argv(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _is_shim(pid: int) -> bool:
    argv = _argv(pid)
    return bool(argv) and SHIM.encode() in os.path.basename(argv[0])


def _tree(root_pid: int) -> list[int]:
    """``root_pid`` and its descendants, shims (and what runs under them) left out."""
    children = _children()
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if _is_shim(pid):
            continue
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _shims(daemon: RunningDaemon) -> list[int]:
    """The shims serving the daemon's containerd: their argv names a path under its root."""
    prefix = os.fsencode(daemon.root)
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and _is_shim(int(e)) and any(a.startswith(prefix) for a in _argv(int(e)))]


def _rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue  # gone meanwhile
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def _mb(pids: Iterable[int]) -> float:
    return _rss_bytes(pids) / 1e6


def bench_memory(pair: Pair, *, count: int) -> list[Result]:
    """RSS of each daemon with its containerd, idle and with ``count`` `sleep` containers
    running (``--network none`` on both: dockerd runs with --bridge none here); with the
    shims as a separate figure. The containers are removed at the end."""
    idle: dict[str, float] = {}
    busy: dict[str, float] = {}
    busy_shims: dict[str, float] = {}
    started: dict[str, list[str]] = {}
    try:
        for name, daemon in pair.both():
            idle[name] = _mb(_tree(daemon.process.pid))
            ids = started.setdefault(name, [])
            for _ in range(count):
                ids.append(docker(daemon, "run", "-d", "--network", "none", IMAGE, "sleep", "3600")
                           .decode().strip())
            tree, shims = _tree(daemon.process.pid), _shims(daemon)
            if len(shims) < count:
                raise RuntimeError(f"{name}: {len(shims)} shims found for {count} running containers")
            busy[name] = _mb(tree)
            busy_shims[name] = _mb(tree + shims)
    finally:
        for name, daemon in pair.both():
            if started.get(name):
                docker(daemon, "rm", "-f", *started[name])
    return [
        Result(name="daemon RSS idle (+ its containerd)", unit="MB",
               dockyard=idle["dockyard"], dockerd=idle["dockerd"]),
        Result(name=f"daemon RSS, {count} running (+ containerd)", unit="MB",
               dockyard=busy["dockyard"], dockerd=busy["dockerd"]),
        Result(name=f"daemon RSS, {count} running (+ ctrd, shims)", unit="MB",
               dockyard=busy_shims["dockyard"], dockerd=busy_shims["dockerd"]),
    ]
