"""``GET /containers/{id}/stats``: moby's StatsJSON from the container's cgroup (v1) and netns.

A sample reads, for the cgroup at the spec's ``linux.cgroupsPath`` under each
cgroup v1 hierarchy: cpuacct (usage, per-cpu, user/system), cpu
(throttling), memory (usage, max usage, failcnt, limit, memory.stat), pids
(current, max) and blkio (recursive service bytes/ios); plus the host's CPU
time from /proc/stat and the container's interfaces from
``/proc/<pid>/net/dev`` (its network namespace). ``parse_*`` helpers are pure.

A stream yields one document a second, each with the previous sample as
``precpu_stats``, until the container stops or the client goes away;
``stream=false`` waits for a second sample (as dockerd does) unless
``one-shot``, whose ``precpu_stats`` is empty.

Raises only dockyard.errors: NotFound (``No such container: x``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dockyard.engine.container_model import Container
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.wire import duration

__all__ = ["ContainerStats", "parse_blkio", "parse_flat_keyed", "parse_net_dev", "parse_proc_stat_cpu"]

CGROUP_ROOT = Path("/sys/fs/cgroup")
INTERVAL = 1.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_ZERO_TIME = "0001-01-01T00:00:00Z"
#: memory.limit_in_bytes of an unlimited cgroup v1 is a page-rounded 2**63-1.
_UNLIMITED = 1 << 62


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat) as a dict."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key and value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def parse_proc_stat_cpu(text: str) -> int:
    """Host CPU time in ns from /proc/stat's ``cpu`` line, as moby's getSystemCPUUsage sums it."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = sum(int(f) for f in fields[1:8])
            return ticks * 1_000_000_000 // _CLOCK_TICKS
    return 0


def parse_blkio(text: str) -> list[dict[str, Any]]:
    """``MAJ:MIN Op value`` lines as moby's BlkioStatEntry list (``Total`` lines skipped)."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        entries.append({"major": int(major), "minor": int(minor), "op": fields[1], "value": int(fields[2])})
    return entries


def parse_net_dev(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/dev as moby's NetworkStats per interface, ``lo`` left out."""
    networks: dict[str, dict[str, int]] = {}
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        values = rest.split()
        if not name or name == "lo" or len(values) < 16:
            continue
        v = [int(x) for x in values]
        networks[name] = {
            "rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
            "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11],
        }  # fmt: skip
    return networks


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _read_int(path: Path) -> int:
    text = _read(path).strip()
    return int(text) if text.lstrip("-").isdigit() else 0


def _host_memory() -> int:
    for line in _read(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _empty_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def sample(cgroups_path: str, pid: int) -> dict[str, Any]:
    """One reading (blocking file reads: run it in a thread)."""
    rel = cgroups_path.lstrip("/")
    cpuacct = CGROUP_ROOT / "cpuacct" / rel
    cpu = CGROUP_ROOT / "cpu" / rel
    memory = CGROUP_ROOT / "memory" / rel
    pids = CGROUP_ROOT / "pids" / rel
    blkio = CGROUP_ROOT / "blkio" / rel
    now = time.time_ns()
    percpu = [int(x) for x in _read(cpuacct / "cpuacct.usage_percpu").split()]
    user_system = parse_flat_keyed(_read(cpuacct / "cpuacct.stat"))
    tick_ns = 1_000_000_000 // _CLOCK_TICKS
    throttling = parse_flat_keyed(_read(cpu / "cpu.stat"))
    cpu_stats = {
        "cpu_usage": {
            "total_usage": _read_int(cpuacct / "cpuacct.usage"),
            "percpu_usage": percpu,
            "usage_in_kernelmode": user_system.get("system", 0) * tick_ns,
            "usage_in_usermode": user_system.get("user", 0) * tick_ns,
        },
        "system_cpu_usage": parse_proc_stat_cpu(_read(Path("/proc/stat"))),
        "online_cpus": len(percpu) or os.cpu_count() or 1,
        "throttling_data": {
            "periods": throttling.get("nr_periods", 0),
            "throttled_periods": throttling.get("nr_throttled", 0),
            "throttled_time": throttling.get("throttled_time", 0),
        },
    }
    limit = _read_int(memory / "memory.limit_in_bytes")
    host_memory = _host_memory()
    if limit <= 0 or limit >= _UNLIMITED or (host_memory and limit > host_memory):
        limit = host_memory
    memory_stats = {
        "usage": _read_int(memory / "memory.usage_in_bytes"),
        "max_usage": _read_int(memory / "memory.max_usage_in_bytes"),
        "stats": parse_flat_keyed(_read(memory / "memory.stat")),
        "failcnt": _read_int(memory / "memory.failcnt"),
        "limit": limit,
    }
    pids_stats: dict[str, int] = {"current": _read_int(pids / "pids.current")}
    pids_max = _read(pids / "pids.max").strip()
    if pids_max.isdigit():
        pids_stats["limit"] = int(pids_max)
    service_bytes = parse_blkio(_read(blkio / "blkio.io_service_bytes_recursive"))
    serviced = parse_blkio(_read(blkio / "blkio.io_serviced_recursive"))
    if not service_bytes:
        service_bytes = parse_blkio(_read(blkio / "blkio.throttle.io_service_bytes_recursive"))
        serviced = parse_blkio(_read(blkio / "blkio.throttle.io_serviced_recursive"))
    blkio_stats = {
        "io_service_bytes_recursive": service_bytes or None, "io_serviced_recursive": serviced or None,
        "io_queue_recursive": None, "io_service_time_recursive": None, "io_wait_time_recursive": None,
        "io_merged_recursive": None, "io_time_recursive": None, "sectors_recursive": None,
    }  # fmt: skip
    networks = parse_net_dev(_read(Path(f"/proc/{pid}/net/dev"))) if pid else {}
    return {
        "read": duration.format_time(now), "pids_stats": pids_stats, "blkio_stats": blkio_stats,
        "num_procs": 0, "storage_stats": {}, "cpu_stats": cpu_stats, "memory_stats": memory_stats,
        "networks": networks,
    }  # fmt: skip


class ContainerStats:
    """Stats documents for the containers of ``service``."""

    def __init__(self, service: ContainerService) -> None:
        self._service = service

    async def stats(self, endpoint: Endpoint, ref: str, *, stream: bool = True,
                    one_shot: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Look the container up now (NotFound at once); the documents come from the iterator."""
        container = await self._service.get(endpoint, ref)
        cgroups_path = ""
        if container.running:
            record = await self._service.namespace_of(container.namespace).get_container(container.id)
            cgroups_path = str((record.spec.get("linux") or {}).get("cgroupsPath") or "")
        return self._documents(container, cgroups_path, stream=stream, one_shot=one_shot)

    def _document(self, container: Container, current: dict[str, Any] | None,
                  previous: dict[str, Any] | None) -> dict[str, Any]:
        doc: dict[str, Any] = {"read": _ZERO_TIME, "preread": _ZERO_TIME, "pids_stats": {}, "blkio_stats": {
            "io_service_bytes_recursive": None, "io_serviced_recursive": None, "io_queue_recursive": None,
            "io_service_time_recursive": None, "io_wait_time_recursive": None, "io_merged_recursive": None,
            "io_time_recursive": None, "sectors_recursive": None}, "num_procs": 0, "storage_stats": {},
            "cpu_stats": _empty_cpu(), "precpu_stats": _empty_cpu(), "memory_stats": {}}
        if current is not None:
            doc.update(current)
            if previous is not None:
                doc["preread"] = previous["read"]
                doc["precpu_stats"] = previous["cpu_stats"]
        doc["name"] = container.definition.name
        doc["id"] = container.id
        if current is None:
            doc.pop("networks", None)
        return doc

    async def _documents(self, container: Container, cgroups_path: str, *, stream: bool,
                         one_shot: bool) -> AsyncIterator[dict[str, Any]]:
        if not container.running or not cgroups_path:
            yield self._document(container, None, None)
            return
        previous: dict[str, Any] | None = None
        while True:
            if not container.running:
                return
            current = await asyncio.to_thread(sample, cgroups_path, container.state.pid)
            if not stream and not one_shot and previous is None:
                previous = current
                await asyncio.sleep(INTERVAL)
                continue
            yield self._document(container, current, previous)
            if not stream:
                return
            previous = current
            try:
                await asyncio.wait_for(_stopped(container), INTERVAL)
                return
            except TimeoutError:
                pass


async def _stopped(container: Container) -> None:
    """Until the container's current run ends."""
    await container.exited.wait()
