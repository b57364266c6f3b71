"""What dockyard keeps about a container, and how it is kept in containerd.

A container is one containerd container record. Its Docker definition (name,
created time, merged Config, HostConfig, image, command) is written once, at
create, into the record's extension ``EXT_DEFINITION``; its state (status,
pid, exit code, times) into extension ``EXT_STATE`` at every transition, so
``docker inspect`` after a daemon restart shows what it showed before. The
name is also a label (``LABEL_NAME``) so ``ctr`` users can see it.

Pure: values and their JSON encodings; the engine does the containerd calls.

Errors: ``CorruptRecord`` (a ``ValueError``) when a record's extensions are
not ours or do not parse; the engine skips such records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "EXT_DEFINITION",
    "EXT_STATE",
    "LABEL_NAME",
    "ZERO_TIME",
    "ContainerDefinition",
    "ContainerState",
    "CorruptRecord",
    "decode_definition",
    "decode_state",
    "encode_definition",
    "encode_state",
]

#: containerd label carrying the Docker name (with its leading slash).
LABEL_NAME = "dockyard.container.name"
#: Extension (type URL) holding the JSON definition, written once at create.
EXT_DEFINITION = "dockyard.container.v1/definition"
#: Extension holding the JSON state, rewritten at each state change.
EXT_STATE = "dockyard.container.v1/state"

#: Go's zero time as Docker prints it for "never".
ZERO_TIME = "0001-01-01T00:00:00Z"

STATUSES = frozenset({"created", "running", "paused", "restarting", "removing", "exited", "dead"})


class CorruptRecord(ValueError):
    """A containerd container record dockyard cannot read as a Docker container."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerDefinition:
    """The parts of a container fixed at create.

    ``config`` is the merged Config as inspect shows it; ``host_config`` the
    request's HostConfig (validated); ``image`` what the client asked for
    (``Config.Image``), ``image_id`` the image's ``sha256:…`` id, ``chain_id``
    the snapshot parent. ``created`` is RFC 3339 with nanoseconds,
    ``created_ns`` the same instant as an integer.
    """

    id: str
    name: str
    created: str
    created_ns: int
    config: Mapping[str, Any]
    host_config: Mapping[str, Any]
    image: str
    image_id: str
    chain_id: str
    path: str
    args: tuple[str, ...]
    log_path: str
    hostname_path: str
    hosts_path: str
    resolv_conf_path: str
    driver: str = "overlayfs"
    platform: str = "linux"

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    @property
    def auto_remove(self) -> bool:
        return bool(self.host_config.get("AutoRemove"))


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerState:
    """moby's ``container.State`` fields that inspect shows (``Status`` in ``STATUSES``)."""

    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    restart_count: int = 0
    oom_killed: bool = False
    #: Has the container ever been started (moby's ``HasBeenStartedBefore``)?
    started_before: bool = False
    #: When it last exited, in ns since the epoch (0: never), for ``Exited (N) x ago``.
    finished_ns: int = 0
    started_ns: int = 0
    #: Stopped or killed by a user (moby's ``HasBeenManuallyStopped``): restart policies hold off.
    manually_stopped: bool = False

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    def evolve(self, **changes: Any) -> ContainerState:
        return replace(self, **changes)


_DEFINITION_FIELDS = tuple(ContainerDefinition.__dataclass_fields__)
_STATE_FIELDS = tuple(ContainerState.__dataclass_fields__)


def encode_definition(definition: ContainerDefinition) -> bytes:
    data = asdict(definition)
    data["config"] = dict(definition.config)
    data["host_config"] = dict(definition.host_config)
    data["args"] = list(definition.args)
    return json.dumps(data, separators=(",", ":")).encode()


def decode_definition(raw: bytes) -> ContainerDefinition:
    try:
        data = json.loads(raw)
        values = {key: data[key] for key in _DEFINITION_FIELDS if key in data}
        values["args"] = tuple(values.get("args") or ())
        return ContainerDefinition(**values)
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptRecord(f"unreadable container definition: {exc}") from exc


def encode_state(state: ContainerState) -> bytes:
    return json.dumps(asdict(state), separators=(",", ":")).encode()


def decode_state(raw: bytes | None) -> ContainerState:
    if not raw:
        return ContainerState()
    try:
        data = json.loads(raw)
        return ContainerState(**{key: data[key] for key in _STATE_FIELDS if key in data})
    except (ValueError, TypeError) as exc:
        raise CorruptRecord(f"unreadable container state: {exc}") from exc


@dataclass(frozen=True, kw_only=True, slots=True)
class StoredRecord:
    """A definition and state read back from a containerd record."""

    definition: ContainerDefinition
    state: ContainerState = field(default_factory=ContainerState)


def from_extensions(extensions: Mapping[str, bytes]) -> StoredRecord:
    """Read a container record's extensions; ``CorruptRecord`` if it is not ours."""
    raw = extensions.get(EXT_DEFINITION)
    if raw is None:
        raise CorruptRecord("not a dockyard container")
    return StoredRecord(definition=decode_definition(raw), state=decode_state(extensions.get(EXT_STATE)))
