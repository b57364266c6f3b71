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
still reports and tears down what the previous one set up, and publishes the
ports of the containers it adopts again (:meth:`NetworkService.restore_ports`). Detaching is
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
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.network import cni, netns
from dockyard.network.dns import DNS_ADDRESS, EmbeddedDns
from dockyard.network.ports import BoundPort, PortRequest
from dockyard.network.proxy import PortPublisher
from dockyard.network.user import UserNetwork, UserNetworkStore

__all__ = ["Attachment", "BRIDGE_NAME", "BUILTIN_NETWORKS", "DEFAULT_SUBNET", "NetworkService", "bridge_mode"]

log = logging.getLogger(__name__)

BRIDGE_NAME = "dockyard0"
#: Outside dockerd's defaults (172.17/16, the 172.18–31 and 192.168 pools).
DEFAULT_SUBNET = "10.213.0.0/16"
CONTAINER_IFNAME = "eth0"
#: The networks every daemon has, in ``docker network ls`` order of creation.
BUILTIN_NETWORKS = ("bridge", "host", "none")


def bridge_mode(host_config: Mapping[str, Any]) -> bool:
    """True when the container gets a namespace of its own from this service: the default
    bridge (``default``/``bridge``) or a user network (any other name)."""
    mode = host_config.get("NetworkMode") or "default"
    return mode not in ("host", "none") and not mode.startswith("container:")


def joined_container(host_config: Mapping[str, Any]) -> str | None:
    """NAME of ``container:NAME``, else None."""
    mode = host_config.get("NetworkMode") or ""
    return mode.split(":", 1)[1] if mode.startswith("container:") else None


@dataclass(frozen=True, kw_only=True, slots=True)
class EndpointRequest:
    """What a container asked of its network at create: kept until it is removed."""

    namespace: str
    network: str
    network_id: str
    name: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str = ""


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
    #: Container name (without /) and aliases, as the embedded DNS answers them.
    name: str = ""
    aliases: tuple[str, ...] = ()
    ifname: str = CONTAINER_IFNAME

    @property
    def container_id(self) -> str:
        return self.netns.rsplit("/", 1)[-1]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "ports": [asdict(p) for p in self.ports]})

    @classmethod
    def from_json(cls, text: str) -> Attachment:
        fields = json.loads(text)
        fields["ports"] = tuple(BoundPort(**p) for p in fields.get("ports") or ())
        fields["aliases"] = tuple(fields.get("aliases") or ())
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
        self._endpoints_dir = self._data_dir / "endpoints"
        #: Networks joined by ``connect`` (beyond NetworkMode's), requests and live endpoints.
        self._extra_requests_dir = self._data_dir / "endpoints-extra"
        self._extra_state_dir = self._state_dir / "extra"
        self.user = UserNetworkStore(self._data_dir / "user")
        self.dns = EmbeddedDns(self.resolve)
        self.bridge_id = ""
        #: The built-in networks' ids and creation times (ns), stable across restarts.
        self.builtin_ids: dict[str, str] = {}
        self.builtin_created_ns: dict[str, int] = {}
        #: Created containers taken off their NetworkMode network by a disconnect, until a connect
        #: puts them back (compose does both in a row to set the aliases); kept in memory only.
        self._primary_detached: set[str] = set()

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
        for directory in (self._endpoints_dir, self._extra_requests_dir, self._extra_state_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.user.load()
        # Running containers on user networks keep their resolver across a daemon restart.
        for attachment in self.attachments():
            if attachment.network_id != self.bridge_id and netns.is_mounted(Path(attachment.netns)):
                try:
                    await self.dns.serve(attachment.container_id, Path(attachment.netns))
                except errors.DockyardError:
                    log.warning("no embedded DNS for %s", attachment.container_id, exc_info=True)

    async def close(self) -> None:
        """Close the port proxies and DNS listeners; namespaces and addresses outlive the
        daemon with their containers."""
        await self.dns.close()
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

    def bridge_config(self, network: UserNetwork | None = None, *, fixed: bool = False) -> dict[str, Any]:
        """The CNI network configuration list of the default bridge, or of a user ``network``."""
        if network is None:
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
        subnet = ipaddress.IPv4Network(network.subnet)
        span: dict[str, str] = {"subnet": network.subnet, "gateway": network.gateway}
        # host-local hands a fixed address only from its range; docker takes any of the subnet.
        if network.ip_range and not fixed:
            pool = ipaddress.IPv4Network(network.ip_range)
            span["rangeStart"] = str(max(pool[0], subnet[1]))
            span["rangeEnd"] = str(min(pool[-1], subnet[-2]))
        return {
            "cniVersion": cni.CNI_VERSION,
            # host-local keeps leases under dataDir/<name>: one directory per network.
            "name": network.bridge,
            "plugins": [{
                "type": "bridge", "bridge": network.bridge, "isGateway": True,
                # --internal: no NAT and no default route, so nothing leaves the machine.
                "ipMasq": not network.internal, "hairpinMode": True,
                "capabilities": {"ips": True},
                "ipam": {
                    "type": "host-local", "dataDir": str(self._ipam_dir), "ranges": [[span]],
                    "routes": [] if network.internal else [{"dst": "0.0.0.0/0"}],
                },
            }],
        }

    def _network_by_id(self, network_id: str) -> UserNetwork | None:
        return self.user.by_id(network_id)

    # --- endpoint requests (kept from create to remove) -----------------------------------

    def _request_file(self, container_id: str) -> Path:
        return self._endpoints_dir / f"{container_id}.json"

    def prepare(self, namespace: str, container_id: str, name: str, host_config: Mapping[str, Any],
                networking_config: Mapping[str, Any] | None) -> None:
        """Check the container's network exists and keep its aliases and fixed address.
        Raises ``NotFound`` for an unknown network, ``InvalidParameter`` for a bad address."""
        if not bridge_mode(host_config):
            return
        mode = host_config.get("NetworkMode") or "default"
        endpoints = (networking_config or {}).get("EndpointsConfig") or {}
        settings = endpoints.get(mode) or {}
        if mode in ("default", "bridge"):
            if settings.get("Aliases"):
                raise errors.InvalidParameter("network-scoped alias is supported only for containers in user defined networks")
            return
        network = self.user.find(namespace, mode)
        if network is None:
            raise errors.NotFound(f"network {mode} not found")
        settings = settings or endpoints.get(network.name) or endpoints.get(network.id) or {}
        address = str(((settings.get("IPAMConfig") or {}).get("IPv4Address")) or "")
        if address:
            try:
                if ipaddress.IPv4Address(address) not in ipaddress.IPv4Network(network.subnet):
                    raise errors.InvalidParameter(f"no configured subnet contains IP address {address}")
            except ValueError as err:
                raise errors.InvalidParameter(f"invalid IPv4 address: {address}") from err
        request = EndpointRequest(namespace=namespace, network=network.name, network_id=network.id,
                                  name=name.lstrip("/"), aliases=tuple(settings.get("Aliases") or ()),
                                  ipv4_address=address)
        self._request_file(container_id).write_text(json.dumps(asdict(request)))

    def request(self, container_id: str) -> EndpointRequest | None:
        try:
            fields = json.loads(self._request_file(container_id).read_text())
            fields["aliases"] = tuple(fields.get("aliases") or ())
            return EndpointRequest(**fields)
        except (OSError, ValueError, TypeError):
            return None

    def forget(self, container_id: str) -> None:
        """The container is removed: drop its endpoint request."""
        self._primary_detached.discard(container_id)
        for path in (self._request_file(container_id), self._extra_requests_dir / f"{container_id}.json"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def users_of(self, network_id: str) -> list[str]:
        """Ids of the containers (created or running) that asked for ``network_id``."""
        found = []
        for path in sorted(self._endpoints_dir.glob("*.json")):
            request = self.request(path.stem)
            if request is not None and request.network_id == network_id:
                found.append(path.stem)
        for path in sorted(self._extra_requests_dir.glob("*.json")):
            if any(r.network_id == network_id for r in self.extra_requests(path.stem)):
                found.append(path.stem)
        return found

    # --- connect / disconnect: networks beyond the first ---------------------------------------

    def extra_requests(self, container_id: str) -> list[EndpointRequest]:
        try:
            listed = json.loads((self._extra_requests_dir / f"{container_id}.json").read_text())
            return [EndpointRequest(**{**f, "aliases": tuple(f.get("aliases") or ())}) for f in listed]
        except (OSError, ValueError, TypeError):
            return []

    def _write_extra_requests(self, container_id: str, requests: Sequence[EndpointRequest]) -> None:
        path = self._extra_requests_dir / f"{container_id}.json"
        if requests:
            path.write_text(json.dumps([asdict(r) for r in requests]))
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def extra_attachments(self, container_id: str) -> list[Attachment]:
        try:
            text = (self._extra_state_dir / f"{container_id}.json").read_text()
            return [Attachment.from_json(json.dumps(f)) for f in json.loads(text)]
        except (OSError, ValueError, TypeError):
            return []

    def _write_extra_attachments(self, container_id: str, attachments: Sequence[Attachment]) -> None:
        path = self._extra_state_dir / f"{container_id}.json"
        if attachments:
            path.write_text(json.dumps([json.loads(a.to_json()) for a in attachments]))
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def connected_networks(self, container_id: str) -> set[str]:
        """Ids of every network the container asked for (NetworkMode's and connected ones)."""
        primary = self.request(container_id)
        ids = {r.network_id for r in self.extra_requests(container_id)}
        if primary is not None and container_id not in self._primary_detached:
            ids.add(primary.network_id)
        return ids

    async def connect(self, container_id: str, request: EndpointRequest, *, running: bool) -> None:
        """Add ``request``'s network to the container; at once when it is ``running``.
        ``Forbidden`` when it is already on that network."""
        if request.network_id in self.connected_networks(container_id):
            raise errors.Forbidden(f"endpoint with name {request.name} already exists in network {request.network}")
        primary = self.request(container_id)
        if container_id in self._primary_detached and primary is not None and primary.network_id == request.network_id:
            # Back on its NetworkMode network, with the connect's aliases and address.
            self._request_file(container_id).write_text(json.dumps(asdict(request)))
            self._primary_detached.discard(container_id)
            return
        async with self._lock(container_id):
            requests = [*self.extra_requests(container_id), request]
            self._write_extra_requests(container_id, requests)
            # A task made ahead of its start already has the namespace: join it now too.
            if running or self.attachment(container_id) is not None and netns.is_mounted(self.netns_path(container_id)):
                try:
                    await self._attach_extra(container_id, request, index=len(requests))
                except BaseException:
                    self._write_extra_requests(container_id, requests[:-1])
                    raise

    async def disconnect(self, container_id: str, network_id: str, *, running: bool = True) -> None:
        """Leave a connected network (``NotFound``-free: a network it is not on is a Conflict).

        A container that is not ``running`` may leave its NetworkMode network too, as
        with dockerd, until a connect to it (compose re-connects with its aliases)."""
        primary = self.request(container_id)
        if (not running and primary is not None and primary.network_id == network_id
                and container_id not in self._primary_detached):
            self._primary_detached.add(container_id)
            return
        async with self._lock(container_id):
            requests = self.extra_requests(container_id)
            kept = [r for r in requests if r.network_id != network_id]
            if len(kept) == len(requests):
                raise errors.Conflict("container is not connected to the network (or it is its NetworkMode)")
            self._write_extra_requests(container_id, kept)
            remaining = []
            for attachment in self.extra_attachments(container_id):
                if attachment.network_id == network_id:
                    await self._delete_extra(container_id, attachment)
                else:
                    remaining.append(attachment)
            self._write_extra_attachments(container_id, remaining)

    async def _attach_extra(self, container_id: str, request: EndpointRequest, *, index: int) -> Attachment:
        network = self._network_by_id(request.network_id)
        if network is None:
            raise errors.NotFound(f"network {request.network} not found")
        path = self.netns_path(container_id)
        ifname = f"eth{index}"
        runtime = None
        if request.ipv4_address:
            runtime = {"ips": [f"{request.ipv4_address}/{ipaddress.IPv4Network(network.subnet).prefixlen}"]}
        # CNI keys leases and NAT rules by container id: one id per (container, network).
        where = cni.Invocation(container_id=f"{container_id}-{ifname}", netns=str(path), ifname=ifname,
                               cni_path=self._cni_path)
        result = await cni.add_list(self.bridge_config(network, fixed=runtime is not None), where,
                                    runtime_config=runtime)
        found = replace(self._from_result(container_id, str(path), result), network=network.name,
                        network_id=network.id, name=request.name, aliases=request.aliases, ifname=ifname)
        self._write_extra_attachments(container_id, [*self.extra_attachments(container_id), found])
        await self.dns.serve(container_id, path)
        return found

    async def _delete_extra(self, container_id: str, attachment: Attachment) -> None:
        path = self.netns_path(container_id)
        where = cni.Invocation(container_id=f"{container_id}-{attachment.ifname}",
                               netns=str(path) if netns.is_mounted(path) else "",
                               ifname=attachment.ifname, cni_path=self._cni_path)
        try:
            await cni.delete_list(self.bridge_config(self._network_by_id(attachment.network_id)), where)
        except errors.DockyardError:
            log.warning("CNI DEL of %s on %s failed", container_id, attachment.network, exc_info=True)

    async def remove_network(self, network: UserNetwork) -> None:
        """Forget ``network`` and delete its bridge (the caller checked it is unused)."""
        self.user.remove(network)
        proc = await asyncio.create_subprocess_exec(
            "ip", "link", "del", network.bridge, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await proc.wait()
        shutil.rmtree(self._ipam_dir / network.bridge, ignore_errors=True)

    def resolv_conf(self, container_id: str) -> str | None:
        """/etc/resolv.conf of a container on a user network (dockerd's: the embedded
        server, the host's search domains, ``ndots:0``); None on the default bridge."""
        found = self.attachment(container_id)
        if found is None or (found.network_id == self.bridge_id and not self.extra_requests(container_id)):
            return None
        try:
            host = Path("/etc/resolv.conf").read_text()
        except OSError:
            host = ""
        search = [line for line in host.splitlines() if line.startswith("search ")]
        return "".join(f"{line}\n" for line in search) + f"nameserver {DNS_ADDRESS}\noptions ndots:0\n"

    # --- the embedded DNS's view --------------------------------------------------------------

    def resolve(self, container_id: str, name: str) -> list[str] | None:
        """Addresses of ``name`` (container name, alias or short id) on the networks of
        ``container_id``; None when no container there has it."""
        asking = self.attachment(container_id)
        if asking is None:
            return None
        mine = {a.network_id for a in [asking, *self.extra_attachments(container_id)]} - {self.bridge_id}
        everyone = [*self.attachments()]
        for primary in list(everyone):
            everyone.extend(self.extra_attachments(primary.container_id))
        found = []
        for other in everyone:
            if other.network_id not in mine:
                continue
            names = {other.name.lower(), other.container_id[:12], *(a.lower() for a in other.aliases)}
            if name in names:
                found.append(other.ip_address)
        return found or None

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
        """Make the namespace, run CNI ADD on the container's network (the default bridge,
        or the user network it asked for at ``prepare``) and publish ``ports`` (idempotent:
        an attached container keeps its endpoint). On a user network the embedded DNS
        listens in the namespace. On failure nothing of it is left. A busy host port
        raises ``PortAllocated`` / ``PortBindError``; a removed network ``NotFound``."""
        async with self._lock(container_id):
            existing = self.attachment(container_id)
            path = self.netns_path(container_id)
            if existing is not None and netns.is_mounted(path):
                return existing
            await self._teardown(container_id)
            request = self.request(container_id)
            network = None
            if request is not None:
                network = self._network_by_id(request.network_id)
                if network is None:
                    raise errors.NotFound(f"network {request.network} not found")
            await netns.create(path)
            where = cni.Invocation(container_id=container_id, netns=str(path), ifname=CONTAINER_IFNAME,
                                   cni_path=self._cni_path)
            runtime = None
            if request is not None and request.ipv4_address:
                prefix = ipaddress.IPv4Network(network.subnet).prefixlen if network else 32
                runtime = {"ips": [f"{request.ipv4_address}/{prefix}"]}
            try:
                await cni.invoke("ADD", self._loopback_config(), cni.Invocation(
                    container_id=container_id, netns=str(path), ifname="lo", cni_path=self._cni_path))
                result = await cni.add_list(self.bridge_config(network, fixed=runtime is not None), where,
                                          runtime_config=runtime)
                found = self._from_result(container_id, str(path), result)
                if network is not None and request is not None:
                    found = replace(found, network=network.name, network_id=network.id, name=request.name,
                                    aliases=request.aliases)
                if ports:
                    bound = await self._ports.publish(container_id, ports, found.ip_address)
                    found = replace(found, ports=tuple(bound))
                self._state_file(container_id).write_text(found.to_json())
                self._attachments[container_id] = found
                if network is not None:
                    await self.dns.serve(container_id, path)
                for index, extra in enumerate(self.extra_requests(container_id), start=1):
                    await self._attach_extra(container_id, extra, index=index)
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

    async def restore_ports(self, container_id: str) -> None:
        """Publish an adopted container's recorded ports again: its namespace
        and address outlive a daemon restart, the proxies (our sockets) do not.
        The same host ports are bound; one that cannot be is logged, not raised."""
        async with self._lock(container_id):
            found = self.attachment(container_id)
            if found is None or not found.ports or not netns.is_mounted(self.netns_path(container_id)):
                return
            requests = [PortRequest(container_port=p.container_port, protocol=p.protocol,
                                    host_ip=p.host_ip, host_port=p.host_port) for p in found.ports]
            try:
                await self._ports.publish(container_id, requests, found.ip_address)
            except errors.DockyardError:
                log.exception("cannot publish the ports of container %s again", container_id)

    async def detach(self, container_id: str) -> None:
        """CNI DEL, unmount and remove the namespace, forget the endpoint (idempotent)."""
        async with self._lock(container_id):
            await self._teardown(container_id)
        self._locks.pop(container_id, None)

    async def _teardown(self, container_id: str) -> None:
        await self.dns.stop(container_id)
        await self._ports.unpublish(container_id)
        for extra in self.extra_attachments(container_id):
            await self._delete_extra(container_id, extra)
        self._write_extra_attachments(container_id, [])
        known = self.attachment(container_id)
        request = self.request(container_id)
        network_id = known.network_id if known is not None else (request.network_id if request else "")
        network = self._network_by_id(network_id) if network_id else None
        path = self.netns_path(container_id)
        state = self._state_file(container_id)
        if path.exists() or state.exists() or container_id in self._attachments:
            # DEL even without a namespace: host-local and ipMasq state are keyed by id.
            where = cni.Invocation(container_id=container_id,
                                   netns=str(path) if netns.is_mounted(path) else "",
                                   ifname=CONTAINER_IFNAME, cni_path=self._cni_path)
            try:
                await cni.delete_list(self.bridge_config(network), where)
            except errors.DockyardError:
                log.warning("CNI DEL of container %s failed", container_id, exc_info=True)
            await netns.delete(path)
        self._attachments.pop(container_id, None)
        with contextlib.suppress(FileNotFoundError):
            state.unlink()
