"""``docker push``: an image's stored manifest, config and layers to a registry.

The manifest is pushed byte for byte as it is stored, so its digest is the
one the image already has: pushing twice gives the same digest, and pulling
it back gives the same image id. Layers are pushed as stored (gzip, zstd or,
for images that came from ``docker load`` of an uncompressed archive, plain
tar with the matching media type).

Messages, as moby's pusher writes them::

    The push refers to repository [<name>]
    Preparing                       id=<12 hex of the layer's diff id>, top layer first
    Waiting                         (no upload slot free yet)
    Layer already exists | Mounted from <repo> | Pushing {current,total} … Pushed
    <tag>: digest: sha256:… size: N
    {"progressDetail":{},"aux":{"Tag":…,"Digest":…,"Size":…}}

A layer the registry has is not sent again; one that came from another
repository of the same registry (containerd's distribution-source label,
written by pulls and pushes) is mounted from there. Uploads run at most
``max_concurrent_uploads`` at once (dockerd's default, 5). After the
manifest is accepted ``name@digest`` is recorded, so ``RepoDigests`` shows it.

Errors: only an invalid reference is raised (an HTTP 400); everything after
the first message ends the stream with an error message, as in dockerd.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

from dockyard import errors
from dockyard.containerd import Containerd, Descriptor, Namespace
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.image_pull import (
    LABEL_DISTRIBUTION_SOURCE,
    Emit,
    distribution_source_labels,
    message_stream,
    short_id,
)
from dockyard.engine.image_store import MANIFEST_LIMIT, ImageStore, StoredImage
from dockyard.oci import image as oci
from dockyard.registry import AuthConfig, RegistryClient, Repository
from dockyard.wire import jsonmessage, reference

#: dockerd's ``max-concurrent-uploads`` default.
MAX_CONCURRENT_UPLOADS = 5
PROGRESS_EVERY = 512 * 1024


@dataclass(frozen=True, kw_only=True)
class _Layer:
    blob: oci.Descriptor
    diff_id: str
    sources: tuple[str, ...]  # repositories of the target registry the blob came from


class ImagePusher:
    """Pushes for every endpoint of one daemon."""

    def __init__(
        self,
        *,
        containerd: Containerd,
        store: ImageStore,
        registry: RegistryClient,
        max_concurrent_uploads: int = MAX_CONCURRENT_UPLOADS,
    ) -> None:
        self._containerd = containerd
        self._store = store
        self._registry = registry
        self._slots = asyncio.Semaphore(max_concurrent_uploads)
        #: Called ``(namespace, reference, repository name)`` after each successful push.
        self.on_pushed: Callable[[str, str, str], None] | None = None

    async def push(
        self, endpoint: Endpoint, name: str, *, tag: str = "", auth: AuthConfig | None = None
    ) -> AsyncIterator[bytes]:
        """``POST /images/{name}/push?tag=``: one tag, or every tag of the repository
        when neither ``name`` nor ``tag`` has one. InvalidParameter for a bad name."""
        ref = reference.parse(name)
        if tag:
            ref = ref.with_tag(tag)
        if ref.digest is not None:
            raise errors.InvalidParameter("cannot push a digest reference")
        ns = self._containerd.namespace(endpoint.namespace)

        async def work(emit: Emit) -> None:
            emit(jsonmessage.status(f"The push refers to repository [{ref.name}]"))
            for tagged, image in await self._images(ns, ref):
                await self._push_one(ns, tagged, image, auth, emit)
            if self.on_pushed is not None:
                self.on_pushed(endpoint.namespace, ref.familiar(), ref.familiar_name)

        return await message_stream(work)

    async def _images(self, ns: Namespace, ref: reference.Reference) -> list[tuple[reference.Reference, StoredImage]]:
        images = await self._store.images(ns)
        if ref.tag is not None:
            for image in images:
                if any(str(t) == str(ref) for t in image.tagged):
                    return [(ref, image)]
            raise errors.NotFound(f"tag does not exist: {ref.familiar()}")
        found = sorted(
            ((t, image) for image in images for t in image.tagged if t.name == ref.name),
            key=lambda pair: pair[0].tag or "",
        )
        if not found:
            raise errors.NotFound(f"An image does not exist locally with the tag: {ref.familiar_name}")
        return found

    async def _push_one(
        self, ns: Namespace, ref: reference.Reference, image: StoredImage, auth: AuthConfig | None, emit: Emit
    ) -> None:
        manifest = image.resolved.manifest
        manifest_digest = image.resolved.manifest_digest
        data = await ns.read_blob_bytes(manifest_digest, MANIFEST_LIMIT)
        layers = await self._layers(ns, ref.domain, manifest, image.config.diff_ids)
        sources = sorted({s for layer in layers for s in layer.sources if s != ref.path})
        repo = self._registry.repository_of(ref, auth=auth, push=True, mount_from=sources)

        # Top layer first, as moby shows them.
        order = list(reversed(layers))
        for layer in order:
            emit(jsonmessage.progress("Preparing", id=short_id(layer.diff_id)))
        tasks = [asyncio.create_task(self._push_layer(ns, repo, layer, emit)) for layer in order]
        try:
            await asyncio.gather(*tasks)  # the first failure is the one reported
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        config = manifest.config
        if not await repo.blob_exists(config.digest):
            config_bytes = await ns.read_blob_bytes(config.digest, MANIFEST_LIMIT * 8)
            await repo.upload_blob(config.digest, config.size, config_bytes)
        assert ref.tag is not None
        digest = await repo.put_manifest(ref.tag, manifest.media_type, data)
        emit(jsonmessage.status(f"{ref.tag}: digest: {digest} size: {len(data)}"))
        emit(jsonmessage.progress("", aux={"Tag": ref.tag, "Digest": digest, "Size": len(data)}))
        target = Descriptor(media_type=manifest.media_type, digest=manifest_digest, size=len(data))
        await self._store.tag(ns, f"{ref.trimmed()}@{digest}", target)
        for layer in layers:
            await _add_source(ns, layer.blob.digest, ref.domain, ref.path)

    async def _layers(
        self, ns: Namespace, registry: str, manifest: oci.Manifest, diff_ids: Sequence[str]
    ) -> list[_Layer]:
        out = []
        for blob, diff_id in zip(manifest.layers, diff_ids, strict=True):
            info = await ns.blob_info(blob.digest)
            if info is None:
                raise errors.NotFound(f"layer {blob.digest} of this image is not in the content store")
            label = info.labels.get(LABEL_DISTRIBUTION_SOURCE + registry, "")
            out.append(_Layer(blob=blob, diff_id=diff_id, sources=tuple(s for s in label.split(",") if s)))
        return out

    async def _push_layer(self, ns: Namespace, repo: Repository, layer: _Layer, emit: Emit) -> None:
        layer_id = short_id(layer.diff_id)
        if self._slots.locked():
            emit(jsonmessage.progress("Waiting", id=layer_id))
        async with self._slots:
            if await repo.blob_exists(layer.blob.digest):
                emit(jsonmessage.progress("Layer already exists", id=layer_id))
                return
            source = next((s for s in layer.sources if s != repo.path), None)
            how = await repo.upload_blob(
                layer.blob.digest, layer.blob.size,
                _progress(ns.read_blob(layer.blob.digest), layer.blob.size, layer_id, emit),
                mount_from=source,
            )  # fmt: skip
            if how == "mounted":
                emit(jsonmessage.progress(f"Mounted from {source}", id=layer_id))
            else:
                emit(jsonmessage.progress("Pushed", id=layer_id))


async def _progress(chunks: AsyncIterator[bytes], total: int, layer_id: str, emit: Emit) -> AsyncIterator[bytes]:
    current = 0
    reported = 0
    async for chunk in chunks:
        current += len(chunk)
        if current - reported >= PROGRESS_EVERY or current == total:
            reported = current
            emit(jsonmessage.progress(
                "Pushing", id=layer_id, detail=jsonmessage.ProgressDetail(current=current, total=total)
            ))  # fmt: skip
        yield chunk


async def _add_source(ns: Namespace, digest: str, registry: str, path: str) -> None:
    info = await ns.blob_info(digest)
    if info is None:
        return
    key = LABEL_DISTRIBUTION_SOURCE + registry
    labels = distribution_source_labels(registry, path, info.labels.get(key, ""))
    if labels[key] != info.labels.get(key):
        await ns.update_blob_labels(digest, labels)


__all__ = ["ImagePusher"]
