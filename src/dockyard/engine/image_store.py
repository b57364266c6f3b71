"""The image model on top of containerd: records → images, lookup, tags, deletion.

An image is what containerd image records point at: a manifest (or an index
from which the linux/amd64 manifest is picked) whose config digest is the
Docker image Id. Several records can point at one image (its tags); an image
that would have none keeps one record named ``dockyard-dangling@<digest>``
(label ``dockyard.dangling=true``) so it is still listed, as ``<none>``.

Content is immutable, so what a target digest resolves to (manifest, config)
is cached for the life of the store.

Raises only dockyard.errors: NotFound ("No such image: …", dockerd's words),
InvalidParameter for references that do not parse, Conflict from containerd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from dockyard import errors
from dockyard.containerd import Descriptor, ImageRecord, Namespace
from dockyard.oci import image as oci
from dockyard.wire import reference

DANGLING_PREFIX = "dockyard-dangling@"
LABEL_DANGLING = "dockyard.dangling"
#: dockerd's ``Metadata.LastTagTime``; containerd has no such field.
LABEL_LAST_TAG_TIME = "dockyard.last-tag-time"

#: Manifests and indexes are small; anything bigger is not one.
MANIFEST_LIMIT = 8 << 20
CONFIG_LIMIT = 64 << 20


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """What a record target comes down to on this platform."""

    manifest_digest: str
    manifest: oci.Manifest
    config: oci.ImageConfig
    config_size: int


@dataclass(frozen=True, kw_only=True)
class StoredImage:
    """One image (one config digest) and every record that points at it."""

    id: str
    resolved: Resolved
    target: Descriptor  # the target of the first record, for new tags
    records: tuple[ImageRecord, ...]

    @property
    def config(self) -> oci.ImageConfig:
        return self.resolved.config

    @property
    def tagged(self) -> tuple[reference.Reference, ...]:
        """The records that are tags (``name:tag``), parsed, in name order."""
        out = []
        for record in self.records:
            ref = parse_record_name(record.name)
            if ref is not None and ref.tag is not None and ref.digest is None:
                out.append(ref)
        return tuple(out)

    @property
    def digested(self) -> tuple[reference.Reference, ...]:
        out = []
        for record in self.records:
            ref = parse_record_name(record.name)
            if ref is not None and ref.digest is not None:
                out.append(ref)
        return tuple(out)

    @property
    def repo_tags(self) -> list[str]:
        return [ref.familiar() for ref in self.tagged]

    @property
    def repo_digests(self) -> list[str]:
        return [ref.familiar() for ref in self.digested]

    @property
    def dangling(self) -> bool:
        return not self.tagged and not self.digested

    @property
    def last_tag_time(self) -> str:
        times = [r.labels.get(LABEL_LAST_TAG_TIME, "") for r in self.records]
        return max(times) if times else ""


def parse_record_name(name: str) -> reference.Reference | None:
    """A record name as a reference; None for dangling records and foreign names."""
    if name.startswith(DANGLING_PREFIX):
        return None
    try:
        return reference.parse(name)
    except errors.InvalidParameter:
        return None


def dangling_name(target_digest: str) -> str:
    return DANGLING_PREFIX + target_digest


def now_rfc3339() -> str:
    return oci.format_rfc3339_nano(datetime.now(timezone.utc))


def not_found(text: str) -> errors.NotFound:
    """dockerd's ``ErrImageDoesNotExist`` message for what the user typed."""
    shown = text
    if not text.startswith("sha256:"):
        try:
            shown = reference.parse(text).with_default_tag().familiar()
        except errors.InvalidParameter:
            pass
    return errors.NotFound(f"No such image: {shown}")


class ImageStore:
    """Reads and changes image records of one containerd namespace at a time."""

    def __init__(self, *, os: str = "linux", architecture: str = "amd64") -> None:
        self._os = os
        self._architecture = architecture
        self._resolved: dict[str, Resolved] = {}

    async def resolve(self, ns: Namespace, target: Descriptor) -> Resolved:
        """Manifest and config behind a record target. NotFound if content is missing;
        InvalidParameter if it is not an image."""
        cached = self._resolved.get(target.digest)
        if cached is not None:
            return cached
        data = await ns.read_blob_bytes(target.digest, MANIFEST_LIMIT)
        kind = oci.media_kind(data, target.media_type)
        manifest_digest = target.digest
        if kind in oci.INDEX_TYPES:
            index = oci.parse_index(data, kind)
            chosen = oci.select_platform(index, os=self._os, architecture=self._architecture)
            manifest_digest = chosen.digest
            data = await ns.read_blob_bytes(chosen.digest, MANIFEST_LIMIT)
            kind = oci.media_kind(data, chosen.media_type)
        manifest = oci.parse_manifest(data, kind)
        config_bytes = await ns.read_blob_bytes(manifest.config.digest, CONFIG_LIMIT)
        resolved = Resolved(
            manifest_digest=manifest_digest,
            manifest=manifest,
            config=oci.parse_config(config_bytes),
            config_size=len(config_bytes),
        )
        self._resolved[target.digest] = resolved
        return resolved

    async def images(self, ns: Namespace) -> list[StoredImage]:
        """Every image of the namespace, records grouped by image Id, in record order.

        Records whose content is missing or unreadable are skipped (a pull or
        load in progress, or foreign records).
        """
        grouped: dict[str, list[tuple[ImageRecord, Resolved]]] = {}
        for record in sorted(await ns.list_images(), key=lambda r: r.name):
            try:
                resolved = await self.resolve(ns, record.target)
            except errors.DockyardError:
                continue
            grouped.setdefault(resolved.manifest.config.digest, []).append((record, resolved))
        return [
            StoredImage(
                id=image_id,
                resolved=entries[0][1],
                target=entries[0][0].target,
                records=tuple(record for record, _ in entries),
            )
            for image_id, entries in grouped.items()
        ]

    async def by_id(self, ns: Namespace, image_id: str) -> StoredImage | None:
        for image in await self.images(ns):
            if image.id == image_id:
                return image
        return None

    async def lookup(self, ns: Namespace, text: str) -> StoredImage:
        """Find an image as dockerd's ``GetImage`` does: full id, reference
        (``latest`` implied), ``name@digest``, then a unique id prefix.
        Raises NotFound with dockerd's message."""
        images = await self.images(ns)
        hex_text = text.removeprefix("sha256:")
        if text.startswith("sha256:") or reference.is_full_id(text):
            for image in images:
                if image.id == "sha256:" + hex_text:
                    return image
            if text.startswith("sha256:"):
                raise not_found(text)
        ref = None
        try:
            ref = reference.parse(text)
        except errors.InvalidParameter:
            if not reference.looks_like_id_prefix(text):
                raise
        if ref is not None:
            found = _by_reference(images, ref)
            if found is not None:
                return found
        if reference.looks_like_id_prefix(text):
            matches = [image for image in images if image.id.removeprefix("sha256:").startswith(hex_text)]
            if len(matches) == 1:
                return matches[0]
        raise not_found(text)

    # -- changing records --------------------------------------------------------------

    async def tag(self, ns: Namespace, name: str, target: Descriptor) -> None:
        """Point record ``name`` at ``target`` (create or move it), drop the dangling
        record of the image it now names, and keep the image it left named."""
        labels = {LABEL_LAST_TAG_TIME: now_rfc3339()}
        record = ImageRecord(name=name, target=target, labels=labels)
        previous: ImageRecord | None
        try:
            previous = await ns.get_image(name)
        except errors.NotFound:
            previous = None
        if previous is None:
            try:
                await ns.create_image(record)
            except errors.Conflict:  # created meanwhile: move it like any other tag
                previous = await ns.get_image(name)
        if previous is not None:
            await ns.update_image(record)
        image_id = (await self.resolve(ns, target)).manifest.config.digest
        image = await self.by_id(ns, image_id)
        for old in image.records if image is not None else ():
            if old.name.startswith(DANGLING_PREFIX):
                await _delete_record(ns, old.name)
        if previous is not None and previous.target.digest != target.digest:
            await self.keep_named(ns, previous.target)

    async def keep_named(self, ns: Namespace, target: Descriptor) -> None:
        """Give the image behind ``target`` a dangling record if nothing names it."""
        try:
            resolved = await self.resolve(ns, target)
        except errors.DockyardError:
            return
        image = await self.by_id(ns, resolved.manifest.config.digest)
        if image is not None:
            return
        record = ImageRecord(
            name=dangling_name(target.digest), target=target, labels={LABEL_DANGLING: "true"}
        )
        try:
            await ns.create_image(record)
        except errors.Conflict:
            pass

    async def untag(self, ns: Namespace, name: str) -> None:
        await ns.delete_image(name)

    async def delete(self, ns: Namespace, image: StoredImage) -> None:
        """Delete every record of ``image``; containerd's GC then frees its content
        and snapshots unless another image shares them."""
        for record in image.records:
            try:
                await ns.delete_image(record.name)
            except errors.NotFound:
                pass
        await collect_garbage(ns)

    async def size(self, ns: Namespace, image: StoredImage) -> int:
        """Unpacked size: the sum of the committed snapshots' own usage."""
        total = 0
        for chain_id in oci.chain_ids(image.config.diff_ids):
            try:
                total += await ns.snapshot_usage(chain_id)
            except errors.DockyardError:
                continue
        return total

    async def layer_sizes(self, ns: Namespace, image: StoredImage) -> list[int]:
        sizes = []
        for chain_id in oci.chain_ids(image.config.diff_ids):
            try:
                sizes.append(await ns.snapshot_usage(chain_id))
            except errors.DockyardError:
                sizes.append(0)
        return sizes


def _by_reference(images: Sequence[StoredImage], ref: reference.Reference) -> StoredImage | None:
    if ref.digest is not None:
        for image in images:
            for record in image.records:
                if record.name == str(ref):
                    return image
            for record in image.records:
                parsed = parse_record_name(record.name)
                if parsed is not None and parsed.name == ref.name and (
                    record.target.digest == ref.digest or image.resolved.manifest_digest == ref.digest
                ):
                    return image
        return None
    wanted = str(ref.with_default_tag())
    for image in images:
        for record in image.records:
            if record.name == wanted:
                return image
    return None


async def collect_garbage(ns: Namespace) -> None:
    """Run containerd's GC now, so that what a deleted image alone held is gone
    when the call returns (as after ``docker rmi``). Deleting a lease with
    ``sync`` is the one API that runs a collection on demand."""
    lease_id = await ns.create_lease(expire_seconds=60)
    await ns.delete_lease(lease_id, sync=True)


async def _delete_record(ns: Namespace, name: str) -> None:
    try:
        await ns.delete_image(name)
    except errors.NotFound:
        pass
