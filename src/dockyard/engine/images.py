"""The image service: what ``docker images|inspect|tag|rmi|history|load|save|
import|image prune`` do, on containerd, behaving as dockerd (API 1.50).

Every call takes the Endpoint it serves and works in that endpoint's
containerd namespace only. The model (records, dangling records, lookup) is
in ``image_store``; load/import in ``image_load`` / ``image_import``; save in
``image_save``; layers and unpacking in ``image_layers``.

Raises only dockyard.errors: NotFound ("No such image: …"), Conflict (rmi of
an image in use or referenced in several repositories), InvalidParameter
(bad reference, filter, archive or change), PayloadTooLarge.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd, Namespace
from dockyard.engine import image_import, image_load, image_save
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.events import EventBus
from dockyard.engine.image_load import BodyReader
from dockyard.engine.image_store import LABEL_LAST_TAG_TIME, ImageStore, StoredImage
from dockyard.engine.layer_stage import Stager
from dockyard.oci import image as oci
from dockyard.wire import duration, jsonmessage, reference
from dockyard.wire.filters import Filters
from dockyard.wire.pathmatch import compile_match

LIST_FILTERS = frozenset({"before", "dangling", "label", "reference", "since", "until"})
PRUNE_FILTERS = frozenset({"dangling", "label", "label!", "until"})
ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True, kw_only=True)
class ImageUser:
    """A container that uses an image (the containers service reports these)."""

    id: str
    running: bool


#: ``(endpoint, image id) -> containers using it``; the containers service
#: provides it. Without one, no image is in use.
ContainersUsing = Callable[[Endpoint, str], Awaitable[Sequence[ImageUser]]]


async def _nobody(endpoint: Endpoint, image_id: str) -> Sequence[ImageUser]:
    return ()


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _familiar_match(pattern: str, ref: reference.Reference) -> bool:
    """moby's ``FamiliarMatch``: against ``name:tag``, then the name alone."""
    rx = compile_match(pattern)
    return bool(rx.match(ref.familiar()) or rx.match(ref.familiar_name))


class ImageService:
    """Images of every endpoint, one containerd."""

    def __init__(
        self,
        *,
        containerd: Containerd,
        tmp_dir: Path,
        max_body_bytes: int = 64 << 30,
        containers_using: ContainersUsing | None = None,
        staging_root: Path | None = None,
    ) -> None:
        """``staging_root``: where loaded layers unpack while they are ingested
        (layer_stage.py); on containerd's filesystem, emptied here. None:
        containerd unpacks each layer once it is stored."""
        self._containerd = containerd
        self._tmp_dir = tmp_dir
        self._max_body = max_body_bytes
        self._stager = Stager(staging_root) if staging_root is not None else None
        self._users = containers_using or _nobody
        self._events: EventBus | None = None
        self.store = ImageStore()

    def set_events(self, bus: EventBus) -> None:
        """Publish image events (tag, untag, delete, load, save, import) on ``bus``."""
        self._events = bus

    def _event(self, endpoint: Endpoint, image_id: str, name: str, action: str,
               image: StoredImage | None = None) -> None:
        if self._events is not None:
            labels = (image.config.config.get("Labels") or {}) if image is not None else {}
            self._events.publish_image(endpoint.namespace, image_id=image_id, name=name, action=action,
                                       labels=labels)

    def set_containers_using(self, hook: ContainersUsing) -> None:
        """Install the in-use check once the containers service exists."""
        self._users = hook

    def _ns(self, endpoint: Endpoint) -> Namespace:
        return self._containerd.namespace(endpoint.namespace)

    # -- lookup ---------------------------------------------------------------------

    async def get(self, endpoint: Endpoint, name: str) -> StoredImage:
        """The image ``name`` refers to (id, prefix, reference); NotFound otherwise.
        ``.config`` is its parsed config, ``.id`` its Id, ``.target`` its manifest."""
        return await self.store.lookup(self._ns(endpoint), name)

    # -- list / inspect / history ---------------------------------------------------

    async def list_images(
        self,
        endpoint: Endpoint,
        *,
        filters: Filters,
        all: bool = False,  # noqa: A002 - no intermediate images exist here
        shared_size: bool = False,
        api_version: tuple[int, int] = (1, 50),
    ) -> list[dict[str, Any]]:
        """``GET /images/json``, newest first."""
        filters.validate(LIST_FILTERS)
        ns = self._ns(endpoint)
        images = await self.store.images(ns)
        dangling = filters.bool_value("dangling", False) if filters.contains("dangling") else None
        before = await self._created_of(ns, filters, "before")
        since = await self._created_of(ns, filters, "since")
        until = None
        for value in filters.get("until"):
            until = duration.parse_time(value, now_ns=time.time_ns()) // 1_000_000_000
        patterns = sorted(filters.get("reference"))
        sizes: dict[str, list[int]] = {}
        for image in images:
            sizes[image.id] = await self.store.layer_sizes(ns, image)
        shared: dict[str, int] = {}
        if shared_size:
            for image in images:
                for chain_id in oci.chain_ids(image.config.diff_ids):
                    shared[chain_id] = shared.get(chain_id, 0) + 1
        out = []
        for image in images:
            created = oci.created_unix(image.config.created)
            if dangling is not None and dangling != image.dangling:
                continue
            if before is not None and created >= before:
                continue
            if since is not None and created <= since:
                continue
            if until is not None and created >= until:
                continue
            labels = image.config.config.get("Labels") or {}
            if not filters.match_label(labels):
                continue
            tags = [t for t in image.tagged if not patterns or any(_familiar_match(p, t) for p in patterns)]
            if patterns and not tags:
                continue
            summary: dict[str, Any] = {
                "Containers": -1,
                "Created": created,
                "Id": image.id,
                "Labels": labels or None,
                "ParentId": "",
                "RepoDigests": image.repo_digests,
                "RepoTags": [t.familiar() for t in tags],
                "SharedSize": -1,
                "Size": sum(sizes[image.id]),
            }
            if shared_size:
                chain = oci.chain_ids(image.config.diff_ids)
                summary["SharedSize"] = sum(
                    s for s, c in zip(sizes[image.id], chain, strict=True) if shared[c] > 1
                )
            if api_version < (1, 44):
                summary["VirtualSize"] = summary["Size"]
            out.append((created, image.id, summary))
        out.sort(key=lambda item: (item[0], item[1]), reverse=True)
        return [summary for _, _, summary in out]

    async def _created_of(self, ns: Namespace, filters: Filters, key: str) -> int | None:
        values = filters.get(key)
        if not values:
            return None
        image = await self.store.lookup(ns, sorted(values)[0])
        return oci.created_unix(image.config.created)

    async def inspect(
        self, endpoint: Endpoint, name: str, *, api_version: tuple[int, int] = (1, 50)
    ) -> dict[str, Any]:
        """``GET /images/{name}/json``."""
        ns = self._ns(endpoint)
        image = await self.store.lookup(ns, name)
        config = image.config
        created = oci.parse_rfc3339(config.created)
        out: dict[str, Any] = {
            "Id": image.id,
            "RepoTags": image.repo_tags,
            "RepoDigests": image.repo_digests,
            "Parent": "",
            "Comment": config.comment,
            "Created": oci.format_rfc3339_nano(created) if created else "",
            "DockerVersion": str(config.raw.get("docker_version") or ""),
            "Author": config.author,
            "Config": oci.inspect_config(config),
            "Architecture": config.architecture,
        }
        if config.variant:
            out["Variant"] = config.variant
        out["Os"] = config.os
        if config.raw.get("os.version"):
            out["OsVersion"] = config.raw["os.version"]
        out["Size"] = await self.store.size(ns, image)
        if api_version < (1, 44):
            out["VirtualSize"] = out["Size"]
        out["GraphDriver"] = {"Data": {}, "Name": "overlayfs"}
        rootfs: dict[str, Any] = {"Type": "layers"}
        if config.diff_ids:
            rootfs["Layers"] = list(config.diff_ids)
        out["RootFS"] = rootfs
        out["Metadata"] = {"LastTagTime": image.last_tag_time or ZERO_TIME}
        return out

    async def history(self, endpoint: Endpoint, name: str) -> list[dict[str, Any]]:
        """``GET /images/{name}/history``, newest first."""
        ns = self._ns(endpoint)
        image = await self.store.lookup(ns, name)
        sizes = await self.store.layer_sizes(ns, image)
        entries = []
        layer = 0
        for h in image.config.history:
            size = 0
            if not h.empty_layer:
                size = sizes[layer] if layer < len(sizes) else 0
                layer += 1
            entries.append(
                {
                    "Id": "<missing>",
                    "Created": oci.created_unix(h.created),
                    "CreatedBy": h.created_by,
                    "Tags": None,
                    "Size": size,
                    "Comment": h.comment,
                }
            )
        entries.reverse()
        if entries:
            entries[0]["Id"] = image.id
            entries[0]["Tags"] = image.repo_tags or None
        return entries

    # -- tag / remove / prune -------------------------------------------------------

    async def tag(self, endpoint: Endpoint, name: str, *, repo: str, tag: str) -> None:
        """``POST /images/{name}/tag``: point ``repo:tag`` at the image."""
        ns = self._ns(endpoint)
        image = await self.store.lookup(ns, name)
        ref = reference.parse(repo)
        if ref.digest is not None:
            raise errors.InvalidParameter("refusing to create a tag with a digest reference")
        if tag:
            ref = ref.with_tag(tag)
        await self.store.tag(ns, str(ref.with_default_tag()), image.target)
        self._event(endpoint, image.id, ref.with_default_tag().familiar(), "tag", image)

    async def remove(
        self, endpoint: Endpoint, name: str, *, force: bool = False, prune: bool = True
    ) -> list[dict[str, str]]:
        """``DELETE /images/{name}``, with moby's ``ImageDelete`` rules."""
        ns = self._ns(endpoint)
        image = await self.store.lookup(ns, name)
        users = list(await self._users(endpoint, image.id))
        refs = [*image.tagged, *image.digested]
        single_repo = len({r.name for r in refs}) <= 1
        records: list[dict[str, str]] = []
        by_id = name.startswith("sha256:") or image.id.removeprefix("sha256:").startswith(name)
        if not by_id:
            if not force and single_repo and users:
                raise errors.Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - '
                    f"container {users[0].id[:12]} is using its referenced image {_short(image.id)}"
                )
            ref = reference.parse(name)
            ref = ref if ref.digest is not None else ref.with_default_tag()
            removed = [r for r in refs if str(r) == str(ref)] or [
                r for r in image.digested if r.name == ref.name
            ][:1]
            if ref.digest is None and not any(
                r.name == ref.name and r not in removed for r in image.tagged
            ):
                # moby: once the last tag of a repository goes, so do its digest
                # references (the RepoDigests a pull or push recorded).
                removed += [r for r in image.digested if r.name == ref.name and r not in removed]
            for r in removed:
                await self.store.untag(ns, str(r))
                records.append({"Untagged": r.familiar()})
                self._event(endpoint, image.id, image.id, "untag", image)
            remaining = [r for r in refs if r not in removed]
            if remaining:
                return records
            if any(u.running for u in users) or (users and not force):
                await self.store.keep_named(ns, image.target)  # stays, as <none>
                return records
        else:
            running = [u for u in users if u.running]
            if running:
                raise errors.Conflict(
                    f"conflict: unable to delete {_short(image.id)} (cannot be forced) - "
                    f"image is being used by running container {running[0].id[:12]}"
                )
            if not force:
                if users:
                    raise errors.Conflict(
                        f"conflict: unable to delete {_short(image.id)} (must be forced) - "
                        f"image is being used by stopped container {users[0].id[:12]}"
                    )
                if not single_repo:
                    raise errors.Conflict(
                        f"conflict: unable to delete {_short(image.id)} (must be forced) - "
                        "image is referenced in multiple repositories"
                    )
            for r in refs:
                records.append({"Untagged": r.familiar()})
        await self.store.delete(ns, image)
        for _ in range(len(refs) if by_id else 0):
            self._event(endpoint, image.id, image.id, "untag", image)
        self._event(endpoint, image.id, image.id, "delete", image)
        records.append({"Deleted": image.id})
        return records

    async def prune(self, endpoint: Endpoint, *, filters: Filters) -> dict[str, Any]:
        """``POST /images/prune``: dangling images, or with ``dangling=false`` every
        image no container uses."""
        filters.validate(PRUNE_FILTERS)
        ns = self._ns(endpoint)
        dangling_only = filters.bool_value("dangling", True)
        until = None
        for value in filters.get("until"):
            until = duration.parse_time(value, now_ns=time.time_ns()) // 1_000_000_000
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        for image in await self.store.images(ns):
            if dangling_only and not image.dangling:
                continue
            if until is not None and oci.created_unix(image.config.created) >= until:
                continue
            if not filters.match_labels_prune(image.config.config.get("Labels") or {}):
                continue
            if await self._users(endpoint, image.id):
                continue
            size = await self.store.size(ns, image)
            deleted += [{"Untagged": r.familiar()} for r in (*image.tagged, *image.digested)]
            await self.store.delete(ns, image)
            deleted.append({"Deleted": image.id})
            reclaimed += size
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    # -- load / save / import -------------------------------------------------------

    async def load(self, endpoint: Endpoint, body: BodyReader, *, quiet: bool = False) -> AsyncIterator[bytes]:
        """``POST /images/load``. Spools and validates before returning (errors
        here are HTTP errors); the returned iterator stores the images and yields
        the JSON messages (later errors are error messages). ``quiet`` changes
        nothing: no progress bars are sent either way."""
        plan = await image_load.prepare_load(body, tmp_dir=self._tmp_dir, limit=self._max_body)
        return image_load.run_load(self._ns(endpoint), self.store, plan,
                                   on_loaded=lambda image_id, name: self._event(endpoint, image_id, name, "load"),
                                   stager=self._stager)

    async def save(self, endpoint: Endpoint, names: Sequence[str]) -> AsyncIterator[bytes]:
        """``GET /images/{name}/get`` and ``GET /images/get?names=…``: resolves every
        name first (NotFound before the head), then returns the tar stream."""
        if not names:
            raise errors.InvalidParameter("no images specified")
        ns = self._ns(endpoint)
        entries = await image_save.resolve_names(ns, self.store, names)
        if self._events is None:
            return image_save.stream_archive(ns, entries)

        async def announced() -> AsyncIterator[bytes]:
            async for chunk in image_save.stream_archive(ns, entries):
                yield chunk
            for entry in entries:
                self._event(endpoint, entry.image.id, entry.image.id, "save", entry.image)

        return announced()

    async def import_image(
        self,
        endpoint: Endpoint,
        body: BodyReader,
        *,
        repo: str = "",
        tag: str = "",
        message: str = "",
        changes: Sequence[str] = (),
    ) -> AsyncIterator[bytes]:
        """``POST /images/create?fromSrc=-``: validates the reference and changes and
        spools the body (HTTP errors), then returns the message stream that
        imports it (``{"status":"sha256:…"}`` at the end)."""
        ref = None
        if repo:
            ref = reference.parse(repo)
            if ref.digest is not None:
                raise errors.InvalidParameter("cannot import digest reference")
            ref = (ref.with_tag(tag) if tag else ref).with_default_tag()
        image_import.parse_changes(changes)
        ns = self._ns(endpoint)
        file = await image_import.spool_body(body, tmp_dir=self._tmp_dir, limit=self._max_body)

        async def messages() -> AsyncIterator[bytes]:
            try:
                image_id = await image_import.import_file(
                    ns, self.store, file, repo=ref,
                    message=message or "Imported from -", changes=changes,
                )
            except errors.DockyardError as exc:
                yield jsonmessage.error(exc.message)
                return
            self._event(endpoint, image_id, image_id, "import")
            yield jsonmessage.status(image_id)

        return messages()


__all__ = ["ContainersUsing", "ImageService", "ImageUser", "LABEL_LAST_TAG_TIME", "StoredImage"]
