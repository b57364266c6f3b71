from __future__ import annotations

import pytest

from dockyard.oci.errors import OCIError
from dockyard.oci.resources import apply_host_extras, check_ulimits, linux_resources, validate_resources

M = 1024 * 1024


def test_linux_resources() -> None:
    assert linux_resources({}) == {}
    assert linux_resources({"Memory": 64 * M, "MemoryReservation": 32 * M, "OomKillDisable": True,
                            "NanoCpus": 1_500_000_000, "CpuShares": 512, "CpusetCpus": "0",
                            "PidsLimit": 10, "MemorySwappiness": -1}) == {
        "memory": {"limit": 64 * M, "reservation": 32 * M, "swap": 128 * M, "disableOOMKiller": True},
        "cpu": {"shares": 512, "quota": 150000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 10},
    }
    assert linux_resources({"Memory": 64 * M, "MemorySwap": -1, "CpuQuota": 50000, "CpuPeriod": 100000,
                            "PidsLimit": -1}) == {
        "memory": {"limit": 64 * M, "swap": -1}, "cpu": {"quota": 50000, "period": 100000}}


@pytest.mark.parametrize(("host_config", "message"), [
    ({"Memory": 1024}, "Minimum memory limit allowed is 6MB"),
    ({"Memory": 64 * M, "MemorySwap": 32 * M}, "Minimum memoryswap limit should be larger than memory limit, see usage"),
    ({"MemorySwap": 32 * M}, "You should always set the Memory limit when using Memoryswap limit, see usage"),
    ({"NanoCpus": 10**9, "CpuQuota": 5000}, "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
    ({"Sysctls": {"kernel.hostname": "x"}}, "sysctl 'kernel.hostname' is not allowed"),
    ({"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}, "sysctl 'net.ipv4.ip_forward' is not allowed"),
])
def test_validate_resources_messages(host_config: dict, message: str) -> None:
    with pytest.raises(OCIError, match=f"^{message}$"):
        validate_resources(host_config)


def test_check_ulimits() -> None:
    check_ulimits({"Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 100}]}, {"nofile": 1024})
    with pytest.raises(OCIError, match="above the host's hard limit 1024"):
        check_ulimits({"Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 4096}]}, {"nofile": 1024})
    check_ulimits({"Ulimits": [{"Name": "core", "Soft": 10**9, "Hard": 10**9}]}, {"core": -1})


def test_apply_host_extras_init_and_sysctls() -> None:
    spec = {"process": {"args": ["sh"]}, "mounts": [], "linux": {"sysctl": {"net.ipv4.ping_group_range": "0 0"},
                                                                 "resources": {"devices": []}}}
    apply_host_extras(spec, {"Init": True, "Sysctls": {"kernel.shmmax": "1000"}, "PidsLimit": 5},
                      init_binary="/usr/bin/tini-static")
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert spec["mounts"][-1] == {"destination": "/sbin/docker-init", "type": "bind",
                                  "source": "/usr/bin/tini-static", "options": ["bind", "ro"]}
    assert spec["linux"]["sysctl"] == {"kernel.shmmax": "1000", "net.ipv4.ping_group_range": "0 0"}
    assert spec["linux"]["resources"] == {"devices": [], "pids": {"limit": 5}}
