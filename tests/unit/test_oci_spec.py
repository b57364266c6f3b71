"""build_spec: the exact runtime spec dockerd v28 would hand runc, key for key."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.oci import ContainerSpecInput, OCIError, ResolvedUser, Ulimit, build_spec
from dockyard.oci.defaults import DEFAULT_CAPABILITIES, KNOWN_CAPABILITIES
from dockyard.oci.spec import capabilities_from_mask, container_env, parse_security_opts

ROOT = ResolvedUser(uid=0, gid=0, additional_gids=(0,), home="/root")
DEFAULT_CAPS = list(DEFAULT_CAPABILITIES)


def spec_for(config: dict[str, Any] | None = None, host_config: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    base_config = {"Hostname": "0123456789ab", "Cmd": ["sh"], "Env": ["PATH=/usr/bin:/bin"]}
    base_config.update(config or {})
    fields: dict[str, Any] = {
        "config": base_config,
        "host_config": {"NetworkMode": "default", **(host_config or {})},
        "user": ROOT,
        "cgroups_path": "/dockyard/ns1/abc",
        "hosts_path": "/var/lib/dockyard/c/abc/hosts",
        "hostname_path": "/var/lib/dockyard/c/abc/hostname",
        "resolv_path": "/var/lib/dockyard/c/abc/resolv.conf",
    }
    fields.update(kw)
    return build_spec(ContainerSpecInput(**fields))


DEFAULT_SPEC: dict[str, Any] = {
    "ociVersion": "1.0.2-dev",
    "process": {
        "user": {"uid": 0, "gid": 0, "additionalGids": [0]},
        "args": ["sh"],
        "env": ["PATH=/usr/bin:/bin", "HOSTNAME=0123456789ab"],
        "cwd": "/",
        "capabilities": {"bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS},
        "oomScoreAdj": 0,
    },
    "root": {"path": "rootfs"},
    "hostname": "0123456789ab",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["ro", "nosuid", "noexec", "nodev"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        },
        {
            "destination": "/etc/resolv.conf",
            "type": "bind",
            "source": "/var/lib/dockyard/c/abc/resolv.conf",
            "options": ["rbind", "rprivate"],
        },
        {
            "destination": "/etc/hostname",
            "type": "bind",
            "source": "/var/lib/dockyard/c/abc/hostname",
            "options": ["rbind", "rprivate"],
        },
        {
            "destination": "/etc/hosts",
            "type": "bind",
            "source": "/var/lib/dockyard/c/abc/hosts",
            "options": ["rbind", "rprivate"],
        },
    ],
    "linux": {
        "sysctl": {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"},
        "resources": {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
                {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
                {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
                {"allow": False, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            ]
        },
        "cgroupsPath": "/dockyard/ns1/abc",
        "namespaces": [{"type": "mount"}, {"type": "network"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}],
        "maskedPaths": [
            "/proc/asound",
            "/proc/acpi",
            "/proc/interrupts",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/proc/scsi",
            "/sys/firmware",
            "/sys/devices/virtual/powercap",
        ],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}


def test_default_container_exact() -> None:
    spec = spec_for()
    assert spec == DEFAULT_SPEC
    # key order is the runtime-spec Go structs' order, so the JSON is byte-identical too
    assert json.dumps(spec) == json.dumps(DEFAULT_SPEC)
    assert list(spec) == ["ociVersion", "process", "root", "hostname", "mounts", "linux"]
    assert list(spec["process"]) == ["user", "args", "env", "cwd", "capabilities", "oomScoreAdj"]


def test_spec_is_fresh_each_time() -> None:
    first = spec_for()
    first["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    first["mounts"][0]["options"].append("ro")
    assert spec_for() == DEFAULT_SPEC


def test_entrypoint_cmd_workdir_and_user() -> None:
    spec = spec_for(
        {"Entrypoint": ["/bin/tini", "--"], "Cmd": ["sleep", "1"], "WorkingDir": "/srv"},
        user=ResolvedUser(uid=1000, gid=1000, additional_gids=(1000, 50), home="/home/bob"),
    )
    assert spec["process"]["args"] == ["/bin/tini", "--", "sleep", "1"]
    assert spec["process"]["cwd"] == "/srv"
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 50]}


def test_empty_string_entrypoint_is_no_entrypoint() -> None:
    assert spec_for({"Entrypoint": [""], "Cmd": ["ls"]})["process"]["args"] == ["ls"]
    with pytest.raises(OCIError, match="^no command specified$"):
        spec_for({"Entrypoint": [""], "Cmd": None})


def test_env_defaults_overrides_and_unset() -> None:
    config = {"Hostname": "h", "Tty": True, "Env": ["FOO=1", "HOSTNAME=mine", "TERM", "FOO=2", "BAR="]}
    # PATH from defaults (the config has none), HOSTNAME replaced in place, TERM unset,
    # duplicate keys beyond the defaults are appended as given (moby does the same)
    assert container_env(config) == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOSTNAME=mine",
        "FOO=1",
        "FOO=2",
        "BAR=",
    ]


def test_tty_terminal_console_size_and_term() -> None:
    spec = spec_for({"Tty": True}, {"ConsoleSize": [24, 80]})
    process = spec["process"]
    assert list(process)[:2] == ["terminal", "consoleSize"]
    assert process["terminal"] is True
    assert process["consoleSize"] == {"height": 24, "width": 80}
    assert process["env"] == ["PATH=/usr/bin:/bin", "HOSTNAME=0123456789ab", "TERM=xterm"]
    # no size known: no consoleSize; no TTY: ConsoleSize is ignored
    assert "consoleSize" not in spec_for({"Tty": True}, {"ConsoleSize": [0, 0]})["process"]
    assert "terminal" not in spec_for({}, {"ConsoleSize": [24, 80]})["process"]


def test_domainname_is_a_sysctl() -> None:
    assert spec_for({"Domainname": "example.org"})["linux"]["sysctl"] == {
        "kernel.domainname": "example.org",
        "net.ipv4.ip_unprivileged_port_start": "0",
        "net.ipv4.ping_group_range": "0 2147483647",
    }


@pytest.mark.parametrize(
    ("cap_add", "cap_drop", "expected"),
    [
        (["net_admin"], ["MKNOD", "cap_net_raw"], [c for c in DEFAULT_CAPS if c not in ("CAP_MKNOD", "CAP_NET_RAW")] + ["CAP_NET_ADMIN"]),
        (["CAP_CHOWN"], None, DEFAULT_CAPS + ["CAP_CHOWN"]),
        (["sys_admin", "kill"], ["all"], ["CAP_SYS_ADMIN", "CAP_KILL"]),
        (["ALL"], ["NET_RAW"], [c for c in KNOWN_CAPABILITIES if c != "CAP_NET_RAW"]),
    ],
)
def test_capabilities(cap_add: list[str] | None, cap_drop: list[str] | None, expected: list[str]) -> None:
    caps = spec_for(host_config={"CapAdd": cap_add, "CapDrop": cap_drop})["process"]["capabilities"]
    assert caps == {"bounding": expected, "effective": expected, "permitted": expected}


def test_drop_all_leaves_empty_capabilities() -> None:
    assert spec_for(host_config={"CapDrop": ["ALL"]})["process"]["capabilities"] == {}


def test_unknown_capability() -> None:
    with pytest.raises(OCIError) as info:
        spec_for(host_config={"CapAdd": ["bogus"]})
    assert info.value.message == 'unknown capability: "CAP_BOGUS"'


def test_capabilities_from_mask() -> None:
    assert capabilities_from_mask(0b1) == ("CAP_CHOWN",)
    everything_but_sys_resource = 0x1FFFEFFFFFF
    caps = capabilities_from_mask(everything_but_sys_resource)
    assert len(caps) == 40 and "CAP_SYS_RESOURCE" not in caps


def test_privileged() -> None:
    device = {"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232, "fileMode": 432, "uid": 0, "gid": 0}
    spec = spec_for(
        host_config={"Privileged": True, "CapDrop": ["ALL"]},
        all_capabilities=("CAP_CHOWN", "CAP_SYS_ADMIN"),
        host_devices=(device,),
    )
    assert spec["process"]["capabilities"] == {
        "bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
        "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
        "permitted": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
    }
    mounts = {m["destination"]: m["options"] for m in spec["mounts"]}
    assert mounts["/sys"] == ["nosuid", "noexec", "nodev"]
    assert mounts["/sys/fs/cgroup"] == ["nosuid", "noexec", "nodev"]
    assert spec["linux"]["resources"] == {"devices": [{"allow": True, "access": "rwm"}]}
    assert spec["linux"]["devices"] == [device]
    assert "maskedPaths" not in spec["linux"] and "readonlyPaths" not in spec["linux"]
    assert list(spec["linux"]) == ["sysctl", "resources", "cgroupsPath", "namespaces", "devices"]


def test_masked_and_readonly_paths_from_host_config() -> None:
    # `--security-opt systempaths=unconfined` sends empty lists: nothing masked
    linux = spec_for(host_config={"MaskedPaths": [], "ReadonlyPaths": []})["linux"]
    assert "maskedPaths" not in linux and "readonlyPaths" not in linux
    linux = spec_for(host_config={"MaskedPaths": ["/proc/x"], "ReadonlyPaths": ["/proc/y"]})["linux"]
    assert (linux["maskedPaths"], linux["readonlyPaths"]) == (["/proc/x"], ["/proc/y"])


def test_readonly_rootfs() -> None:
    spec = spec_for(host_config={"ReadonlyRootfs": True, "Tmpfs": {"/run": ""}})
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    options = {m["destination"]: m["options"] for m in spec["mounts"]}
    assert options["/proc"] == ["nosuid", "noexec", "nodev"]
    assert options["/sys"] == ["nosuid", "noexec", "nodev", "ro"]
    assert options["/run"] == ["noexec", "nosuid", "nodev", "rprivate"]  # a user mount stays as asked
    # the engine's files become read-only with the root file system, recursively when runc can
    assert options["/etc/hosts"] == ["rbind", "rro", "rprivate"]
    spec = spec_for(host_config={"ReadonlyRootfs": True}, recursive_readonly=False)
    assert {m["destination"]: m["options"] for m in spec["mounts"]}["/etc/hosts"] == ["rbind", "ro", "rprivate"]


def test_no_new_privileges() -> None:
    assert spec_for(host_config={"SecurityOpt": ["no-new-privileges"]})["process"]["noNewPrivileges"] is True
    assert "noNewPrivileges" not in spec_for(host_config={"SecurityOpt": ["no-new-privileges:false"]})["process"]
    assert parse_security_opts(["no-new-privileges=true"]).no_new_privileges is True
    assert parse_security_opts(["no-new-privileges", "no-new-privileges=0"]).no_new_privileges is False


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("bogus", 'invalid --security-opt 1: "bogus"'),
        ("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"'),
        ("foo=bar", 'invalid --security-opt 2: "foo=bar"'),
        ("seccomp=/tmp/profile.json", "HostConfig.SecurityOpt 'seccomp=/tmp/profile.json' is not supported"),
    ],
)
def test_bad_security_opts(option: str, message: str) -> None:
    with pytest.raises(OCIError) as info:
        parse_security_opts([option])
    assert info.value.message == message


def test_host_network() -> None:
    spec = spec_for({"Hostname": "buildhost"}, {"NetworkMode": "host"})
    assert spec["hostname"] == "buildhost"
    assert spec["linux"]["namespaces"] == [{"type": "mount"}, {"type": "uts"}, {"type": "pid"}, {"type": "ipc"}]
    assert "sysctl" not in spec["linux"]  # the host's network sysctls are not the container's to change


@pytest.mark.parametrize("mode", ["none", "bridge", "default", ""])
def test_private_network_modes(mode: str) -> None:
    assert {"type": "network"} in spec_for(host_config={"NetworkMode": mode})["linux"]["namespaces"]


def test_uts_and_pid_host_and_cgroup_namespace() -> None:
    spec = spec_for(host_config={"UTSMode": "host", "PidMode": "host"})
    assert "hostname" not in spec
    assert spec["linux"]["namespaces"] == [{"type": "mount"}, {"type": "network"}, {"type": "ipc"}]
    assert spec_for(cgroup_v2=True)["linux"]["namespaces"][-1] == {"type": "cgroup"}
    assert spec_for(host_config={"CgroupnsMode": "private"})["linux"]["namespaces"][-1] == {"type": "cgroup"}
    assert spec_for(host_config={"CgroupnsMode": "host"}, cgroup_v2=True)["linux"]["namespaces"][-1] == {"type": "ipc"}


def test_rlimits_from_ulimits_and_daemon_defaults() -> None:
    spec = spec_for(
        host_config={"Ulimits": [{"Name": "nofile", "Soft": 1024, "Hard": 4096}]},
        default_ulimits=(Ulimit(name="nofile", soft=1, hard=1), Ulimit(name="nproc", soft=10, hard=20)),
    )
    assert spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 1024},
        {"type": "RLIMIT_NPROC", "hard": 20, "soft": 10},
    ]
    with pytest.raises(OCIError, match="^invalid ulimit type: bogus$"):
        spec_for(host_config={"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]})


def test_oom_score_adj_shm_size_and_annotations() -> None:
    spec = spec_for(host_config={"OomScoreAdj": 500, "ShmSize": 1048576, "Annotations": {"b": "2", "a": "1"}})
    assert spec["process"]["oomScoreAdj"] == 500
    assert spec["mounts"][6]["options"][-1] == "size=1048576"
    assert list(spec["annotations"].items()) == [("a", "1"), ("b", "2")]
    assert list(spec) == ["ociVersion", "process", "root", "hostname", "mounts", "annotations", "linux"]
