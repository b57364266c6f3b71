"""Registry authentication, as values: challenges, credentials, token requests (pure).

Nothing here opens a socket or reads a clock; ``client.py`` performs the
requests this module describes and passes ``now`` (monotonic seconds) in.

The flows follow docker/distribution's client (``registry/client/auth``):

* ``/v2/`` answers 401 with ``WWW-Authenticate``; :func:`parse_challenges`.
* ``Basic``: send the username and password with every request.
* ``Bearer``: ask the ``realm`` for a token for ``service`` and the
  ``scope``\\ s (``repository:NAME:pull[,push]``): ``GET`` with Basic
  credentials (or none), or, when an identity token (an OAuth2 refresh token)
  is held, ``POST`` a ``grant_type=refresh_token`` form. The answer carries
  ``token`` or ``access_token`` and ``expires_in`` (at least 60 s, as
  distribution's client assumes). A registry token given by the client is
  used as the bearer token as is.

Errors::

    InvalidAuthHeader   X-Registry-Auth is not base64url JSON of an object
    RegistryProtocolError  a token answer without a token
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.registry.errors import InvalidAuthHeader, RegistryProtocolError

#: distribution's ``minimumTokenLifetimeSeconds``: shorter lifetimes are read as this.
MIN_TOKEN_LIFETIME = 60
#: What dockerd sends as ``client_id`` to token services.
CLIENT_ID = "docker"
#: Refresh a cached token this long before it would expire, so a request never
#: leaves with a token that dies in flight.
EXPIRY_MARGIN = 5.0


# Credentials -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class AuthConfig:
    """Credentials from ``X-Registry-Auth`` or a ``POST /auth`` body (moby's ``AuthConfig``)."""

    username: str = ""
    password: str = ""
    identity_token: str = ""
    registry_token: str = ""
    server_address: str = ""
    email: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.username or self.password or self.identity_token or self.registry_token)

    def cache_key(self) -> str:
        """A stable key for these credentials that does not carry them in clear."""
        material = "\0".join((self.username, self.password, self.identity_token, self.registry_token))
        return hashlib.sha256(material.encode()).hexdigest()


# Go's encoding/json matches object keys to struct fields case-insensitively;
# docker-py sends "IdentityToken" where the CLI sends "identitytoken".
_AUTH_FIELDS = {
    "username": "username",
    "password": "password",
    "identitytoken": "identity_token",
    "registrytoken": "registry_token",
    "serveraddress": "server_address",
    "email": "email",
}


def auth_config_from_json(value: Any) -> AuthConfig:
    """An :class:`AuthConfig` from a decoded JSON object; unknown keys are ignored.

    Raises InvalidAuthHeader when ``value`` is not an object or a known field
    is not a string.
    """
    if value is None:
        return AuthConfig()
    if not isinstance(value, dict):
        raise InvalidAuthHeader("invalid X-Registry-Auth header: not a JSON object")
    fields: dict[str, str] = {}
    for key, item in value.items():
        name = _AUTH_FIELDS.get(str(key).lower())
        if name is None or item is None:
            continue
        if not isinstance(item, str):
            raise InvalidAuthHeader(f"invalid X-Registry-Auth header: {key} must be a string")
        fields[name] = item
    return AuthConfig(**fields)


def decode_registry_auth(header_value: str | None) -> AuthConfig | None:
    """Decode ``X-Registry-Auth``: base64url (padded or not) of a JSON object.

    Returns None when the header is absent or carries no credentials (``{}``,
    ``null``, all fields empty): the caller then goes anonymous. The standard
    base64 alphabet is accepted too, as some clients send it. Raises
    :class:`InvalidAuthHeader` (400) for anything else, never a bare
    ``binascii``/``json`` error.
    """
    if header_value is None:
        return None
    text = header_value.strip()
    if not text:
        return None
    text = text.replace("+", "-").replace("/", "_").rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidAuthHeader(f"invalid X-Registry-Auth header: {exc}") from exc
    config = auth_config_from_json(value)
    return None if config.is_empty else config


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value for Basic credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# Challenges --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header; ``scheme`` in lower case."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


_SEPARATORS = " \t,="


def parse_challenges(values: str | Iterable[str]) -> tuple[Challenge, ...]:
    """Parse ``WWW-Authenticate`` values (one header or several) into challenges.

    Handles several challenges in one header (``Basic realm="a", Bearer
    realm="b",service="c"``), quoted strings with commas and backslash escapes,
    and unquoted tokens. Parameter names are lower-cased; values are kept.
    Malformed pieces are skipped rather than raised: a challenge is advice.
    """
    if isinstance(values, str):
        values = [values]
    found: list[Challenge] = []
    for text in values:
        found.extend(_parse_one_header(text))
    return tuple(found)


def _parse_one_header(text: str) -> list[Challenge]:
    out: list[tuple[str, dict[str, str]]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        start = i
        while i < n and text[i] not in _SEPARATORS:
            i += 1
        token = text[start:i]
        if not token:
            i += 1  # a stray "=": skip it
            continue
        j = i
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == "=" and out:
            i = j + 1
            while i < n and text[i] in " \t":
                i += 1
            value, i = _read_value(text, i)
            out[-1][1][token.lower()] = value
        else:
            out.append((token.lower(), {}))
    return [Challenge(scheme=scheme, params=params) for scheme, params in out]


def _read_value(text: str, i: int) -> tuple[str, int]:
    n = len(text)
    if i < n and text[i] == '"':
        chars: list[str] = []
        i += 1
        while i < n and text[i] != '"':
            if text[i] == "\\" and i + 1 < n:
                i += 1
            chars.append(text[i])
            i += 1
        return "".join(chars), i + 1
    start = i
    while i < n and text[i] not in " \t,":
        i += 1
    return text[start:i], i


# Scopes ------------------------------------------------------------------------


def repository_scope(name: str, actions: Sequence[str]) -> str:
    """``repository:NAME:ACTIONS`` as the token spec spells it (actions comma-joined)."""
    return f"repository:{name}:{','.join(actions)}"


def merge_scopes(*groups: Iterable[str]) -> tuple[str, ...]:
    """Scopes from several sources, one per resource, actions united, sorted.

    A challenge's ``scope`` parameter may hold several space-separated scopes;
    pass ``challenge_scope.split()``.
    """
    actions: dict[str, list[str]] = {}
    for group in groups:
        for scope in group:
            resource, sep, acts = scope.rpartition(":")
            if not sep or not resource:
                continue
            merged = actions.setdefault(resource, [])
            for act in acts.split(","):
                if act and act not in merged:
                    merged.append(act)
    return tuple(
        f"{resource}:{','.join(sorted(acts))}" for resource, acts in sorted(actions.items()) if acts
    )


# Token requests ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TokenRequest:
    """An HTTP request to a token realm, for the client to perform."""

    method: str  # "GET" or "POST"
    url: str
    headers: Mapping[str, str]
    form: Mapping[str, str] | None = None  # the POST body, form-encoded by the client


def token_request(
    challenge: Challenge,
    scopes: Sequence[str],
    auth: AuthConfig | None,
    *,
    offline: bool = False,
) -> TokenRequest:
    """Describe the request distribution's token handler would make.

    ``offline`` asks for a refresh token as well (``docker login`` does, and
    returns it to the CLI as ``IdentityToken``). With an identity token the
    request is the OAuth2 ``refresh_token`` grant by ``POST``; otherwise a
    ``GET`` with Basic credentials when there are any.
    """
    realm = challenge.realm
    service = challenge.params.get("service", "")
    if auth is not None and auth.identity_token:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": auth.identity_token,
            "client_id": CLIENT_ID,
        }
        if service:
            form["service"] = service
        if scopes:
            form["scope"] = " ".join(scopes)
        if offline:
            form["access_type"] = "offline"
        return TokenRequest(method="POST", url=realm, headers={}, form=form)
    query: list[tuple[str, str]] = []
    if service:
        query.append(("service", service))
    query.extend(("scope", scope) for scope in scopes)
    headers: dict[str, str] = {}
    if auth is not None and auth.username:
        query.append(("account", auth.username))
        headers["Authorization"] = basic_authorization(auth.username, auth.password)
    if offline:
        query += [("offline_token", "true"), ("client_id", CLIENT_ID)]
    url = realm
    if query:
        url += ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
    return TokenRequest(method="GET", url=url, headers=headers)


@dataclass(frozen=True, kw_only=True)
class Token:
    value: str
    expires_at: float  # on the caller's monotonic clock
    refresh_token: str = ""

    def valid_at(self, now: float) -> bool:
        return now < self.expires_at - EXPIRY_MARGIN


def parse_token_response(body: bytes, now: float) -> Token:
    """Read a token answer: ``token`` or ``access_token``, ``expires_in``, ``refresh_token``.

    Raises RegistryProtocolError when the body is not JSON or has no token.
    """
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RegistryProtocolError(f"unable to decode token response: {exc}") from exc
    if not isinstance(value, dict):
        raise RegistryProtocolError("unable to decode token response: not a JSON object")
    token = value.get("access_token") or value.get("token")
    if not isinstance(token, str) or not token:
        raise RegistryProtocolError("authorization server did not include a token in the response")
    lifetime = value.get("expires_in")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime < MIN_TOKEN_LIFETIME:
        lifetime = MIN_TOKEN_LIFETIME
    refresh = value.get("refresh_token")
    return Token(
        value=token,
        expires_at=now + float(lifetime),
        refresh_token=refresh if isinstance(refresh, str) else "",
    )


# Cache -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TokenKey:
    """What a token is good for: one registry, one set of scopes, one set of credentials."""

    registry: str
    realm: str
    service: str
    scopes: tuple[str, ...]
    credentials: str  # AuthConfig.cache_key(), or "" for anonymous


class TokenCache:
    """Bearer tokens by :class:`TokenKey`, dropped once expired. Not thread-safe;
    one event loop owns it. Holds at most ``limit`` entries, evicting the oldest."""

    def __init__(self, limit: int = 1024) -> None:
        self._tokens: dict[TokenKey, Token] = {}
        self._limit = limit

    def get(self, key: TokenKey, now: float) -> Token | None:
        token = self._tokens.get(key)
        if token is None:
            return None
        if not token.valid_at(now):
            del self._tokens[key]
            return None
        return token

    def put(self, key: TokenKey, token: Token) -> None:
        self._tokens.pop(key, None)
        self._tokens[key] = token
        while len(self._tokens) > self._limit:
            del self._tokens[next(iter(self._tokens))]

    def __len__(self) -> int:
        return len(self._tokens)
