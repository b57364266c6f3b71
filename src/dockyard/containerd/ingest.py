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
import contextlib
import os
import re
import threading
from collections.abc import AsyncIterable
from pathlib import Path

from dockyard import errors
from dockyard.thread_feed import ThreadFeed

#: The local content store's directory under containerd's root.
CONTENT_DIR = "io.containerd.content.v1.content"
#: Chunks handed to the writing thread before the source waits for it.
QUEUE_CHUNKS = 16


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
    """Write ``chunks`` over the file ``data`` (truncated first) and sync it;
    return the byte count.

    The writes happen in a thread of their own, up to QUEUE_CHUNKS behind the
    source: copying into the page cache then runs beside the event loop
    instead of on it. The sync comes last: containerd's commit syncs the file
    inside its metadata transaction, which every other metadata write of the
    daemon waits for (snapshot prepares and commits, leases), so it finds
    nothing left to do there. A failed write raises SystemError at the next
    chunk; the source's own error, or a cancellation, wins over it.
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
    """The thread that writes one ingest's data file, fed through a queue.
    It owns the file descriptor from the start and closes it when it ends, so
    an owner that stops waiting for it never closes a file it still writes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._loop = asyncio.get_running_loop()
        self._feed = ThreadFeed(QUEUE_CHUNKS)
        self._done: asyncio.Future[int] = self._loop.create_future()
        #: Set by the thread when a write fails; it then only drains the queue.
        self._failure: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="ingest writer", daemon=True)
        self._thread.start()

    async def write(self, chunk: bytes) -> None:
        if self._failure is not None:
            raise _write_error(self._failure)
        await self._feed.put(chunk)

    async def close(self) -> int:
        """No more chunks; wait for the thread: the byte count, or SystemError."""
        self._feed.close()
        return await asyncio.shield(self._done)

    def _run(self) -> None:
        written = 0
        try:
            while (chunk := self._feed.get()) is not None:
                if self._failure is not None:
                    continue  # keep taking chunks, so the source never waits for a thread that gave up
                try:
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(self._fd, view) :]
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
            self._loop.call_soon_threadsafe(_settle, self._done, written, self._failure)


def _write_error(failure: OSError) -> errors.SystemError:
    return errors.SystemError(f"writing a blob into containerd's ingest: {failure}")


def _settle(future: asyncio.Future[int], written: int, failure: OSError | None) -> None:
    if future.done():
        return
    if failure is not None:
        future.set_exception(_write_error(failure))
    else:
        future.set_result(written)
