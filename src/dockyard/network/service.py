"""Container networking on the CNI plugins: the default ``bridge`` network.

Each container on the bridge gets its own named network namespace at
``<exec_root>/netns/<id>`` (its path goes into the OCI spec, so runc joins
it), a veth on dockyard's own bridge ``dockyard0`` (never dockerd's
``docker0``) from the ``bridge`` plugin, an address from ``host-local``
(state under :data:`SHARED_IPAM_DIR`), outbound NAT (``ipMasq``), and
``lo`` brought up by the ``loopback`` plugin (runc does that only for
namespaces it creates itself).

What an attachment got is kept in memory and in ``<exec_root>/network/<id>.json``
(exec-root state ends with the namespaces at reboot), so a restarted daemon
still reports and tears down what the previous one set up. Detaching is
idempotent and stateless towards the plugins: DEL with the same config.

Raises only dockyard.errors: SystemError subclasses from ``cni`` / ``netns``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.network import cni, netns
from dockyard.network.ports import BoundPort, PortRequest
from dockyard.network.proxy import PortPublisher

__all__ = ["Attachment", "BRIDGE_NAME", "BUILTIN_NETWORKS", "DEFAULT_SUBNET", "NetworkService", "bridge_mode"]

log = logging.getLogger(__name__)

BRIDGE_NAME = "dockyard0"
#: Outside dockerd's defaults (172.17/16, the 172.18–31 and 192.168 pools).
DEFAULT_SUBNET = "10.213.0.0/16"
CONTAINER_IFNAME = "eth0"
#: The networks every daemon has, in ``docker network ls`` order of creation.
BUILTIN_NETWORKS = ("bridge", "host", "none")


def bridge_mode(host_config: Mapping[str, Any]) -> bool:
    """True when the container joins the default bridge network (``default``/``bridge``)."""
    return (host_config.get("NetworkMode") or "default") in ("default", "bridge")


@dataclass(frozen=True, kw_only=True, slots=True)
class Attachment:
    """One container's endpoint on a network, as inspect reports it."""

    network: str
    network_id: str
    endpoint_id: str
    ip_address: str
    prefix_len: int
    gateway: str
    mac_address: str
    netns: str
    ports: tuple[BoundPort, ...] = ()

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ports": [asdict(p) for p in self.ports]})

    @classmethod
    def from_json(cls, text: str) -> Attachment:
        fields = json.loads(text)
        fields["ports"] = tuple(BoundPort(**p) for p in fields.get("ports") or ())
        return cls(**fields)


#: The bridge and its subnet belong to the machine, not to one daemon, so the
#: address leases do too: ``host-local`` locks this directory, so daemons running
#: side by side (tests, benchmarks, job endpoints) never hand out one address
#: twice. Under /run, leases end with the namespaces at reboot.
SHARED_IPAM_DIR = Path("/run/dockyard-networks/ipam")


class NetworkService:
    """Attaches containers to the default bridge network and detaches them."""

    def __init__(self, *, data_root: Path, exec_root: Path, subnet: str = DEFAULT_SUBNET,
                 cni_path: str = cni.DEFAULT_CNI_PATH) -> None:
        self._netns_dir = exec_root / "netns"
        self._state_dir = exec_root / "network"
        self._data_dir = data_root / "network"
        self._ipam_dir = SHARED_IPAM_DIR
        self._cni_path = cni_path
        net = ipaddress.ip_network(subnet)
        self._subnet = str(net)
        self._gateway = str(next(net.hosts()))
        self._attachments: dict[str, Attachment] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._ports = PortPublisher()
        self.bridge_id = ""
        #: The built-in networks' ids and creation times (ns), stable across restarts.
        self.builtin_ids: dict[str, str] = {}
        self.builtin_created_ns: dict[str, int] = {}

    async def start(self) -> None:
        for directory in (self._netns_dir, self._state_dir, self._data_dir, self._ipam_dir):
            directory.mkdir(parents=True, exist_ok=True)
        for name in BUILTIN_NETWORKS:
            id_file = self._data_dir / f"{name}.id"
            if not id_file.exists():
                id_file.write_text(secrets.token_hex(32))
            self.builtin_ids[name] = id_file.read_text().strip()
            self.builtin_created_ns[name] = id_file.stat().st_mtime_ns
        self.bridge_id = self.builtin_ids["bridge"]

    async def close(self) -> None:
        """Close the port proxies; namespaces and addresses outlive the daemon with their containers."""
        await self._ports.close()

    async def __aenter__(self) -> NetworkService:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- paths and configuration ---------------------------------------------------------

    @property
    def subnet(self) -> str:
        return self._subnet

    @property
    def gateway(self) -> str:
        return self._gateway

    def netns_path(self, container_id: str) -> Path:
        """Where the container's network namespace is bound (for the OCI spec)."""
        return self._netns_dir / container_id

    def bridge_config(self) -> dict[str, Any]:
        """The CNI network configuration list of the default bridge network."""
        return {
            "cniVersion": cni.CNI_VERSION,
            "name": "bridge",
            "plugins": [{
                "type": "bridge", "bridge": BRIDGE_NAME, "isGateway": True, "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local", "dataDir": str(self._ipam_dir),
                    "ranges": [[{"subnet": self._subnet, "gateway": self._gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            }],
        }

    @staticmethod
    def _loopback_config() -> dict[str, Any]:
        return {"cniVersion": cni.CNI_VERSION, "name": "loopback", "type": "loopback"}

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _state_file(self, container_id: str) -> Path:
        return self._state_dir / f"{container_id}.json"

    # --- attach / detach -----------------------------------------------------------------

    def attachment(self, container_id: str) -> Attachment | None:
        """The container's current bridge endpoint, or None when it has none."""
        found = self._attachments.get(container_id)
        if found is None:
            with contextlib.suppress(OSError, ValueError, TypeError):
                found = Attachment.from_json(self._state_file(container_id).read_text())
                self._attachments[container_id] = found
        return found

    def attachments(self) -> list[Attachment]:
        """Every container endpoint on the bridge (all endpoints of the daemon)."""
        found = []
        for state in sorted(self._state_dir.glob("*.json")):
            attachment = self.attachment(state.stem)
            if attachment is not None:
                found.append(attachment)
        return found

    async def attach(self, container_id: str, ports: Sequence[PortRequest] = ()) -> Attachment:
        """Make the namespace, run CNI ADD and publish ``ports`` (idempotent: an
        attached container keeps its endpoint). On failure nothing of it is left.
        A busy host port raises ``PortAllocated`` / ``PortBindError``."""
        async with self._lock(container_id):
            existing = self.attachment(container_id)
            path = self.netns_path(container_id)
            if existing is not None and netns.is_mounted(path):
                return existing
            await self._teardown(container_id)
            await netns.create(path)
            where = cni.Invocation(container_id=container_id, netns=str(path), ifname=CONTAINER_IFNAME,
                                   cni_path=self._cni_path)
            try:
                await cni.invoke("ADD", self._loopback_config(), cni.Invocation(
                    container_id=container_id, netns=str(path), ifname="lo", cni_path=self._cni_path))
                result = await cni.add_list(self.bridge_config(), where)
                found = self._from_result(container_id, str(path), result)
                if ports:
                    bound = await self._ports.publish(container_id, ports, found.ip_address)
                    found = replace(found, ports=tuple(bound))
                self._state_file(container_id).write_text(found.to_json())
            except BaseException:
                await self._teardown(container_id)
                raise
            self._attachments[container_id] = found
            return found

    def _from_result(self, container_id: str, path: str, result: Mapping[str, Any]) -> Attachment:
        interfaces = result.get("interfaces") or []
        ips = [ip for ip in result.get("ips") or [] if ":" not in str(ip.get("address", ""))]
        if not ips:
            raise cni.CniError("the bridge plugin returned no IPv4 address")
        ip = ips[0]
        mac = ""
        index = ip.get("interface")
        if isinstance(index, int) and 0 <= index < len(interfaces):
            mac = interfaces[index].get("mac", "")
        else:
            mac = next((i.get("mac", "") for i in interfaces if i.get("sandbox")), "")
        interface = ipaddress.ip_interface(ip["address"])
        return Attachment(
            network="bridge", network_id=self.bridge_id, endpoint_id=secrets.token_hex(32),
            ip_address=str(interface.ip), prefix_len=interface.network.prefixlen,
            gateway=str(ip.get("gateway") or self._gateway), mac_address=mac, netns=path)

    async def detach(self, container_id: str) -> None:
        """CNI DEL, unmount and remove the namespace, forget the endpoint (idempotent)."""
        async with self._lock(container_id):
            await self._teardown(container_id)
        self._locks.pop(container_id, None)

    async def _teardown(self, container_id: str) -> None:
        await self._ports.unpublish(container_id)
        path = self.netns_path(container_id)
        state = self._state_file(container_id)
        if path.exists() or state.exists() or container_id in self._attachments:
            # DEL even without a namespace: host-local and ipMasq state are keyed by id.
            where = cni.Invocation(container_id=container_id,
                                   netns=str(path) if netns.is_mounted(path) else "",
                                   ifname=CONTAINER_IFNAME, cni_path=self._cni_path)
            try:
                await cni.delete_list(self.bridge_config(), where)
            except errors.DockyardError:
                log.warning("CNI DEL of container %s failed", container_id, exc_info=True)
            await netns.delete(path)
        self._attachments.pop(container_id, None)
        with contextlib.suppress(FileNotFoundError):
            state.unlink()
