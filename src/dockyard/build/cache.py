"""The build cache: which image a step produced, by what the step saw.

A step's key is a digest of its parent image id, its kind and its resolved
arguments (for RUN the argv and the build args it sees, for COPY/ADD the
hash of the sources' content, for config steps the config they produce);
see :func:`step_key` (pure).

Entries live in containerd, so they survive restarts and belong to the
endpoint's namespace: one tiny blob per entry whose bytes are
``CACHE_MAGIC + key``, so its digest is known from the key alone and a
lookup is one ``Info`` call. Its labels make it a GC root
(``containerd.io/gc.root``) that references the step's manifest
(``containerd.io/gc.ref.content.m.0``), which keeps the config, layers and
snapshot of that step alive; ``dockyard.build-cache.manifest`` names the
manifest for the lookup. ``docker builder prune`` deletes the entry blobs
and lets containerd's GC take what only they held.

Raises only what containerd raises (dockyard.errors).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence

from dockyard import errors
from dockyard.containerd import Namespace
from dockyard.engine.image_store import collect_garbage, now_rfc3339
from dockyard.oci import image as oci

__all__ = ["BuildCache", "LABEL_CACHE", "LABEL_MANIFEST", "step_key"]

CACHE_MAGIC = b"dockyard-build-cache/v1\n"
LABEL_CACHE = "dockyard.build-cache"
LABEL_MANIFEST = "dockyard.build-cache.manifest"
LABEL_GC_ROOT = "containerd.io/gc.root"


def step_key(*, parent_id: str, kind: str, values: Sequence[str] = (),
             build_args: Mapping[str, str] | None = None) -> str:
    """The cache key of one step (pure): equal inputs give equal keys."""
    payload = {
        "parent": parent_id,
        "kind": kind,
        "values": list(values),
        "args": sorted((build_args or {}).items()),
    }
    return "sha256:" + hashlib.sha256(json.dumps(payload, separators=(",", ":")).encode()).hexdigest()


def entry_blob(key: str) -> bytes:
    return CACHE_MAGIC + key.encode()


class BuildCache:
    """Cache entries of one namespace."""

    def __init__(self, ns: Namespace) -> None:
        self._ns = ns

    @property
    def ns(self) -> Namespace:
        return self._ns

    async def lookup(self, key: str) -> str | None:
        """The manifest digest recorded for ``key``, or None."""
        info = await self._ns.blob_info(oci.digest_of(entry_blob(key)))
        if info is None:
            return None
        return info.labels.get(LABEL_MANIFEST) or None

    async def record(self, key: str, manifest_digest: str) -> None:
        """Remember that ``key`` produced the image whose manifest is ``manifest_digest``."""
        data = entry_blob(key)
        labels = {
            LABEL_GC_ROOT: now_rfc3339(),
            LABEL_CACHE: "1",
            LABEL_MANIFEST: manifest_digest,
            f"{oci.LABEL_GC_MANIFEST_PREFIX}0": manifest_digest,
        }
        await self._ns.write_blob(f"dockyard-build-cache-{secrets.token_hex(8)}", data,
                                  expected_digest=oci.digest_of(data), labels=labels)

    async def forget(self, key: str) -> None:
        try:
            await self._ns.delete_blob(oci.digest_of(entry_blob(key)))
        except errors.NotFound:
            pass

    async def prune(self) -> tuple[list[str], int]:
        """Drop every entry; return the entry digests and the bytes containerd
        no longer holds once GC ran (content only, an estimate)."""
        entries = await self._ns.list_blobs(f'labels."{LABEL_CACHE}"=="1"')
        before = sum(b.size for b in await self._ns.list_blobs())
        deleted = []
        for entry in entries:
            try:
                await self._ns.delete_blob(entry.digest)
            except errors.NotFound:
                continue
            deleted.append(entry.digest)
        await collect_garbage(self._ns)
        after = sum(b.size for b in await self._ns.list_blobs())
        return deleted, max(before - after, 0)
