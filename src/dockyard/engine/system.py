"""``/version`` and ``/info``: what the daemon is and what it holds.

The shapes follow the v1.50 specification (SystemVersion, SystemInfo). Counts
come from the services that own the objects, for the caller's endpoint only.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from dockyard import __version__
from dockyard.config import Config
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.host import HostFacts

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
PLATFORM_NAME = f"dockyard {__version__}"
STORAGE_DRIVER = "overlayfs"


@dataclass(frozen=True, kw_only=True)
class ContainerCounts:
    running: int = 0
    paused: int = 0
    stopped: int = 0


@dataclass(frozen=True, kw_only=True)
class ContainerdFacts:
    version: str
    revision: str


CountContainers = Callable[[Endpoint], Awaitable[ContainerCounts]]
CountImages = Callable[[Endpoint], Awaitable[int]]


class SystemService:
    """Answers ``/version`` and ``/info`` from facts gathered at start-up."""

    def __init__(
        self,
        *,
        config: Config,
        host: HostFacts,
        containerd: ContainerdFacts,
        engine_id: str,
        count_containers: CountContainers,
        count_images: CountImages,
    ) -> None:
        self._config = config
        self._host = host
        self._containerd = containerd
        self._engine_id = engine_id
        self._count_containers = count_containers
        self._count_images = count_images

    def version(self) -> dict[str, Any]:
        host = self._host
        engine_details = {
            "ApiVersion": API_VERSION,
            "Arch": host.goarch,
            "Experimental": "false",
            "KernelVersion": host.kernel_version,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        }
        return {
            "Platform": {"Name": PLATFORM_NAME},
            "Components": [
                {"Name": "Engine", "Version": __version__, "Details": engine_details},
                {
                    "Name": "containerd",
                    "Version": self._containerd.version,
                    "Details": {"GitCommit": self._containerd.revision},
                },
                {
                    "Name": "runc",
                    "Version": host.runc.version,
                    "Details": {"GitCommit": host.runc.commit},
                },
            ],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
            "Arch": host.goarch,
            "KernelVersion": host.kernel_version,
            "Experimental": False,
        }

    async def info(self, endpoint: Endpoint) -> dict[str, Any]:
        host = self._host
        config = self._config
        counts = await self._count_containers(endpoint)
        images = await self._count_images(endpoint)
        mirrors = list(config.registry_mirrors)
        return {
            "ID": self._engine_id,
            "Containers": counts.running + counts.paused + counts.stopped,
            "ContainersRunning": counts.running,
            "ContainersPaused": counts.paused,
            "ContainersStopped": counts.stopped,
            "Images": images,
            "Driver": STORAGE_DRIVER,
            "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
            "DockerRootDir": str(config.data_root),
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "null"],
                "Authorization": None,
                "Log": ["json-file"],
            },
            "MemoryLimit": True,
            "SwapLimit": True,
            "CpuCfsPeriod": True,
            "CpuCfsQuota": True,
            "CPUShares": True,
            "CPUSet": True,
            "PidsLimit": True,
            "OomKillDisable": host.cgroup_version == "1",
            "IPv4Forwarding": True,
            "Debug": config.log_level == "debug",
            "NFd": 0,
            "NGoroutines": 0,
            "SystemTime": _dt.datetime.now(_dt.timezone.utc).isoformat().replace("+00:00", "Z"),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": host.cgroup_version,
            "NEventsListener": 0,
            "KernelVersion": host.kernel_version,
            "OperatingSystem": host.operating_system,
            "OSVersion": host.os_version,
            "OSType": "linux",
            "Architecture": host.architecture,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "InsecureRegistryCIDRs": ["::1/128", "127.0.0.0/8"],
                "IndexConfigs": {
                    "docker.io": {
                        "Name": "docker.io",
                        "Mirrors": mirrors,
                        "Secure": True,
                        "Official": True,
                    },
                    **{
                        name: {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
                        for name in config.insecure_registries
                    },
                },
                "Mirrors": mirrors,
            },
            "NCPU": host.ncpu,
            "MemTotal": host.mem_total,
            "GenericResources": None,
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": host.hostname,
            "Labels": list(config.labels),
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            "Runtimes": {"runc": {"path": "runc"}, "io.containerd.runc.v2": {"path": "runc"}},
            "DefaultRuntime": "runc",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": False,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": {"ID": self._containerd.revision},
            "RuncCommit": {"ID": self._host.runc.commit},
            "InitCommit": {"ID": ""},
            "SecurityOptions": ["name=no-new-privileges"],
            "CDISpecDirs": [],
            "Containerd": None,
            "Warnings": None,
        }
