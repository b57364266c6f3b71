"""Published ports: the request's PortBindings as values, and their wire views (pure).

``requested_ports`` turns ``HostConfig.PortBindings`` / ``PublishAllPorts``
and ``Config.ExposedPorts`` into ``PortRequest`` values (host port 0: pick
one); ``settings_ports`` and ``ps_ports`` render what was bound as
``NetworkSettings.Ports`` and ``docker ps``'s ``Ports`` the way dockerd does.

Raises ``PortError`` (an ``InvalidParameter``) for a malformed binding.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard import errors

__all__ = ["BoundPort", "PortError", "PortRequest", "ps_ports", "requested_ports", "settings_ports"]


class PortError(errors.InvalidParameter):
    """A PortBindings entry that cannot be published."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PortRequest:
    """One binding to make: ``host_port`` 0 asks for a free port."""

    container_port: int
    protocol: str
    host_ip: str
    host_port: int


@dataclass(frozen=True, kw_only=True, slots=True)
class BoundPort:
    """A binding that was made."""

    container_port: int
    protocol: str
    host_ip: str
    host_port: int


def _split(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise PortError(f"invalid proto '{proto}'")
    try:
        number = int(port)
    except ValueError:
        raise PortError(f"invalid port '{port}'") from None
    if not 0 < number < 65536:
        raise PortError(f"invalid port '{port}'")
    return number, proto


def requested_ports(config: Mapping[str, Any], host_config: Mapping[str, Any]) -> list[PortRequest]:
    """What to publish, sorted by container port: PortBindings, plus every exposed
    port with ``PublishAllPorts``. An empty ``HostIp`` is 0.0.0.0 (IPv4 only here)."""
    bindings: dict[str, list[Mapping[str, Any]]] = {
        key: list(value or [{}]) for key, value in (host_config.get("PortBindings") or {}).items()}
    if host_config.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            bindings.setdefault(key, [{}])
    out = []
    for key, entries in bindings.items():
        port, proto = _split(key)
        if proto == "sctp":
            raise PortError("sctp ports cannot be published by dockyard")
        for entry in entries:
            host_ip = (entry or {}).get("HostIp") or "0.0.0.0"
            try:
                if ipaddress.ip_address(host_ip).version != 4:
                    raise PortError(f"IPv6 host address {host_ip} cannot be published by dockyard")
            except ValueError:
                raise PortError(f"invalid host IP address: {host_ip}") from None
            text = str((entry or {}).get("HostPort") or "")
            first, _, last = text.partition("-")
            try:
                host_port = int(first) if first else 0
            except ValueError:
                raise PortError(f"invalid hostPort: {text}") from None
            if last and last != first:
                raise PortError(f"host port ranges ({text}) cannot be published by dockyard")
            if not 0 <= host_port < 65536:
                raise PortError(f"invalid hostPort: {text}")
            out.append(PortRequest(container_port=port, protocol=proto, host_ip=host_ip, host_port=host_port))
    return sorted(out, key=lambda r: (r.container_port, r.protocol, r.host_ip))


def _exposed(config: Mapping[str, Any], bound: Sequence[BoundPort]) -> list[str]:
    keys = set(config.get("ExposedPorts") or {}) | {f"{b.container_port}/{b.protocol}" for b in bound}
    return sorted(keys, key=lambda k: (int(k.partition("/")[0]), k))


def settings_ports(config: Mapping[str, Any], bound: Sequence[BoundPort]) -> dict[str, Any]:
    """``NetworkSettings.Ports``: each exposed port → its host bindings, or null."""
    out: dict[str, Any] = {}
    for key in _exposed(config, bound):
        port, _, proto = key.partition("/")
        hits = [{"HostIp": b.host_ip, "HostPort": str(b.host_port)} for b in bound
                if str(b.container_port) == port and b.protocol == (proto or "tcp")]
        out[key] = hits or None
    return out


def ps_ports(config: Mapping[str, Any], bound: Sequence[BoundPort]) -> list[dict[str, Any]]:
    """``docker ps``'s ``Ports``: one entry per binding, bare entries for unpublished exposed ports."""
    out: list[dict[str, Any]] = []
    for key in _exposed(config, bound):
        port, _, proto = key.partition("/")
        hits = [b for b in bound if str(b.container_port) == port and b.protocol == (proto or "tcp")]
        if not hits:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
        for b in hits:
            out.append({"IP": b.host_ip, "PrivatePort": b.container_port, "PublicPort": b.host_port,
                        "Type": b.protocol})
    return out
