"""Network routes: ``GET /networks``, ``GET /networks/{id}`` (the built-in networks)."""

from __future__ import annotations

from dockyard import errors
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.http.responses import JsonResponse
from dockyard.http.router import Request, Router
from dockyard.network.service import BUILTIN_NETWORKS, Attachment, NetworkService
from dockyard.network.view import NetworkInfo, network_body
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
            body.append(entry)
        return JsonResponse(status=200, body=body)

    async def inspect_network(request: Request) -> JsonResponse:
        info = lookup(request.path_params["id"])
        listed = await members() if info.name == "bridge" else {}
        return JsonResponse(status=200, body=network_body(info, containers=listed))

    router.add("GET", "/networks", list_networks)
    router.add("GET", "/networks/{id}", inspect_network)
