"""The HTTP server driven over a real unix socket with raw bytes, asserted byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard import __version__
from dockyard.errors import Conflict, NotModified
from dockyard.http import (
    Hijacked,
    HttpServer,
    JsonResponse,
    Request,
    Response,
    Router,
    StreamingResponse,
    TcpListenerSpec,
    UnixListenerSpec,
)

STD = (
    b"Docker-Experimental: false\r\n"
    b"Ostype: linux\r\n" + f"Server: Docker/{__version__} (linux)\r\n".encode()
)


def json_reply(status: bytes, body: bytes, *, close: bool = False) -> bytes:
    """The exact bytes of a JsonResponse (headers sorted, as Go writes them)."""
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Api-Version: 1.50\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Content-Type: application/json\r\n" + STD + (b"Connection: close\r\n" if close else b"") + b"\r\n" + body
    )


NOT_FOUND = json_reply(b"404 Not Found", b'{"message":"page not found"}\n')


@contextlib.asynccontextmanager
async def serve(router: Router, tmp_path: Path, **limits: int | None) -> AsyncIterator[str]:
    server = HttpServer(router, max_body_bytes=limits.pop("max_body_bytes", None), **limits)  # type: ignore[arg-type]
    path = str(tmp_path / "api.sock")
    async with asyncio.timeout(20):
        async with server.serve([UnixListenerSpec(path=path)]) as running:
            await running.ready.wait()
            yield path


async def connect(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(path)


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> bytes:
    """Exactly one response, framed the way a client would frame it."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    if head_only or status in (204, 304) or status < 200:
        return head
    if "content-length" in headers:
        return head + await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.strip(), 16)
            body += line + await reader.readexactly(size + 2)
            if size == 0:
                return head + body
    return head + await reader.read()


def get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: docker\r\n" + extra + b"\r\n"


# -- handlers used across tests


async def echo_request(request: Request) -> JsonResponse:
    return JsonResponse(
        body={
            "method": request.method,
            "path": request.path,
            "version": list(request.api_version),
            "params": dict(request.path_params),
            "query": {name: list(values) for name, values in request.query.items()},
            "auth": request.headers.get("x-registry-auth"),
        }
    )


def basic_router() -> Router:
    router = Router()
    router.add("GET", "/_ping", lambda request: _ping())
    router.add("GET", "/images/{name:path}/json", echo_request)
    router.add("GET", "/containers/{id}/json", echo_request)
    return router


async def _ping() -> Response:
    return Response(status=200, body=b"OK", content_type="text/plain; charset=utf-8")


PING_OK = (
    b"HTTP/1.1 200 OK\r\n"
    b"Api-Version: 1.50\r\n"
    b"Content-Length: 2\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n" + STD + b"\r\nOK"
)


# -- keep-alive, pipelining, routing, versions


async def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(get("/_ping") + get("/v1.50/_ping") + get("/nope"))
        assert await read_response(reader) == PING_OK
        assert await read_response(reader) == PING_OK
        assert await read_response(reader) == NOT_FOUND
        writer.close()


async def test_keep_alive_serves_requests_one_after_another(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        for _ in range(3):
            writer.write(get("/_ping"))
            assert await read_response(reader) == PING_OK
        writer.write_eof()
        assert await reader.read() == b""


async def test_request_value_has_decoded_path_params_query_and_headers(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(
            get(
                "/v1.41/images/docker.io/library/busybox%3Alatest/json?a=1&a=2&b=&c=x+y",
                b"X-Registry-Auth: e30=\r\n",
            )
        )
        body = json.loads((await read_response(reader)).split(b"\r\n\r\n", 1)[1])
        assert body == {
            "method": "GET",
            "path": "/images/docker.io/library/busybox:latest/json",
            "version": [1, 41],
            "params": {"name": "docker.io/library/busybox:latest"},
            "query": {"a": ["1", "2"], "b": [""], "c": ["x y"]},
            "auth": "e30=",
        }
        writer.close()


@pytest.mark.parametrize(
    ("prefix", "version"), [("", [1, 50]), ("/v1.24", [1, 24]), ("/v1.50", [1, 50]), ("/v1.44", [1, 44])]
)
async def test_supported_version_prefixes(tmp_path: Path, prefix: str, version: list[int]) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(get(f"{prefix}/containers/abc/json"))
        body = json.loads((await read_response(reader)).split(b"\r\n\r\n", 1)[1])
        assert body["version"] == version
        assert body["path"] == "/containers/abc/json"
        writer.close()


async def test_too_old_and_too_new_versions_are_400(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(get("/v1.23/_ping") + get("/v1.51/_ping"))
        assert await read_response(reader) == json_reply(
            b"400 Bad Request",
            b'{"message":"client version 1.23 is too old. Minimum supported API version is 1.24, '
            b'please upgrade your client to a newer version"}\n',
        )
        assert await read_response(reader) == json_reply(
            b"400 Bad Request",
            b'{"message":"client version 1.51 is too new. Maximum supported API version is 1.50"}\n',
        )
        writer.close()


async def test_unknown_route_and_wrong_method_are_page_not_found(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(get("/v1.50/containers/json/extra") + b"DELETE /_ping HTTP/1.1\r\nHost: d\r\n\r\n")
        assert await read_response(reader) == NOT_FOUND
        assert await read_response(reader) == NOT_FOUND
        writer.close()


async def test_head_uses_the_get_handler_without_a_body(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"HEAD /_ping HTTP/1.1\r\nHost: d\r\n\r\n" + get("/_ping"))
        assert await read_response(reader, head_only=True) == PING_OK[:-2]
        assert await read_response(reader) == PING_OK
        writer.close()


# -- errors


async def test_handler_exception_is_500_json_and_the_server_keeps_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(request: Request) -> Response:
        raise KeyError("Config")

    router = basic_router()
    router.add("POST", "/broken", broken)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        with caplog.at_level(logging.ERROR, logger="dockyard.http"):
            writer.write(b"POST /broken HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n" + get("/_ping"))
            assert await read_response(reader) == json_reply(
                b"500 Internal Server Error", b"{\"message\":\"internal server error: 'Config'\"}\n"
            )
            assert await read_response(reader) == PING_OK
        assert any(record.exc_info and record.exc_info[0] is KeyError for record in caplog.records)
        writer.close()


async def test_domain_errors_map_to_docker_status_and_message(tmp_path: Path) -> None:
    async def conflict(request: Request) -> Response:
        raise Conflict('Conflict. The container name "/web" is already in use')

    async def not_modified(request: Request) -> Response:
        raise NotModified("container already started")

    router = Router()
    router.add("POST", "/conflict", conflict)
    router.add("POST", "/start", not_modified)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /conflict HTTP/1.1\r\nHost: d\r\n\r\nPOST /start HTTP/1.1\r\nHost: d\r\n\r\n")
        assert await read_response(reader) == json_reply(
            b"409 Conflict", b'{"message":"Conflict. The container name \\"/web\\" is already in use"}\n'
        )
        assert await read_response(reader) == b"HTTP/1.1 304 Not Modified\r\nApi-Version: 1.50\r\n" + STD + b"\r\n"
        writer.close()


async def test_oversized_headers_are_431(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path, max_header_bytes=4096) as path:
        reader, writer = await connect(path)
        writer.write(get("/_ping", b"X-Registry-Auth: " + b"a" * 8192 + b"\r\n"))
        assert await read_response(reader) == json_reply(
            b"431 Request Header Fields Too Large",
            b'{"message":"request header fields too large"}\n',
            close=True,
        )
        assert await reader.read() == b""
        writer.close()


async def test_malformed_request_is_400_json(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"NOT HTTP\r\n\r\n")
        response = await read_response(reader)
        assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert json.loads(response.split(b"\r\n\r\n", 1)[1])["message"].startswith("bad request: ")
        assert await reader.read() == b""


# -- request bodies


def body_router() -> Router:
    async def create(request: Request) -> JsonResponse:
        return JsonResponse(status=201, body={"got": await request.json()})

    async def ignore(request: Request) -> Response:
        return Response(status=204)

    async def count(request: Request) -> JsonResponse:
        total = 0
        while chunk := await request.body.read(1000):
            assert len(chunk) <= 1000
            total += len(chunk)
        return JsonResponse(body={"bytes": total})

    async def pieces(request: Request) -> JsonResponse:
        # Wait until the whole request is in the socket buffer, then read big.
        await asyncio.sleep(0.2)
        sizes = []
        data = bytearray()
        while chunk := await request.body.read(100_000):
            sizes.append(len(chunk))
            data += chunk
        return JsonResponse(body={"sizes": sizes, "digest": hashlib.sha256(data).hexdigest()})

    router = basic_router()
    router.add("POST", "/create", create)
    router.add("POST", "/ignore", ignore)
    router.add("POST", "/count", count)
    router.add("POST", "/pieces", pieces)
    return router


async def test_json_body_and_malformed_json(tmp_path: Path) -> None:
    async with serve(body_router(), tmp_path) as path:
        reader, writer = await connect(path)
        body = b'{"Image":"busybox"}'
        writer.write(b"POST /create HTTP/1.1\r\nHost: d\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert await read_response(reader) == json_reply(b"201 Created", b'{"got":{"Image":"busybox"}}\n')
        writer.write(b"POST /create HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
        assert await read_response(reader) == json_reply(b"201 Created", b'{"got":null}\n')
        writer.write(b"POST /create HTTP/1.1\r\nHost: d\r\nContent-Length: 3\r\n\r\nxyz")
        assert await read_response(reader) == json_reply(
            b"400 Bad Request", b"{\"message\":\"invalid character 'x' looking for beginning of value\"}\n"
        )
        writer.close()


async def test_unread_body_is_drained_before_the_next_request(tmp_path: Path) -> None:
    async with serve(body_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(
            b"POST /ignore HTTP/1.1\r\nHost: d\r\nContent-Length: 100000\r\n\r\n"
            + b"x" * 100000
            + b"POST /ignore HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            + get("/_ping")
        )
        no_content = b"HTTP/1.1 204 No Content\r\nApi-Version: 1.50\r\n" + STD + b"\r\n"
        assert await read_response(reader) == no_content
        assert await read_response(reader) == no_content
        assert await read_response(reader) == PING_OK
        writer.close()


async def test_streamed_chunked_body(tmp_path: Path) -> None:
    async with serve(body_router(), tmp_path) as path:
        reader, writer = await connect(path)
        chunk = b"y" * 70000
        writer.write(
            b"POST /count HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(chunk), chunk)) * 3
            + b"0\r\n\r\n"
        )
        assert await read_response(reader) == json_reply(b"200 OK", b'{"bytes":210000}\n')
        writer.close()


async def test_small_chunks_already_received_are_read_together(tmp_path: Path) -> None:
    # The docker CLI sends a streamed body in 32 KiB chunks: one read takes
    # every chunk the server holds already, up to what it asked for.
    body = os.urandom(1000 * 7 + 5)
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
    async with serve(body_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /pieces HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
        reply = json.loads((await read_response(reader)).split(b"\r\n\r\n", 1)[1])
        writer.close()
    assert reply["digest"] == hashlib.sha256(body).hexdigest()
    assert sum(reply["sizes"]) == len(body)
    assert max(reply["sizes"]) > 7  # more than one chunk per read
    assert all(size <= 100_000 for size in reply["sizes"])


async def test_a_read_takes_no_more_than_asked_across_chunks(tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 300]), body[i : i + 300]) for i in range(0, len(body), 300))
    async with serve(body_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /count HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n")
        assert await read_response(reader) == json_reply(b"200 OK", b'{"bytes":%d}\n' % len(body))
        writer.close()


async def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    async with serve(body_router(), tmp_path, max_body_bytes=1000) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /count HTTP/1.1\r\nHost: d\r\nContent-Length: 1001\r\n\r\n")
        assert await read_response(reader) == json_reply(
            b"413 Request Entity Too Large",
            b'{"message":"request body exceeds the limit of 1000 bytes"}\n',
            close=True,
        )
        assert await reader.read() == b""
        writer.close()

        # Without a length the limit bites while the handler reads.
        reader, writer = await connect(path)
        writer.write(
            b"POST /count HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"400\r\n" + b"z" * 1024 + b"\r\n0\r\n\r\n"
        )
        assert await read_response(reader) == json_reply(
            b"413 Request Entity Too Large",
            b'{"message":"request body exceeds the limit of 1000 bytes"}\n',
            close=True,
        )
        writer.close()


# -- streaming responses


async def test_streaming_response_flushes_each_chunk(tmp_path: Path) -> None:
    release = asyncio.Event()
    closed = asyncio.Event()

    async def wait(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b""  # skipped: an empty chunk would end the body
                yield b'{"status":"waiting"}\n'
                await release.wait()
                yield b'{"StatusCode":0,"Error":null}\n'
            finally:
                closed.set()

        return StreamingResponse(chunks=chunks())

    router = Router()
    router.add("POST", "/containers/{id}/wait", wait)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /v1.50/containers/c1/wait?condition=next-exit HTTP/1.1\r\nHost: d\r\n\r\n")
        head_and_first = (
            b"HTTP/1.1 200 OK\r\n"
            b"Api-Version: 1.50\r\n"
            b"Content-Type: application/json\r\n" + STD + b"Transfer-Encoding: chunked\r\n\r\n"
            b"15\r\n{\"status\":\"waiting\"}\n\r\n"
        )
        # Both arrive while the producer is still blocked.
        assert await reader.readexactly(len(head_and_first)) == head_and_first
        release.set()
        rest = b'1e\r\n{"StatusCode":0,"Error":null}\n\r\n0\r\n\r\n'
        assert await reader.readexactly(len(rest)) == rest
        await closed.wait()
        writer.write(get("/v1.50/containers/c1/wait"))  # wrong method: connection still usable
        assert await read_response(reader) == NOT_FOUND
        writer.close()


async def test_client_disconnect_closes_the_producer(tmp_path: Path) -> None:
    started = asyncio.Event()
    closed = asyncio.Event()

    async def logs(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"line\n"
                started.set()
                await asyncio.Event().wait()  # `docker logs -f` on a silent container
                yield b"never"
            finally:
                closed.set()

        return StreamingResponse(content_type="application/vnd.docker.raw-stream", chunks=chunks())

    router = Router()
    router.add("GET", "/containers/{id}/logs", logs)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(get("/containers/c1/logs?follow=1&stdout=1"))
        await started.wait()
        writer.close()
        await closed.wait()


async def test_head_on_a_streaming_route_sends_only_the_head(tmp_path: Path) -> None:
    closed = asyncio.Event()

    async def events(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"{}"
            finally:
                closed.set()

        return StreamingResponse(chunks=chunks())

    router = basic_router()
    router.add("GET", "/events", events)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"HEAD /events HTTP/1.1\r\nHost: d\r\n\r\n" + get("/_ping"))
        assert await read_response(reader, head_only=True) == (
            b"HTTP/1.1 200 OK\r\nApi-Version: 1.50\r\nContent-Type: application/json\r\n"
            + STD
            + b"Transfer-Encoding: chunked\r\n\r\n"
        )
        assert await read_response(reader) == PING_OK
        writer.close()


# -- hijack


def upgraded_head(content_type: bytes) -> bytes:
    return (
        b"HTTP/1.1 101 UPGRADED\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Connection: Upgrade\r\n"
        b"Upgrade: tcp\r\n"
        b"Api-Version: 1.50\r\n" + STD + b"\r\n"
    )


def hijack_router(seen: list[bytes]) -> Router:
    async def attach(request: Request) -> Hijacked:
        stream = await request.upgrade("application/vnd.docker.raw-stream")
        try:
            while data := await stream.read():
                seen.append(data)
                await stream.write(data.upper())
            # stdin is closed; stdout keeps going until the "container" exits
            await stream.write(b"exited\n")
            await stream.send_eof()
            return Hijacked()
        finally:
            await stream.aclose()

    async def exec_start(request: Request) -> Hijacked:
        options = await request.json()
        stream = await request.upgrade("application/vnd.docker.multiplexed-stream")
        first = await stream.read()
        await stream.write(json.dumps({"options": options, "first": first.decode()}).encode())
        return Hijacked()

    async def refuse(request: Request) -> Hijacked:
        raise Conflict("container c1 is not running")

    router = Router()
    router.add("POST", "/containers/{id}/attach", attach)
    router.add("POST", "/exec/{id}/start", exec_start)
    router.add("POST", "/containers/{id}/refuse", refuse)
    return router


async def test_upgrade_101_delivers_trailing_bytes_and_half_close(tmp_path: Path) -> None:
    seen: list[bytes] = []
    async with serve(hijack_router(seen), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(
            b"POST /v1.50/containers/c1/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n"
            b"Host: api.moby.localhost\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"Content-Type: text/plain\r\n\r\n"
            b"already sent"
        )
        head = upgraded_head(b"application/vnd.docker.raw-stream")
        assert await reader.readexactly(len(head)) == head
        assert await reader.readexactly(12) == b"ALREADY SENT"
        writer.write(b"more")
        assert await reader.readexactly(4) == b"MORE"
        writer.write_eof()  # the CLI at stdin EOF: shutdown(SHUT_WR)
        assert await reader.read() == b"exited\n"  # then our send_eof
        assert seen == [b"already sent", b"more"]
        writer.close()


async def test_exec_start_stdin_begins_after_the_json_body(tmp_path: Path) -> None:
    async with serve(hijack_router([]), tmp_path) as path:
        reader, writer = await connect(path)
        body = b'{"Detach":false,"Tty":false}'
        writer.write(
            b"POST /exec/e1/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%sstdin!" % (len(body), body)
        )
        head = upgraded_head(b"application/vnd.docker.multiplexed-stream")
        assert await reader.readexactly(len(head)) == head
        assert await reader.read() == b'{"options": {"Detach": false, "Tty": false}, "first": "stdin!"}'
        writer.close()


async def test_legacy_hijack_without_upgrade_header_is_200_raw_stream(tmp_path: Path) -> None:
    async with serve(hijack_router([]), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /containers/c1/attach?stdin=1 HTTP/1.1\r\nHost: d\r\n\r\nabc")
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Api-Version: 1.50\r\n" + STD + b"\r\n"
        )
        assert await reader.readexactly(len(head)) == head
        assert await reader.readexactly(3) == b"ABC"
        writer.write_eof()
        assert await reader.read() == b"exited\n"
        writer.close()


async def test_errors_before_the_hijack_are_plain_responses(tmp_path: Path) -> None:
    async with serve(hijack_router([]), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(
            b"POST /containers/c1/refuse HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nstdin"
        )
        # The bytes after an upgrade request are stdin, not a next request: close.
        assert await read_response(reader) == json_reply(
            b"409 Conflict", b'{"message":"container c1 is not running"}\n', close=True
        )
        assert await reader.read() == b""
        writer.close()


# -- listeners and lifetime


async def test_shutdown_closes_idle_connections_and_removes_the_socket(tmp_path: Path) -> None:
    async with serve(basic_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(get("/_ping"))
        assert await read_response(reader) == PING_OK
    assert await reader.read() == b""
    assert not os.path.exists(path)
    writer.close()


async def test_shutdown_cancels_streams(tmp_path: Path) -> None:
    closed = asyncio.Event()

    async def events(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"{}\n"
                await asyncio.Event().wait()
                yield b""
            finally:
                closed.set()

        return StreamingResponse(chunks=chunks())

    router = Router()
    router.add("GET", "/events", events)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(get("/events"))
        await reader.readuntil(b"{}\n\r\n")
    assert closed.is_set()
    assert await reader.read() == b""  # no terminating chunk: the stream was cut
    writer.close()


async def test_tcp_loopback_listener(tmp_path: Path) -> None:
    server = HttpServer(basic_router(), max_body_bytes=None)
    async with server.serve([TcpListenerSpec(host="127.0.0.1", port=0)]) as running:
        await running.ready.wait()
        (address,) = running.addresses
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(get("/_ping"))
        assert await read_response(reader) == PING_OK
        writer.close()


async def test_unix_socket_mode_and_stale_file(tmp_path: Path) -> None:
    path = tmp_path / "run" / "api.sock"
    path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # leaves a socket file nobody listens on
    server = HttpServer(basic_router(), max_body_bytes=None)
    async with server.serve([UnixListenerSpec(path=str(path))]):
        assert path.stat().st_mode & 0o777 == 0o660
        reader, writer = await connect(str(path))
        writer.write(get("/_ping"))
        assert await read_response(reader) == PING_OK
        writer.close()


async def test_expect_100_continue_is_answered_when_the_handler_reads(tmp_path: Path) -> None:
    async with serve(body_router(), tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /count HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert await reader.readexactly(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"12345")
        assert await read_response(reader) == json_reply(b"200 OK", b'{"bytes":5}\n')
        writer.close()


async def test_unsendable_response_becomes_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def bad_header(request: Request) -> Response:
        return Response(status=200, headers=(("X-Bad", "line\r\nbreak"),))

    router = basic_router()
    router.add("GET", "/bad", bad_header)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        with caplog.at_level(logging.ERROR, logger="dockyard.http"):
            writer.write(get("/bad"))
            response = await read_response(reader)
        assert response.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
        assert b"Connection: close\r\n" in response
        writer.close()


async def test_shutdown_lets_a_running_handler_answer(tmp_path: Path) -> None:
    entered = asyncio.Event()

    async def slow(request: Request) -> JsonResponse:
        entered.set()
        await asyncio.sleep(0.2)
        return JsonResponse(body={"done": True})

    router = Router()
    router.add("POST", "/slow", slow)
    async with serve(router, tmp_path) as path:
        reader, writer = await connect(path)
        writer.write(b"POST /slow HTTP/1.1\r\nHost: d\r\n\r\n")
        await entered.wait()
    assert await read_response(reader) == json_reply(b"200 OK", b'{"done":true}\n', close=True)
    assert await reader.read() == b""
    writer.close()
