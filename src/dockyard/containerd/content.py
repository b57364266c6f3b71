"""Content store and image records: the ``Namespace`` methods for blobs and images.

A mixin of :class:`dockyard.containerd.client.Namespace`; it uses the
namespace's stubs and call metadata and raises only dockyard.errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from dockyard import errors
from dockyard.containerd import _proto as pb
from dockyard.containerd import ingest
from dockyard.containerd.errors import status_code, translate_errors
from dockyard.containerd.types import BlobInfo, ImageRecord

if TYPE_CHECKING:
    from pathlib import Path

    from dockyard.containerd.client import _Stubs

log = logging.getLogger("dockyard.containerd")

#: Data goes to containerd in messages of about this size: big enough that the
#: request/response round trip per message is noise, well under the limits.
WRITE_CHUNK = 1024 * 1024
#: WRITE messages sent ahead of their replies (see _send_blob).
WRITE_WINDOW = 4


async def _rechunk(chunks: bytes | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The input as pieces of about WRITE_CHUNK bytes (tiny reads coalesced)."""
    if isinstance(chunks, bytes | bytearray | memoryview):
        data = bytes(chunks)
        for start in range(0, len(data), WRITE_CHUNK):
            yield data[start : start + WRITE_CHUNK]
        return
    pending = bytearray()
    async for chunk in chunks:
        if not pending and len(chunk) >= WRITE_CHUNK:
            yield chunk  # already big enough: spare a copy of every megabyte
            continue
        pending += chunk
        if len(pending) >= WRITE_CHUNK:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


async def _end_stream(call: grpc.aio.StreamStreamCall) -> None:
    try:
        async with asyncio.timeout(5):
            await call.done_writing()
            while await call.read() is not grpc.aio.EOF:
                pass
    except (grpc.RpcError, TimeoutError, asyncio.InvalidStateError):
        pass  # the stream is being torn down anyway


async def _send(call: grpc.aio.StreamStreamCall, request: object) -> None:
    try:
        await call.write(request)
    except asyncio.InvalidStateError:
        # containerd already ended the stream (a reply not read yet says why):
        # raise its status rather than grpc's "RPC already finished".
        await call.read()
        raise errors.SystemError("containerd ended an ingest before its commit") from None


async def _reply(call: grpc.aio.StreamStreamCall, ref: str) -> pb.content_pb2.WriteContentResponse:
    response = await call.read()  # raises containerd's status if it ended the stream
    if response is grpc.aio.EOF:
        raise errors.SystemError(f"containerd ended ingest {ref} without a commit")
    reply: pb.content_pb2.WriteContentResponse = response
    return reply


@dataclass
class _Ingest:
    """One blob on its way in: the ingest's ref, what the blob must turn out to
    be, the labels its commit sets; and the digest of its bytes as last
    reported (containerd's every reply carries it), known even when the
    commit fails."""

    ref: str
    expected_digest: str | None
    expected_size: int | None
    labels: dict[str, str]
    digest: str = ""

    def request(self, action: int, offset: int = 0, **fields: Any) -> pb.content_pb2.WriteContentRequest:
        return pb.content_pb2.WriteContentRequest(
            action=action, ref=self.ref, offset=offset, total=self.expected_size or 0,
            expected=self.expected_digest or "", **fields,
        )  # fmt: skip


async def _stat(call: grpc.aio.StreamStreamCall, blob: _Ingest) -> pb.content_pb2.WriteContentResponse:
    """Open (or resume) the ingest. With an expected digest containerd answers
    ALREADY_EXISTS right here if the namespace has the blob; resuming an ingest
    whose data file holds bytes reports their offset and digest."""
    await _send(call, blob.request(pb.content_pb2.STAT))
    reply = await _reply(call, blob.ref)
    blob.digest = reply.digest
    return reply


async def _commit(call: grpc.aio.StreamStreamCall, blob: _Ingest, offset: int) -> BlobInfo:
    await _send(call, blob.request(pb.content_pb2.COMMIT, offset, labels=blob.labels))
    response = await _reply(call, blob.ref)
    await call.done_writing()
    return BlobInfo(digest=response.digest, size=response.offset, labels=blob.labels)


async def _send_blob(
    call: grpc.aio.StreamStreamCall, blob: _Ingest, chunks: bytes | AsyncIterable[bytes]
) -> BlobInfo:
    """The Write protocol: open (STAT), WRITE pieces, COMMIT; one reply per message.

    containerd handles a stream's messages strictly in order (receive, write,
    reply, receive: services/content/contentserver Write), and a WRITE's reply
    only reports the offset reached, so up to WRITE_WINDOW writes are sent
    before their replies are read: the stream never idles for a round trip.
    """
    await _stat(call, blob)
    # Offset 0 on the first write truncates a stale ingest of the same ref.
    offset = 0
    unanswered = 0
    async for piece in _rechunk(chunks):
        await _send(call, pb.content_pb2.WriteContentRequest(
            action=pb.content_pb2.WRITE, ref=blob.ref, offset=offset, data=piece
        ))  # fmt: skip
        offset += len(piece)
        unanswered += 1
        if unanswered > WRITE_WINDOW:
            blob.digest = (await _reply(call, blob.ref)).digest
            unanswered -= 1
    for _ in range(unanswered):
        blob.digest = (await _reply(call, blob.ref)).digest
    return await _commit(call, blob, offset)


def _check_filled(blob: _Ingest, filled: ingest.Filled) -> None:
    """InvalidParameter unless the bytes written in place are the expected ones."""
    if blob.expected_size is not None and filled.size != blob.expected_size:
        raise errors.InvalidParameter(
            f"content does not match its descriptor: {filled.size} bytes, expected {blob.expected_size}"
        )
    if blob.expected_digest and filled.digest != blob.expected_digest:
        raise errors.InvalidParameter(
            f"content does not match its descriptor: digest {filled.digest}, expected {blob.expected_digest}"
        )


class ContentCalls:
    _stubs: _Stubs
    _metadata: tuple[tuple[str, str], ...]
    #: The local content store of a containerd on this machine (ingest.py), if known.
    _content_root: Path | None
    name: str

    # -- content --------------------------------------------------------------------

    async def write_blob(
        self,
        ref: str,
        chunks: bytes | AsyncIterable[bytes],
        *,
        expected_digest: str | None = None,
        expected_size: int | None = None,
        labels: Mapping[str, str] | None = None,
        verify_slot: AbstractAsyncContextManager[object] | None = None,
    ) -> BlobInfo:
        """Write a blob through ingest ``ref`` and commit it; return what was stored.

        ``ref`` names the ingest; two writers with the same ref at once get
        Unavailable ("locked") from containerd, so make it unique per blob.
        If ``expected_digest`` names a blob that already exists, nothing is
        written (the chunks are not read; drain a shared stream yourself), the
        blob is added to the current lease and ``labels`` are applied to it.
        Without one, bytes that turn out to be a blob this namespace has
        already end the same way once they are all sent: containerd puts the
        blob under the lease at the commit, and ``labels`` are applied.
        A digest or size that does not match the data raises InvalidParameter,
        and the partial ingest is aborted.

        A big blob for a containerd on this machine is written in place and
        hashed on the way (ingest.py): all bytes first, then the check and the
        commit. That second step runs inside ``verify_slot`` if one is given,
        so a caller can order the commits of many blobs (streamed writes
        commit as soon as their bytes are sent, and do not use it).
        """
        blob = _Ingest(ref, expected_digest, expected_size, dict(labels or {}))
        streamed = isinstance(chunks, bytes | bytearray | memoryview) or self._content_root is None
        try:
            if streamed:
                return await self._write(blob, chunks)
            assert not isinstance(chunks, bytes | bytearray | memoryview)
            return await self._write_in_place(blob, chunks, verify_slot or contextlib.nullcontext())
        except errors.Conflict as exc:
            code = status_code(exc)
            existing = expected_digest or blob.digest
            if code is grpc.StatusCode.ALREADY_EXISTS and existing:
                if blob.labels:
                    await self.update_blob_labels(existing, blob.labels)
                info = await self.blob_info(existing)
                if info is not None:
                    return info
                raise
            if code is grpc.StatusCode.FAILED_PRECONDITION:
                # containerd's commit checks digest and size this way.
                await self.abort_ingest(ref)
                raise errors.InvalidParameter(
                    f"content does not match its descriptor: {exc.message}"
                ) from exc
            raise
        except BaseException:
            # Also when the chunk source failed or the caller was cancelled:
            # a half-written ingest would otherwise linger until containerd's GC.
            await asyncio.shield(self.abort_ingest(ref))
            raise

    async def _write(self, blob: _Ingest, chunks: bytes | AsyncIterable[bytes]) -> BlobInfo:
        call = self._stubs.content.Write(metadata=self._metadata)
        ended = False
        try:
            with translate_errors():
                try:
                    info = await _send_blob(call, blob, chunks)
                except grpc.RpcError:
                    ended = True  # containerd's handler returned and closed its writer
                    raise
                ended = True
                return info
        finally:
            if not ended:
                # The source failed or we were cancelled mid-stream. End the
                # stream politely so containerd closes its writer before the
                # caller aborts the ingest (an abort racing an open writer fails).
                await asyncio.shield(_end_stream(call))
            call.cancel()

    async def _write_in_place(
        self, blob: _Ingest, chunks: AsyncIterable[bytes], verify_slot: AbstractAsyncContextManager[object]
    ) -> BlobInfo:
        """The bytes go into the ingest's data file, hashed on the way; checked,
        the file becomes the blob and is committed (see ingest.py). Streamed
        instead if the ingest's directory is not where it should be."""
        assert self._content_root is not None
        with translate_errors():
            call = self._stubs.content.Write(metadata=self._metadata)
            try:
                await _stat(call, blob)
                await _end_stream(call)  # containerd closes its writer; the ingest stays, leased
            finally:
                call.cancel()
        try:
            data = ingest.find_ingest_data(self._content_root, self.name, blob.ref)
        except ingest.IngestNotFound as exc:
            log.warning("streaming blob %s over gRPC: %s", blob.ref, exc.message)
            return await self._write(blob, chunks)
        filled = await ingest.fill(data, chunks)
        blob.digest = filled.digest
        async with verify_slot:
            try:
                _check_filled(blob, filled)
                placed = await asyncio.to_thread(ingest.place_blob, self._content_root, data, filled.digest)
                shared = _Ingest(f"{blob.ref}-placed", filled.digest, filled.size, blob.labels)
                info = await self._commit_shared(shared)
                if info is None:
                    log.warning(
                        "blob %s %s before its commit: containerd verifies ingest %s instead",
                        filled.digest, "vanished" if placed else "was not found", blob.ref,
                    )  # fmt: skip
                    return await self._resume_and_commit(blob, filled.size)
                return info
            finally:
                # Committed, its data file is the blob's, linked, and the
                # ingest's directory goes; so it does when anything failed (a
                # commit that found the blob there already, too). After
                # containerd's own commit it is gone already.
                await asyncio.shield(self.abort_ingest(blob.ref))

    async def _commit_shared(self, shared: _Ingest) -> BlobInfo | None:
        """Commit a blob whose file the local store has, through containerd's
        shared-content path; None if the store did not find it (a garbage
        collection removed it meanwhile) and the ingest was dropped."""
        with translate_errors():
            call = self._stubs.content.Write(metadata=self._metadata)
            try:
                opened = await _stat(call, shared)
                if opened.offset == shared.expected_size:
                    return await _commit(call, shared, opened.offset)
                await _end_stream(call)  # a writer at offset 0: close it, then drop it
            except BaseException:
                await asyncio.shield(_end_stream(call))
                await asyncio.shield(self.abort_ingest(shared.ref))
                raise
            finally:
                call.cancel()
        await self.abort_ingest(shared.ref)
        return None

    async def _resume_and_commit(self, blob: _Ingest, size: int) -> BlobInfo:
        """Commit the ingest whose data file holds ``size`` bytes the way
        containerd resumes one: it hashes the file, then checks and commits."""
        with translate_errors():
            call = self._stubs.content.Write(metadata=self._metadata)
            try:
                resumed = await _stat(call, blob)
                if resumed.offset != size:
                    raise errors.SystemError(
                        f"containerd resumed ingest {blob.ref} at {resumed.offset} bytes, {size} were written"
                    )
                return await _commit(call, blob, size)
            finally:
                call.cancel()

    async def read_blob(self, digest: str, offset: int = 0) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``, as containerd sends them.

        NotFound if there is no such blob. Stopping early cancels the read.
        """
        call = self._stubs.content.Read(
            pb.content_pb2.ReadContentRequest(digest=digest, offset=offset),
            metadata=self._metadata,
        )
        try:
            with translate_errors():
                async for response in call:
                    yield response.data
        finally:
            call.cancel()

    async def read_blob_bytes(self, digest: str, limit: int) -> bytes:
        """The whole blob in memory; InvalidParameter if it is over ``limit`` bytes."""
        data = bytearray()
        async for chunk in self.read_blob(digest):
            data += chunk
            if len(data) > limit:
                raise errors.InvalidParameter(f"blob {digest} is larger than {limit} bytes")
        return bytes(data)

    async def blob_info(self, digest: str) -> BlobInfo | None:
        """The committed blob's size and labels; None if this namespace has no such blob."""
        try:
            with translate_errors():
                response = await self._stubs.content.Info(
                    pb.content_pb2.InfoRequest(digest=digest), metadata=self._metadata
                )
        except errors.NotFound:
            return None
        info = response.info
        return BlobInfo(digest=info.digest, size=info.size, labels=dict(info.labels))

    async def update_blob_labels(self, digest: str, labels: Mapping[str, str]) -> BlobInfo:
        """Set the given labels on a blob, leaving its others alone; a label set
        to "" is removed. NotFound if there is no such blob."""
        request = pb.content_pb2.UpdateRequest(
            info=pb.content_pb2.Info(digest=digest, labels=dict(labels)),
            update_mask=pb.field_mask([f"labels.{key}" for key in labels]),
        )
        with translate_errors():
            response = await self._stubs.content.Update(request, metadata=self._metadata)
        info = response.info
        return BlobInfo(digest=info.digest, size=info.size, labels=dict(info.labels))

    async def list_blobs(self, *filters: str) -> list[BlobInfo]:
        """Blobs matching all of containerd's filter expressions (none: all blobs)."""
        call = self._stubs.content.List(
            pb.content_pb2.ListContentRequest(filters=list(filters)), metadata=self._metadata
        )
        found: list[BlobInfo] = []
        with translate_errors():
            async for response in call:
                found.extend(
                    BlobInfo(digest=i.digest, size=i.size, labels=dict(i.labels))
                    for i in response.info
                )
        return found

    async def delete_blob(self, digest: str) -> None:
        """Remove a blob from this namespace; NotFound if it is not there."""
        with translate_errors():
            await self._stubs.content.Delete(
                pb.content_pb2.DeleteContentRequest(digest=digest), metadata=self._metadata
            )

    async def abort_ingest(self, ref: str) -> None:
        """Drop a partial ingest; an ingest that does not exist is not an error."""
        try:
            with translate_errors():
                await self._stubs.content.Abort(
                    pb.content_pb2.AbortRequest(ref=ref), metadata=self._metadata
                )
        except errors.NotFound:
            pass

    # -- images ---------------------------------------------------------------------

    async def get_image(self, name: str) -> ImageRecord:
        """The image record called ``name``; NotFound if there is none."""
        with translate_errors():
            response = await self._stubs.images.Get(
                pb.images_pb2.GetImageRequest(name=name), metadata=self._metadata
            )
        return pb.from_image_pb(response.image)

    async def list_images(self, *filters: str) -> list[ImageRecord]:
        """Image records matching any of containerd's filters (none: all)."""
        with translate_errors():
            response = await self._stubs.images.List(
                pb.images_pb2.ListImagesRequest(filters=list(filters)), metadata=self._metadata
            )
        return [pb.from_image_pb(image) for image in response.images]

    async def create_image(self, record: ImageRecord) -> ImageRecord:
        """Create an image record; Conflict if the name is taken."""
        with translate_errors():
            response = await self._stubs.images.Create(
                pb.images_pb2.CreateImageRequest(image=pb.to_image_pb(record)),
                metadata=self._metadata,
            )
        return pb.from_image_pb(response.image)

    async def update_image(self, record: ImageRecord, fields: Sequence[str] = ()) -> ImageRecord:
        """Update the record named ``record.name``; NotFound if missing.

        ``fields`` are containerd field paths ("target", "labels", "labels.KEY");
        empty means replace target and labels both.
        """
        with translate_errors():
            response = await self._stubs.images.Update(
                pb.images_pb2.UpdateImageRequest(
                    image=pb.to_image_pb(record),
                    update_mask=pb.field_mask(list(fields)) if fields else None,
                ),
                metadata=self._metadata,
            )
        return pb.from_image_pb(response.image)

    async def delete_image(self, name: str, *, sync: bool = False) -> None:
        """Delete an image record; NotFound if missing. With ``sync`` the call
        returns after garbage collection freed what only this image held."""
        with translate_errors():
            await self._stubs.images.Delete(
                pb.images_pb2.DeleteImageRequest(name=name, sync=sync), metadata=self._metadata
            )
