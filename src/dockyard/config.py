"""The daemon's configuration: dockerd's flag names and daemon.json keys.

``load_config`` merges, in dockerd's order, built-in defaults, the JSON file
named by ``--config-file`` and the command-line flags. A key given both in
the file and as a flag is refused, as dockerd refuses it. Pure: the caller
reads the file and passes its text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.engine.log_file import parse_log_options
from dockyard.errors import InvalidParameter

DEFAULT_HOST = "unix:///run/dockyard/docker.sock"
DEFAULT_DATA_ROOT = Path("/var/lib/dockyard")
DEFAULT_EXEC_ROOT = Path("/run/dockyard")
LOG_LEVELS = ("debug", "info", "warn", "error", "fatal")

# daemon.json keys dockyard understands, with the Python type each must have.
_FILE_KEYS: Mapping[str, type] = {
    "hosts": list,
    "data-root": str,
    "exec-root": str,
    "log-level": str,
    "registry-mirrors": list,
    "insecure-registries": list,
    "containerd": str,
    "log-driver": str,
    "log-opts": dict,
}


@dataclass(frozen=True, kw_only=True)
class Config:
    hosts: tuple[str, ...] = (DEFAULT_HOST,)
    data_root: Path = DEFAULT_DATA_ROOT
    exec_root: Path = DEFAULT_EXEC_ROOT
    log_level: str = "info"
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    # Address of an existing containerd; None starts an embedded one.
    containerd: str | None = None
    config_file: Path | None = None
    max_body_bytes: int = 64 << 30
    labels: tuple[str, ...] = field(default_factory=tuple)
    # Default json-file options (daemon.json ``log-opts``), as ``(key, value)`` pairs.
    log_opts: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Flags:
    """What the command line said; None where a flag was not given."""

    hosts: Sequence[str] | None = None
    data_root: str | None = None
    exec_root: str | None = None
    log_level: str | None = None
    containerd: str | None = None
    config_file: str | None = None


def parse_config_file(text: str) -> dict[str, Any]:
    """Parse daemon.json text; unknown keys and wrong types are refused."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise InvalidParameter(f"unable to configure the Docker daemon with file: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidParameter("unable to configure the Docker daemon with file: not a JSON object")
    for key, value in data.items():
        expected = _FILE_KEYS.get(key)
        if expected is None:
            raise InvalidParameter(
                f"the following directives don't match any configuration option: {key}"
            )
        strings = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        if not isinstance(value, expected) or not all(isinstance(v, str) for v in strings):
            raise InvalidParameter(f"invalid value for {key!r} in configuration file")
    return data


def load_config(flags: Flags, file_data: Mapping[str, Any] | None = None) -> Config:
    """Merge defaults, daemon.json and flags into a Config."""
    file_data = dict(file_data or {})
    conflicts = []
    pairs = {
        "hosts": flags.hosts,
        "data-root": flags.data_root,
        "exec-root": flags.exec_root,
        "log-level": flags.log_level,
        "containerd": flags.containerd,
    }
    for key, flag_value in pairs.items():
        if flag_value is not None and key in file_data:
            conflicts.append(f"{key}: (from flag: {flag_value}, from file: {file_data[key]})")
    if conflicts:
        raise InvalidParameter(
            "the following directives are specified both as a flag and in the "
            "configuration file: " + ", ".join(conflicts)
        )

    def pick(key: str, flag_value: Any) -> Any:
        return flag_value if flag_value is not None else file_data.get(key)

    hosts = pick("hosts", flags.hosts)
    log_level = pick("log-level", flags.log_level) or "info"
    if log_level not in LOG_LEVELS:
        raise InvalidParameter(f"unable to parse logging level: {log_level}")
    log_driver = file_data.get("log-driver", "json-file")
    if log_driver != "json-file":
        raise InvalidParameter(f"log driver {log_driver!r} is not supported by dockyard (only json-file)")
    parse_log_options(file_data.get("log-opts"))
    data_root = pick("data-root", flags.data_root)
    exec_root = pick("exec-root", flags.exec_root)
    return Config(
        hosts=tuple(hosts) if hosts else (DEFAULT_HOST,),
        data_root=Path(data_root).resolve() if data_root else DEFAULT_DATA_ROOT,
        exec_root=Path(exec_root).resolve() if exec_root else DEFAULT_EXEC_ROOT,
        log_level=log_level,
        registry_mirrors=tuple(file_data.get("registry-mirrors", ())),
        insecure_registries=tuple(file_data.get("insecure-registries", ())),
        containerd=pick("containerd", flags.containerd),
        config_file=Path(flags.config_file) if flags.config_file else None,
        log_opts=tuple(sorted(file_data.get("log-opts", {}).items())),
    )
