"""``docker commit``: a container's changes as a new image (``POST /commit``).

The new layer is containerd's diff of the container's read-write snapshot
against a read-only view of its image (``Diff`` service, gzip), taken with
the container's task paused unless ``pause=false``. The image is the parent
image's layers plus that one (none when nothing changed: moby's empty layer
rule), a config built as moby's ``generateCommitImageConfig`` does (author,
created, history entry with the container's command and the comment), and
the container's Config with ``--change`` instructions and the request's Config
merged as moby's ``merge`` does. Config, manifest and layer are stored and
unpacked as ``docker load`` stores them, under one lease, then tagged
(``repo``/``tag``) or kept as a dangling image.

Raises dockyard.errors only: NotFound (container, parent image),
InvalidParameter (a bad reference or change), Conflict (a container being
removed), and what containerd raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd, Namespace
from dockyard.containerd.types import Descriptor
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.image_import import apply_changes
from dockyard.engine.image_layers import IngestedLayer
from dockyard.engine.image_load import store_image
from dockyard.engine.images import ImageService
from dockyard.oci import image as oci
from dockyard.wire import archive, reference

__all__ = ["CommitRequest", "CommitService", "EMPTY_LAYER_DIFF_ID", "commit_config", "merge_config"]

#: The diff id of a tar with no entries (two zero blocks): moby's ``layer.IsEmpty``.
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

_IMAGE_CONFIG_KEYS = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
    "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell",
)  # fmt: skip


def merge_config(user: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """moby's ``merge(userConf, imageConf)``: fill what ``user`` leaves empty from ``container``."""
    out = dict(user)
    if not out.get("User"):
        out["User"] = container.get("User") or ""
    ports = dict(out.get("ExposedPorts") or {})
    for port in container.get("ExposedPorts") or {}:
        ports.setdefault(port, {})
    out["ExposedPorts"] = ports or container.get("ExposedPorts")
    env = list(out.get("Env") or [])
    if not env:
        env = list(container.get("Env") or [])
    else:
        keys = {e.partition("=")[0] for e in env}
        env += [e for e in container.get("Env") or [] if e.partition("=")[0] not in keys]
    out["Env"] = env
    labels = dict(out.get("Labels") or {})
    for key, value in (container.get("Labels") or {}).items():
        labels.setdefault(key, value)
    out["Labels"] = labels
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = container.get("Cmd")
            out["ArgsEscaped"] = container.get("ArgsEscaped")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = container.get("Entrypoint")
    if container.get("Healthcheck") and not out.get("Healthcheck"):
        out["Healthcheck"] = container.get("Healthcheck")
    if not out.get("WorkingDir"):
        out["WorkingDir"] = container.get("WorkingDir") or ""
    volumes = dict(out.get("Volumes") or {})
    volumes.update(container.get("Volumes") or {})
    out["Volumes"] = volumes or None
    if not out.get("StopSignal"):
        out["StopSignal"] = container.get("StopSignal") or ""
    return out


def _image_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The image-config fields of a container Config, empty ones left out."""
    return {key: config[key] for key in _IMAGE_CONFIG_KEYS if config.get(key) not in (None, "", [], {}, False)}


def commit_config(parent: oci.ImageConfig, *, diff_id: str, config: Mapping[str, Any], author: str,
                  comment: str, created_by: str, created: datetime) -> bytes:
    """The new image's config (moby's ``generateCommitImageConfig``, plus the comment)."""
    when = oci.format_rfc3339_nano(created)
    author = author or parent.author
    empty = diff_id == EMPTY_LAYER_DIFF_ID
    history = [dict(entry) for entry in parent.raw.get("history") or []]
    entry: dict[str, Any] = {"created": when, "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    if empty:
        entry["empty_layer"] = True
    history.append(entry)
    out: dict[str, Any] = {"architecture": parent.architecture or "amd64"}
    if author:
        out["author"] = author
    if comment:
        out["comment"] = comment
    out["config"] = _image_config(config)
    out["created"] = when
    out["history"] = history
    out["os"] = parent.os or "linux"
    if parent.variant:
        out["variant"] = parent.variant
    out["rootfs"] = {"type": "layers", "diff_ids": [*parent.diff_ids, *([] if empty else [diff_id])]}
    return oci.canonical_json(out)


def _compression(media_type: str) -> archive.Compression:
    if media_type.endswith("gzip"):
        return archive.Compression.GZIP
    if media_type.endswith("zstd"):
        return archive.Compression.ZSTD
    return archive.Compression.NONE


class CommitRequest:
    """The query and body of ``POST /commit``, checked before anything is done."""

    def __init__(self, *, container: str, repo: str = "", tag: str = "", comment: str = "",
                 author: str = "", pause: bool = True, changes: Sequence[str] = (),
                 config: Mapping[str, Any] | None = None) -> None:
        self.container = container
        self.comment = comment
        self.author = author
        self.pause = pause
        self.changes = tuple(changes)
        self.config = config
        self.reference: reference.Reference | None = None
        if repo:
            ref = reference.parse(repo)
            if ref.digest is not None:
                raise errors.InvalidParameter("refusing to create a tag with a digest reference")
            if tag:
                reference.validate_tag(tag)
                ref = ref.with_tag(tag)
            self.reference = ref.with_default_tag()
        elif tag:
            raise errors.InvalidParameter("invalid reference format: repository name must be given with a tag")
        apply_changes({}, self.changes)  # a bad change is a 400 before the container is touched


class CommitService:
    def __init__(self, *, containers: ContainerService, images: ImageService, containerd: Containerd) -> None:
        self._containers = containers
        self._images = images
        self._containerd = containerd

    async def commit(self, endpoint: Endpoint, request: CommitRequest) -> str:
        """Commit the container; return the new image id (``sha256:…``)."""
        container = await self._containers.get(endpoint, request.container)
        if container.removing:
            raise errors.Conflict(f"You cannot commit container {container.id} which is being removed")
        definition = container.definition
        base = request.config if request.config is not None else definition.config
        new_config = merge_config(apply_changes(base, request.changes), definition.config)
        parent = await self._images.get(endpoint, definition.image_id)
        ns = self._containerd.namespace(endpoint.namespace)
        async with ns.lease() as leased:
            layer = await self._diff(leased, container.id, definition.chain_id,
                                     pause=request.pause and container.running,
                                     oci_types=parent.resolved.manifest.media_type == oci.OCI_MANIFEST)
            info = await leased.blob_info(layer.digest)
            diff_id = (info.labels if info else {}).get(oci.LABEL_UNCOMPRESSED, "")
            if not diff_id:
                raise errors.SystemError(f"the diff of container {container.id} has no uncompressed digest")
            config_bytes = commit_config(
                parent.config, diff_id=diff_id, config=new_config, author=request.author,
                comment=request.comment, created_by=" ".join(definition.config.get("Cmd") or []),
                created=datetime.now(timezone.utc))
            target = await self._store(leased, parent, config_bytes, layer, diff_id)
            store = self._images.store
            if request.reference is not None:
                await store.tag(ns, str(request.reference), target)
            else:
                await store.keep_named(ns, target)
        return oci.digest_of(config_bytes)

    async def _diff(self, ns: Namespace, container_id: str, chain_id: str, *, pause: bool,
                    oci_types: bool) -> Descriptor:
        token = secrets.token_hex(6)
        view_key = f"dockyard-commit-{token}"
        lower = await ns.view_snapshot(view_key, chain_id) if chain_id else []
        paused = False
        try:
            upper = await ns.snapshot_mounts(container_id)
            if pause:
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    await ns.pause_task(container_id)
                    paused = True
            # containerd 1.6's differ writes only OCI media types; Docker's gzip layer
            # type names the same bytes, so the manifest may still say Docker's.
            diff = await ns.diff_mounts(lower, upper, media_type=oci.OCI_LAYER_GZIP,
                                        ref=f"dockyard-commit-{token}")
            media_type = oci.OCI_LAYER_GZIP if oci_types else oci.DOCKER_LAYER_GZIP
            return Descriptor(media_type=media_type, digest=diff.digest, size=diff.size)
        finally:
            if paused:
                with contextlib.suppress(errors.DockyardError):
                    await asyncio.shield(ns.resume_task(container_id))
            if chain_id:
                with contextlib.suppress(errors.DockyardError):
                    await asyncio.shield(ns.remove_snapshot(view_key))

    @staticmethod
    async def _store(ns: Namespace, parent: Any, config_bytes: bytes, layer: Descriptor, diff_id: str) -> Descriptor:
        manifest: oci.Manifest = parent.resolved.manifest
        parent_config: oci.ImageConfig = parent.config
        layers = [IngestedLayer(digest=d.digest, size=d.size, diff_id=parent_config.diff_ids[i],
                                compression=_compression(d.media_type))
                  for i, d in enumerate(manifest.layers)]
        descriptors = list(manifest.layers)
        if diff_id != EMPTY_LAYER_DIFF_ID:
            layers.append(IngestedLayer(digest=layer.digest, size=layer.size, diff_id=diff_id,
                                        compression=archive.Compression.GZIP))
            descriptors.append(oci.Descriptor(media_type=layer.media_type, digest=layer.digest, size=layer.size))
        oci_types = manifest.media_type == oci.OCI_MANIFEST
        new_manifest = oci.Manifest(
            media_type=manifest.media_type,
            config=oci.Descriptor(media_type=oci.OCI_CONFIG if oci_types else oci.DOCKER_CONFIG,
                                  digest=oci.digest_of(config_bytes), size=len(config_bytes)),
            layers=tuple(descriptors),
        )
        return await store_image(ns, config_bytes=config_bytes, config=oci.parse_config(config_bytes),
                                 layers=layers, manifest_bytes=oci.encode_manifest(new_manifest),
                                 manifest=new_manifest)
