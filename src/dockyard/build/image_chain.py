"""The images a build chains: one per step, each a config and a manifest blob.

A :class:`ChainImage` is what a step starts from and what it produces. The
config JSON is rewritten for every step (new ``config``, ``created``,
``history`` entry, and ``rootfs.diff_ids`` when the step made a layer) and
stored with the GC label that keeps its top snapshot; the manifest lists the
parent's layer descriptors plus the new one and carries the labels that keep
config and layers. Docker schema2 types are used unless the base image was
OCI, so a push sends what the base was pulled as.

Raises what containerd raises (dockyard.errors).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from dockyard.build.steps import Layer
from dockyard.containerd import Descriptor, Namespace
from dockyard.engine.image_store import ImageStore
from dockyard.oci import image as oci

__all__ = ["ChainImage", "scratch_image", "write_image"]

#: Fields of a base config that describe the container it was committed
#: from, not the image: a new step drops them.
_STALE_FIELDS = ("container", "container_config", "docker_version", "config", "created", "history",
                 "rootfs", "author")


@dataclass(frozen=True, kw_only=True)
class ChainImage:
    id: str  # the config digest; "" for scratch
    config: Mapping[str, Any]  # the whole image config JSON
    layers: tuple[oci.Descriptor, ...]
    manifest_digest: str
    manifest_size: int
    oci_types: bool

    @property
    def inner(self) -> Mapping[str, Any]:
        return self.config.get("config") or {}

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])

    @property
    def chain_id(self) -> str:
        chain = oci.chain_ids(self.diff_ids)
        return chain[-1] if chain else ""

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def descriptor(self) -> Descriptor:
        """The manifest, as an image record's target."""
        return Descriptor(media_type=oci.OCI_MANIFEST if self.oci_types else oci.DOCKER_MANIFEST,
                          digest=self.manifest_digest, size=self.manifest_size)

    @classmethod
    async def load(cls, ns: Namespace, store: ImageStore, manifest_digest: str) -> ChainImage:
        """The image behind a manifest this builder wrote (a cache entry)."""
        info = await ns.blob_info(manifest_digest)
        size = info.size if info is not None else 0
        resolved = await store.resolve(ns, Descriptor(media_type="", digest=manifest_digest, size=size))
        return cls(id=resolved.manifest.config.digest, config=dict(resolved.config.raw),
                   layers=resolved.manifest.layers, manifest_digest=manifest_digest, manifest_size=size,
                   oci_types=resolved.manifest.media_type == oci.OCI_MANIFEST)


def scratch_image() -> ChainImage:
    config = {"architecture": "amd64", "config": {}, "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    return ChainImage(id="", config=config, layers=(), manifest_digest="", manifest_size=0, oci_types=False)


def _now() -> str:
    return oci.format_rfc3339_nano(datetime.now(timezone.utc))


async def write_image(
    ns: Namespace,
    parent: ChainImage,
    *,
    inner: Mapping[str, Any],
    layer: Layer | None,
    created_by: str,
    author: str | None = None,
) -> ChainImage:
    """Store the step's image: ``parent`` with config ``inner`` and, if given,
    ``layer`` on top. ``ns`` must be leased (the caller records the result)."""
    created = _now()
    raw = parent.config
    history = list(raw.get("history") or [])
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if author or raw.get("author"):
        entry["author"] = author or raw.get("author")
    if layer is None:
        entry["empty_layer"] = True
    history.append(entry)
    diff_ids = parent.diff_ids + ([layer.diff_id] if layer is not None else [])
    config: dict[str, Any] = {"architecture": raw.get("architecture") or "amd64"}
    if author or raw.get("author"):
        config["author"] = author or raw.get("author")
    config["config"] = dict(inner)
    config["created"] = created
    config["history"] = history
    config["os"] = raw.get("os") or "linux"
    config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    for key, value in raw.items():
        if key not in config and key not in _STALE_FIELDS:
            config[key] = value
    config_bytes = oci.canonical_json(config)
    parsed = oci.parse_config(config_bytes)
    config_digest = oci.digest_of(config_bytes)
    await ns.write_blob(f"dockyard-build-config-{secrets.token_hex(8)}", config_bytes,
                        expected_digest=config_digest, labels=oci.config_gc_labels(parsed))
    layers = parent.layers
    if layer is not None:
        media_type = oci.OCI_LAYER if parent.oci_types else oci.DOCKER_LAYER
        layers = (*layers, oci.Descriptor(media_type=media_type, digest=layer.descriptor.digest,
                                          size=layer.descriptor.size))
    manifest = oci.Manifest(
        media_type=oci.OCI_MANIFEST if parent.oci_types else oci.DOCKER_MANIFEST,
        config=oci.Descriptor(media_type=oci.OCI_CONFIG if parent.oci_types else oci.DOCKER_CONFIG,
                              digest=config_digest, size=len(config_bytes)),
        layers=layers,
    )
    manifest_bytes = oci.encode_manifest(manifest)
    manifest_digest = oci.digest_of(manifest_bytes)
    await ns.write_blob(f"dockyard-build-manifest-{secrets.token_hex(8)}", manifest_bytes,
                        expected_digest=manifest_digest, labels=oci.manifest_gc_labels(manifest))
    return ChainImage(id=config_digest, config=config, layers=layers, manifest_digest=manifest_digest,
                      manifest_size=len(manifest_bytes), oci_types=parent.oci_types)
