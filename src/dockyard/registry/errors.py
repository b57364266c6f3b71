"""Errors of the registry client, each also a domain error so services can let it through.

    RegistryError (dockyard.errors.DockyardError)   base; message is what dockerd would say
    ├── RegistryNotFound (NotFound, 404)            manifest, blob or repository unknown
    ├── RegistryUnauthorized (Unauthorized, 401)    credentials refused or missing
    ├── RegistryDenied (Forbidden, 403)             authenticated, but not allowed
    ├── InvalidAuthHeader (InvalidParameter, 400)   X-Registry-Auth that cannot be decoded
    ├── DigestMismatch (SystemError, 500)           content does not hash/size to what was asked
    ├── ManifestRefused (InvalidParameter, 400)     a manifest too large, of a wrong media type,
    │                                               or without a platform we can run
    ├── Unreachable (Unavailable, 503)              connection, TLS or timeout failure
    └── RegistryProtocolError (SystemError, 500)    an answer the protocol does not allow

httpx exceptions never leave ``dockyard.registry``: ``client.py`` translates
them here, once, with ``raise … from``. Each class puts the domain class first
in its bases so that ``status`` is the domain's.

``errcode_message`` renders a registry's ``{"errors": [...]}`` body as
distribution's ``errcode.Errors.Error()`` does (``manifest unknown: manifest
unknown``), which is what dockerd shows.
"""

from __future__ import annotations

import json
from typing import Any

from dockyard import errors as domain


class RegistryError(domain.DockyardError):
    """Base of every registry client error."""


class RegistryNotFound(domain.NotFound, RegistryError):
    pass


class RegistryUnauthorized(domain.Unauthorized, RegistryError):
    pass


class RegistryDenied(domain.Forbidden, RegistryError):
    pass


class InvalidAuthHeader(domain.InvalidParameter, RegistryError):
    pass


class DigestMismatch(domain.SystemError, RegistryError):
    pass


class ManifestRefused(domain.InvalidParameter, RegistryError):
    pass


class Unreachable(domain.Unavailable, RegistryError):
    pass


class RegistryProtocolError(domain.SystemError, RegistryError):
    pass


def _code_text(code: str) -> str:
    # errcode.ErrorCode.Error(): the code's value, lower case, "_" → " ".
    return code.replace("_", " ").lower()


def errcode_message(body: bytes) -> str | None:
    """The message distribution's client would make of an error body, or None.

    One error gives ``"<code text>: <message>"``; several give ``"errors:\\n"``
    and one such line each, as ``errcode.Errors.Error()`` formats them; the
    token spec's ``{"details": "..."}`` form gives ``"unauthorized: <details>"``.
    """
    try:
        value: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(value, dict):
        return None
    details = value.get("details")
    if isinstance(details, str) and details:
        return f"unauthorized: {details}"
    items = value.get("errors")
    if not isinstance(items, list) or not items:
        return None
    lines = []
    for item in items:
        if not isinstance(item, dict):
            return None
        code = _code_text(str(item.get("code") or "unknown"))
        message = item.get("message")
        lines.append(f"{code}: {message}" if isinstance(message, str) and message else code)
    if len(lines) == 1:
        return lines[0]
    return "errors:\n" + "".join(line + "\n" for line in lines)


def errcodes(body: bytes) -> tuple[str, ...]:
    """The ``code`` values of an error body (``("MANIFEST_UNKNOWN",)``); empty if none."""
    try:
        value: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    if not isinstance(value, dict) or not isinstance(value.get("errors"), list):
        return ()
    return tuple(str(i.get("code")) for i in value["errors"] if isinstance(i, dict) and i.get("code"))
