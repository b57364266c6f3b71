"""Big blobs written into the data file of a containerd ingest, not through gRPC,
and hashed on the way, so containerd need not hash them again.

containerd's content ``Write`` carries every byte over the gRPC stream:
dockyard encodes and sends it, containerd parses HTTP/2 frames, unmarshals,
writes and hashes it. That transport costs more CPU than the SHA-256 itself.
For a containerd whose root is on this machine and known to dockyard (the
embedded one), the bytes go into the ingest's data file instead:

    1. ``STAT`` through the API opens the ingest: containerd creates its
       directory, records it under the caller's lease, and closes the writer
       when the stream ends.
    2. The directory is found by its ``ref`` file, which holds the backend
       ref ``<namespace>/<sequence>/<ref>`` of containerd's metadata store,
       under ``<content root>/ingest/``.
    3. The bytes are written to its ``data`` file by a thread that hashes
       them as it writes (:func:`fill`).
    4. If digest and size are the expected ones, the data file is hard-linked
       to where the local store keeps that blob (:func:`place_blob`), and a
       second ingest, opened with the expected digest, finds it there: this is
       containerd's shared-content path (metadata/content.go, the policy
       "shared", its default), whose commit records the blob in the namespace
       without reading it. The first ingest is then aborted; the link stays.

containerd's garbage collector removes blob files that no namespace records
and no open ingest expects. Between steps 4's link and its ``STAT`` nothing
does, so a collection then can remove the file: the ``STAT`` then answers with
a writer at offset 0 instead of the shared one, and the first ingest is
resumed and committed as containerd does after an interruption (it hashes the
data file, checks digest and size, and moves the file into ``blobs/``).

If step 2 finds no directory (a containerd whose layout differs), nothing was
read from the source yet and :class:`IngestNotFound` lets the caller stream
the blob over gRPC instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import threading
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path

from dockyard import errors
from dockyard.thread_feed import ThreadFeed

#: The local content store's directory under containerd's root.
CONTENT_DIR = "io.containerd.content.v1.content"
#: Chunks handed to the writing thread before the source waits for it.
QUEUE_CHUNKS = 16


#: A digest whose blob the local store can hold: algorithm and hex, nothing else.
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class IngestNotFound(errors.SystemError):
    """The ingest's directory is not where containerd's local store keeps it."""


@dataclass(frozen=True)
class Filled:
    """What :func:`fill` wrote: the byte count and their digest."""

    size: int
    digest: str


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


def blob_path(root: Path, digest: str) -> Path:
    """Where the local store under ``root`` keeps blob ``digest``; InvalidParameter
    for anything but a sha256 digest in lower-case hex."""
    if not _DIGEST.fullmatch(digest):
        raise errors.InvalidParameter(f"not a sha256 digest: {digest!r}")
    return root / "blobs" / "sha256" / digest.removeprefix("sha256:")


def place_blob(root: Path, data: Path, digest: str) -> bool:
    """Hard-link the file ``data`` to where the local store under ``root`` keeps
    blob ``digest``; False if a file is there already.

    The caller has checked that ``data`` holds exactly that blob: the store
    trusts what it finds under a digest's name.
    """
    target = blob_path(root, digest)
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        os.link(data, target)
    except FileExistsError:
        return False
    # Read-only, as containerd leaves the blobs it commits.
    os.chmod(target, 0o444)
    return True


async def fill(data: Path, chunks: AsyncIterable[bytes]) -> Filled:
    """Write ``chunks`` over the file ``data`` (truncated first), sync it and
    hash what was written.

    The writes and the hashing happen in a thread of their own, up to
    QUEUE_CHUNKS behind the source: they then run beside the event loop
    instead of on it (hashlib lets go of the GIL for big chunks). The sync
    comes last: a commit by containerd syncs the file inside its metadata
    transaction, which every other metadata write of the daemon waits for
    (snapshot prepares and commits, leases), so it finds nothing left to do
    there. A failed write raises SystemError at the next chunk; the source's
    own error, or a cancellation, wins over it.
    """
    fd = os.open(data, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        writer = _Writer(fd)
    except BaseException:
        os.close(fd)
        raise
    try:
        async for chunk in chunks:
            await writer.write(chunk)
    except BaseException:
        # The source's error or the cancellation is the one to raise. Waiting
        # for the thread is brief (QUEUE_CHUNKS at most); cancelled again
        # meanwhile, it ends and closes the file on its own.
        with contextlib.suppress(errors.SystemError):
            await writer.close()
        raise
    return await writer.close()


class _Writer:
    """The thread that writes and hashes one ingest's data file, fed through a
    queue. It owns the file descriptor from the start and closes it when it
    ends, so an owner that stops waiting for it never closes a file it still
    writes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._feed = ThreadFeed(QUEUE_CHUNKS)
        self._done: asyncio.Future[Filled] = self._loop.create_future()
        #: Set by the thread when a write fails; it then only drains the queue.
        self._failure: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="ingest writer", daemon=True)
        self._thread.start()

    async def write(self, chunk: bytes) -> None:
        if self._failure is not None:
            raise _write_error(self._failure)
        await self._feed.put(chunk)

    async def close(self) -> Filled:
        """No more chunks; wait for the thread: what it wrote, or SystemError."""
        self._feed.close()
        return await asyncio.shield(self._done)

    def _run(self) -> None:
        written = 0
        sha = hashlib.sha256()
        try:
            while (chunk := self._feed.get()) is not None:
                if self._failure is not None:
                    continue  # keep taking chunks, so the source never waits for a thread that gave up
                try:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(self._fd, view) :]
                    sha.update(chunk)
                    written += len(chunk)
                except OSError as exc:
                    self._failure = exc
            if self._failure is None:
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:
                    self._failure = exc
        finally:
            os.close(self._fd)
            filled = Filled(size=written, digest="sha256:" + sha.hexdigest())
            self._loop.call_soon_threadsafe(_settle, self._done, filled, self._failure)


def _write_error(failure: OSError) -> errors.SystemError:
    return errors.SystemError(f"writing a blob into containerd's ingest: {failure}")


def _settle(future: asyncio.Future[Filled], filled: Filled, failure: OSError | None) -> None:
    if future.done():
        return
    if failure is not None:
        future.set_exception(_write_error(failure))
    else:
        future.set_result(filled)
