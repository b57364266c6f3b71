"""Network wire shapes as dockerd (API 1.50) writes them (pure, no I/O).

``network_body`` is one entry of ``GET /networks`` / the body of
``GET /networks/{id}``; ``fill_network_settings`` puts a container's
endpoint into the ``NetworkSettings`` of its inspect body (and ``docker ps``
rows), including the legacy top-level fields API 1.50 still shows for the
default bridge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.network.service import BRIDGE_NAME, Attachment
from dockyard.network.user import UserNetwork

__all__ = ["NetworkInfo", "endpoint_settings", "fill_network_settings", "network_body", "user_network_body"]

_DRIVERS = {"bridge": "bridge", "host": "host", "none": "null"}


@dataclass(frozen=True, kw_only=True, slots=True)
class NetworkInfo:
    """What a network entry shows; ``subnet``/``gateway`` are empty for host and none."""

    name: str
    id: str
    created: str
    subnet: str = ""
    gateway: str = ""


def endpoint_settings(attachment: Attachment, base: Mapping[str, Any]) -> dict[str, Any]:
    """``NetworkSettings.Networks.<name>``: ``base`` (the empty shape) with the endpoint filled in."""
    out = dict(base)
    out.update({
        "MacAddress": attachment.mac_address, "NetworkID": attachment.network_id,
        "EndpointID": attachment.endpoint_id, "Gateway": attachment.gateway,
        "IPAddress": attachment.ip_address, "IPPrefixLen": attachment.prefix_len,
    })  # fmt: skip
    return out


def fill_network_settings(settings: Mapping[str, Any], attachment: Attachment) -> dict[str, Any]:
    """A container's ``NetworkSettings`` with its bridge endpoint (and the top-level copy)."""
    out = dict(settings)
    networks = dict(out.get("Networks") or {})
    networks[attachment.network] = endpoint_settings(attachment, networks.get(attachment.network) or {})
    out["Networks"] = networks
    if "SandboxKey" in out:
        out["SandboxKey"] = attachment.netns
    if "IPAddress" in out:
        out.update({
            "EndpointID": attachment.endpoint_id, "Gateway": attachment.gateway,
            "IPAddress": attachment.ip_address, "IPPrefixLen": attachment.prefix_len,
            "MacAddress": attachment.mac_address,
        })  # fmt: skip
    return out


def network_body(info: NetworkInfo, *, containers: Mapping[str, tuple[str, Attachment]] | None = None
                 ) -> dict[str, Any]:
    """A built-in network as dockerd shows it; ``containers`` maps id → (name, endpoint)."""
    driver = _DRIVERS[info.name]
    config: list[dict[str, str]] | None = None
    options: dict[str, str] = {}
    if info.name == "bridge":
        config = [{"Subnet": info.subnet, "Gateway": info.gateway}]
        options = {
            "com.docker.network.bridge.default_bridge": "true",
            "com.docker.network.bridge.enable_icc": "true",
            "com.docker.network.bridge.enable_ip_masquerade": "true",
            "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
            "com.docker.network.bridge.name": BRIDGE_NAME,
            "com.docker.network.driver.mtu": "1500",
        }
    listed = {}
    for cid, (name, attachment) in sorted((containers or {}).items()):
        listed[cid] = {
            "Name": name.lstrip("/"), "EndpointID": attachment.endpoint_id,
            "MacAddress": attachment.mac_address,
            "IPv4Address": f"{attachment.ip_address}/{attachment.prefix_len}", "IPv6Address": "",
        }  # fmt: skip
    return {
        "Name": info.name, "Id": info.id, "Created": info.created, "Scope": "local", "Driver": driver,
        "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": config},
        "Internal": False, "Attachable": False, "Ingress": False, "ConfigFrom": {"Network": ""},
        "ConfigOnly": False, "Containers": listed, "Options": options, "Labels": {},
    }  # fmt: skip


def user_network_body(network: UserNetwork, *, created: str,
                      containers: Mapping[str, tuple[str, Attachment]] | None = None) -> dict[str, Any]:
    """A user-defined bridge network as dockerd shows it; ``containers`` maps id → (name, endpoint)."""
    ipam: dict[str, str] = {"Subnet": network.subnet, "Gateway": network.gateway}
    if network.ip_range:
        ipam["IPRange"] = network.ip_range
    listed = {}
    for cid, (name, attachment) in sorted((containers or {}).items()):
        listed[cid] = {
            "Name": name.lstrip("/"), "EndpointID": attachment.endpoint_id,
            "MacAddress": attachment.mac_address,
            "IPv4Address": f"{attachment.ip_address}/{attachment.prefix_len}", "IPv6Address": "",
        }  # fmt: skip
    return {
        "Name": network.name, "Id": network.id, "Created": created, "Scope": "local", "Driver": "bridge",
        "EnableIPv4": True, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": [ipam]},
        "Internal": network.internal, "Attachable": network.attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": listed,
        "Options": dict(network.options), "Labels": dict(network.labels),
    }  # fmt: skip
