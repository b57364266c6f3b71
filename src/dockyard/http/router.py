"""Routes, API version prefixes and the ``Request`` value handlers receive.

Routing is pure: ``Router.match`` maps a method and a decoded path to a handler
and its path parameters; ``split_version`` takes the ``/vX.Y`` prefix off a path
and checks it against the versions dockyard speaks (1.24 to 1.50), with
dockerd's wording. The ``Request`` value carries its body as a stream and an
``upgrade`` callback; the connection adapter (``connection.py``) provides both.

Errors raised here are domain errors (``dockyard.errors.InvalidParameter``,
``PayloadTooLarge``); ``responses.error_response`` turns them into HTTP.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from dockyard.errors import InvalidParameter, PayloadTooLarge

if TYPE_CHECKING:
    from dockyard.http.responses import AnyResponse
    from dockyard.streams import ByteStream

API_VERSION = (1, 50)
MIN_API_VERSION = (1, 24)
MIN_API_VERSION_TEXT = "1.24"
MAX_API_VERSION_TEXT = "1.50"

DEFAULT_JSON_LIMIT = 16 * 1024 * 1024
_READ_SIZE = 256 * 1024

# dockerd's router: "/v{version:[0-9.]+}" in front of every route, optional.
_VERSION_PREFIX = re.compile(r"/v([0-9.]+)(?=/|$)")

# moby httputils.BoolValue: these (after trim and lower-casing) are false.
_FALSE_WORDS = frozenset({"", "0", "no", "false", "none"})


def _version_key(text: str) -> tuple[int, ...]:
    # Go's versions.compare: dot-separated integers, non-numbers and missing
    # parts count as 0 ("1.50.0" equals "1.50"), so pad to a fixed width.
    parts = [int(part) if part.isdigit() else 0 for part in text.split(".")]
    return tuple(parts + [0] * (4 - len(parts))) if len(parts) < 4 else tuple(parts)


def split_version(path: str) -> tuple[tuple[int, int], str]:
    """Return ``(api_version, path_without_prefix)`` for a decoded request path.

    No prefix means the current version (1.50). Raises ``InvalidParameter`` with
    dockerd's message when the prefix is outside 1.24..1.50.
    """
    match = _VERSION_PREFIX.match(path)
    if match is None:
        return API_VERSION, path
    text = match.group(1)
    key = _version_key(text)
    if key < _version_key(MIN_API_VERSION_TEXT):
        raise InvalidParameter(
            f"client version {text} is too old. Minimum supported API version is "
            f"{MIN_API_VERSION_TEXT}, please upgrade your client to a newer version"
        )
    if key > _version_key(MAX_API_VERSION_TEXT):
        raise InvalidParameter(
            f"client version {text} is too new. Maximum supported API version is {MAX_API_VERSION_TEXT}"
        )
    rest = path[match.end() :] or "/"
    return (key[0], key[1]), rest


def strip_version(path: str) -> str:
    """The path without any ``/vX.Y`` prefix, valid or not (used for routing)."""
    match = _VERSION_PREFIX.match(path)
    return path if match is None else (path[match.end() :] or "/")


class RequestBody(Protocol):
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` of the body; ``b""`` once it is complete.

        Raises ``PayloadTooLarge`` past the server's body limit, and
        ``dockyard.http.ClientDisconnected`` if the client leaves mid-body.
        """


Upgrade = Callable[[str], Awaitable["ByteStream"]]


@dataclass(frozen=True, kw_only=True)
class Request:
    """One HTTP request as a handler sees it.

    ``path`` is URL-decoded and has no version prefix; ``headers`` has lowercased
    names, repeated headers joined with ``", "``; ``query`` keeps every value of
    a repeated parameter, in order.
    """

    method: str
    path: str
    api_version: tuple[int, int]
    query: Mapping[str, tuple[str, ...]]
    headers: Mapping[str, str]
    path_params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    body: RequestBody
    upgrade_callback: Upgrade | None = field(default=None, repr=False, compare=False)

    # -- query parameters, with dockerd's parsing rules (moby api/server/httputils/form.go)

    def query_str(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``; ``default`` when absent."""
        values = self.query.get(name)
        return values[0] if values else default

    def query_bool(self, name: str, default: bool = False) -> bool:
        """dockerd's BoolValueOrDefault: absent → default; "", 0, no, false, none → False."""
        values = self.query.get(name)
        if values is None:
            return default
        return values[0].strip().lower() not in _FALSE_WORDS

    def query_int(self, name: str, default: int) -> int:
        """Absent or empty → ``default``; not an integer → ``InvalidParameter``."""
        text = self.query_str(name, "")
        if not text:
            return default
        try:
            return int(text, 10)
        except ValueError:
            raise InvalidParameter(f'invalid value for {name}: strconv.ParseInt: parsing "{text}": invalid syntax') from None

    # -- body

    async def read_all(self, limit: int) -> bytes:
        """The whole body; ``PayloadTooLarge`` if it exceeds ``limit`` bytes."""
        buffer = bytearray()
        while chunk := await self.body.read(_READ_SIZE):
            buffer += chunk
            if len(buffer) > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        return bytes(buffer)

    async def json(self, limit: int = DEFAULT_JSON_LIMIT) -> Any:
        """The body parsed as JSON; ``None`` for an empty body.

        Raises ``InvalidParameter`` for malformed JSON, ``PayloadTooLarge`` past ``limit``.
        """
        raw = await self.read_all(limit)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except UnicodeDecodeError as exc:
            raise InvalidParameter(f"invalid JSON body: {exc.reason}") from None
        except json.JSONDecodeError as exc:
            raise InvalidParameter(_json_error_message(exc)) from None

    async def upgrade(self, content_type: str) -> ByteStream:
        """Take the connection over; see ``dockyard.http.hijack``.

        Call only after every check passed: from here on errors can no longer
        be HTTP responses. The handler must then return ``Hijacked()``.
        """
        if self.upgrade_callback is None:
            raise RuntimeError("this request cannot be upgraded")
        return await self.upgrade_callback(content_type)


def _json_error_message(exc: json.JSONDecodeError) -> str:
    # Phrase it the way Go's encoding/json does for the common case, since
    # clients and users know that wording from dockerd.
    if exc.pos < len(exc.doc) and exc.msg.startswith("Expecting value"):
        return f"invalid character {exc.doc[exc.pos]!r} looking for beginning of value"
    return f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"


Handler = Callable[[Request], Awaitable["AnyResponse"]]


@dataclass(frozen=True, kw_only=True)
class RouteMatch:
    handler: Handler
    path_params: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    parts: list[str] = []
    position = 0
    for param in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[position : param.start()]))
        name, kind = param.group(1), param.group(2)
        # {x:path} is lazy so that a fixed suffix after it (".../json") wins.
        parts.append(f"(?P<{name}>.+?)" if kind == "path" else f"(?P<{name}>[^/]+)")
        position = param.end()
    parts.append(re.escape(pattern[position:]))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


class Router:
    """Routes tried in the order they were added; first match wins.

    ``{name}`` matches one path segment, ``{name:path}`` one or more segments.
    HEAD falls back to the GET route. A path that exists only for another
    method is "page not found", as with dockerd.
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append(_Route(method=method.upper(), pattern=pattern, regex=_compile(pattern), handler=handler))

    def match(self, method: str, path: str) -> RouteMatch | None:
        found = self._find(method, path)
        if found is None and method == "HEAD":
            found = self._find("GET", path)
        return found

    def _find(self, method: str, path: str) -> RouteMatch | None:
        for route in self._routes:
            if route.method != method:
                continue
            matched = route.regex.match(path)
            if matched is not None:
                return RouteMatch(handler=route.handler, path_params=MappingProxyType(matched.groupdict()))
        return None
