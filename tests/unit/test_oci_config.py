"""merge_config / validate_* / default_hostname: moby's create-time rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dockyard.oci import (
    UNSUPPORTED_CONFIG_FIELDS,
    UNSUPPORTED_HOST_CONFIG_FIELDS,
    OCIError,
    UnsupportedField,
    default_hostname,
    merge_config,
    validate_config,
    validate_host_config,
)

IMAGE = {
    "User": "app",
    "Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"],
    "Entrypoint": ["/entry.sh"],
    "Cmd": ["serve"],
    "WorkingDir": "/app",
    "Labels": {"a": "image", "b": "image"},
    "ExposedPorts": {"80/tcp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGQUIT",
    "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 3},
}

#: What `docker run busybox true` (CLI 28.2) sends, recorded from the real CLI.
CLI_CONFIG: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": True,
    "AttachStderr": True, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": ["true"], "Image": "busybox", "Volumes": {}, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": {},
}  # fmt: skip
CLI_HOST_CONFIG: dict[str, Any] = json.loads(
    '{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},"NetworkMode":"default",'
    '"PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":true,'
    '"VolumeDriver":"","VolumesFrom":null,"ConsoleSize":[0,0],"CapAdd":null,"CapDrop":null,'
    '"CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,"GroupAdd":null,'
    '"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,"PidMode":"","Privileged":false,'
    '"PublishAllPorts":false,"ReadonlyRootfs":false,"SecurityOpt":null,"UTSMode":"","UsernsMode":"",'
    '"ShmSize":0,"Isolation":"","CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"",'
    '"BlkioWeight":0,"BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],'
    '"BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,'
    '"CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"","Devices":[],'
    '"DeviceCgroupRules":null,"DeviceRequests":null,"MemoryReservation":0,"MemorySwap":0,'
    '"MemorySwappiness":-1,"OomKillDisable":false,"PidsLimit":0,"Ulimits":[],"CpuCount":0,'
    '"CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,"ReadonlyPaths":null}'
)


def test_merge_takes_image_defaults() -> None:
    merged = merge_config(IMAGE, {"Image": "x", "Cmd": None, "Entrypoint": None, "Env": None, "Labels": None})
    assert merged == {
        "Image": "x",
        "Cmd": ["serve"],
        "Entrypoint": ["/entry.sh"],
        "Env": ["PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8"],
        "Labels": {"a": "image", "b": "image"},
        "User": "app",
        "ExposedPorts": {"80/tcp": {}},
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5, "Retries": 3},
        "WorkingDir": "/app",
        "Volumes": {"/data": {}},
        "StopSignal": "SIGQUIT",
    }


def test_merge_request_wins_and_unions() -> None:
    request = {
        "User": "1000",
        "Env": ["LANG=fr_FR", "X=1"],
        "Labels": {"a": "mine"},
        "ExposedPorts": {"8080/tcp": {}},
        "Healthcheck": {"Test": [], "Interval": 0, "Timeout": 7},
        "WorkingDir": "/work/./dir/",
        "Cmd": ["run"],
        "StopSignal": "SIGTERM",
    }
    merged = merge_config(IMAGE, request)
    assert merged["User"] == "1000"
    assert merged["Env"] == ["LANG=fr_FR", "X=1", "PATH=/usr/local/bin:/usr/bin"]
    assert merged["Labels"] == {"a": "mine", "b": "image"}
    assert merged["ExposedPorts"] == {"8080/tcp": {}, "80/tcp": {}}
    assert merged["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5, "Timeout": 7, "Retries": 3}
    assert merged["WorkingDir"] == "/work/dir"
    assert (merged["Entrypoint"], merged["Cmd"]) == (["/entry.sh"], ["run"])
    assert merged["StopSignal"] == "SIGTERM"
    assert request["Labels"] == {"a": "mine"}  # the request itself is left alone


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "expected"),
    [
        (None, None, (["/entry.sh"], ["serve"])),  # both from the image
        (None, ["x"], (["/entry.sh"], ["x"])),  # Cmd replaces the image's Cmd only
        (["/other"], None, (["/other"], None)),  # an Entrypoint clears the image's Cmd
        (["/other"], ["y"], (["/other"], ["y"])),
        ([""], ["ls"], (None, ["ls"])),  # --entrypoint "" clears it and keeps the Cmd
        ([], None, ([], ["serve"])),  # present but empty: image Cmd, not image Entrypoint
        ("/str", None, (["/str"], None)),  # a bare string is a one-element list
    ],
)
def test_entrypoint_cmd_rules(entrypoint: Any, cmd: Any, expected: tuple[Any, Any]) -> None:
    merged = merge_config(IMAGE, {"Entrypoint": entrypoint, "Cmd": cmd})
    assert (merged["Entrypoint"], merged["Cmd"]) == expected


def test_no_command() -> None:
    with pytest.raises(OCIError, match="^no command specified$"):
        merge_config(IMAGE, {"Entrypoint": [""], "Cmd": None})
    with pytest.raises(OCIError, match="^no command specified$"):
        merge_config({}, {"Cmd": []})


def test_merge_without_image_config() -> None:
    assert merge_config(None, CLI_CONFIG) == {**CLI_CONFIG, "Volumes": None}


def test_default_hostname() -> None:
    cid = "0123456789abcdef" * 4
    assert default_hostname(config={}, host_config={}, container_id=cid, host_hostname="box") == "0123456789ab"
    assert default_hostname(config={}, host_config={"NetworkMode": "host"}, container_id=cid, host_hostname="box") == "box"
    assert default_hostname(config={"Hostname": "me"}, host_config={"NetworkMode": "host"}, container_id=cid, host_hostname="box") == "me"


def test_cli_defaults_are_accepted() -> None:
    validate_config(CLI_CONFIG)
    validate_host_config(CLI_HOST_CONFIG, CLI_CONFIG)


def test_implemented_fields_are_accepted() -> None:
    host_config = {
        **CLI_HOST_CONFIG,
        "Binds": ["/a:/b:ro"],
        "Mounts": [{"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1016}}],
        "Tmpfs": {"/run": "rw,size=64m"},
        "CapAdd": ["ALL"],
        "CapDrop": ["net_raw"],
        "SecurityOpt": ["no-new-privileges"],
        "GroupAdd": ["10"],
        "Ulimits": [{"Name": "nofile", "Hard": 20, "Soft": 10}],
        "ReadonlyRootfs": True,
        "Privileged": True,
        "ExtraHosts": ["a:1.2.3.4"],
        "Dns": ["1.1.1.1"],
        "NetworkMode": "host",
        "MaskedPaths": [],
        "ReadonlyPaths": [],
        "ConsoleSize": [24, 80],
        "PidMode": "host",
        "CgroupnsMode": "private",
        "LogConfig": {"Type": "json-file", "Config": {}},
    }
    validate_host_config(host_config, CLI_CONFIG)


def test_every_unimplemented_host_config_field_is_refused() -> None:
    for name in UNSUPPORTED_HOST_CONFIG_FIELDS:
        with pytest.raises(UnsupportedField) as info:
            validate_host_config({**CLI_HOST_CONFIG, name: [{"x": 1}]})
        assert info.value.message == f"HostConfig.{name} is not supported"


def test_unimplemented_fields_unset_sentinels() -> None:
    for name, value in (("MemorySwappiness", 60),):
        with pytest.raises(UnsupportedField, match=f"^HostConfig.{name} is not supported$"):
            validate_host_config({name: value})
    validate_host_config({"MemorySwappiness": None, "PidsLimit": -1, "OomKillDisable": None, "Init": None})


def test_unimplemented_config_fields() -> None:
    for name in UNSUPPORTED_CONFIG_FIELDS:
        with pytest.raises(UnsupportedField, match=f"^Config.{name} is not supported$"):
            validate_config({name: {"/v": {}}})
    validate_config({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 1_000_000}})
    validate_config({"Healthcheck": {"Test": ["NONE"]}})
    with pytest.raises(OCIError, match="^Interval in Healthcheck cannot be less than 1ms$"):
        validate_config({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 999_999}})
    with pytest.raises(OCIError, match="^Retries in Healthcheck cannot be negative$"):
        validate_config({"Healthcheck": {"Test": ["CMD", "true"], "Retries": -1}})


@pytest.mark.parametrize(
    ("host_config", "message"),
    [
        ({"LogConfig": {"Type": "syslog"}}, "HostConfig.LogConfig.Type=syslog is not supported"),
        ({"LogConfig": {"Type": "json-file", "Config": {"tag": "x"}}}, "HostConfig.LogConfig.Config[tag] is not supported"),
        ({"IpcMode": "host"}, "HostConfig.IpcMode=host is not supported"),
        ({"UsernsMode": "private"}, "HostConfig.UsernsMode=private is not supported"),
    ],
)
def test_unsupported_values(host_config: dict[str, Any], message: str) -> None:
    with pytest.raises(UnsupportedField) as info:
        validate_host_config(host_config)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("host_config", "config", "message"),
    [
        ({"AutoRemove": True, "RestartPolicy": {"Name": "always"}}, {}, "can't create 'AutoRemove' container with restart policy"),
        ({"RestartPolicy": {"Name": "sometimes"}}, {}, "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"),
        ({"RestartPolicy": {"Name": "no", "MaximumRetryCount": 2}}, {}, "invalid restart policy: maximum retry count can only be used with 'on-failure'"),
        ({"CapAdd": ["bogus"]}, {}, 'invalid CapAdd: unknown capability: "CAP_BOGUS"'),
        ({"CapDrop": ["cap_nope"]}, {}, 'invalid CapDrop: unknown capability: "CAP_NOPE"'),
        ({"UTSMode": "host"}, {"Hostname": "x"}, "conflicting options: hostname and the UTS mode"),
        ({"IpcMode": "weird"}, {}, "invalid IPC mode: weird"),
        ({"ShmSize": -1}, {}, "SHM size can not be less than 0"),
        ({"OomScoreAdj": 1001}, {}, "Invalid value 1001, range for oom score adj is [-1000, 1000]"),
        ({"Isolation": "hyperv"}, {}, "invalid isolation 'hyperv' on linux"),
        ({"Tmpfs": {"/run": "bogus"}}, {}, 'invalid tmpfs option ["bogus"]'),
        ({"Tmpfs": {"run": ""}}, {}, "invalid mount path: 'run' mount path must be absolute"),
        ({"Annotations": {"": "x"}}, {}, "invalid Annotations: the empty string is not permitted as an annotation key"),
    ],
)
def test_invalid_values(host_config: dict[str, Any], config: dict[str, Any], message: str) -> None:
    with pytest.raises(OCIError) as info:
        validate_host_config(host_config, config)
    assert info.value.message == message
    assert not isinstance(info.value, UnsupportedField)


def test_invalid_config_values() -> None:
    with pytest.raises(OCIError, match="^the working directory 'rel' is invalid, it needs to be an absolute path$"):
        validate_config({"WorkingDir": "rel"})
    with pytest.raises(OCIError, match="^invalid environment variable: =x$"):
        validate_config({"Env": ["=x"]})


def test_unsupported_list_covers_the_v150_schema() -> None:
    """Every HostConfig/Config property of the v1.50 schema is either implemented or listed."""
    spec = (Path(__file__).resolve().parents[3] / "shared" / "docker-api-v1.50.yaml").read_text()
    implemented_host = {
        "Binds", "VolumesFrom", "ContainerIDFile", "LogConfig", "NetworkMode", "PortBindings", "RestartPolicy",
        "AutoRemove", "Mounts", "ConsoleSize", "Annotations", "CapAdd", "CapDrop", "CgroupnsMode",
        "Dns", "DnsOptions", "DnsSearch", "ExtraHosts", "GroupAdd", "IpcMode", "OomScoreAdj",
        "PidMode", "Privileged", "ReadonlyRootfs", "SecurityOpt", "Tmpfs", "UTSMode", "UsernsMode",
        "ShmSize", "Runtime", "Isolation", "MaskedPaths", "ReadonlyPaths", "Ulimits",
        "MemorySwappiness", "PidsLimit", "OomKillDisable", "Init", "PublishAllPorts",
        "CpuShares", "Memory", "CpuPeriod", "CpuQuota", "CpusetCpus", "CpusetMems", "MemoryReservation",
        "MemorySwap", "NanoCpus", "Sysctls",
    }  # fmt: skip
    implemented_config = {
        "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
        "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
        "ArgsEscaped", "Image", "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal",
        "StopTimeout", "Shell", "Volumes",
    }  # fmt: skip
    host_fields = _schema_properties(spec, "HostConfig") | _schema_properties(spec, "Resources")
    config_fields = _schema_properties(spec, "ContainerConfig")
    assert host_fields == implemented_host | set(UNSUPPORTED_HOST_CONFIG_FIELDS)
    assert config_fields == implemented_config | set(UNSUPPORTED_CONFIG_FIELDS)


def _schema_properties(text: str, definition: str) -> set[str]:
    """Property names of one definition (its first ``properties:`` block), read by indentation."""
    lines = text.splitlines()
    start = lines.index(f"  {definition}:")
    names: set[str] = set()
    props_indent = -1
    for line in lines[start + 1 :]:
        if line.startswith("  ") and not line.startswith("   "):
            break  # the next definition
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if props_indent < 0:
            if stripped == "properties:":
                props_indent = indent
            continue
        if indent <= props_indent:
            break  # the properties block ended
        if indent == props_indent + 2 and stripped.endswith(":"):
            names.add(stripped[:-1])
    return names


def test_user_network_and_container_modes_pass() -> None:
    validate_host_config({"NetworkMode": "mynet"}, {})
    validate_host_config({"NetworkMode": "container:web"}, {})
    with pytest.raises(OCIError, match="invalid network mode"):
        validate_host_config({"NetworkMode": "container:"}, {})
