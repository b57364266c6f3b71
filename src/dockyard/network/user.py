"""User-defined bridge networks: their records, their persistence and their subnets.

A network is a JSON file ``<data_root>/network/user/<id>.json`` (it survives
restarts; the Linux bridge ``dy-<12hex>`` is made by the CNI bridge plugin at
the first attachment and removed with the network). Each belongs to the
containerd namespace of the endpoint that created it.

Subnets are machine-wide, like the bridges: a subnet in use is a file
``/run/dockyard-networks/subnets/<net>_<prefix>`` made with O_EXCL, so
endpoints and daemons side by side never hand out overlapping ones. Automatic
subnets are /24s carved from :data:`AUTO_POOL`, which avoids dockerd's
defaults and the default bridge's 10.213.0.0/16.

Raises dockyard.errors: ``Conflict`` (name taken), ``Forbidden`` (subnet
overlaps: dockerd answers 403), ``InvalidParameter`` (bad IPAM config), ``NotFound``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dockyard import errors

__all__ = ["AUTO_POOL", "SHARED_SUBNETS_DIR", "UserNetwork", "UserNetworkStore", "bridge_name"]

AUTO_POOL = "10.214.0.0/16"
SHARED_SUBNETS_DIR = Path("/run/dockyard-networks/subnets")
#: Prefix of user network bridges; 3 + 12 hex = 15, the kernel's IFNAMSIZ - 1.
BRIDGE_PREFIX = "dy-"


def bridge_name(network_id: str) -> str:
    return BRIDGE_PREFIX + network_id[:12]


@dataclass(frozen=True, kw_only=True, slots=True)
class UserNetwork:
    """One user-defined network as created."""

    id: str
    name: str
    namespace: str
    created_ns: int
    subnet: str
    gateway: str
    ip_range: str = ""
    internal: bool = False
    attachable: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return bridge_name(self.id)


def _subnet_key(subnet: str) -> str:
    return subnet.replace("/", "_")


class UserNetworkStore:
    """The user networks of every endpoint, on disk and in memory."""

    def __init__(self, directory: Path, *, subnets_dir: Path = SHARED_SUBNETS_DIR) -> None:
        self._dir = directory
        self._subnets_dir = subnets_dir
        self._networks: dict[str, UserNetwork] = {}

    def load(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._subnets_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self._dir.glob("*.json")):
            try:
                network = UserNetwork(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            self._networks[network.id] = network
            # /run is empty after a reboot: claim our subnets again.
            with contextlib.suppress(FileExistsError):
                self._claim_file(network.subnet, self._owner(network.id))

    def all(self, namespace: str) -> list[UserNetwork]:
        return sorted((n for n in self._networks.values() if n.namespace == namespace),
                      key=lambda n: n.created_ns)

    def by_id(self, network_id: str) -> UserNetwork | None:
        return self._networks.get(network_id)

    def find(self, namespace: str, ref: str) -> UserNetwork | None:
        """By full name, full id or unique id prefix; None when there is none."""
        mine = self.all(namespace)
        for network in mine:
            if ref in (network.id, network.name):
                return network
        matches = [n for n in mine if ref and n.id.startswith(ref)]
        return matches[0] if len(matches) == 1 else None

    # --- subnets -----------------------------------------------------------------------------

    def _owner(self, network_id: str) -> str:
        """A claim names the network's file, so a claim whose file is gone can be taken back."""
        return str(self._dir.resolve() / f"{network_id}.json")

    def _claim_file(self, subnet: str, owner: str) -> None:
        fd = os.open(self._subnets_dir / _subnet_key(subnet), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(owner)

    def _claimed(self) -> list[ipaddress.IPv4Network]:
        found = []
        for path in self._subnets_dir.iterdir():
            try:
                owner = path.read_text().strip()
            except OSError:
                continue
            if owner.startswith("/") and not Path(owner).exists():
                # The network's daemon root is gone (a discarded test daemon): the claim is stale.
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            with contextlib.suppress(ValueError):
                found.append(ipaddress.IPv4Network(path.name.replace("_", "/")))
        return found

    def _claim(self, subnet: ipaddress.IPv4Network | None, owner: str) -> ipaddress.IPv4Network:
        from dockyard.network.service import DEFAULT_SUBNET  # the default bridge's pool

        reserved = [ipaddress.IPv4Network(DEFAULT_SUBNET)]
        if subnet is not None:
            for other in [*reserved, *self._claimed()]:
                if subnet.overlaps(other):
                    raise errors.Forbidden("invalid pool request: Pool overlaps with other one on this address space")
            try:
                self._claim_file(str(subnet), self._owner(owner))
            except FileExistsError:
                raise errors.Forbidden("invalid pool request: Pool overlaps with other one on this address space") from None
            return subnet
        for candidate in ipaddress.IPv4Network(AUTO_POOL).subnets(new_prefix=24):
            if any(candidate.overlaps(other) for other in self._claimed()):
                continue
            try:
                self._claim_file(str(candidate), self._owner(owner))
            except FileExistsError:
                continue  # another daemon took it between the listing and the claim
            return candidate
        raise errors.SystemError("could not find an available, non-overlapping IPv4 address pool among "
                                 "the defaults to assign to the network")

    def _release(self, subnet: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._subnets_dir / _subnet_key(subnet)).unlink()

    # --- create / remove ---------------------------------------------------------------------

    def create(self, namespace: str, *, name: str, ipam_config: list[Mapping[str, Any]], internal: bool,
               attachable: bool, labels: Mapping[str, str], options: Mapping[str, str]) -> UserNetwork:
        """Record a new network; ``Conflict`` on a taken name, ``Forbidden`` on an overlapping subnet."""
        if self.find(namespace, name) is not None and any(n.name == name for n in self.all(namespace)):
            raise errors.Conflict(f"network with name {name} already exists")
        config = next((c for c in ipam_config if ":" not in str(c.get("Subnet") or "")), None) or {}
        try:
            subnet = ipaddress.IPv4Network(config["Subnet"], strict=False) if config.get("Subnet") else None
            gateway = ipaddress.IPv4Address(config["Gateway"]) if config.get("Gateway") else None
            ip_range = ipaddress.IPv4Network(config["IPRange"], strict=False) if config.get("IPRange") else None
        except ValueError as err:
            raise errors.InvalidParameter(f"invalid IPAM config: {err}") from err
        if subnet is None and (gateway is not None or ip_range is not None):
            raise errors.InvalidParameter("gateway and ip-range need a subnet")
        if subnet is not None and gateway is not None and gateway not in subnet:
            raise errors.InvalidParameter(f"invalid gateway {gateway}: not in subnet {subnet}")
        if subnet is not None and ip_range is not None and not ip_range.subnet_of(subnet):
            raise errors.InvalidParameter(f"invalid ip-range {ip_range}: not in subnet {subnet}")
        network_id = secrets.token_hex(32)
        claimed = self._claim(subnet, network_id)
        try:
            network = UserNetwork(
                id=network_id, name=name, namespace=namespace, created_ns=time.time_ns(), subnet=str(claimed),
                gateway=str(gateway or next(claimed.hosts())), ip_range=str(ip_range or ""),
                internal=internal, attachable=attachable, labels=dict(labels), options=dict(options))
            path = self._dir / f"{network_id}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(network)))
            tmp.rename(path)
        except BaseException:
            self._release(str(claimed))
            raise
        self._networks[network_id] = network
        return network

    def remove(self, network: UserNetwork) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._dir / f"{network.id}.json").unlink()
        self._networks.pop(network.id, None)
        self._release(network.subnet)
