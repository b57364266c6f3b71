"""``docker pull``: images from a registry into containerd, with dockerd's progress messages.

    puller = ImagePuller(containerd=c, store=store, registry=client)
    chunks = await puller.pull(endpoint, ref=ref, platform=p, auth=auth)

:meth:`ImagePuller.pull` resolves the manifest before it returns, so an
unknown tag, bad credentials or a registry that is down are plain HTTP errors
(dockerd answers them the same way, before any output). The iterator it
returns yields the JSON messages of moby's puller::

    Pulling from <path>               id=<tag or familiar@digest>
    Already exists | Pulling fs layer id=<12 hex of the blob digest>
    Waiting                           (no download slot free yet)
    Downloading  {current,total}      every 512 KiB and at the end
    Verifying Checksum, Download complete
    Extracting {current,total}, Pull complete   (in layer order)
    Digest: sha256:…
    Status: Downloaded newer image for x:y | Status: Image is up to date for x:y

Later errors end the stream with ``{"errorDetail":…,"error":…}``.

Storage: everything a pull writes is under one containerd lease, and the
records are created last, so a failed or abandoned pull leaves nothing
(containerd's GC collects it when the lease goes). Layer downloads are shared:
an in-flight map keyed by (namespace, digest) lets a second pull of the same
blob watch the first one's download instead of starting its own. Each
download writes under a lease of its own; every pull that waited on it then
adds the blob to its own lease, and the last one to leave drops the
download's lease. Downloads run at most ``max_concurrent_downloads`` at once
(dockerd's default, 3), daemon-wide; a slot is free again once a blob's last
byte arrived.

Size is verified while streaming (by the registry client), digest and size
where the blob is stored: an embedded containerd's blobs are written into its
ingest file and hashed on the way by dockyard, then linked into the store
(containerd/ingest.py); any other containerd hashes what it is sent. A
mismatch fails the pull with dockerd's "filesystem layer verification
failed" and the ingest is aborted. Those checks and commits go one at a time,
lowest layer first (each commit holds containerd's metadata lock).

Unpacking: with a ``staging_root``, each layer is unpacked while it downloads
(engine/layer_stage.py: decompressed, its diff ID hashed, extracted into a
staging directory by a thread, threads taking turns in layer order); in chain
order, a layer whose staged diff ID is the config's is renamed into its new
snapshot. Anything else, and every layer without a staging root, is unpacked
by containerd's diff service once stored, as ``docker load`` does.

Errors raised: dockyard.errors only (the registry client's errors are domain
errors too).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd, Descriptor, Namespace
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.image_layers import unpack_layer
from dockyard.engine.image_store import ImageStore
from dockyard.engine.layer_stage import LayerStage, Stager, discard_stage, install_layer, staged
from dockyard.engine.ordered_slots import OrderedSlots
from dockyard.oci import image as oci
from dockyard.registry import (
    DEFAULT_PLATFORM,
    AuthConfig,
    DigestMismatch,
    FetchedManifest,
    ManifestRefused,
    RegistryClient,
    RegistryError,
    RegistryNotFound,
    Repository,
    select_manifest,
)
from dockyard.registry.manifests import MAX_CONFIG_SIZE
from dockyard.wire import jsonmessage, reference

log = logging.getLogger("dockyard.pull")

#: dockerd's ``max-concurrent-downloads`` default.
MAX_CONCURRENT_DOWNLOADS = 3
#: moby's progress reader reports every 512 KiB (and at the end).
PROGRESS_EVERY = 512 * 1024
#: containerd's label naming the repositories a blob came from, per registry;
#: push uses it to mount blobs across repositories.
LABEL_DISTRIBUTION_SOURCE = "containerd.io/distribution.source."
#: A download's own lease expires by itself if dockyard dies mid-pull.
DOWNLOAD_LEASE_SECONDS = 6 * 3600

Emit = Callable[[bytes], None]


def short_id(digest: str) -> str:
    """moby's ``stringid.TruncateID``: 12 hex characters, algorithm dropped."""
    return digest.partition(":")[2][:12]


def parse_pull_reference(from_image: str, tag: str = "") -> reference.Reference:
    """``fromImage`` and ``tag`` as dockerd's ``postImagesCreate`` combines them.

    A ``tag`` that parses as a digest pins the digest (the CLI sends
    ``docker pull x@sha256:…`` that way). Neither tag nor digest means every
    tag (``docker pull -a``). Raises InvalidParameter (dockerd's messages).
    """
    ref = reference.parse(from_image)
    if tag:
        if tag.startswith(("sha256:", "sha384:", "sha512:")):
            reference.validate_digest(tag)
            return reference.Reference(domain=ref.domain, path=ref.path, digest=tag)
        ref = ref.with_tag(tag)
    return ref


def distribution_source_labels(registry: str, path: str, existing: str = "") -> dict[str, str]:
    """The label that records ``path`` as a source of a blob on ``registry``."""
    sources = [s for s in existing.split(",") if s]
    if path not in sources:
        sources.append(path)
    return {LABEL_DISTRIBUTION_SOURCE + registry: ",".join(sources)}


# Message streams ----------------------------------------------------------------

_END = object()


async def message_stream(
    work: Callable[[Emit], Awaitable[None]], *, first_is_head: bool = True
) -> AsyncIterator[bytes]:
    """Run ``work`` in a task of its own and return the messages it emits.

    Returns once ``work`` emitted its first message; if it fails before that,
    its error is raised here (so it becomes an HTTP error, as in dockerd).
    Errors after the first message end the stream with an error message.
    Closing the iterator (the client left) cancels ``work``.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def run() -> None:
        try:
            await work(queue.put_nowait)
        except errors.DockyardError as exc:
            queue.put_nowait(exc)
        except Exception as exc:  # a bug: still end the stream the way the CLI understands
            log.exception("pull/push failed")
            queue.put_nowait(errors.SystemError(str(exc) or type(exc).__name__))
        finally:
            queue.put_nowait(_END)

    task = asyncio.create_task(run())
    try:
        first = await queue.get()
    except BaseException:
        task.cancel()
        raise
    if isinstance(first, errors.DockyardError):
        await asyncio.gather(task, return_exceptions=True)
        raise first
    return _drain(first, queue, task)


async def _drain(first: Any, queue: asyncio.Queue[Any], task: asyncio.Task[None]) -> AsyncIterator[bytes]:
    try:
        item = first
        while item is not _END:
            if isinstance(item, errors.DockyardError):
                yield jsonmessage.error(item.message)
            else:
                yield item
            item = await queue.get()
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# Shared downloads ---------------------------------------------------------------


@dataclass(eq=False, kw_only=True)
class _Download:
    """One blob being fetched into the content store, watched by one or more pulls."""

    namespace: str
    digest: str
    size: int
    lease_id: str
    #: Its place in line for containerd's hashing: (pull number, layer index).
    priority: tuple[int, int]
    #: The layer unpacking as it arrives, if it does (layer_stage.py).
    stage: LayerStage | None = None
    watchers: set[Emit] = field(default_factory=set)
    refs: int = 0
    task: asyncio.Task[None] | None = None

    def broadcast(self, message: bytes) -> None:
        for emit in list(self.watchers):
            emit(message)


class ImagePuller:
    """Pulls for every endpoint of one daemon; owns the in-flight download map."""

    def __init__(
        self,
        *,
        containerd: Containerd,
        store: ImageStore,
        registry: RegistryClient,
        max_concurrent_downloads: int = MAX_CONCURRENT_DOWNLOADS,
        staging_root: Path | None = None,
    ) -> None:
        """``staging_root``: where layers are unpacked while they download
        (layer_stage.py); it must be on containerd's filesystem. Emptied here.
        None: containerd unpacks each layer once it is stored."""
        self._containerd = containerd
        self._store = store
        self._registry = registry
        self._slots = asyncio.Semaphore(max_concurrent_downloads)
        # Hashing a downloaded blob is CPU work for containerd; layers an unpack
        # needs sooner (earlier pulls, lower layers) go first.
        self._verify = OrderedSlots(max(1, (os.cpu_count() or 2) // 2))
        self._pull_numbers = itertools.count()
        # The spare core goes to receiving, and to writing and hashing the blobs.
        self._stager = Stager(staging_root) if staging_root is not None else None
        self._inflight: dict[tuple[str, str], _Download] = {}
        #: Called ``(namespace, reference, repository name)`` after each successful pull.
        self.on_pulled: Callable[[str, str, str], None] | None = None

    async def aclose(self) -> None:
        """Cancel downloads still running (their pulls are failing anyway)."""
        tasks = [d.task for d in self._inflight.values() if d.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the API ---------------------------------------------------------------------

    async def pull(
        self,
        endpoint: Endpoint,
        *,
        ref: reference.Reference,
        platform: oci.Platform = DEFAULT_PLATFORM,
        auth: AuthConfig | None = None,
    ) -> AsyncIterator[bytes]:
        """``POST /images/create?fromImage=``: see the module docstring.

        ``ref`` with neither tag nor digest pulls every tag of the repository.
        """
        ns = self._containerd.namespace(endpoint.namespace)
        repo = self._registry.repository_of(ref, auth=auth)

        async def work(emit: Emit) -> None:
            all_tags = ref.tag is None and ref.digest is None
            wanted = (
                [ref.with_tag(t) for t in await repo.list_tags()] if all_tags else [ref]
            )
            if not wanted:
                raise RegistryNotFound(f"no tags found for {ref.familiar_name}")
            changed = False
            async with ns.lease() as leased:
                for one in wanted:
                    changed |= await self._pull_one(ns, leased, repo, one, platform, emit)
            shown = ref.familiar()
            if changed:
                emit(jsonmessage.status(f"Status: Downloaded newer image for {shown}"))
            else:
                emit(jsonmessage.status(f"Status: Image is up to date for {shown}"))
            if self.on_pulled is not None:
                self.on_pulled(endpoint.namespace, shown, ref.familiar_name)

        return await message_stream(work)

    async def distribution_inspect(self, name: str, *, auth: AuthConfig | None = None) -> dict[str, Any]:
        """``GET /distribution/{name}/json``: the descriptor a name resolves to, and
        the platforms it offers. NotFound with the registry's message."""
        ref = reference.parse(name)
        if ref.digest is None:
            ref = ref.with_default_tag()
        repo = self._registry.repository_of(ref, auth=auth)
        try:
            top = await repo.get_manifest(ref.digest or ref.tag or "latest")
        except RegistryNotFound as exc:
            # dockerd's distribution route shows the registry's words alone.
            raise errors.NotFound(exc.message.partition(" not found: ")[2] or exc.message) from exc
        platforms: list[dict[str, Any]] = []
        if isinstance(top.value, oci.Index):
            for entry in top.value.manifests:
                if entry.platform is not None:
                    platforms.append(_platform_json(entry.platform.os, entry.platform.architecture,
                                                    entry.platform.variant, ""))
        else:
            config = oci.parse_config(
                await repo.read_blob(top.value.config.digest, top.value.config.size, limit=MAX_CONFIG_SIZE)
            )
            platforms.append(_platform_json(config.os, config.architecture, config.variant,
                                            str(config.raw.get("os.version") or "")))
        return {
            "Descriptor": {"mediaType": top.media_type, "digest": top.digest, "size": len(top.data)},
            "Platforms": platforms,
        }

    # -- one image ---------------------------------------------------------------------

    async def _resolve(self, repo: Repository, ref: reference.Reference, platform: oci.Platform
                       ) -> tuple[FetchedManifest, FetchedManifest]:
        """(top, image manifest): the manifest ``ref`` names, through an index if needed."""
        top = await repo.get_manifest(ref.digest or ref.tag or "latest")
        if isinstance(top.value, oci.Manifest):
            return top, top
        entry = select_manifest(top.value, platform)
        inner = await repo.get_manifest(entry.digest)
        if not isinstance(inner.value, oci.Manifest):
            raise ManifestRefused(f"index entry {entry.digest} is not an image manifest")
        if len(inner.data) != entry.size:
            raise DigestMismatch(f"manifest {entry.digest}: {len(inner.data)} bytes, index says {entry.size}")
        return top, inner

    async def _pull_one(
        self,
        ns: Namespace,
        leased: Namespace,
        repo: Repository,
        ref: reference.Reference,
        platform: oci.Platform,
        emit: Emit,
    ) -> bool:
        """Pull one tag or digest under ``leased``; True if a record changed."""
        top, fetched = await self._resolve(repo, ref, platform)
        manifest = fetched.value
        assert isinstance(manifest, oci.Manifest)
        shown_id = ref.tag if ref.digest is None else ref.familiar()
        emit(jsonmessage.status(f"Pulling from {ref.path}", id=shown_id))

        config_bytes = await self._config(leased, repo, manifest.config)
        config = oci.parse_config(config_bytes)
        if len(config.diff_ids) != len(manifest.layers):
            raise ManifestRefused(
                f"invalid manifest: {len(manifest.layers)} layers for {len(config.diff_ids)} diff ids"
            )
        layers = [Descriptor(media_type=l.media_type, digest=l.digest, size=l.size) for l in manifest.layers]
        present = [await leased.blob_info(layer.digest) is not None for layer in layers]
        chain = oci.chain_ids(config.diff_ids)
        complete = all(present) and (not chain or await _committed(leased, chain[-1]))
        if not complete:
            await self._fetch_layers(ns, leased, repo, layers, config.diff_ids, present, emit)
        else:
            for layer in layers:  # hold them against a concurrent rmi until records exist
                await _adopt(leased, layer.digest)

        await leased.write_blob(
            f"dockyard-pull-config-{secrets.token_hex(6)}", config_bytes,
            expected_digest=manifest.config.digest, expected_size=len(config_bytes),
            labels=oci.config_gc_labels(config),
        )  # fmt: skip
        await leased.write_blob(
            f"dockyard-pull-manifest-{secrets.token_hex(6)}", fetched.data,
            expected_digest=fetched.digest, expected_size=len(fetched.data),
            labels=oci.manifest_gc_labels(manifest),
        )  # fmt: skip
        target = Descriptor(media_type=fetched.media_type, digest=fetched.digest, size=len(fetched.data))
        changed = False
        names = [f"{ref.trimmed()}@{top.digest}"]
        if ref.digest is None:
            names.insert(0, str(ref))
        for i, name in enumerate(names):
            updated = await self._name(ns, name, target)
            # A tag pull is "newer" when the tag moved; a digest pull when it is new.
            if i == 0:
                changed = updated
        emit(jsonmessage.status(f"Digest: {top.digest}"))
        return changed

    async def _name(self, ns: Namespace, name: str, target: Descriptor) -> bool:
        try:
            existing = await ns.get_image(name)
        except errors.NotFound:
            existing = None
        if existing is not None and existing.target.digest == target.digest:
            return False
        await self._store.tag(ns, name, target)
        return True

    async def _config(self, leased: Namespace, repo: Repository, desc: oci.Descriptor) -> bytes:
        if await leased.blob_info(desc.digest) is not None:
            data = await leased.read_blob_bytes(desc.digest, MAX_CONFIG_SIZE)
            if oci.digest_of(data) == desc.digest:
                return data
        return await repo.read_blob(desc.digest, desc.size, limit=MAX_CONFIG_SIZE)

    async def _fetch_layers(
        self,
        ns: Namespace,
        leased: Namespace,
        repo: Repository,
        layers: Sequence[Descriptor],
        diff_ids: Sequence[str],
        present: Sequence[bool],
        emit: Emit,
    ) -> None:
        """Download what is missing (concurrently), extract in order, with progress."""
        for layer, have in zip(layers, present, strict=True):
            emit(jsonmessage.progress("Already exists" if have else "Pulling fs layer", id=short_id(layer.digest)))
        joined: dict[int, _Download] = {}
        pull_number = next(self._pull_numbers)
        chain = oci.chain_ids(diff_ids)
        try:
            for i, (layer, have) in enumerate(zip(layers, present, strict=True)):
                if have:
                    await _adopt(leased, layer.digest)
                    continue
                labels = {oci.LABEL_UNCOMPRESSED: diff_ids[i]}
                labels.update(distribution_source_labels(repo.registry, repo.path))
                joined[i] = self._join(ns, repo, layer, labels, emit, priority=(pull_number, i))
            for i, layer in enumerate(layers):
                download = joined.get(i)
                if download is not None:
                    assert download.task is not None
                    await asyncio.shield(download.task)
                    emit(jsonmessage.progress(
                        "Extracting", id=short_id(layer.digest),
                        detail=jsonmessage.ProgressDetail(current=layer.size, total=layer.size),
                    ))  # fmt: skip
                if not await self._install_staged(leased, download, i, chain, diff_ids):
                    # The layers below are committed by now: only this one is left.
                    await unpack_layer(leased, layer, index=i, diff_ids=diff_ids, chain=chain)
                if download is not None:
                    # The download's lease held the blob until here: taking it
                    # under the pull's lease is a metadata write, kept off the
                    # unpack's path (containerd serialises those).
                    await _adopt(leased, layer.digest)
                    self._release(joined.pop(i), emit)
                    emit(jsonmessage.progress("Pull complete", id=short_id(layer.digest)))
        finally:
            for download in joined.values():
                self._release(download, emit)

    async def _install_staged(
        self, leased: Namespace, download: _Download | None, index: int, chain: Sequence[str],
        diff_ids: Sequence[str],
    ) -> bool:
        """Commit layer ``index`` from what its download unpacked on the way, if it did."""
        if download is None or download.stage is None:
            return False
        return await install_layer(leased, download.stage, index=index, chain=chain, diff_ids=diff_ids)

    # -- shared downloads ----------------------------------------------------------------

    def _join(self, ns: Namespace, repo: Repository, layer: Descriptor, labels: dict[str, str],
              emit: Emit, *, priority: tuple[int, int]) -> _Download:
        key = (ns.name, layer.digest)
        download = self._inflight.get(key)
        if download is None:
            download = _Download(
                namespace=ns.name, digest=layer.digest, size=layer.size,
                lease_id=f"dockyard-pull-{secrets.token_hex(8)}", priority=priority,
            )  # fmt: skip
            self._inflight[key] = download
            download.task = asyncio.create_task(self._download(ns, repo, layer, labels, download))
        download.refs += 1
        download.watchers.add(emit)
        return download

    def _release(self, download: _Download, emit: Emit) -> None:
        download.watchers.discard(emit)
        download.refs -= 1
        if download.refs > 0:
            return
        # Nobody waits for it any more: stop it if it runs, then drop its lease
        # (the pulls that wanted the blob took it under their own leases).
        if self._inflight.get((download.namespace, download.digest)) is download:
            del self._inflight[(download.namespace, download.digest)]
        assert download.task is not None
        download.task.cancel()
        failed = not download.task.done() or download.task.cancelled() or download.task.exception() is not None
        ns = self._containerd.namespace(download.namespace)

        async def drop() -> None:
            await asyncio.gather(download.task, return_exceptions=True)  # type: ignore[arg-type]
            if download.stage is not None:
                await discard_stage(download.stage)
            try:
                await ns.delete_lease(download.lease_id, sync=failed)
            except errors.DockyardError as exc:
                log.warning("dropping download lease %s: %s", download.lease_id, exc.message)

        # Owned by the event loop only briefly: it ends once the lease is gone.
        _background(drop())

    async def _download(self, ns: Namespace, repo: Repository, layer: Descriptor, labels: dict[str, str],
                        download: _Download) -> None:
        key = (ns.name, layer.digest)
        layer_id = short_id(layer.digest)
        try:
            # Take the slot before anything awaits: downloads then start in the
            # order their pulls asked for them (layer order), so the first
            # layers arrive first and extraction overlaps the later downloads.
            # The slot is for the transfer: it is free again once the last
            # byte arrived, while containerd still verifies and commits.
            if self._slots.locked():
                download.broadcast(jsonmessage.progress("Waiting", id=layer_id))
            slot = _Slot(self._slots)
            await slot.acquire()
            try:
                leased = ns.with_lease(await ns.create_lease(
                    lease_id=download.lease_id, expire_seconds=DOWNLOAD_LEASE_SECONDS
                ))  # fmt: skip
                # write_blob hashes what it stores and refuses a digest other
                # than the expected one (and aborts the ingest), so the
                # registry client checks only the size: one hash, not two.
                chunks: AsyncIterator[bytes] = repo.fetch_blob(layer.digest, layer.size, check_digest=False)
                if self._stager is not None:
                    download.stage = self._stager.start(layer_id, layer.media_type, download.priority)
                    if download.stage is not None:
                        chunks = staged(chunks, download.stage)
                try:
                    await leased.write_blob(
                        f"dockyard-pull-{layer_id}-{secrets.token_hex(6)}",
                        _counted(chunks, download, layer_id, slot),
                        expected_digest=layer.digest, expected_size=layer.size, labels=labels,
                        verify_slot=self._verify.hold(download.priority),
                    )  # fmt: skip
                except errors.InvalidParameter as exc:
                    if isinstance(exc, RegistryError):
                        raise
                    raise DigestMismatch(f"filesystem layer verification failed for digest {layer.digest}") from exc
            finally:
                slot.release()
            download.broadcast(jsonmessage.progress("Download complete", id=layer_id))
        finally:
            if self._inflight.get(key) is download:
                # Later pulls find the blob in the content store instead.
                del self._inflight[key]


async def _committed(ns: Namespace, chain_id: str) -> bool:
    info = await ns.stat_snapshot(chain_id)
    return info is not None and info.kind == "committed"


class _Slot:
    """One download slot of the daemon-wide semaphore, released at most once."""

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self._held = False

    async def acquire(self) -> None:
        await self._slots.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.release()


async def _counted(
    chunks: AsyncIterator[bytes], download: _Download, layer_id: str, slot: _Slot
) -> AsyncIterator[bytes]:
    """``chunks`` with Downloading progress; ``slot`` is freed once they end."""
    current = 0
    reported = 0
    total = download.size
    try:
        async for chunk in chunks:
            current += len(chunk)
            if current - reported >= PROGRESS_EVERY or current == total:
                reported = current
                download.broadcast(jsonmessage.progress(
                    "Downloading", id=layer_id,
                    detail=jsonmessage.ProgressDetail(current=current, total=total),
                ))  # fmt: skip
                if current == total:
                    download.broadcast(jsonmessage.progress("Verifying Checksum", id=layer_id))
            yield chunk
    finally:
        slot.release()


async def _adopt(leased: Namespace, digest: str) -> None:
    """Put an existing blob under ``leased``'s lease (containerd's ingest answers
    ALREADY_EXISTS and leases it); NotFound if it vanished."""
    await leased.write_blob(f"dockyard-pull-adopt-{secrets.token_hex(6)}", b"", expected_digest=digest)


def _platform_json(os: str, architecture: str, variant: str, os_version: str) -> dict[str, Any]:
    # ocispec.Platform's field order: architecture, os, os.version, os.features, variant.
    out: dict[str, Any] = {"architecture": architecture, "os": os}
    if os_version:
        out["os.version"] = os_version
    if variant:
        out["variant"] = variant
    return out


_BACKGROUND: set[asyncio.Task[None]] = set()


def _background(coro: Awaitable[None]) -> None:
    task: asyncio.Task[None] = asyncio.ensure_future(coro)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


__all__ = [
    "ImagePuller",
    "LABEL_DISTRIBUTION_SOURCE",
    "distribution_source_labels",
    "message_stream",
    "parse_pull_reference",
    "short_id",
]
