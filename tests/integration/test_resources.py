"""Resource limits and process settings (issue 7 item 4) with the real `docker` CLI and docker-py:
memory (and OOM kills), pids, cpu, ulimits, --init, sysctls, group-add, docker update."""

from __future__ import annotations

import json
import resource
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import docker as dockerpy
import pytest

from dockyard.testing.probes import wait_until

LABEL = "resources-test=yes"
M = 1024 * 1024


@pytest.fixture(scope="module")
def image(docker, busybox_image: str) -> Iterator[str]:
    yield busybox_image
    docker.remove_labelled(LABEL)


def name() -> str:
    return "rs-" + secrets.token_hex(4)


def run_out(docker, image: str, *args: str, cmd: str) -> str:
    return docker.out("run", "--rm", "--label", LABEL, *args, image, "sh", "-c", cmd)


def cgroup(subsystem: str, docker, container: str) -> Path:
    container_id = docker.out("inspect", "--format", "{{.Id}}", container).strip()
    matches = list(Path("/sys/fs/cgroup", subsystem).glob(f"dockyard/*/{container_id}"))
    assert len(matches) == 1, matches
    return matches[0]


def test_memory_limit_in_the_cgroup_and_inspect(docker, image):
    n = name()
    docker.run("run", "-d", "--name", n, "--label", LABEL, "-m", "64m", "--memory-reservation", "32m",
               image, "sleep", "1000")
    path = cgroup("memory", docker, n)
    assert int((path / "memory.limit_in_bytes").read_text()) == 64 * M
    assert int((path / "memory.soft_limit_in_bytes").read_text()) == 32 * M
    assert int((path / "memory.memsw.limit_in_bytes").read_text()) == 128 * M
    host_config = json.loads(docker.out("inspect", "--format", "{{json .HostConfig}}", n))
    assert (host_config["Memory"], host_config["MemoryReservation"]) == (64 * M, 32 * M)
    docker.run("rm", "-f", n)


def test_oom_kill_sets_oomkilled_and_137(docker, image):
    n = name()
    since = f"{time.time() - 1:.9f}"
    docker.run("run", "-d", "--name", n, "--label", LABEL, "-m", "32m", "--memory-swap", "32m", image,
               "sh", "-c", "head -c 100m /dev/zero | tail")
    assert docker.out("wait", n).strip() == "137"
    wait_until(lambda: json.loads(docker.out("inspect", "--format", "{{json .State}}", n))["OOMKilled"],
               timeout=60, what="OOMKilled")
    state = json.loads(docker.out("inspect", "--format", "{{json .State}}", n))
    assert (state["ExitCode"], state["Status"]) == (137, "exited")
    events = docker.out("events", "--since", since, "--until", f"{time.time():.9f}", "--filter", f"container={n}",
                        "--format", "{{.Action}}", timeout=30).split()
    assert "oom" in events and events.index("oom") < len(events)
    docker.run("rm", "-f", n)


def test_pids_limit(docker, image):
    n = name()
    docker.run("run", "-d", "--name", n, "--label", LABEL, "--pids-limit", "10", image, "sleep", "1000")
    assert (cgroup("pids", docker, n) / "pids.max").read_text().strip() == "10"
    result = docker.run("exec", n, "sh", "-c", "for i in $(seq 20); do sleep 5 & done; wait", check=False)
    assert result.returncode != 0 or b"fork" in result.stderr.lower()
    docker.run("rm", "-f", n)


def test_cpu_settings(docker, image):
    n = name()
    docker.run("run", "-d", "--name", n, "--label", LABEL, "--cpus", "0.5", "--cpu-shares", "512",
               "--cpuset-cpus", "0", image, "sleep", "1000")
    cpu = cgroup("cpu", docker, n)
    assert int((cpu / "cpu.cfs_quota_us").read_text()) == 50000
    assert int((cpu / "cpu.cfs_period_us").read_text()) == 100000
    assert int((cpu / "cpu.shares").read_text()) == 512
    assert (cgroup("cpuset", docker, n) / "cpuset.cpus").read_text().strip() == "0"
    docker.run("rm", "-f", n)


def test_ulimit_nofile(docker, image):
    assert run_out(docker, image, "--ulimit", "nofile=100:100", cmd="ulimit -n").strip() == "100"


def test_ulimit_above_the_host_hard_limit_is_refused(docker, image):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    result = docker.run("create", "--label", LABEL, "--ulimit", f"nofile={hard + 1}:{hard + 1}", image,
                        "true", check=False)
    assert result.returncode != 0
    assert b"above the host's hard limit" in result.stderr


def test_init_runs_tini_as_pid_1(docker, image):
    cmdline = run_out(docker, image, "--init", cmd="cat /proc/1/cmdline").split("\0")
    assert cmdline[:2] == ["/sbin/docker-init", "--"]
    assert cmdline[2:4] == ["sh", "-c"]


def test_namespaced_sysctls_only(docker, image):
    assert run_out(docker, image, "--sysctl", "net.ipv4.ip_forward=1",
                   cmd="cat /proc/sys/net/ipv4/ip_forward").strip() == "1"
    assert run_out(docker, image, "--sysctl", "kernel.shmmax=1000000",
                   cmd="cat /proc/sys/kernel/shmmax").strip() == "1000000"
    result = docker.run("create", "--label", LABEL, "--sysctl", "kernel.hostname=x", image, "true", check=False)
    assert result.returncode != 0 and b"not allowed" in result.stderr


def test_shm_size_and_group_add(docker, image):
    assert "65536" in run_out(docker, image, "--shm-size", "64m", cmd="df -k /dev/shm | tail -1")
    groups = run_out(docker, image, "--group-add", "1234", cmd="id -G").split()
    assert "1234" in groups


def test_oom_kill_disable_accepted(docker, image):
    n = name()
    docker.run("run", "-d", "--name", n, "--label", LABEL, "-m", "64m", "--oom-kill-disable", image, "sleep", "1000")
    assert "oom_kill_disable 1" in (cgroup("memory", docker, n) / "memory.oom_control").read_text()
    docker.run("rm", "-f", n)


def test_update_memory_of_a_running_container(docker, image):
    n = name()
    docker.run("run", "-d", "--name", n, "--label", LABEL, "-m", "64m", image, "sleep", "1000")
    docker.run("update", "-m", "96m", "--memory-swap", "192m", "--pids-limit", "50", n)
    assert int((cgroup("memory", docker, n) / "memory.limit_in_bytes").read_text()) == 96 * M
    assert (cgroup("pids", docker, n) / "pids.max").read_text().strip() == "50"
    host_config = json.loads(docker.out("inspect", "--format", "{{json .HostConfig}}", n))
    assert (host_config["Memory"], host_config["PidsLimit"]) == (96 * M, 50)
    # the new limit holds for the next run too
    docker.run("restart", "-t", "0", n)
    assert int((cgroup("memory", docker, n) / "memory.limit_in_bytes").read_text()) == 96 * M
    docker.run("rm", "-f", n)


def test_docker_py_resources(dockyard, image):
    client = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    try:
        container = client.containers.run(image, ["sleep", "1000"], detach=True, labels={"resources-test": "yes"},
                                          mem_limit="48m", pids_limit=20, init=True)
        container.update(mem_limit="80m", memswap_limit="160m")
        stats = container.stats(stream=False)
        assert stats["memory_stats"]["limit"] == 80 * M
        assert stats["pids_stats"]["limit"] == 20
        container.remove(force=True)
    finally:
        client.close()
