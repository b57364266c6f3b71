"""``docker load`` and ``docker import``: a request body into images.

The body is spooled to a file under the data root (decompressed on the way
when the whole stream is compressed), then read with ``tarfile`` in place —
the outer archive is never extracted. Everything is written under one
containerd lease, and records are created only after every layer of every
image was verified and unpacked; a failure anywhere deletes the lease, so
containerd's GC removes whatever was written.

Two phases, so that errors found before the response head are plain HTTP
errors: :func:`prepare_load` spools and validates the metadata (raising
InvalidParameter), :func:`run_load` ingests and yields the JSON messages.
"""

from __future__ import annotations

import asyncio
import bz2
import lzma
import os
import secrets
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import zstandard

from dockyard import errors
from dockyard.containerd import Descriptor, Namespace
from dockyard.engine.image_layers import IngestedLayer, ingest_layer, unpack_layer
from dockyard.engine.image_store import ImageStore
from dockyard.engine.layer_stage import Stager, discard_stage, install_layer
from dockyard.oci import image as oci
from dockyard.wire import archive, jsonmessage, reference

#: moby's limit on a metadata file read from an archive (manifest.json, configs).
METADATA_LIMIT = 64 << 20
SPOOL_CHUNK = 1 << 20
#: Layers ingested at once. containerd's content Write is CPU-bound per stream
#: (one goroutine hashes and copies every byte), so one stream leaves a core
#: idle; a few keep containerd and us busy. Measured on 2 cores.
INGEST_CONCURRENCY = 3


class BodyReader(Protocol):
    async def read(self, max_bytes: int = 65536) -> bytes: ...


# Spooling ----------------------------------------------------------------------


def _decompressor(kind: archive.Compression) -> Any:
    if kind is archive.Compression.GZIP:
        return zlib.decompressobj(wbits=31)
    if kind is archive.Compression.ZSTD:
        return zstandard.ZstdDecompressor().decompressobj()
    if kind is archive.Compression.BZIP2:
        return bz2.BZ2Decompressor()
    if kind is archive.Compression.XZ:
        return lzma.LZMADecompressor()
    return None


class StreamInflater:
    """Decompress a whole stream, concatenated members/frames included."""

    def __init__(self, kind: archive.Compression) -> None:
        self._kind = kind
        self._d = _decompressor(kind)
        self._in_member = False

    def finish(self) -> None:
        """Raise MalformedArchive if the stream stopped inside a member."""
        if self._in_member:
            raise archive.MalformedArchive("unexpected EOF: the compressed archive is truncated")

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        while data:
            self._in_member = True
            try:
                out += self._d.decompress(data)
            except (zlib.error, zstandard.ZstdError, OSError, lzma.LZMAError, EOFError) as exc:
                raise archive.MalformedArchive(f"invalid compressed archive: {exc}") from exc
            if getattr(self._d, "eof", False):
                self._in_member = False
                data = getattr(self._d, "unused_data", b"")
                self._d = _decompressor(self._kind)
                if data.strip(b"\x00") == b"":
                    break  # padding after the last member
            else:
                data = b""
        return bytes(out)


async def spool(body: BodyReader, directory: Path, *, decompress: bool, limit: int) -> IO[bytes]:
    """Copy the body into an unlinked temp file under ``directory`` and return it,
    rewound. With ``decompress`` a compressed body is stored decompressed.

    The file is unlinked at once, so nothing is left on disk whatever happens.
    Raises PayloadTooLarge past ``limit`` bytes, MalformedArchive for bad compression.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="load-", dir=directory)
    os.unlink(name)
    out = os.fdopen(fd, "w+b")
    try:
        inflater: StreamInflater | None = None
        received = 0
        first = True
        while chunk := await body.read(SPOOL_CHUNK):
            received += len(chunk)
            if received > limit:
                raise errors.PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            if first:
                first = False
                kind = archive.detect_compression(chunk)
                if decompress and kind is not archive.Compression.NONE:
                    inflater = StreamInflater(kind)
            data = inflater.feed(chunk) if inflater else chunk
            await asyncio.to_thread(out.write, data)
        if inflater is not None:
            inflater.finish()
        out.flush()
        out.seek(0)
        return out
    except BaseException:
        out.close()
        raise


# The outer archive -------------------------------------------------------------


class OuterArchive:
    """Random access to the members of a spooled, uncompressed tar."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        size = os.fstat(file.fileno()).st_size
        try:
            self._tar = tarfile.open(fileobj=file, mode="r:")
        except tarfile.TarError as exc:
            raise archive.MalformedArchive(f"invalid tar archive: {exc}") from exc
        self.files: dict[str, tarfile.TarInfo] = {}
        self.links: dict[str, tuple[bool, str]] = {}
        try:
            members = self._tar.getmembers()
        except tarfile.TarError as exc:
            raise archive.MalformedArchive(f"invalid tar archive: {exc}") from exc
        for info in members:
            path = archive.clean_member_path(info.name)
            if info.issparse():
                raise archive.UnsafeArchive(f"sparse member {info.name!r} in image archive")
            if info.isreg():
                if info.offset_data + info.size > size:
                    raise archive.MalformedArchive(
                        f"unexpected EOF: member {info.name!r} is truncated"
                    )
                self.files[path] = info
            elif info.issym() or info.islnk():
                self.links[path] = (info.issym(), info.linkname)
            elif not info.isdir():
                raise archive.UnsafeArchive(f"unexpected member type for {info.name!r} in image archive")

    def close(self) -> None:
        self._tar.close()
        self._file.close()

    def has(self, name: str) -> bool:
        try:
            return archive.resolve_member(name, self.links) in self.files
        except archive.UnsafeArchive:
            return False

    def _member(self, name: str) -> tarfile.TarInfo:
        path = archive.resolve_member(name, self.links)
        info = self.files.get(path)
        if info is None:
            raise archive.MalformedArchive(f"archive has no file {name!r}")
        return info

    def read(self, name: str, limit: int = METADATA_LIMIT) -> bytes:
        info = self._member(name)
        if info.size > limit:
            raise archive.MalformedArchive(f"{name!r} in archive is larger than {limit} bytes")
        handle = self.open(name)
        return handle.read()

    def open(self, name: str) -> IO[bytes]:
        """A reader of the member with its own position: readers of several
        members can be used at once, from several threads."""
        info = self._member(name)
        return _MemberReader(self._file.fileno(), info.offset_data, info.size)  # type: ignore[return-value]


class _MemberReader:
    """``read`` over one member's bytes with ``os.pread``: no shared file
    position (tarfile's member objects seek the one file they share)."""

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd = fd
        self._pos = offset
        self._end = offset + size

    def read(self, n: int = -1) -> bytes:
        remaining = self._end - self._pos
        if n < 0 or n > remaining:
            n = remaining
        if n == 0:
            return b""
        data = os.pread(self._fd, n, self._pos)
        if not data:
            raise archive.MalformedArchive("unexpected EOF in archive: the member is truncated")
        self._pos += len(data)
        return data

    def readable(self) -> bool:
        return True


# Planning ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PlannedImage:
    config_bytes: bytes
    config: oci.ImageConfig
    layer_paths: tuple[str, ...]
    tags: tuple[reference.Reference, ...]
    #: OCI layouts keep their own manifest; docker-archives get one written.
    manifest_bytes: bytes | None = None
    manifest: oci.Manifest | None = None

    @property
    def id(self) -> str:
        return oci.digest_of(self.config_bytes)


@dataclass(kw_only=True)
class LoadPlan:
    archive: OuterArchive
    images: list[PlannedImage]

    def close(self) -> None:
        self.archive.close()


def _tag(text: str) -> reference.Reference:
    ref = reference.parse(text)
    if ref.digest is not None:
        raise archive.MalformedArchive(f"invalid tag {text!r} in archive: digest references cannot be tags")
    return ref.with_default_tag()


def _check_layers(config: oci.ImageConfig, count: int, where: str) -> None:
    if len(config.diff_ids) != count:
        raise archive.MalformedArchive(
            f"invalid manifest in {where}: {count} layers for {len(config.diff_ids)} diff ids"
        )


def plan_docker_archive(outer: OuterArchive) -> list[PlannedImage]:
    images = []
    for entry in archive.parse_docker_manifest(outer.read(archive.MANIFEST_JSON)):
        config_bytes = outer.read(entry.config)
        config = oci.parse_config(config_bytes)
        _check_layers(config, len(entry.layers), archive.MANIFEST_JSON)
        for path in entry.layers:
            if not outer.has(path):
                raise archive.MalformedArchive(f"layer {path!r} named in manifest.json is missing")
        images.append(
            PlannedImage(
                config_bytes=config_bytes,
                config=config,
                layer_paths=entry.layers,
                tags=tuple(_tag(t) for t in entry.repo_tags),
            )
        )
    return images


def _oci_name(desc: oci.Descriptor) -> reference.Reference | None:
    name = desc.annotations.get(oci.ANNOTATION_CONTAINERD_NAME, "")
    if not name:
        ref_name = desc.annotations.get(oci.ANNOTATION_REF_NAME, "")
        # A bare tag ("latest") names no repository; only a full name is usable.
        if "/" in ref_name or ":" in ref_name:
            name = ref_name
    return _tag(name) if name else None


def plan_oci_layout(outer: OuterArchive, *, os_name: str = "linux", arch: str = "amd64") -> list[PlannedImage]:
    archive.check_oci_layout(outer.read(archive.OCI_LAYOUT))
    index = oci.parse_index(outer.read(archive.INDEX_JSON), oci.OCI_INDEX)
    by_manifest: dict[str, PlannedImage] = {}
    order: list[str] = []
    tags: dict[str, list[reference.Reference]] = {}
    for desc in index.manifests:
        chosen = desc
        data = outer.read(archive.blob_path(desc.digest))
        _verify(data, desc)
        kind = oci.media_kind(data, desc.media_type)
        if kind in oci.INDEX_TYPES:
            chosen = oci.select_platform(oci.parse_index(data, kind), os=os_name, architecture=arch)
            data = outer.read(archive.blob_path(chosen.digest))
            _verify(data, chosen)
            kind = oci.media_kind(data, chosen.media_type)
        manifest = oci.parse_manifest(data, kind)
        if chosen.digest not in by_manifest:
            config_bytes = outer.read(archive.blob_path(manifest.config.digest))
            _verify(config_bytes, manifest.config)
            config = oci.parse_config(config_bytes)
            _check_layers(config, len(manifest.layers), archive.INDEX_JSON)
            paths = tuple(archive.blob_path(layer.digest) for layer in manifest.layers)
            for path in paths:
                if not outer.has(path):
                    raise archive.MalformedArchive(f"layer blob {path!r} is missing from the archive")
            by_manifest[chosen.digest] = PlannedImage(
                config_bytes=config_bytes, config=config, layer_paths=paths, tags=(),
                manifest_bytes=data, manifest=manifest,
            )
            order.append(chosen.digest)
        name = _oci_name(desc)
        if name is not None:
            tags.setdefault(chosen.digest, []).append(name)
    return [
        PlannedImage(
            config_bytes=by_manifest[d].config_bytes, config=by_manifest[d].config,
            layer_paths=by_manifest[d].layer_paths, tags=tuple(tags.get(d, ())),
            manifest_bytes=by_manifest[d].manifest_bytes, manifest=by_manifest[d].manifest,
        )
        for d in order
    ]


def _verify(data: bytes, desc: oci.Descriptor) -> None:
    if oci.digest_of(data) != desc.digest or len(data) != desc.size:
        raise archive.MalformedArchive(f"blob {desc.digest} in archive does not match its descriptor")


async def prepare_load(body: BodyReader, *, tmp_dir: Path, limit: int) -> LoadPlan:
    """Spool the body and validate the archive's metadata. Raises InvalidParameter
    (ArchiveError, ImageFormatError, InvalidReference) before anything is stored."""
    file = await spool(body, tmp_dir, decompress=True, limit=limit)
    try:
        outer = await asyncio.to_thread(OuterArchive, file)
    except BaseException:
        file.close()
        raise
    try:
        if outer.has(archive.MANIFEST_JSON):
            images = await asyncio.to_thread(plan_docker_archive, outer)
        elif outer.has(archive.INDEX_JSON) and outer.has(archive.OCI_LAYOUT):
            images = await asyncio.to_thread(plan_oci_layout, outer)
        else:
            raise archive.MalformedArchive(
                "invalid archive: it has neither manifest.json nor an OCI layout (index.json)"
            )
        if not images:
            raise archive.MalformedArchive("invalid archive: no images in manifest")
    except BaseException:
        outer.close()
        raise
    return LoadPlan(archive=outer, images=images)


# Running -----------------------------------------------------------------------


async def store_image(
    ns: Namespace,
    *,
    config_bytes: bytes,
    config: oci.ImageConfig,
    layers: Sequence[IngestedLayer],
    manifest_bytes: bytes | None = None,
    manifest: oci.Manifest | None = None,
) -> Descriptor:
    """Verify diff ids, unpack, write config and manifest with their GC labels;
    return the manifest descriptor (the record target). ``ns`` must be leased."""
    return await _store_image(
        ns, config_bytes=config_bytes, config=config, layers=[_ready(layer) for layer in layers],
        manifest_bytes=manifest_bytes, manifest=manifest,
    )


async def _ready(layer: IngestedLayer) -> IngestedLayer:
    return layer


async def _store_image(
    ns: Namespace,
    *,
    config_bytes: bytes,
    config: oci.ImageConfig,
    layers: Sequence[Awaitable[IngestedLayer]],
    manifest_bytes: bytes | None,
    manifest: oci.Manifest | None,
) -> Descriptor:
    """store_image with layers that may still be ingesting: each layer is
    unpacked as soon as it is in (after those below it), while later ones go on.

    The error raised is the one storing the layers one after the other would
    raise: the first layer that failed to ingest, else the first wrong diff id,
    else the first digest unlike the manifest's, else the unpack's. After any
    of them nothing more is unpacked, but every layer is still awaited.
    """
    if len(layers) != len(config.diff_ids):
        raise ValueError("store_image: one diff id per layer")
    chain = oci.chain_ids(config.diff_ids)
    ingested: list[IngestedLayer] = []
    wrong_diff_id: archive.ArchiveError | None = None
    wrong_digest: archive.ArchiveError | None = None
    failed_unpack: errors.DockyardError | None = None
    for i, pending in enumerate(layers):
        layer = await pending
        ingested.append(layer)
        expected = config.diff_ids[i]
        if wrong_diff_id is None and layer.diff_id != expected:
            wrong_diff_id = archive.MalformedArchive(
                f"invalid diffID for layer {i}: expected {expected!r}, got {layer.diff_id!r}"
            )
        if manifest is not None and wrong_digest is None and manifest.layers[i].digest != layer.digest:
            wrong_digest = archive.MalformedArchive(
                f"layer {i} has digest {layer.digest}, the manifest says {manifest.layers[i].digest}"
            )
        if wrong_diff_id or wrong_digest or failed_unpack:
            continue
        if manifest is not None:
            declared = manifest.layers[i]
            desc = Descriptor(media_type=declared.media_type, digest=declared.digest, size=declared.size)
        else:
            # The manifest (written below, once every layer is in) may give the
            # OCI type where this says Docker's; containerd's differ reads both alike.
            desc = layer.descriptor(oci_types=False)
        try:
            staged = layer.stage is not None and await install_layer(
                ns, layer.stage, index=i, chain=chain, diff_ids=config.diff_ids
            )
            if not staged:
                await unpack_layer(ns, desc, index=i, diff_ids=config.diff_ids, chain=chain)
        except errors.DockyardError as exc:
            failed_unpack = exc
    for problem in (wrong_diff_id, wrong_digest, failed_unpack):
        if problem is not None:
            raise problem
    if manifest is None:
        oci_types = any(layer.compression is archive.Compression.ZSTD for layer in ingested)
        manifest = oci.Manifest(
            media_type=oci.OCI_MANIFEST if oci_types else oci.DOCKER_MANIFEST,
            config=oci.Descriptor(
                media_type=oci.OCI_CONFIG if oci_types else oci.DOCKER_CONFIG,
                digest=oci.digest_of(config_bytes),
                size=len(config_bytes),
            ),
            layers=tuple(
                oci.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size)
                for d in (layer.descriptor(oci_types=oci_types) for layer in ingested)
            ),
        )
        manifest_bytes = oci.encode_manifest(manifest)
    assert manifest_bytes is not None
    token = secrets.token_hex(6)
    await ns.write_blob(
        f"dockyard-config-{token}", config_bytes,
        expected_digest=manifest.config.digest, expected_size=len(config_bytes),
        labels=oci.config_gc_labels(config),
    )
    digest = oci.digest_of(manifest_bytes)
    await ns.write_blob(
        f"dockyard-manifest-{token}", manifest_bytes,
        expected_digest=digest, expected_size=len(manifest_bytes),
        labels=oci.manifest_gc_labels(manifest),
    )
    return Descriptor(media_type=manifest.media_type, digest=digest, size=len(manifest_bytes))


class _Ingests:
    """The layers of a load, ingested up to INGEST_CONCURRENCY at a time in the
    order first named, each once however many images share it.

    The ``async with`` owns the tasks: leaving it cancels those not done and
    waits for all, so no ingest outlives the lease or the spooled file.
    """

    def __init__(self, ns: Namespace, outer: OuterArchive, paths: Sequence[str], stager: Stager | None) -> None:
        self._ns = ns
        self._outer = outer
        self._paths = list(dict.fromkeys(paths))
        self._slots = asyncio.Semaphore(INGEST_CONCURRENCY)
        self._tasks: dict[str, asyncio.Task[IngestedLayer]] = {}
        self._stager = stager
        self._number = next(stager.numbers) if stager is not None else 0

    async def __aenter__(self) -> _Ingests:
        for index, path in enumerate(self._paths):
            self._tasks[path] = asyncio.create_task(self._ingest(path, index), name=f"ingest {path}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks.values():
            task.cancel()
        results = await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for result in results:
            if isinstance(result, IngestedLayer) and result.stage is not None:
                await asyncio.shield(discard_stage(result.stage))

    def get(self, path: str) -> asyncio.Task[IngestedLayer]:
        return self._tasks[path]

    async def _ingest(self, path: str, index: int) -> IngestedLayer:
        async with self._slots:
            # Stages take turns in the order the layers are named: the one an
            # install needs first goes first.
            return await ingest_layer(
                self._ns, self._outer.open(path), ref_hint="load", stager=self._stager, key=(self._number, index)
            )


async def run_load(ns: Namespace, store: ImageStore, plan: LoadPlan,
                   on_loaded: Callable[[str, str], None] | None = None,
                   stager: Stager | None = None) -> AsyncIterator[bytes]:
    """Ingest every image of the plan, then name them; yield the JSON messages.
    Errors end the stream with an error message. Closes the plan. With a
    ``stager`` layers unpack while they are ingested (layer_stage.py).

    Layers are ingested a few at once and unpacked as they come in; the
    outcome, errors included, is that of doing it one layer at a time."""
    try:
        loaded: list[tuple[PlannedImage, Descriptor]] = []
        try:
            async with ns.lease() as leased:
                paths = [path for image in plan.images for path in image.layer_paths]
                async with _Ingests(leased, plan.archive, paths, stager) as ingests:
                    for image in plan.images:
                        target = await _store_image(
                            leased, config_bytes=image.config_bytes, config=image.config,
                            layers=[ingests.get(path) for path in image.layer_paths],
                            manifest_bytes=image.manifest_bytes, manifest=image.manifest,
                        )
                        loaded.append((image, target))
                # Every image verified and unpacked: now name them, still leased
                # so nothing is collected between the writes and the records.
                for image, target in loaded:
                    for tag in image.tags:
                        await store.tag(ns, str(tag), target)
                    if not image.tags:
                        await store.keep_named(ns, target)
        except errors.DockyardError as exc:
            yield jsonmessage.error(exc.message)
            return
        for image, _ in loaded:
            if image.tags:
                for tag in image.tags:
                    yield jsonmessage.stream(f"Loaded image: {tag.familiar()}\n")
            else:
                yield jsonmessage.stream(f"Loaded image ID: {image.id}\n")
            if on_loaded is not None:  # the "load" event: (image id, its first name or id)
                on_loaded(image.id, image.tags[0].familiar() if image.tags else image.id)
    finally:
        plan.close()
