"""How a container looks on the wire: ``docker inspect`` and ``docker ps`` (API 1.50).

Pure: a definition, a state and the current time in; JSON-able dicts out.
Field order follows moby's Go structs (``container.InspectResponse``,
``container.Summary``), since clients that print raw JSON show that order.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from dockyard.engine.container_store import ZERO_TIME, ContainerDefinition, ContainerState
from dockyard.errors import InvalidParameter, NotFound
from dockyard.wire.duration import human_duration_ns
from dockyard.wire.filters import Filters

__all__ = ["PS_FILTERS", "command_text", "inspect_body", "network_name", "ps_row", "select_rows", "status_text"]

PS_FILTERS = frozenset({"ancestor", "before", "expose", "exited", "health", "id", "isolation",
                        "is-task", "label", "name", "network", "publish", "since", "status", "volume"})
PS_STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")

#: HostConfig as dockerd fills it for a plain ``docker create``; the request's values go on top.
_HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "bridge", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "host", "Dns": [], "DnsOptions": [],
    "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
    "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
    "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864,
    "Runtime": "runc", "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
    "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": None, "PidsLimit": None,
    "Ulimits": [], "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    "MaskedPaths": None, "ReadonlyPaths": None,
}  # fmt: skip

_CONFIG_ORDER = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr", "ExposedPorts",
    "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Image", "Volumes",
    "WorkingDir", "Entrypoint", "NetworkDisabled", "MacAddress", "OnBuild", "Labels", "StopSignal",
    "StopTimeout", "Shell",
)  # fmt: skip
_CONFIG_OMITEMPTY = frozenset(
    {"ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress", "StopSignal",
     "StopTimeout", "Shell"}
)  # fmt: skip
_CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": {},
}  # fmt: skip


def network_name(host_config: Mapping[str, Any]) -> str:
    """The network a container is on, as inspect names it (``default`` is ``bridge``)."""
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode == "default" else mode


def _host_config(host_config: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(_HOST_CONFIG_DEFAULTS)
    for key, value in host_config.items():
        if key in out and value is None and out[key] not in (None, [], {}):
            continue  # keep dockerd's filled-in default (e.g. ShmSize, LogConfig)
        out[key] = copy.deepcopy(value)
    if not (out.get("LogConfig") or {}).get("Type"):
        out["LogConfig"] = {"Type": "json-file", "Config": {}}
    if not (out.get("RestartPolicy") or {}).get("Name"):
        out["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    for key in ("Dns", "DnsOptions", "DnsSearch"):
        out[key] = out.get(key) or []
    out["ShmSize"] = out.get("ShmSize") or 67108864
    out["NetworkMode"] = out.get("NetworkMode") or "bridge"
    return out


def _config(config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in _CONFIG_ORDER:
        value = config.get(key, _CONFIG_DEFAULTS.get(key))
        if key in _CONFIG_OMITEMPTY and value in (None, "", 0, False, [], {}):
            continue
        out[key] = copy.deepcopy(value)
    return out


def _state(state: ContainerState) -> dict[str, Any]:
    return {
        "Status": state.status,
        "Running": state.status in ("running", "paused", "restarting"),
        "Paused": state.status == "paused",
        "Restarting": state.status == "restarting",
        "OOMKilled": state.oom_killed,
        "Dead": state.status == "dead",
        "Pid": state.pid,
        "ExitCode": state.exit_code,
        "Error": state.error,
        "StartedAt": state.started_at,
        "FinishedAt": state.finished_at,
    }


def _mounts(host_config: Mapping[str, Any]) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = []
    for bind in host_config.get("Binds") or ():
        parts = bind.split(":")
        if len(parts) < 2 or not parts[0].startswith("/"):
            continue  # a volume: the container service adds it, resolved (engine/volumes.py)
        source, destination = parts[0], parts[1] if len(parts) > 1 else parts[0]
        mode = parts[2] if len(parts) > 2 else ""
        options = mode.split(",") if mode else []
        propagation = next((o for o in options if o in ("shared", "slave", "private", "rshared",
                                                          "rslave", "rprivate")), "rprivate")
        mounts.append({"Type": "bind", "Source": source, "Destination": destination, "Mode": mode,
                       "RW": "ro" not in options, "Propagation": propagation})
    for mount in host_config.get("Mounts") or ():
        kind = mount.get("Type") or ""
        if kind == "volume":
            continue
        entry: dict[str, Any] = {"Type": kind, "Source": mount.get("Source") or "",
                                 "Destination": mount.get("Target") or "", "Mode": "",
                                 "RW": not mount.get("ReadOnly"),
                                 "Propagation": ((mount.get("BindOptions") or {}).get("Propagation")
                                                 or ("rprivate" if kind == "bind" else ""))}
        mounts.append(entry)
    return mounts


def _network_settings(host_config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": {},
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "MacAddress": "",
        "Networks": {network_name(host_config): _endpoint_settings()},
    }


def _endpoint_settings() -> dict[str, Any]:
    return {
        "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
        "GwPriority": 0, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }  # fmt: skip


def inspect_body(definition: ContainerDefinition, state: ContainerState) -> dict[str, Any]:
    """``GET /containers/{id}/json``."""
    return {
        "Id": definition.id,
        "Created": definition.created,
        "Path": definition.path,
        "Args": list(definition.args),
        "State": _state(state),
        "Image": definition.image_id,
        "ResolvConfPath": definition.resolv_conf_path,
        "HostnamePath": definition.hostname_path,
        "HostsPath": definition.hosts_path,
        "LogPath": definition.log_path,
        "Name": definition.name,
        "RestartCount": state.restart_count,
        "Driver": definition.driver,
        "Platform": definition.platform,
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _host_config(definition.host_config),
        "GraphDriver": {"Data": None, "Name": definition.driver},
        "Mounts": _mounts(definition.host_config),
        "Config": _config(definition.config),
        "NetworkSettings": _network_settings(definition.host_config),
    }


def command_text(definition: ContainerDefinition) -> str:
    """``docker ps``'s COMMAND: the path, then the args joined by spaces."""
    return " ".join([definition.path, *definition.args]) if definition.args else definition.path


def status_text(state: ContainerState, now_ns: int) -> str:
    """moby's ``State.String()``: ``Up 3 seconds``, ``Exited (0) 2 seconds ago``, ``Created``…"""
    if state.status == "running":
        return "Up " + human_duration_ns(max(0, now_ns - state.started_ns))
    if state.status == "paused":
        return "Up " + human_duration_ns(max(0, now_ns - state.started_ns)) + " (Paused)"
    if state.status == "restarting":
        return f"Restarting ({state.exit_code}) {human_duration_ns(max(0, now_ns - state.finished_ns))} ago"
    if state.status == "removing":
        return "Removal In Progress"
    if state.status == "dead":
        return "Dead"
    if state.started_at == ZERO_TIME:
        return "Created"
    if state.finished_at == ZERO_TIME:
        return ""
    return f"Exited ({state.exit_code}) {human_duration_ns(max(0, now_ns - state.finished_ns))} ago"


def ps_row(definition: ContainerDefinition, state: ContainerState, now_ns: int) -> dict[str, Any]:
    """One entry of ``GET /containers/json``."""
    return {
        "Id": definition.id,
        "Names": [definition.name],
        "Image": definition.image or definition.image_id,
        "ImageID": definition.image_id,
        "Command": command_text(definition),
        "Created": definition.created_ns // 1_000_000_000,
        "Ports": [],
        "Labels": dict(definition.config.get("Labels") or {}),
        "State": state.status,
        "Status": status_text(state, now_ns),
        "HostConfig": {"NetworkMode": definition.host_config.get("NetworkMode") or "bridge"},
        "NetworkSettings": {"Networks": {network_name(definition.host_config): _endpoint_settings()}},
        "Mounts": _mounts(definition.host_config),
    }


def _resolve_container(entries: Sequence[tuple[ContainerDefinition, ContainerState]], filters: Filters,
                       key: str) -> str | None:
    """The id a ``before``/``since`` value names (id, name or unique id prefix), as moby's GetContainer."""
    found = None
    for ref in sorted(filters.get(key)):
        by_name = [d.id for d, _ in entries if d.name == (ref if ref.startswith("/") else "/" + ref)]
        exact = [d.id for d, _ in entries if d.id == ref] or by_name
        prefixed = [d.id for d, _ in entries if d.id.startswith(ref)] if ref else []
        if exact:
            found = exact[0]
        elif len(prefixed) == 1:
            found = prefixed[0]
        elif prefixed:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        else:
            raise NotFound(f"No such container: {ref}")
    return found


def select_rows(
    entries: Sequence[tuple[ContainerDefinition, ContainerState]], *, all: bool, limit: int,
    filters: Filters, ancestor_ids: set[str], now_ns: int,
) -> list[dict[str, Any]]:
    """``docker ps``: newest first; stopped ones only with ``all``/``limit``/a state filter
    (moby's ``includeContainerInList``). ``ancestor_ids``: image ids the ancestor filter names."""
    filters.validate(PS_FILTERS)
    for status in filters.get("status"):
        if status not in PS_STATUSES:
            raise InvalidParameter(f"invalid filter 'status={status}'")
    exited = set()
    for text in filters.get("exited"):
        try:
            exited.add(int(text))
        except ValueError:
            raise InvalidParameter(f"invalid filter 'exited={text}'") from None
    before_id = _resolve_container(entries, filters, "before")
    since_id = _resolve_container(entries, filters, "since")
    rows = []
    for d, s in sorted(entries, key=lambda e: e[0].created_ns, reverse=True):
        # moby walks newest first: skip down to ``before`` (itself excluded), stop at ``since``.
        if since_id is not None and d.id == since_id:
            break
        if before_id:
            if d.id == before_id:
                before_id = ""  # older ones follow
            continue
        if not all and limit <= 0 and not s.running and not filters.contains("status") \
                and not filters.contains("exited") and not filters.contains("before") \
                and not filters.contains("since"):
            continue
        if filters.contains("id") and not filters.match("id", d.id):
            continue
        if filters.contains("name") and not filters.match("name", d.name.lstrip("/")):
            continue
        if filters.contains("label") and not filters.match_label(d.config.get("Labels") or {}):
            continue
        if filters.contains("status") and s.status not in filters.get("status"):
            continue
        if exited and (s.status != "exited" or s.exit_code not in exited):
            continue
        if filters.contains("ancestor") and d.image_id not in ancestor_ids \
                and d.image not in filters.get("ancestor"):
            continue
        rows.append(ps_row(d, s, now_ns))
        if 0 < limit <= len(rows):
            break
    return rows
