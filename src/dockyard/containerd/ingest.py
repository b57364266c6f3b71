"""Big blobs written into the data file of a containerd ingest, not through gRPC.

containerd's content ``Write`` carries every byte over the gRPC stream:
dockyard encodes and sends it, containerd parses HTTP/2 frames, unmarshals,
writes and hashes it. That transport costs more CPU than the SHA-256 itself.
For a containerd whose root is on this machine and known to dockyard (the
embedded one), the bytes go into the ingest's data file instead, and
containerd does what it does when a writer resumes an interrupted ingest:
it hashes the data file as it finds it, and the commit then verifies digest
and size and moves the file into ``blobs/``, exactly as for a streamed write.

    1. ``STAT`` through the API opens the ingest: containerd creates its
       directory, records it under the caller's lease, and closes the writer
       when the stream ends.
    2. The directory is found by its ``ref`` file, which holds the backend
       ref ``<namespace>/<sequence>/<ref>`` of containerd's metadata store,
       under ``<content root>/ingest/``.
    3. The bytes are written to its ``data`` file.
    4. ``STAT`` again resumes the ingest (containerd hashes the file and
       reports the offset it found), then ``COMMIT``.

If step 2 finds no directory (a containerd whose layout differs), nothing was
read from the source yet and :class:`IngestNotFound` lets the caller stream
the blob over gRPC instead. A resume that does not report the bytes written
is a SystemError. containerd checks digest and size at the commit, so what
it stores is verified the same way either path.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterable
from pathlib import Path

from dockyard import errors

#: The local content store's directory under containerd's root.
CONTENT_DIR = "io.containerd.content.v1.content"
#: Bytes gathered before a write to the data file.
WRITE_SIZE = 1024 * 1024


class IngestNotFound(errors.SystemError):
    """The ingest's directory is not where containerd's local store keeps it."""


def content_root(containerd_root: Path) -> Path:
    """Where a containerd with root ``containerd_root`` keeps its content store."""
    return containerd_root / CONTENT_DIR


def find_ingest_data(root: Path, namespace: str, ref: str) -> Path:
    """The data file of the open ingest ``ref`` of ``namespace``; IngestNotFound if none."""
    wanted = re.compile(re.escape(namespace) + r"/[0-9]+/" + re.escape(ref))
    ingests = root / "ingest"
    try:
        entries = os.listdir(ingests)
    except OSError as exc:
        raise IngestNotFound(f"no ingest directory under {root}: {exc.strerror}") from exc
    for entry in entries:
        try:
            with open(ingests / entry / "ref", encoding="utf-8", errors="replace") as file:
                found = file.read()
        except OSError:
            continue  # committed or aborted meanwhile
        if wanted.fullmatch(found):
            return ingests / entry / "data"
    raise IngestNotFound(f"ingest {ref!r} of namespace {namespace!r} not found under {ingests}")


async def fill(data: Path, chunks: AsyncIterable[bytes]) -> int:
    """Write ``chunks`` over the file ``data`` (truncated first); return the byte count.

    Small chunks are gathered and written together (one ``writev`` per
    WRITE_SIZE), so the source's piece size does not set the syscall count.
    """
    fd = os.open(data, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        written = 0
        pending: list[bytes] = []
        held = 0
        async for chunk in chunks:
            if not chunk:
                continue
            pending.append(chunk)
            held += len(chunk)
            if held >= WRITE_SIZE:
                written += _write_all(fd, pending)
                pending, held = [], 0
        if pending:
            written += _write_all(fd, pending)
        # containerd's commit syncs the file inside its metadata transaction,
        # which every other metadata write of the daemon waits for (snapshot
        # prepares and commits of an unpack, leases): syncing it here, outside
        # that lock and off the event loop, leaves it nothing to wait for.
        await asyncio.to_thread(os.fdatasync, fd)
        return written
    finally:
        os.close(fd)


def _write_all(fd: int, pieces: list[bytes]) -> int:
    total = sum(len(p) for p in pieces)
    done = os.writev(fd, pieces)
    if done < total:  # a short write: finish the rest plainly
        rest = memoryview(b"".join(pieces))[done:]
        while rest:
            rest = rest[os.write(fd, rest) :]
    return total
