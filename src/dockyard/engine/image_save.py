"""``docker save``: images out as one docker-archive tar, streamed, no temp file.

The archive has moby 25+'s shape, which every loader reads: blobs under
``blobs/sha256/`` (layers as stored, plain or gzip; zstd layers decompressed
on the fly, because dockerd before 23 cannot read them, with a manifest
rewritten to match), ``manifest.json``
(Config/RepoTags/Layers as blob paths, read by dockerd 20.10 and later),
``index.json`` + ``oci-layout`` (read by OCI-aware loaders) and the legacy
``repositories``. Tar headers are generated here; blob sizes are known from
the manifests, so nothing is buffered beyond one chunk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from dockyard import errors
from dockyard.containerd import Namespace
from dockyard.engine.image_layers import LABEL_UNCOMPRESSED_SIZE
from dockyard.engine.image_load import StreamInflater
from dockyard.engine.image_store import MANIFEST_LIMIT, ImageStore, StoredImage
from dockyard.oci import image as oci
from dockyard.wire import archive, reference


@dataclass(frozen=True, kw_only=True)
class SaveEntry:
    image: StoredImage
    tags: tuple[reference.Reference, ...]


async def resolve_names(ns: Namespace, store: ImageStore, names: Sequence[str]) -> list[SaveEntry]:
    """What ``docker save NAME…`` writes: a tagged reference saves that tag, a bare
    repository name every tag of it on that image, an id no tag. NotFound first."""
    entries: dict[str, list[reference.Reference]] = {}
    images: dict[str, StoredImage] = {}
    for name in names:
        image = await store.lookup(ns, name)
        images.setdefault(image.id, image)
        tags = entries.setdefault(image.id, [])
        ref = None
        if not (name.startswith("sha256:") or image.id.removeprefix("sha256:").startswith(name)):
            try:
                ref = reference.parse(name)
            except errors.InvalidParameter:
                ref = None
        if ref is None or ref.digest is not None:
            continue
        if ref.tag is not None:
            chosen = [ref]
        else:
            chosen = [t for t in image.tagged if t.name == ref.name] or [ref.with_default_tag()]
        for tag in chosen:
            if tag not in tags:
                tags.append(tag)
    return [SaveEntry(image=images[i], tags=tuple(t)) for i, t in entries.items()]


async def _blob(ns: Namespace, digest: str, size: int, *, source: str | None = None) -> AsyncIterator[bytes]:
    """One blob member. With ``source`` the member is that zstd blob decompressed
    (``digest`` and ``size`` then describe the uncompressed tar)."""
    yield archive.tar_member_header(archive.blob_path(digest), size)
    sent = 0
    inflater = StreamInflater(archive.Compression.ZSTD) if source else None
    async for chunk in ns.read_blob(source or digest):
        data = inflater.feed(chunk) if inflater else chunk
        sent += len(data)
        if sent > size:
            raise errors.SystemError(f"blob {digest} is larger than its descriptor says")
        yield data
    if sent != size:
        raise errors.SystemError(f"blob {digest} is shorter than its descriptor says")
    yield archive.tar_padding(size)


def _is_zstd(media_type: str) -> bool:
    return media_type.endswith("+zstd") or media_type.endswith(".zstd")


async def _uncompressed_size(ns: Namespace, digest: str) -> int:
    info = await ns.blob_info(digest)
    label = info.labels.get(LABEL_UNCOMPRESSED_SIZE, "") if info else ""
    if label.isdigit():
        return int(label)
    inflater = StreamInflater(archive.Compression.ZSTD)
    total = 0
    async for chunk in ns.read_blob(digest):
        total += len(inflater.feed(chunk))
    return total


@dataclass(frozen=True, kw_only=True)
class _Layer:
    digest: str  # as written into the archive
    size: int
    source: str | None  # zstd blob to decompress, or None to copy as is


async def _plan_layers(ns: Namespace, image: StoredImage) -> tuple[list[_Layer], oci.Manifest]:
    """The layers as they go out, and the manifest that describes them."""
    manifest = image.resolved.manifest
    layers: list[_Layer] = []
    out_descs = []
    for desc, diff_id in zip(manifest.layers, image.config.diff_ids, strict=True):
        if _is_zstd(desc.media_type):
            size = await _uncompressed_size(ns, desc.digest)
            layers.append(_Layer(digest=diff_id, size=size, source=desc.digest))
            out_descs.append(oci.Descriptor(media_type=oci.OCI_LAYER, digest=diff_id, size=size))
        else:
            layers.append(_Layer(digest=desc.digest, size=desc.size, source=None))
            out_descs.append(desc)
    if all(layer.source is None for layer in layers):
        return layers, manifest
    rewritten = oci.Manifest(
        media_type=oci.OCI_MANIFEST, config=manifest.config, layers=tuple(out_descs),
        annotations=manifest.annotations,
    )
    return layers, rewritten


async def stream_archive(ns: Namespace, entries: Sequence[SaveEntry]) -> AsyncIterator[bytes]:
    """The archive's bytes. An error mid-stream can only cut the stream short
    (the client sees a truncated tar), as with dockerd."""
    yield archive.tar_member_header("blobs/", 0, mode=0o755, kind=archive.EntryType.DIR)
    yield archive.tar_member_header("blobs/sha256/", 0, mode=0o755, kind=archive.EntryType.DIR)
    written: set[str] = set()
    saved: list[archive.SavedImage] = []
    index: list[dict[str, object]] = []
    repositories: list[tuple[str, str, str]] = []
    for entry in entries:
        resolved = entry.image.resolved
        layers, manifest = await _plan_layers(ns, entry.image)
        if manifest is resolved.manifest:
            manifest_bytes = await ns.read_blob_bytes(resolved.manifest_digest, MANIFEST_LIMIT)
        else:
            manifest_bytes = oci.encode_manifest(manifest)
        manifest_digest = oci.digest_of(manifest_bytes)
        blobs = [_Layer(digest=manifest.config.digest, size=resolved.config_size, source=None)]
        for blob in [*blobs, *layers]:
            if blob.digest not in written:
                written.add(blob.digest)
                async for chunk in _blob(ns, blob.digest, blob.size, source=blob.source):
                    yield chunk
        if manifest_digest not in written:
            written.add(manifest_digest)
            yield archive.tar_file(archive.blob_path(manifest_digest), manifest_bytes)
        descriptor = {
            "mediaType": manifest.media_type,
            "digest": manifest_digest,
            "size": len(manifest_bytes),
        }
        for tag in entry.tags or (None,):
            item = dict(descriptor)
            if tag is not None:
                item["annotations"] = {
                    oci.ANNOTATION_CONTAINERD_NAME: str(tag),
                    oci.ANNOTATION_REF_NAME: tag.tag or "latest",
                }
            index.append(item)
        saved.append(
            archive.SavedImage(
                config_digest=manifest.config.digest,
                repo_tags=tuple(t.familiar() for t in entry.tags),
                layer_digests=tuple(layer.digest for layer in manifest.layers),
            )
        )
        top = manifest.layers[-1].digest.removeprefix("sha256:") if manifest.layers else ""
        repositories += [(t.familiar_name, t.tag or "latest", top) for t in entry.tags]
    yield archive.tar_file(archive.INDEX_JSON, archive.oci_index_json(index))
    yield archive.tar_file(archive.MANIFEST_JSON, archive.docker_manifest_json(saved))
    yield archive.tar_file(archive.OCI_LAYOUT, archive.oci_layout_json())
    if repositories:
        yield archive.tar_file(archive.REPOSITORIES, archive.repositories_json(repositories))
    yield archive.tar_end()
