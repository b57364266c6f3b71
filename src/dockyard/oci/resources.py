"""HostConfig resource fields → OCI ``linux.resources`` (and ``--init``, ``--sysctl``).

Pure, like ``spec.py``: ``linux_resources`` maps Memory, MemorySwap,
MemoryReservation, OomKillDisable, CpuShares, CpuQuota/CpuPeriod, NanoCpus,
CpusetCpus/CpusetMems and PidsLimit the way moby's ``daemon/oci_linux.go``
(``WithResources``, ``getCPUResources``, ``getMemoryResources``) does;
``validate_resources`` gives moby's ``verifyPlatformContainerResources``
messages; ``apply_host_extras`` rewrites a built spec for resources, ``--init``
(tini bind-mounted at ``/sbin/docker-init`` and put in front of the args) and
namespaced ``Sysctls``. Host facts (the init binary, the host's hard rlimits)
arrive as arguments.

Raises ``OCIError`` (InvalidParameter, 400) with moby's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dockyard.oci.errors import OCIError

__all__ = [
    "INIT_PATH",
    "RESOURCE_FIELDS",
    "apply_host_extras",
    "check_ulimits",
    "linux_resources",
    "namespaced_sysctl",
    "validate_resources",
]

#: Where moby mounts its init inside the container.
INIT_PATH = "/sbin/docker-init"
#: Fields ``docker update`` may change (``container.UpdateConfig`` resources).
RESOURCE_FIELDS = (
    "Memory", "MemorySwap", "MemoryReservation", "NanoCpus", "CpuShares", "CpuQuota", "CpuPeriod",
    "CpusetCpus", "CpusetMems", "PidsLimit", "OomKillDisable",
)  # fmt: skip
_MIN_MEMORY = 6 * 1024 * 1024  # moby's linuxMinMemory
_IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                          "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})


def _int(host_config: Mapping[str, Any], name: str) -> int:
    return int(host_config.get(name) or 0)


def validate_resources(host_config: Mapping[str, Any]) -> None:
    """moby's checks on the resource fields; OCIError with its message."""
    memory = _int(host_config, "Memory")
    swap = _int(host_config, "MemorySwap")
    reservation = _int(host_config, "MemoryReservation")
    if memory and memory < _MIN_MEMORY:
        raise OCIError("Minimum memory limit allowed is 6MB")
    if memory and swap > 0 and swap < memory:
        raise OCIError("Minimum memoryswap limit should be larger than memory limit, see usage")
    if not memory and swap > 0:
        raise OCIError("You should always set the Memory limit when using Memoryswap limit, see usage")
    if memory and reservation and memory < reservation:
        raise OCIError("Minimum memory limit can not be less than memory reservation limit, see usage")
    if reservation and reservation < _MIN_MEMORY:
        raise OCIError("Minimum memory reservation allowed is 6MB")
    nano = _int(host_config, "NanoCpus")
    if nano and (_int(host_config, "CpuPeriod") or _int(host_config, "CpuQuota")):
        raise OCIError("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if nano < 0:
        raise OCIError("Range of CPUs is from 0.01 to the number of CPUs available on the system")
    period = _int(host_config, "CpuPeriod")
    if period and not 1000 <= period <= 1000000:
        raise OCIError("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)")
    quota = _int(host_config, "CpuQuota")
    if quota and quota < 1000:
        raise OCIError("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    for name, value in (host_config.get("Sysctls") or {}).items():
        if not namespaced_sysctl(name, host_config):
            raise OCIError(f"sysctl '{name}' is not allowed")
        if not isinstance(value, str):
            raise OCIError(f"invalid value for sysctl '{name}'")


def namespaced_sysctl(name: str, host_config: Mapping[str, Any]) -> bool:
    """moby's ``ValidateSysctl``: IPC and mqueue sysctls, and ``net.*`` off the host network."""
    if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
        return (host_config.get("IpcMode") or "") != "host"
    if name.startswith("net."):
        return (host_config.get("NetworkMode") or "") != "host"
    return False


def check_ulimits(host_config: Mapping[str, Any], host_hard: Mapping[str, int]) -> None:
    """Refuse a ``--ulimit`` above the host's hard limit (``host_hard``: name → limit, -1 unlimited)."""
    for ulimit in host_config.get("Ulimits") or ():
        name = ulimit.get("Name") or ""
        limit = host_hard.get(name)
        if limit is None or limit < 0:
            continue
        for kind in ("Soft", "Hard"):
            value = int(ulimit.get(kind) or 0)
            if value > limit or value < 0:
                raise OCIError(
                    f"ulimit {name}: {kind.lower()} limit {value} is above the host's hard limit {limit}")


def linux_resources(host_config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``memory``, ``cpu`` and ``pids`` sections of ``linux.resources`` (only those set)."""
    out: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    limit = _int(host_config, "Memory")
    if limit:
        memory["limit"] = limit
    if _int(host_config, "MemoryReservation"):
        memory["reservation"] = _int(host_config, "MemoryReservation")
    swap = _int(host_config, "MemorySwap")
    if swap:
        memory["swap"] = swap
    elif limit:
        memory["swap"] = limit * 2  # moby: swap unset means as much swap as memory
    swappiness = host_config.get("MemorySwappiness")
    if swappiness is not None and swappiness >= 0:
        memory["swappiness"] = swappiness
    if host_config.get("OomKillDisable"):
        memory["disableOOMKiller"] = True
    if memory:
        out["memory"] = memory
    cpu: dict[str, Any] = {}
    if _int(host_config, "CpuShares"):
        cpu["shares"] = _int(host_config, "CpuShares")
    nano = _int(host_config, "NanoCpus")
    if nano:
        period = 100000
        cpu["quota"] = nano * period // 1_000_000_000
        cpu["period"] = period
    if _int(host_config, "CpuQuota"):
        cpu["quota"] = _int(host_config, "CpuQuota")
    if _int(host_config, "CpuPeriod"):
        cpu["period"] = _int(host_config, "CpuPeriod")
    if host_config.get("CpusetCpus"):
        cpu["cpus"] = host_config["CpusetCpus"]
    if host_config.get("CpusetMems"):
        cpu["mems"] = host_config["CpusetMems"]
    if cpu:
        out["cpu"] = cpu
    pids = host_config.get("PidsLimit")
    if pids is not None and pids > 0:
        out["pids"] = {"limit": pids}
    return out


def apply_host_extras(spec: dict[str, Any], host_config: Mapping[str, Any], *, init_binary: str | None) -> None:
    """Add resources, sysctls and ``--init`` to a spec from ``build_spec`` (in place)."""
    validate_resources(host_config)
    linux = spec.setdefault("linux", {})
    resources = linux.setdefault("resources", {})
    resources.update(linux_resources(host_config))
    sysctls = host_config.get("Sysctls") or {}
    if sysctls:
        linux["sysctl"] = dict(sorted({**linux.get("sysctl", {}), **sysctls}.items()))
    if host_config.get("Init"):
        if not init_binary:
            raise OCIError("docker-init binary not found in the daemon's PATH (install tini)")
        spec["process"]["args"] = [INIT_PATH, "--", *spec["process"]["args"]]
        spec.setdefault("mounts", []).append(
            {"destination": INIT_PATH, "type": "bind", "source": init_binary, "options": ["bind", "ro"]})
