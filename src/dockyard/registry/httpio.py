"""The httpx boundary of the registry client: error translation, bounded reads, digests.

Every httpx call of ``dockyard.registry`` runs inside :func:`translate`, the
one place where httpx exceptions become registry errors (``raise … from``),
worded as Go's ``*url.Error`` so messages read as dockerd's
(``Get "http://127.0.0.1:5000/v2/": connection refused``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from dockyard.registry.errors import ManifestRefused, RegistryProtocolError, Unreachable

SUPPORTED_DIGESTS = ("sha256", "sha384", "sha512")
# getaddrinfo's "the name does not exist" answers (EAI_NODATA is glibc-only).
_NO_SUCH_HOST = frozenset({socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)})


def _describe(exc: BaseException, url: str) -> str:
    # Name the socket error as Go's net package does ("dial tcp H:P: connect:
    # connection refused"), so messages match dockerd's.
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror):
            # A failed name lookup: Go says "dial tcp: lookup HOST: no such
            # host"; os.strerror() knows nothing of the negative EAI_* codes.
            host = urllib.parse.urlsplit(url).hostname or ""
            if cause.errno in _NO_SUCH_HOST:
                return f"dial tcp: lookup {host}: no such host"
            reason = cause.strerror or str(cause)
            return f"dial tcp: lookup {host}: {reason.lower()}"
        if isinstance(cause, OSError) and cause.errno is not None and not isinstance(cause, ssl.SSLError):
            host = urllib.parse.urlsplit(url).netloc
            return f"dial tcp {host}: connect: {os.strerror(cause.errno).lower()}"
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    return text if text else type(exc).__name__


@contextlib.contextmanager
def translate(method: str, url: str) -> Iterator[None]:
    """Run an httpx call; its exceptions leave as Unreachable or RegistryProtocolError."""
    prefix = f'{method.title()} "{url}"'
    try:
        yield
    except httpx.TimeoutException as exc:
        raise Unreachable(f"{prefix}: timeout: {_describe(exc, url)}") from exc
    except (httpx.NetworkError, httpx.ProxyError, httpx.RemoteProtocolError) as exc:
        raise Unreachable(f"{prefix}: {_describe(exc, url)}") from exc
    except httpx.HTTPError as exc:
        raise RegistryProtocolError(f"{prefix}: {_describe(exc, url)}") from exc


def hasher_for(digest: str) -> Any:
    """A fresh hashlib object for ``digest``'s algorithm; RegistryProtocolError if unsupported."""
    algorithm, _, hex_part = digest.partition(":")
    if algorithm not in SUPPORTED_DIGESTS or not hex_part:
        raise RegistryProtocolError(f"unsupported digest algorithm: {digest}")
    return hashlib.new(algorithm)


def digest_like(data: bytes, reference_digest: str = "sha256:") -> str:
    """The digest of ``data`` with the algorithm of ``reference_digest``."""
    algorithm = reference_digest.partition(":")[0] or "sha256"
    if algorithm not in SUPPORTED_DIGESTS:
        raise RegistryProtocolError(f"unsupported digest algorithm: {reference_digest}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


async def read_limited(response: httpx.Response, limit: int, *, refuse: bool) -> bytes:
    """At most ``limit`` bytes of a streamed body.

    With ``refuse`` a longer body raises ManifestRefused as soon as the limit
    is passed (nothing more is read); without, the rest is dropped (for error
    bodies, where a prefix is enough).
    """
    parts: list[bytes] = []
    total = 0
    with translate(response.request.method, str(response.request.url)):
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > limit:
                if refuse:
                    raise ManifestRefused(f"manifest too large: more than {limit} bytes")
                parts.append(chunk[: len(chunk) - (total - limit)])
                break
            parts.append(chunk)
    return b"".join(parts)


async def body_pieces(response: httpx.Response, min_size: int) -> AsyncIterator[bytes]:
    """A streamed body as non-empty pieces of at least ``min_size`` bytes (the
    last may be shorter), decoded if the server applied a Content-Encoding.

    Without a Content-Encoding the raw stream is read: httpx's decoder and
    re-chunker copy every byte twice more, which costs as much CPU as the
    network read itself at hundreds of MB/s. Pieces are joined once, so each
    byte is copied once here.
    """
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    stream = response.aiter_raw() if encoding in ("", "identity") else response.aiter_bytes()
    parts: list[bytes] = []
    held = 0
    async for part in stream:
        if not part:
            continue
        if not parts and len(part) >= min_size:
            yield part
            continue
        parts.append(part)
        held += len(part)
        if held >= min_size:
            yield b"".join(parts)
            parts.clear()
            held = 0
    if parts:
        yield b"".join(parts)


def next_link(header: str | None) -> str | None:
    """The target of a ``Link: <url>; rel="next"`` header (RFC 8288), if any."""
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        target = target.strip()
        if target.startswith("<") and target.endswith(">") and 'rel="next"' in params.replace(" ", ""):
            return target[1:-1]
    return None
