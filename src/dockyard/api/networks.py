"""Network routes: list, inspect, create, remove and prune networks (built-in and user-defined)."""

from __future__ import annotations

from typing import Any

from dockyard import errors
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.http.responses import JsonResponse, Response
from dockyard.http.router import Request, Router
from dockyard.network.service import BUILTIN_NETWORKS, Attachment, EndpointRequest, NetworkService
from dockyard.network.user import UserNetwork
from dockyard.network.view import NetworkInfo, network_body, user_network_body
from dockyard.wire import duration
from dockyard.wire import filters as wire_filters

LIST_FILTERS = frozenset({"dangling", "driver", "id", "label", "name", "scope", "type"})


def register(router: Router, service: NetworkService, containers: ContainerService, endpoint: Endpoint) -> None:
    def infos() -> list[NetworkInfo]:
        return [NetworkInfo(
            name=name, id=service.builtin_ids[name], created=duration.format_time(service.builtin_created_ns[name]),
            subnet=service.subnet if name == "bridge" else "", gateway=service.gateway if name == "bridge" else "",
        ) for name in BUILTIN_NETWORKS]  # fmt: skip

    async def members() -> dict[str, tuple[str, Attachment]]:
        # Endpoints of every endpoint's containers are on one bridge; show only this one's.
        found = {}
        for attachment in service.attachments():
            cid = attachment.netns.rsplit("/", 1)[-1]
            try:
                container = await containers.get(endpoint, cid)
            except errors.NotFound:
                continue
            if container.id == cid and container.running:
                found[cid] = (container.definition.name, attachment)
        return found

    async def user_members(network: UserNetwork) -> dict[str, tuple[str, Attachment]]:
        found = {}
        for cid, (name, attachment) in (await members()).items():
            for candidate in [attachment, *service.extra_attachments(cid)]:
                if candidate.network_id == network.id:
                    found[cid] = (name, candidate)
        return found

    def user_body(network: UserNetwork, listed: dict[str, tuple[str, Attachment]] | None = None) -> dict[str, Any]:
        return user_network_body(network, created=duration.format_time(network.created_ns), containers=listed)

    def lookup_any(ref: str) -> NetworkInfo | UserNetwork:
        found = service.user.find(endpoint.namespace, ref)
        if found is not None:
            return found
        return lookup(ref)

    def dangling(network: UserNetwork) -> bool:
        return not service.users_of(network.id)

    def lookup(ref: str) -> NetworkInfo:
        all_infos = infos()
        for info in all_infos:
            if ref in (info.name, info.id):
                return info
        matches = [info for info in all_infos if ref and info.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        raise errors.NotFound(f"network {ref} not found")

    async def list_networks(request: Request) -> JsonResponse:
        filters = wire_filters.parse(request.query_str("filters", "") or "")
        filters.validate(LIST_FILTERS)
        body = []
        for info in infos():
            entry = network_body(info)
            if not (filters.match("name", info.name) and filters.fuzzy_match("id", info.id)
                    and filters.exact_match("driver", entry["Driver"])
                    and filters.exact_match("scope", "local") and filters.exact_match("type", "builtin")
                    and filters.match_label({})):
                continue
            wanted = filters.get("dangling")
            if wanted and next(iter(wanted)).lower() in ("1", "true"):
                continue  # built-in networks are never dangling (moby lists them for dangling=false)
            body.append(entry)
        for network in service.user.all(endpoint.namespace):
            if not (filters.match("name", network.name) and filters.fuzzy_match("id", network.id)
                    and filters.exact_match("driver", "bridge") and filters.exact_match("scope", "local")
                    and filters.exact_match("type", "custom") and filters.match_label(network.labels)):
                continue
            wanted = filters.get("dangling")
            if wanted and dangling(network) != (next(iter(wanted)).lower() in ("1", "true")):
                continue
            body.append(user_body(network))
        return JsonResponse(status=200, body=body)

    async def inspect_network(request: Request) -> JsonResponse:
        found = lookup_any(request.path_params["id"])
        if isinstance(found, UserNetwork):
            return JsonResponse(status=200, body=user_body(found, await user_members(found)))
        listed = await members() if found.name == "bridge" else {}
        return JsonResponse(status=200, body=network_body(found, containers=listed))

    async def create_network(request: Request) -> JsonResponse:
        body = await request.json()
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON body")
        name = str(body.get("Name") or "")
        if not name:
            raise errors.InvalidParameter("network name is required")
        if name in BUILTIN_NETWORKS or name == "default":
            raise errors.Forbidden(f"{name} is a pre-defined network and cannot be created")
        driver = str(body.get("Driver") or "bridge")
        if driver != "bridge":
            raise errors.NotFound(f"plugin \"{driver}\" not found")
        if any(n.name == name for n in service.user.all(endpoint.namespace)):
            raise errors.Conflict(f"network with name {name} already exists")
        ipam = body.get("IPAM") or {}
        network = service.user.create(
            endpoint.namespace, name=name, ipam_config=list(ipam.get("Config") or []),
            internal=bool(body.get("Internal")), attachable=bool(body.get("Attachable")),
            labels={str(k): str(v) for k, v in (body.get("Labels") or {}).items()},
            options={str(k): str(v) for k, v in (body.get("Options") or {}).items()})
        return JsonResponse(status=201, body={"Id": network.id, "Warning": ""})

    async def remove_network(request: Request) -> Response:
        found = lookup_any(request.path_params["id"])
        if not isinstance(found, UserNetwork):
            raise errors.Forbidden(f"{found.name} is a pre-defined network and cannot be removed")
        if service.users_of(found.id):
            raise errors.Conflict(f"error while removing network: network {found.name} id {found.id} "
                                  "has active endpoints")
        await service.remove_network(found)
        return Response(status=204)

    async def connect_target(request: Request) -> tuple[UserNetwork, Any, dict[str, Any]]:
        found = lookup_any(request.path_params["id"])
        body = await request.json()
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON body")
        container = await containers.get(endpoint, str(body.get("Container") or ""))
        if not isinstance(found, UserNetwork):
            raise errors.Forbidden(f"connecting to or disconnecting from the {found.name} network is not supported")
        mode = container.definition.host_config.get("NetworkMode") or "default"
        if mode in ("host", "none") or mode.startswith("container:"):
            raise errors.Forbidden(f"container sharing network namespace with another container or host "
                                   f"cannot be connected to any other network ({mode})")
        return found, container, body

    async def connect(request: Request) -> Response:
        network, container, body = await connect_target(request)
        settings = body.get("EndpointConfig") or {}
        address = str((settings.get("IPAMConfig") or {}).get("IPv4Address") or "")
        await service.connect(container.id, EndpointRequest(
            namespace=endpoint.namespace, network=network.name, network_id=network.id,
            name=container.definition.name.lstrip("/"), aliases=tuple(settings.get("Aliases") or ()),
            ipv4_address=address), running=container.running)
        return Response(status=200)

    async def disconnect(request: Request) -> Response:
        network, container, _ = await connect_target(request)
        await service.disconnect(container.id, network.id, running=container.running)
        return Response(status=200)

    async def prune_networks(request: Request) -> JsonResponse:
        filters = wire_filters.parse(request.query_str("filters", "") or "")
        filters.validate(frozenset({"label", "label!", "until"}))
        removed = []
        for network in service.user.all(endpoint.namespace):
            if dangling(network) and filters.match_labels_prune(network.labels):
                await service.remove_network(network)
                removed.append(network.name)
        return JsonResponse(status=200, body={"NetworksDeleted": removed})

    router.add("GET", "/networks", list_networks)
    router.add("GET", "/networks/{id}", inspect_network)
    router.add("POST", "/networks/create", create_network)
    router.add("POST", "/networks/prune", prune_networks)
    router.add("DELETE", "/networks/{id}", remove_network)
    router.add("POST", "/networks/{id}/connect", connect)
    router.add("POST", "/networks/{id}/disconnect", disconnect)
