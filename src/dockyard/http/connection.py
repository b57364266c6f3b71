"""One client connection: h11 events in and out of asyncio streams.

The h11 state machine does all the parsing and framing; this adapter moves
bytes and decides when a connection can be reused. Per request it routes,
checks the API version, calls the handler, writes the response (complete,
chunked-and-flushed, or a hijack), then discards any body the handler did not
read so the next pipelined request can be parsed, or closes.

Exceptions of the HTTP layer::

    HttpError               base of this package's own errors
    └── ClientDisconnected  the client closed or reset the connection while a
                            request body was read or a response written

Handler exceptions never escape: ``DockyardError`` becomes its Docker status
(``responses.error_response``); anything else is logged with its traceback and
answered 500. Nothing here raises out of ``Connection.run`` except cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import http
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from dockyard.errors import DockyardError, InvalidParameter, PayloadTooLarge
from dockyard.http.hijack import HijackedStream, upgrade_head
from dockyard.http.responses import (
    CONTENT_TYPE_JSON,
    PAGE_NOT_FOUND,
    STANDARD_HEADERS,
    AnyResponse,
    Headers,
    Hijacked,
    JsonResponse,
    Response,
    StreamingResponse,
    encode_json,
    error_response,
    internal_error_response,
    message_response,
)
from dockyard.http.router import Request, Router, split_version, strip_version
from dockyard.streams import ByteStream

log = logging.getLogger("dockyard.http")

READ_SIZE = 256 * 1024
# A body the handler left unread is discarded up to this size to keep the
# connection; past it, closing is cheaper (Go's net/http uses 256 KiB).
DRAIN_LIMIT = 1024 * 1024
# After refusing a body we stop writing and read for a moment before closing,
# so the client sees our answer rather than a reset (Go's lingering close).
LINGER_SECONDS = 0.5


class HttpError(Exception):
    """Base of the HTTP layer's own errors."""


class ClientDisconnected(HttpError):
    """The client went away in the middle of a request or response."""


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    max_body_bytes: int | None
    max_header_bytes: int


class ConnectionState(enum.Enum):
    IDLE = "idle"  # waiting for a request head
    BUSY = "busy"  # a handler is running or a response is being written
    STREAMING = "streaming"  # a streaming response of unbounded length
    HIJACKED = "hijacked"  # the handler owns the raw stream


class _Body:
    """The request body as a stream, pulled from h11 only when the handler reads."""

    def __init__(self, connection: Connection, limit: int | None) -> None:
        self._connection = connection
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._buffered = 0  # bytes in _chunks
        self.received = 0
        self.done = False
        self.failed = False
        self.completed = asyncio.Event()

    async def read(self, max_bytes: int = 65536) -> bytes:
        while not self._chunks:
            if self.done:
                return b""
            if not self.poll():
                await self._connection.continue_if_expected()
                await self._connection.receive_more()
        # Whatever else h11 holds already goes along, without waiting for the
        # socket: a chunked body comes in many small pieces (Go's client, the
        # docker CLI's, sends 32 KiB chunks), and a handler that copies the
        # body elsewhere pays per piece it reads.
        while self._buffered < max_bytes and self.poll() and not self.done:
            pass
        if len(self._chunks[0]) >= max_bytes or len(self._chunks) == 1:
            return self._take(max_bytes)  # as it is, without a copy
        parts: list[bytes] = []
        wanted = max_bytes
        while self._chunks and wanted > 0:
            part = self._take(wanted)
            parts.append(part)
            wanted -= len(part)
        return b"".join(parts)

    def _take(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the first chunk, leaving the rest first."""
        chunk = self._chunks[0]
        if len(chunk) <= max_bytes:
            self._chunks.popleft()
            self._buffered -= len(chunk)
            return chunk
        self._chunks[0] = chunk[max_bytes:]
        self._buffered -= max_bytes
        return chunk[:max_bytes]

    def poll(self) -> bool:
        """Process one buffered h11 event without I/O; False when h11 needs data."""
        if self.done:
            return True
        conn = self._connection.h11
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            self.failed = True
            if conn.trailing_data[1]:
                raise ClientDisconnected("client closed the connection in the middle of the request body") from exc
            raise InvalidParameter(f"malformed request body: {exc}") from exc
        if event is h11.NEED_DATA:
            return False
        if isinstance(event, h11.Data):
            self.received += len(event.data)
            if self._limit is not None and self.received > self._limit:
                self.failed = True
                raise PayloadTooLarge(f"request body exceeds the limit of {self._limit} bytes")
            if event.data:
                self._chunks.append(bytes(event.data))
                self._buffered += len(event.data)
        elif isinstance(event, h11.EndOfMessage):
            self.done = True
            self.completed.set()
        return True

    async def discard(self, limit: int | None) -> bool:
        """Read and drop the rest of the body; False if it was longer than ``limit``."""
        dropped = self._buffered
        self._chunks.clear()
        self._buffered = 0
        while not self.done:
            dropped += len(await self.read(READ_SIZE))
            if limit is not None and dropped > limit:
                return False
        return True


class Connection:
    """Serves requests on one accepted connection until it closes.

    ``run`` is the whole lifetime: it closes the stream in every case.
    ``begin_shutdown`` asks it to stop: idle, streaming and hijacked
    connections are cancelled at once; a running handler finishes and its
    response carries ``Connection: close``.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        router: Router,
        limits: ConnectionLimits,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._router = router
        self._limits = limits
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.state = ConnectionState.IDLE
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Per-request state, reset by _serve_one.
        self._body = _Body(self, None)
        self._must_close = False
        self._upgrade_proposed = False
        self._head_sent = False
        self._hijack: HijackedStream | None = None

    # -- lifetime

    async def run(self) -> None:
        self._task = asyncio.current_task()
        linger = False
        try:
            while not self._closing:
                request = await self._next_request()
                if request is None:
                    break
                keep_alive = await self._serve_one(request)
                if not keep_alive or self._closing:
                    linger = self._hijack is None and not self._body.done
                    break
                self.h11.start_next_cycle()
        except ClientDisconnected:
            pass
        except Exception:
            log.exception("HTTP connection failed")
        finally:
            await self._close(linger=linger)

    def begin_shutdown(self) -> None:
        self._closing = True
        if self.state is not ConnectionState.BUSY and self._task is not None:
            self._task.cancel()

    def _set_state(self, state: ConnectionState) -> None:
        self.state = state
        if self._closing and state is not ConnectionState.BUSY and self._task is not None:
            self._task.cancel()

    async def _close(self, *, linger: bool) -> None:
        if self._hijack is not None:
            await self._hijack.aclose()
            return
        if linger and not self._writer.transport.is_closing():
            with contextlib.suppress(OSError, TimeoutError):
                self._writer.write_eof()
                async with asyncio.timeout(LINGER_SECONDS):
                    while await self._reader.read(READ_SIZE):
                        pass
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    # -- socket I/O

    async def receive_more(self) -> None:
        """Feed h11 the next bytes from the socket (``b""`` at end of input)."""
        try:
            data = await self._reader.read(READ_SIZE)
        except ConnectionError:
            data = b""
        self.h11.receive_data(data)

    async def continue_if_expected(self) -> None:
        """Send ``100 Continue`` the first time a handler wants a body the client holds back."""
        if self.h11.they_are_waiting_for_100_continue:
            await self._write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")) or b"")

    async def _write(self, data: bytes | list[bytes]) -> None:
        if self._writer.transport.is_closing():
            raise ClientDisconnected("connection closed")
        if isinstance(data, list):
            self._writer.writelines(data)
        else:
            self._writer.write(data)
        try:
            await self._writer.drain()
        except ConnectionError as exc:
            raise ClientDisconnected(str(exc)) from exc

    # -- one request

    async def _next_request(self) -> h11.Request | None:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                await self._reject(exc)
                return None
            if event is h11.NEED_DATA:
                self._set_state(ConnectionState.IDLE)
                await self.receive_more()
                continue
            self._set_state(ConnectionState.BUSY)
            if isinstance(event, h11.Request):
                if _head_size(event) > self._limits.max_header_bytes:
                    # h11 only bounds heads that arrive in pieces; one read can
                    # bring a whole oversized head.
                    await self._reject(h11.RemoteProtocolError("request head too large", error_status_hint=431))
                    return None
                return event
            # ConnectionClosed, or PAUSED after a protocol switch we refused.
            return None

    async def _reject(self, exc: h11.RemoteProtocolError) -> None:
        """Answer a request h11 could not parse, then the connection closes."""
        self._must_close = True
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        if exc.error_status_hint == 431:
            response = message_response(431, "request header fields too large")
        else:
            response = message_response(exc.error_status_hint, f"bad request: {exc}")
        with contextlib.suppress(ClientDisconnected, h11.LocalProtocolError):
            await self._send(response, head_only=False)

    async def _serve_one(self, event: h11.Request) -> bool:
        """Handle one request; True if the connection may serve another."""
        self._body = _Body(self, self._limits.max_body_bytes)
        self._head_sent = False
        headers = _header_map(event.headers)
        # Bytes after an upgrade request are the stream's, never a next request.
        self._upgrade_proposed = "upgrade" in headers
        self._must_close = self._upgrade_proposed
        method = event.method.decode("ascii")
        response = await self._dispatch(method, event.target.decode("latin-1"), headers)
        if self._hijack is not None:
            return False
        if isinstance(response, Hijacked):
            log.error("%s %s returned Hijacked() without upgrading", method, event.target)
            response = message_response(500, "internal server error: handler did not upgrade")
        if self._body.failed:
            self._must_close = True
        try:
            sent = await self._send(response, head_only=method == "HEAD")
        except h11.LocalProtocolError as exc:
            # A handler's response h11 refuses (a header value with a newline,
            # a status it cannot send): answer 500 if nothing went out yet.
            if self.h11.our_state is not h11.SEND_RESPONSE:
                raise
            log.exception("%s %s: response cannot be sent", method, event.target)
            self._must_close = True
            sent = await self._send(internal_error_response(exc), head_only=method == "HEAD")
        if not sent or self._must_close or self.h11.our_state is not h11.DONE:
            return False
        if not self._body.done:
            if "100-continue" in headers.get("expect", "").lower() and self._body.received == 0:
                return False  # the client may never send what it asked permission for
            try:
                if not await self._body.discard(DRAIN_LIMIT):
                    return False
            except (DockyardError, ClientDisconnected):
                return False
        return self.h11.their_state is h11.DONE

    async def _dispatch(self, method: str, target: str, headers: dict[str, str]) -> AnyResponse:
        parts = urlsplit(target)
        path = unquote(parts.path or "/")
        match = self._router.match(method, strip_version(path))
        if match is None:
            return PAGE_NOT_FOUND
        try:
            api_version, path = split_version(path)
        except InvalidParameter as exc:
            return error_response(exc)
        limit = self._limits.max_body_bytes
        length = headers.get("content-length")
        if limit is not None and length is not None and int(length) > limit:
            self._must_close = True
            return error_response(PayloadTooLarge(f"request body exceeds the limit of {limit} bytes"))
        query = parse_qs(parts.query, keep_blank_values=True)
        request = Request(
            method=method,
            path=path,
            api_version=api_version,
            query=MappingProxyType({name: tuple(values) for name, values in query.items()}),
            headers=MappingProxyType(headers),
            path_params=match.path_params,
            body=self._body,
            upgrade_callback=self._upgrade,
        )
        try:
            response = await match.handler(request)
        except ClientDisconnected:
            raise
        except DockyardError as exc:
            if self._hijack is not None:
                log.info("%s %s failed after the hijack: %s", method, path, exc.message)
                return Hijacked()
            return error_response(exc)
        except Exception as exc:
            log.exception("%s %s: unexpected error", method, path)
            return Hijacked() if self._hijack is not None else internal_error_response(exc)
        if self._hijack is not None and not isinstance(response, Hijacked):
            log.error("%s %s upgraded the connection but returned %r", method, path, type(response).__name__)
            return Hijacked()
        if not isinstance(response, (Response, JsonResponse, StreamingResponse, Hijacked)):
            log.error("%s %s returned %r, not a response", method, path, type(response).__name__)
            return message_response(500, "internal server error: handler returned no response")
        return response

    # -- hijack

    async def _upgrade(self, content_type: str) -> ByteStream:
        if self._hijack is not None or self._head_sent:
            raise RuntimeError("upgrade() after the response was started")
        # exec start carries a JSON body: stdin starts right after it.
        await self._body.discard(None)
        prefix, _ = self.h11.trailing_data
        self._hijack = HijackedStream(self._reader, self._writer, prefix)
        self._head_sent = True
        self._set_state(ConnectionState.HIJACKED)
        # moby answers 101 when the request has an Upgrade header at all.
        await self._write(upgrade_head(content_type=content_type, upgrade=self._upgrade_proposed))
        return self._hijack

    # -- responses

    async def _send(self, response: AnyResponse, *, head_only: bool) -> bool:
        """Write ``response``; False if it could not be completed (the connection must close)."""
        if isinstance(response, StreamingResponse):
            return await self._send_streaming(response, head_only=head_only)
        content_type: str | None
        if isinstance(response, JsonResponse):
            try:
                body = encode_json(response.body)
            except (TypeError, ValueError) as exc:
                log.exception("response body is not JSON-able")
                response = internal_error_response(exc)
                body = encode_json(response.body)
            status, content_type, extra = response.status, CONTENT_TYPE_JSON, response.headers
        elif isinstance(response, Response):
            body, status, content_type, extra = response.body, response.status, response.content_type, response.headers
        else:
            raise TypeError(f"cannot send {response!r}")
        bodiless = status in (204, 304) or status < 200
        head = self._head(status, content_type, extra, None if bodiless else len(body))
        self._head_sent = True
        out = self.h11.send(head) or b""
        if body and not bodiless and not head_only:
            out += self.h11.send(h11.Data(data=body)) or b""
        out += self.h11.send(h11.EndOfMessage()) or b""
        await self._write(out)
        return True

    def _head(self, status: int, content_type: str | None, extra: Headers, length: int | None) -> h11.Response:
        headers = [*STANDARD_HEADERS, *extra]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        if length is not None:
            headers.append(("Content-Length", str(length)))
        headers.sort(key=lambda item: item[0].lower())  # Go writes headers sorted
        if self._must_close or self._closing:
            headers.append(("Connection", "close"))
        try:
            reason = http.HTTPStatus(status).phrase.encode()
        except ValueError:
            reason = b""
        return h11.Response(status_code=status, headers=headers, reason=reason)

    async def _send_streaming(self, response: StreamingResponse, *, head_only: bool) -> bool:
        chunks = response.chunks
        try:
            head = self._head(response.status, response.content_type, response.headers, None)
            self._head_sent = True
            await self._write(self.h11.send(head) or b"")
            if head_only:
                await self._write(self.h11.send(h11.EndOfMessage()) or b"")
                return True
            # The body may be read by the producer itself (load, build): only
            # once it is complete can we watch the socket for a disconnect.
            with contextlib.suppress(DockyardError, ClientDisconnected):
                while not self._body.done and self._body.poll():
                    pass
            self._set_state(ConnectionState.STREAMING)
            async with asyncio.TaskGroup() as tasks:
                pump = tasks.create_task(self._pump(chunks))
                watcher = tasks.create_task(self._watch_for_disconnect(pump))
                pump.add_done_callback(lambda _task: watcher.cancel())
            return not pump.cancelled() and pump.result()
        finally:
            await _aclose(chunks)

    async def _pump(self, chunks: AsyncIterator[bytes]) -> bool:
        try:
            async for chunk in chunks:
                if chunk:
                    await self._write(self.h11.send_with_data_passthrough(h11.Data(data=chunk)) or [])
            await self._write(self.h11.send(h11.EndOfMessage()) or b"")
            return True
        except ClientDisconnected:
            return False
        except Exception:
            # The head is out: all we can do is end the body abnormally.
            log.exception("streaming response failed")
            return False
        finally:
            await _aclose(chunks)

    async def _watch_for_disconnect(self, pump: asyncio.Task[bool]) -> None:
        await self._body.completed.wait()
        buffered = len(self.h11.trailing_data[0])
        while buffered <= self._limits.max_header_bytes:
            try:
                data = await self._reader.read(READ_SIZE)
            except ConnectionError:
                data = b""
            if not data:
                # Like Go's net/http: end of input while we stream means the
                # client is gone; stop the producer.
                pump.cancel()
                return
            # A pipelined next request: keep it for after this response.
            self.h11.receive_data(data)
            buffered += len(data)
        await asyncio.Event().wait()


def _header_map(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


def _head_size(event: h11.Request) -> int:
    line = len(event.method) + len(event.target) + 11  # "M T HTTP/1.1\r\n"
    return line + sum(len(name) + len(value) + 4 for name, value in event.headers.raw_items())


async def _aclose(chunks: AsyncIterator[bytes]) -> None:
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        await aclose()
