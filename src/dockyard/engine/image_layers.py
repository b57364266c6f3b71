"""Layers into containerd: stream one layer in, verify it, unpack images.

``ingest_layer`` reads a layer (plain, gzip, zstd, bzip2 or xz) from a file
object in one pass: it decompresses, feeds every tar header to the safety
scanner, and streams the blob into containerd's content store, which hashes
it (the blob digest, and the diff id of a layer stored uncompressed); only a
layer stored compressed has its tar hashed here (the diff id). Blocking
work runs in a worker thread one chunk at a time, so the event loop stays free
and memory stays at one chunk. bzip2 and xz layers are stored uncompressed
(containerd's differ cannot read them).

``unpack`` turns an image's layers into committed overlayfs snapshots named by
chain id (prepare on the parent chain → apply → commit), skipping those that
exist; ``unpack_layer`` does one layer, for callers that go in chain order
while later layers still arrive. With a stager, ``ingest_layer`` also unpacks
the layer while it streams in (layer_stage.py), and the caller installs that
instead where it can.

Raises dockyard.errors only: ArchiveError (InvalidParameter) for a hostile,
truncated or mismatching layer, and what containerd raises.
"""

from __future__ import annotations

import asyncio
import bz2
import gzip
import hashlib
import lzma
import secrets
import tarfile
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import zstandard

from dockyard import errors
from dockyard.containerd import Descriptor, Namespace
from dockyard.engine.layer_stage import LayerStage, Stager, discard_stage, staged
from dockyard.oci import image as oci
from dockyard.wire import archive

CHUNK = 1 << 20
#: Size of a layer's uncompressed tar, recorded at ingest so that ``docker save``
#: can write a decompressed copy without a counting pass.
LABEL_UNCOMPRESSED_SIZE = "dockyard.uncompressed-size"


@dataclass(frozen=True, kw_only=True)
class IngestedLayer:
    """A layer blob now in the content store."""

    digest: str  # of the blob as stored
    size: int
    diff_id: str  # of the uncompressed tar
    compression: archive.Compression  # as stored
    #: The layer unpacked on the way in, if a stager was given (layer_stage.py);
    #: whoever holds the IngestedLayer discards it.
    stage: LayerStage | None = field(default=None, compare=False)

    def descriptor(self, *, oci_types: bool) -> Descriptor:
        return Descriptor(
            media_type=layer_media_type(self.compression, oci_types=oci_types),
            digest=self.digest,
            size=self.size,
        )


def layer_media_type(compression: archive.Compression, *, oci_types: bool) -> str:
    """Docker schema2 types where containerd 1.6 knows them; zstd exists only as OCI."""
    if compression is archive.Compression.ZSTD:
        return oci.OCI_LAYER_ZSTD
    gz = compression is archive.Compression.GZIP
    if oci_types:
        return oci.OCI_LAYER_GZIP if gz else oci.OCI_LAYER
    return oci.DOCKER_LAYER_GZIP if gz else oci.DOCKER_LAYER


class _Tee:
    """A read-only file wrapper that, for a layer stored compressed, keeps what
    the decompressor read (the blob's bytes)."""

    def __init__(self, raw: IO[bytes], keep: bool) -> None:
        self._raw = raw
        self._keep = keep
        self.pending = bytearray()

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._raw.read(n)
        except tarfile.ReadError as exc:  # the outer member ends before its header says
            raise archive.MalformedArchive(f"unexpected EOF in archive: {exc}") from exc
        if self._keep:
            self.pending += data
        return data

    def readable(self) -> bool:
        return True

    def take(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


class _LayerReader:
    """The blocking half of ingestion: one ``step()`` per chunk, in a worker thread."""

    def __init__(self, raw: IO[bytes]) -> None:
        head = raw.read(archive.MAGIC_LENGTH) if hasattr(raw, "read") else b""
        self.compression = archive.detect_compression(head)
        self.stored = (
            self.compression
            if self.compression in (archive.Compression.GZIP, archive.Compression.ZSTD)
            else archive.Compression.NONE
        )
        self._stored_compressed = self.stored is not archive.Compression.NONE
        self.tee = _Tee(_Prefixed(head, raw), keep=self._stored_compressed)  # type: ignore[arg-type]
        # A layer stored uncompressed is its own tar: containerd's digest of the
        # blob is the diff id, and hashing it here too would cost a second pass.
        self._diff_hash = hashlib.sha256() if self._stored_compressed else None
        self.scanner = archive.TarScanner()
        self.done = False
        # The decompressors want a binary file; _Tee is a duck-typed one.
        self._reader: Any
        source: Any = self.tee
        if self.compression is archive.Compression.GZIP:
            self._reader = gzip.GzipFile(fileobj=source, mode="rb")
        elif self.compression is archive.Compression.ZSTD:
            self._reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
        elif self.compression is archive.Compression.BZIP2:
            self._reader = bz2.BZ2File(source)
        elif self.compression is archive.Compression.XZ:
            self._reader = lzma.LZMAFile(source)
        else:
            self._reader = source

    def diff_id(self, blob_digest: str) -> str:
        """The digest of the layer's tar, once ``done``; ``blob_digest`` is that
        of the bytes stored, as containerd computed it."""
        if self._diff_hash is None:
            return blob_digest
        return "sha256:" + self._diff_hash.hexdigest()

    def step(self) -> bytes:
        """Advance one chunk; return the bytes to store (possibly empty)."""
        try:
            data: bytes = self._reader.read(CHUNK)
        except archive.ArchiveError:
            raise
        except (EOFError, OSError, zlib.error, zstandard.ZstdError, lzma.LZMAError) as exc:
            raise archive.MalformedArchive(f"invalid compressed layer: {exc}") from exc
        if data:
            if self._diff_hash is not None:
                self._diff_hash.update(data)
            self.scanner.feed(data)
        else:
            self.done = True
            self.scanner.close()
            if self.compression is not archive.Compression.NONE:
                # Trailing bytes after the compressed stream belong to the blob too.
                while self.tee.read(CHUNK):
                    pass
        if self._stored_compressed:
            return self.tee.take()
        return data


class _Prefixed:
    """Put back the magic bytes read for detection."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._raw.read(n - len(data))
            return data
        return self._raw.read(n)


async def ingest_layer(
    ns: Namespace, raw: IO[bytes], *, ref_hint: str = "layer", stager: Stager | None = None, key: object = None
) -> IngestedLayer:
    """Stream the layer in ``raw`` into the content store (see module doc).

    The caller must hold a lease on ``ns``: if anything fails here, the partial
    blob is gone with the lease. Raises ArchiveError for a hostile or broken
    layer (the blob may already be written; the lease cleans it up).

    With a ``stager`` the stored bytes are also unpacked as they go
    (layer_stage.py, in the turn ``key``), for ``install_layer``.
    """
    reader = await asyncio.to_thread(_LayerReader, raw)

    async def chunks() -> AsyncIterator[bytes]:
        while not reader.done:
            data = await asyncio.to_thread(reader.step)
            if data:
                yield data

    ref = f"dockyard-{ref_hint}-{secrets.token_hex(8)}"
    stage = stager.start(ref_hint, layer_media_type(reader.stored, oci_types=False), key) if stager else None
    # An existing blob (the same bytes loaded before) comes back as a success,
    # taken under our lease; write_blob returns only after the last chunk, so
    # the scan is complete either way.
    try:
        info = await ns.write_blob(ref, chunks() if stage is None else staged(chunks(), stage))
        diff_id = reader.diff_id(info.digest)
        await ns.update_blob_labels(
            info.digest,
            {oci.LABEL_UNCOMPRESSED: diff_id, LABEL_UNCOMPRESSED_SIZE: str(reader.scanner.total_bytes)},
        )
    except BaseException:
        if stage is not None:
            await asyncio.shield(discard_stage(stage))
        raise
    return IngestedLayer(
        digest=info.digest, size=info.size, diff_id=diff_id, compression=reader.stored, stage=stage
    )


async def unpack(ns: Namespace, layers: Sequence[Descriptor], diff_ids: Sequence[str]) -> None:
    """Commit one overlayfs snapshot per layer, named by chain id; existing ones are
    reused. Raises MalformedArchive if containerd's applied diff disagrees."""
    if len(layers) != len(diff_ids):
        raise ValueError("unpack: one diff id per layer")
    chain = oci.chain_ids(diff_ids)
    for i, desc in enumerate(layers):
        await unpack_layer(ns, desc, index=i, diff_ids=diff_ids, chain=chain)


async def unpack_layer(
    ns: Namespace, desc: Descriptor, *, index: int, diff_ids: Sequence[str], chain: Sequence[str]
) -> None:
    """Commit the snapshot ``chain[index]``: layer ``desc`` applied on
    ``chain[index - 1]``, which must be committed already (layers go in chain
    order). An existing snapshot is reused. Raises MalformedArchive if
    containerd's applied diff is not ``diff_ids[index]``."""
    chain_id = chain[index]
    info = await ns.stat_snapshot(chain_id)
    if info is not None and info.kind == "committed":
        return
    key = f"dockyard-extract-{secrets.token_hex(6)}-{chain_id}"
    mounts = await ns.prepare_snapshot(key, chain[index - 1] if index else "")
    try:
        applied = await ns.apply_layer(desc, mounts)
        if applied.digest != diff_ids[index]:
            raise archive.MalformedArchive(
                f"invalid diffID for layer {index}: expected {diff_ids[index]!r}, got {applied.digest!r}"
            )
        try:
            await ns.commit_snapshot(chain_id, key)
        except errors.Conflict:
            pass  # committed meanwhile by a concurrent unpack of the same layer
        else:
            return
    except BaseException:
        await asyncio.shield(_remove_quietly(ns, key))
        raise
    await _remove_quietly(ns, key)


async def _remove_quietly(ns: Namespace, key: str) -> None:
    try:
        await ns.remove_snapshot(key)
    except errors.DockyardError:
        pass
