"""Facts about the host that ``/version`` and ``/info`` report.

Read once at start-up (``probe_host``): none of them change while the daemon
runs, and ``docker version`` is called often enough that re-reading files and
running ``runc --version`` per request would show in benchmarks.
"""

from __future__ import annotations

import asyncio
import os
import platform
import uuid
from dataclasses import dataclass
from pathlib import Path

_ARCH_TO_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


@dataclass(frozen=True, kw_only=True)
class RuncVersion:
    version: str
    commit: str


@dataclass(frozen=True, kw_only=True)
class HostFacts:
    hostname: str
    kernel_version: str
    operating_system: str
    os_version: str
    architecture: str  # uname machine, as /info reports it
    goarch: str  # Go's name, as /version reports it
    ncpu: int
    mem_total: int
    cgroup_version: str
    runc: RuncVersion


def read_os_release(text: str) -> dict[str, str]:
    """Parse /etc/os-release (shell-style KEY=value lines)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def parse_runc_version(text: str) -> RuncVersion:
    """Parse ``runc --version`` output: ``runc version X`` and ``commit: Y`` lines."""
    version = commit = ""
    for line in text.splitlines():
        if line.startswith("runc version "):
            version = line.removeprefix("runc version ").strip()
        elif line.startswith("commit:"):
            commit = line.removeprefix("commit:").strip()
    return RuncVersion(version=version, commit=commit)


def _mem_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _cgroup_version() -> str:
    return "2" if Path("/sys/fs/cgroup/cgroup.controllers").exists() else "1"


async def probe_host() -> HostFacts:
    uname = platform.uname()
    try:
        os_release = read_os_release(Path("/etc/os-release").read_text())
    except OSError:
        os_release = {}
    try:
        proc = await asyncio.create_subprocess_exec(
            "runc", "--version", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        out, _ = await proc.communicate()
        runc = parse_runc_version(out.decode(errors="replace"))
    except OSError:
        runc = RuncVersion(version="", commit="")
    return HostFacts(
        hostname=uname.node,
        kernel_version=uname.release,
        operating_system=os_release.get("PRETTY_NAME", "Linux"),
        os_version=os_release.get("VERSION_ID", ""),
        architecture=uname.machine,
        goarch=_ARCH_TO_GOARCH.get(uname.machine, uname.machine),
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(),
        cgroup_version=_cgroup_version(),
        runc=runc,
    )


def load_engine_id(data_root: Path) -> str:
    """The daemon's persistent ID, created on first start (dockerd's ``engine-id``)."""
    path = data_root / "engine-id"
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    engine_id = str(uuid.uuid4())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(engine_id + "\n")
    os.replace(tmp, path)
    return engine_id
