"""What a handler returns, and the one mapping from domain errors to HTTP.

Handlers return one of four frozen values:

    Response            status, raw body bytes (204/304 carry none)
    JsonResponse        a JSON-able body, encoded the way Go's ``json.Encoder``
                        does it for dockerd: compact, UTF-8, trailing newline
    StreamingResponse   an async iterator of chunks, sent chunked and flushed
                        one by one; closed (``aclose``) if the client goes away
    Hijacked            the handler took the connection over with
                        ``request.upgrade()``; the server only closes it

``error_response`` is the only place a ``DockyardError`` becomes a status code
and a ``{"message": ...}`` body. This module is pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from dockyard import __version__
from dockyard.errors import DockyardError, NotModified

# Header names and media types of the Engine API wire format.
CONTENT_TYPE_JSON = "application/json"
API_VERSION_TEXT = "1.50"

Headers = tuple[tuple[str, str], ...]

# Sent on every response, hijacked ones included, exactly as dockerd's version
# middleware sets them (Go canonicalises "API-Version" and "OSType").
STANDARD_HEADERS: Headers = (
    ("Api-Version", API_VERSION_TEXT),
    ("Docker-Experimental", "false"),
    ("Ostype", "linux"),
    ("Server", f"Docker/{__version__} (linux)"),
)


@dataclass(frozen=True, kw_only=True)
class Response:
    """A complete response; ``content_type=None`` sends no Content-Type."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: Headers = ()


@dataclass(frozen=True, kw_only=True)
class JsonResponse:
    status: int = 200
    body: Any = None
    headers: Headers = ()


@dataclass(frozen=True, kw_only=True)
class StreamingResponse:
    """A body of unknown length; each chunk is written as soon as it is produced.

    Empty chunks are skipped (an empty chunk would end a chunked body).
    """

    status: int = 200
    content_type: str = CONTENT_TYPE_JSON
    chunks: AsyncIterator[bytes]
    headers: Headers = ()


@dataclass(frozen=True, kw_only=True)
class Hijacked:
    """Marker: the handler upgraded the connection and owned it until it returned."""


AnyResponse = Response | JsonResponse | StreamingResponse | Hijacked


def encode_json(value: Any) -> bytes:
    """Encode like Go's ``json.Encoder`` with HTML escaping off (dockerd's WriteJSON).

    Raises ``ValueError``/``TypeError`` for values JSON cannot carry (NaN, sets...).
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Go escapes the two JavaScript line terminators even with HTML escaping off.
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode() + b"\n"


def error_response(exc: DockyardError) -> Response | JsonResponse:
    """Docker's answer to a domain error: its status and ``{"message": ...}``.

    ``NotModified`` is not an error to a Docker client: 304 with no body.
    """
    if isinstance(exc, NotModified):
        return Response(status=304)
    return JsonResponse(status=exc.status, body={"message": exc.message})


def message_response(status: int, message: str) -> JsonResponse:
    """An error the HTTP layer itself produces (404 routing, 400 protocol, 500...)."""
    return JsonResponse(status=status, body={"message": message})


PAGE_NOT_FOUND = message_response(404, "page not found")


def internal_error_response(exc: BaseException) -> JsonResponse:
    """500 for an exception nobody meant to show: one line, never a traceback."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return message_response(500, f"internal server error: {detail}")
