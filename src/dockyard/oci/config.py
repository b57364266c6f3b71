"""Create-time work on Docker's Config/HostConfig: merge with the image, validate, default hostname.

Pure. ``merge_config`` gives the Config that ``docker inspect`` shows (moby's
``daemon/commit.go:merge`` plus ``mergeAndVerifyConfig``).
``validate_host_config`` and ``validate_config`` accept what dockyard
implements and, for every other v1.50 field, accept only an empty value
(null, false, 0, "", [], {}; plus the CLI's documented "unset" sentinels such
as ``MemorySwappiness: -1``): any real value raises
``UnsupportedField("HostConfig.<Field>")`` — message ``"HostConfig.Devices is
not supported"`` — so nothing is silently dropped. Keys the API does not
define are ignored, as dockerd ignores them.

Raises ``OCIError`` (moby's message) / ``UnsupportedField``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from dockyard.oci.errors import OCIError, UnsupportedField
from dockyard.oci.mounts import go_clean, merge_tmpfs_options, request_mounts
from dockyard.oci.defaults import DEFAULT_PROPAGATION, KNOWN_CAPABILITIES
from dockyard.oci.spec import build_rlimits, normalize_capabilities, parse_security_opts

__all__ = [
    "UNSUPPORTED_CONFIG_FIELDS",
    "UNSUPPORTED_HOST_CONFIG_FIELDS",
    "default_hostname",
    "merge_config",
    "validate_config",
    "validate_host_config",
]

#: v1.50 HostConfig fields dockyard does not implement yet: accepted only when empty.
UNSUPPORTED_HOST_CONFIG_FIELDS: tuple[str, ...] = (
    "CgroupParent", "BlkioWeight", "BlkioWeightDevice",
    "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps",
    "CpuRealtimePeriod", "CpuRealtimeRuntime",
    "Devices", "DeviceCgroupRules", "DeviceRequests", "KernelMemoryTCP",
    "CpuCount", "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth",
    "VolumeDriver", "Links", "Cgroup", "StorageOpt",
)  # fmt: skip

#: Fields whose "unset" value, as the CLI sends it, is not the zero value.
_UNSET_SENTINELS: dict[str, tuple[Any, ...]] = {
    "MemorySwappiness": (-1,),
}

#: v1.50 Config fields dockyard does not implement yet: accepted only when empty.
UNSUPPORTED_CONFIG_FIELDS: tuple[str, ...] = ("NetworkDisabled", "MacAddress")

_RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")


def _is_empty(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def _check_empty(prefix: str, mapping: Mapping[str, Any], name: str) -> None:
    value = mapping.get(name)
    if not _is_empty(value) and value not in _UNSET_SENTINELS.get(name, ()):
        raise UnsupportedField(f"{prefix}.{name}")


def _check_restart_policy(host_config: Mapping[str, Any]) -> None:
    policy = host_config.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    retries = policy.get("MaximumRetryCount") or 0
    if host_config.get("AutoRemove") and name not in ("", "no"):
        raise OCIError("can't create 'AutoRemove' container with restart policy")
    if name not in ("",) + _RESTART_POLICIES:
        raise OCIError(
            f"invalid restart policy: unknown policy '{name}'; use one of "
            "'no', 'always', 'on-failure', or 'unless-stopped'"
        )
    if name in ("no", "always", "unless-stopped") and retries != 0:
        message = "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        raise OCIError(message + (" and cannot be negative" if retries < 0 else ""))
    if name == "on-failure" and retries < 0:
        raise OCIError("invalid restart policy: maximum retry count cannot be negative")


def _check_modes(host_config: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    network = host_config.get("NetworkMode") or ""
    if network == "container:" or (network.startswith("container:") and ":" in network[10:]):
        raise OCIError(f"invalid network mode: {network}")
    ipc = host_config.get("IpcMode") or ""
    if ipc in ("none", "host", "shareable") or ipc.startswith("container:"):
        raise UnsupportedField(f"HostConfig.IpcMode={ipc}")
    if ipc not in ("", "private"):
        raise OCIError(f"invalid IPC mode: {ipc}")
    pid = host_config.get("PidMode") or ""
    if pid.startswith("container:"):
        raise UnsupportedField(f"HostConfig.PidMode={pid}")
    if pid not in ("", "host"):
        raise OCIError(f"invalid PID mode: {pid}")
    uts = host_config.get("UTSMode") or ""
    if uts not in ("", "host"):
        raise OCIError(f"invalid UTS mode: {uts}")
    if uts == "host" and config.get("Hostname"):
        raise OCIError("conflicting options: hostname and the UTS mode")
    cgroupns = host_config.get("CgroupnsMode") or ""
    if cgroupns not in ("", "host", "private"):
        raise OCIError(f"invalid cgroup namespace mode: {cgroupns}")
    userns = host_config.get("UsernsMode") or ""
    if userns not in ("", "host"):
        raise UnsupportedField(f"HostConfig.UsernsMode={userns}")
    isolation = host_config.get("Isolation") or ""
    if isolation not in ("", "default"):
        raise OCIError(f"invalid isolation '{isolation}' on linux")
    runtime = host_config.get("Runtime") or ""
    if runtime not in ("", "runc", "io.containerd.runc.v2"):
        raise UnsupportedField(f"HostConfig.Runtime={runtime}")


def validate_host_config(
    host_config: Mapping[str, Any], config: Mapping[str, Any] | None = None
) -> None:
    """Check a create request's HostConfig (and its cross-checks with Config) as dockerd does.

    Returns nothing and changes nothing; raises ``OCIError`` with moby's message
    for an invalid value and ``UnsupportedField`` for a real value in a field
    dockyard does not implement.
    """
    config = config or {}
    for name in (*UNSUPPORTED_HOST_CONFIG_FIELDS, *_UNSET_SENTINELS):
        _check_empty("HostConfig", host_config, name)
    _check_restart_policy(host_config)
    _check_modes(host_config, config)

    log_config = host_config.get("LogConfig") or {}
    log_type = log_config.get("Type") or ""
    if log_type not in ("", "json-file"):
        raise UnsupportedField(f"HostConfig.LogConfig.Type={log_type}")
    # max-size/max-file are honoured (values checked by engine/log_file.py); nothing else yet.
    for key in log_config.get("Config") or {}:
        if key not in ("max-size", "max-file", "compress"):
            raise UnsupportedField(f"HostConfig.LogConfig.Config[{key}]")

    for field, value in (("CapAdd", host_config.get("CapAdd")), ("CapDrop", host_config.get("CapDrop"))):
        try:
            normalize_capabilities(value, KNOWN_CAPABILITIES)
        except OCIError as err:
            raise OCIError(f"invalid {field}: {err.message}") from None
    parse_security_opts(host_config.get("SecurityOpt"))

    user_mounts, _ = request_mounts(host_config)
    for mount in user_mounts:
        if mount.kind == "tmpfs":
            data = mount.data.split(",") if mount.data else []
            merge_tmpfs_options(["noexec", "nosuid", "nodev", DEFAULT_PROPAGATION, *data])
    build_rlimits(host_config)

    shm_size = host_config.get("ShmSize") or 0
    if shm_size < 0:
        raise OCIError("SHM size can not be less than 0")
    oom_score_adj = host_config.get("OomScoreAdj") or 0
    if oom_score_adj < -1000 or oom_score_adj > 1000:
        raise OCIError(f"Invalid value {oom_score_adj}, range for oom score adj is [-1000, 1000]")
    if "" in (host_config.get("Annotations") or {}):
        raise OCIError("invalid Annotations: the empty string is not permitted as an annotation key")


def validate_config(config: Mapping[str, Any]) -> None:
    """Check a create request's Config (moby's validateContainerConfig) and refuse what is unimplemented."""
    for name in UNSUPPORTED_CONFIG_FIELDS:
        _check_empty("Config", config, name)
    _validate_healthcheck(config.get("Healthcheck") or {})
    working_dir = config.get("WorkingDir") or ""
    if working_dir and not working_dir.startswith("/"):
        raise OCIError(
            f"the working directory '{working_dir}' is invalid, it needs to be an absolute path"
        )
    for entry in config.get("Env") or ():
        if entry.partition("=")[0] == "":
            raise OCIError("invalid environment variable: " + entry)


def _validate_healthcheck(healthcheck: Mapping[str, Any]) -> None:
    """moby's checks of a Healthcheck: durations 0 or at least 1ms, retries not negative."""
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = healthcheck.get(key) or 0
        if value != 0 and value < 1_000_000:
            raise OCIError(f"{key} in Healthcheck cannot be less than 1ms")
    if (healthcheck.get("Retries") or 0) < 0:
        raise OCIError("Retries in Healthcheck cannot be negative")


def _str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def merge_config(image_config: Mapping[str, Any] | None, config: Mapping[str, Any]) -> dict[str, Any]:
    """The container's Config as stored and inspected: the request's values over the image's.

    Follows moby's ``merge``: User, WorkingDir, StopSignal when unset; Env by
    key (the request's entries first, then the image's others); Labels,
    ExposedPorts and Volumes as unions (the request wins); Healthcheck field by
    field; Entrypoint and Cmd from the image only while the request has no
    Entrypoint (an empty-but-present Entrypoint keeps the image's out, and
    ``[""]`` — ``--entrypoint ""`` — becomes null). The request's WorkingDir
    is cleaned. Returns a new dict; raises ``OCIError("no command specified")``.
    """
    image = image_config or {}
    merged: dict[str, Any] = copy.deepcopy(dict(config))
    if merged.get("WorkingDir"):
        merged["WorkingDir"] = go_clean(merged["WorkingDir"])
    if not merged.get("User"):
        merged["User"] = image.get("User") or ""

    if not merged.get("ExposedPorts"):
        if image.get("ExposedPorts") is not None or "ExposedPorts" in merged:
            merged["ExposedPorts"] = copy.deepcopy(image.get("ExposedPorts"))
    else:
        for port, value in (image.get("ExposedPorts") or {}).items():
            merged["ExposedPorts"].setdefault(port, copy.deepcopy(value))

    if not merged.get("Env"):
        merged["Env"] = copy.deepcopy(image.get("Env"))
    else:
        keys = {entry.partition("=")[0] for entry in merged["Env"]}
        merged["Env"] = list(merged["Env"]) + [
            entry for entry in image.get("Env") or () if entry.partition("=")[0] not in keys
        ]

    labels = dict(merged.get("Labels") or {})
    for key, value in (image.get("Labels") or {}).items():
        labels.setdefault(key, value)
    merged["Labels"] = labels

    entrypoint = _str_list(merged.get("Entrypoint"))
    cmd = _str_list(merged.get("Cmd"))
    if not entrypoint:
        if not cmd:
            cmd = _str_list(image.get("Cmd"))
        if entrypoint is None:
            entrypoint = _str_list(image.get("Entrypoint"))
    if entrypoint == [""]:
        entrypoint = None
    merged["Entrypoint"], merged["Cmd"] = entrypoint, cmd

    image_health = image.get("Healthcheck")
    if image_health is not None:
        health = merged.get("Healthcheck")
        if health is None:
            merged["Healthcheck"] = copy.deepcopy(image_health)
        else:
            for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
                if not health.get(key) and image_health.get(key):
                    health[key] = copy.deepcopy(image_health[key])

    if not merged.get("WorkingDir"):
        merged["WorkingDir"] = image.get("WorkingDir") or ""
    if not merged.get("Volumes"):
        merged["Volumes"] = copy.deepcopy(image.get("Volumes"))
    else:
        merged["Volumes"].update(copy.deepcopy(image.get("Volumes") or {}))
    if not merged.get("StopSignal") and image.get("StopSignal"):
        merged["StopSignal"] = image["StopSignal"]

    if not entrypoint and not cmd:
        raise OCIError("no command specified")
    return merged


def default_hostname(
    *, config: Mapping[str, Any], host_config: Mapping[str, Any], container_id: str, host_hostname: str
) -> str:
    """``Config.Hostname`` as dockerd fills it: the request's, else the host's in host network
    mode, else the first 12 characters of the container id."""
    if config.get("Hostname"):
        return str(config["Hostname"])
    if (host_config.get("NetworkMode") or "") == "host":
        return host_hostname
    return container_id[:12]
