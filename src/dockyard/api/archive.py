"""Container filesystem routes: archive (``docker cp``), export, changes, commit, prune.

Thin: parse the query, call the engine, serialize. The archive routes answer
every error before the response head; ``X-Docker-Container-Path-Stat`` goes
on ``HEAD`` and ``GET``. Errors are dockyard.errors, mapped in
``http/responses.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd
from dockyard.engine.container_archive import TAR_MEDIA_TYPE, ArchiveService
from dockyard.engine.container_changes import container_changes
from dockyard.engine.container_commit import CommitRequest, CommitService
from dockyard.engine.container_prune import prune_containers
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.http.responses import JsonResponse, Response, StreamingResponse
from dockyard.http.router import Request, Router
from dockyard.wire import filters as wire_filters
from dockyard.wire.pathstat import PATH_STAT_HEADER, encode_path_stat

#: How much of a PUT body is handed to the extractor at a time.
BODY_CHUNK = 1 << 20
#: A commit body is a container Config: small.
COMMIT_BODY_LIMIT = 16 << 20


def register(router: Router, *, containers: ContainerService, archive: ArchiveService,
             commit: CommitService, containerd: Containerd, endpoint: Endpoint) -> None:
    """Add the routes, bound to ``endpoint``."""

    async def head_archive(request: Request) -> Response:
        stat = await archive.stat(endpoint, request.path_params["id"], request.query_str("path", "") or "")
        return Response(status=200, headers=((PATH_STAT_HEADER, encode_path_stat(stat)),))

    async def get_archive(request: Request) -> StreamingResponse:
        result = await archive.get(endpoint, request.path_params["id"], request.query_str("path", "") or "")
        return StreamingResponse(status=200, content_type=TAR_MEDIA_TYPE, chunks=result.chunks,
                                 headers=((PATH_STAT_HEADER, encode_path_stat(result.stat)),))

    async def put_archive(request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            while chunk := await request.body.read(BODY_CHUNK):
                yield chunk

        await archive.put(endpoint, request.path_params["id"], request.query_str("path", "") or "", body(),
                          copy_uid_gid=request.query_bool("copyUIDGID"),
                          no_overwrite_dir_non_dir=request.query_bool("noOverwriteDirNonDir"))
        return Response(status=200)

    async def export(request: Request) -> StreamingResponse:
        chunks = await archive.export(endpoint, request.path_params["id"])
        return StreamingResponse(status=200, content_type=TAR_MEDIA_TYPE, chunks=chunks)

    async def changes(request: Request) -> JsonResponse:
        container = await containers.get(endpoint, request.path_params["id"])
        found = await container_changes(containerd, container)
        # moby encodes a nil slice: null when nothing changed.
        return JsonResponse(status=200, body=[c.to_json() for c in found] or None)

    async def post_commit(request: Request) -> JsonResponse:
        config: Any = await request.json(COMMIT_BODY_LIMIT)
        if config is not None and not isinstance(config, dict):
            raise errors.InvalidParameter("invalid JSON: the body must be an object")
        commit_request = CommitRequest(
            container=request.query_str("container", "") or "",
            repo=request.query_str("repo", "") or "",
            tag=request.query_str("tag", "") or "",
            comment=request.query_str("comment", "") or "",
            author=request.query_str("author", "") or "",
            pause=request.query_bool("pause", True),
            changes=request.query.get("changes", ()),
            config=config,
        )
        image_id = await commit.commit(endpoint, commit_request)
        return JsonResponse(status=201, body={"Id": image_id})

    async def prune(request: Request) -> JsonResponse:
        filters = wire_filters.parse(request.query_str("filters", "") or "")
        return JsonResponse(status=200, body=await prune_containers(containers, containerd, endpoint, filters))

    router.add("HEAD", "/containers/{id}/archive", head_archive)
    router.add("GET", "/containers/{id}/archive", get_archive)
    router.add("PUT", "/containers/{id}/archive", put_archive)
    router.add("GET", "/containers/{id}/export", export)
    router.add("GET", "/containers/{id}/changes", changes)
    router.add("POST", "/commit", post_commit)
    router.add("POST", "/containers/prune", prune)
