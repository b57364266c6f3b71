"""One repository of one registry, with one set of credentials: the distribution API calls.

Made by :meth:`RegistryClient.repository`. It keeps the scopes it needs, the
``Authorization`` it earned per endpoint (refreshed from the client's token
cache when a token expires), and the endpoint that first answered, so blob
requests go where the manifest came from (a mirror or the origin).

Fallback (dockerd's ``continueOnError``): a failing mirror, whatever the
error, passes the request on to the next endpoint; the origin's HTTPS
endpoint of an insecure registry passes on to its HTTP endpoint only when
unreachable. When the origin finally fails after mirrors did, the error
keeps its class and names each mirror tried.

Errors: :mod:`dockyard.registry.errors` only.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from dockyard.oci.image import DIGEST_RE, Index, Manifest, Platform
from dockyard.registry import auth as authmod
from dockyard.registry.auth import AuthConfig, Challenge, TokenKey
from dockyard.registry.endpoints import Endpoint
from dockyard.registry.errors import (
    DigestMismatch,
    ManifestRefused,
    RegistryDenied,
    RegistryError,
    RegistryNotFound,
    RegistryProtocolError,
    RegistryUnauthorized,
    Unreachable,
    errcode_message,
    errcodes,
)
from dockyard.registry.httpio import body_pieces, digest_like, hasher_for, next_link, read_limited, translate
from dockyard.registry.manifests import (
    DEFAULT_PLATFORM,
    MANIFEST_ACCEPT,
    MAX_MANIFEST_SIZE,
    ResolvedImage,
    content_type_media,
    parse_fetched,
    select_manifest,
)
from dockyard.wire.reference import Reference

if TYPE_CHECKING:
    from dockyard.registry.client import RegistryClient

T = TypeVar("T")

#: Blob chunks handed on are at least this big: containerd's writer passes
#: pieces this size through without copying them again.
_BLOB_CHUNK = 1 << 20
_ERROR_BODY_LIMIT = 64 << 10
_MAX_TAG_PAGES = 1000


@dataclass(frozen=True, kw_only=True)
class FetchedManifest:
    """A manifest or index as fetched: exact bytes, verified digest, checked value."""

    media_type: str
    digest: str
    data: bytes
    value: Manifest | Index


@dataclass(frozen=True, kw_only=True)
class _Authorization:
    header: str
    token_key: TokenKey | None  # set for Bearer: re-read from the cache before each use
    challenge: Challenge | None


class Repository:
    """The distribution API on ``registry/path``. Not shared between event loops."""

    def __init__(
        self,
        client: RegistryClient,
        registry: str,
        path: str,
        auth: AuthConfig | None,
        push: bool,
        mount_from: tuple[str, ...],
    ) -> None:
        self._client = client
        self.registry = registry
        self.path = path
        self.auth = auth
        self.push = push
        actions = ["pull", "push"] if push else ["pull"]
        self.scopes = authmod.merge_scopes(
            [authmod.repository_scope(path, actions)],
            [authmod.repository_scope(m, ["pull"]) for m in mount_from if m != path],
        )
        self.familiar_name = Reference(domain=registry, path=path).familiar_name
        self._pinned: Endpoint | None = None
        self._authorizations: dict[str, _Authorization] = {}

    @property
    def endpoint(self) -> Endpoint | None:
        """The endpoint that answered first (None before any request succeeded)."""
        return self._pinned

    # Endpoint choice -----------------------------------------------------------

    async def _on_endpoints(self, op: Callable[[Endpoint], Awaitable[T]]) -> T:
        if self._pinned is not None:
            return await op(self._pinned)
        endpoints = await self._client.endpoints(self.registry, pull=not self.push)
        mirror_failures: list[str] = []
        for i, endpoint in enumerate(endpoints):
            try:
                result = await op(endpoint)
            except RegistryError as exc:
                last = i == len(endpoints) - 1
                if endpoint.mirror and not last:
                    mirror_failures.append(f"registry mirror {endpoint.base_url}: {exc.message}")
                    continue
                if isinstance(exc, Unreachable) and not last:
                    continue
                if mirror_failures:
                    raise type(exc)(f"{exc.message} (after {'; '.join(mirror_failures)})") from exc
                raise
            self._pinned = endpoint
            self._client.remember_answer(endpoint)
            return result
        raise Unreachable(f"no endpoint for {self.registry}")  # endpoints() is never empty

    # Authorization ---------------------------------------------------------------

    async def _authorization_for(self, endpoint: Endpoint) -> str | None:
        known = self._authorizations.get(endpoint.base_url)
        if known is None:
            # Challenges learnt by earlier requests (or a ping) let us
            # authorize up front instead of collecting a 401 first.
            challenges = self._client._challenges.get(endpoint.base_url)
            if not challenges:
                return None
            known = await self._authorize(endpoint, challenges)
            if known is None:
                return None
            self._authorizations[endpoint.base_url] = known
        if known.token_key is not None and known.challenge is not None:
            if self._client._tokens.get(known.token_key, self._client._clock()) is None:
                known = await self._authorize(endpoint, (known.challenge,))
                if known is None:
                    return None
                self._authorizations[endpoint.base_url] = known
        return known.header

    async def _authorize(self, endpoint: Endpoint, challenges: Sequence[Challenge]) -> _Authorization | None:
        """The Authorization this repository's credentials earn against ``challenges``."""
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        auth = self.auth
        if bearer is not None:
            if auth is not None and auth.registry_token:
                return _Authorization(header="Bearer " + auth.registry_token, token_key=None, challenge=None)
            # The registry may name scopes we did not think of (a mount source).
            self.scopes = authmod.merge_scopes(self.scopes, bearer.params.get("scope", "").split())
            token, key = await self._client.token(endpoint, bearer, self.scopes, auth)
            return _Authorization(header="Bearer " + token.value, token_key=key, challenge=bearer)
        if basic is not None and auth is not None and auth.username:
            header = authmod.basic_authorization(auth.username, auth.password)
            return _Authorization(header=header, token_key=None, challenge=None)
        return None

    async def _send(
        self,
        endpoint: Endpoint,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        stream: bool = False,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """Send with the earned Authorization; on a 401, authorize by its challenge
        and retry once (only a replayable body is retried). A final 401 is
        returned like any other status, for the caller's error mapping."""
        http = self._client.http(endpoint)
        replayable = content is None or isinstance(content, bytes)
        for attempt in (0, 1):
            request_headers = dict(headers or {})
            sent = await self._authorization_for(endpoint)
            if sent is not None:
                request_headers["Authorization"] = sent
            request = http.build_request(method, url, headers=request_headers, params=params, content=content)
            with translate(method, str(request.url)):
                response = await http.send(request, stream=stream, follow_redirects=follow_redirects)
            if response.status_code != 401 or attempt == 1 or not replayable:
                return response
            challenges = authmod.parse_challenges(response.headers.get_list("www-authenticate"))
            if not challenges:
                return response
            if self._basic_without_credentials(challenges):
                await response.aclose()
                raise RegistryUnauthorized(f'{method.title()} "{request.url}": no basic auth credentials')
            self._client._challenges[endpoint.base_url] = challenges
            earned = await self._authorize(endpoint, challenges)
            if earned is None or earned.header == sent:
                return response
            await response.aclose()
            self._authorizations[endpoint.base_url] = earned
        raise AssertionError("unreachable")

    def _basic_without_credentials(self, challenges: Sequence[Challenge]) -> bool:
        """dockerd's case for "no basic auth credentials": only Basic offered, none held."""
        schemes = {c.scheme for c in challenges}
        return "basic" in schemes and "bearer" not in schemes and not (self.auth and self.auth.username)

    async def _raise_for(self, response: httpx.Response, *, manifest: str | None = None) -> None:
        """Raise the registry error for a non-success response (and close it)."""
        try:
            body = await read_limited(response, _ERROR_BODY_LIMIT, refuse=False)
        finally:
            await response.aclose()
        message = errcode_message(body)
        status = response.status_code
        generic = f"received unexpected HTTP status: {status} {response.reason_phrase}"
        if status == 404:
            if manifest is not None:
                sep = "@" if DIGEST_RE.match(manifest) else ":"
                raise RegistryNotFound(
                    f"manifest for {self.familiar_name}{sep}{manifest} not found: "
                    f"{message or 'manifest unknown: manifest unknown'}"
                )
            raise RegistryNotFound(message or f"{response.request.url.path}: not found")
        if status == 401:
            raise RegistryUnauthorized(message or "unauthorized: authentication required")
        if status == 403:
            raise RegistryDenied(message or "denied: requested access to the resource is denied")
        if status == 400 and "DIGEST_INVALID" in errcodes(body):
            raise DigestMismatch(message or generic)
        if status in (429, 502, 503, 504):
            raise Unreachable(message or generic)
        raise RegistryProtocolError(message or generic)

    def _url(self, endpoint: Endpoint, *parts: str) -> str:
        return f"{endpoint.base_url}/v2/{self.path}/" + "/".join(parts)

    # Manifests -------------------------------------------------------------------

    async def get_manifest(self, reference: str, *, accept: Sequence[str] = MANIFEST_ACCEPT) -> FetchedManifest:
        """Fetch a manifest or index by tag or digest; checked before it is returned.

        By digest, the bytes must hash to it; by tag, to ``Docker-Content-Digest``
        when sent. Raises RegistryNotFound (dockerd's ``manifest for x:y not
        found: …``), DigestMismatch, ManifestRefused, and the auth/transport errors.
        """
        return await self._on_endpoints(lambda ep: self._get_manifest(ep, reference, accept))

    async def _get_manifest(self, endpoint: Endpoint, reference: str, accept: Sequence[str]) -> FetchedManifest:
        response = await self._send(
            endpoint, "GET", self._url(endpoint, "manifests", reference),
            headers={"Accept": ", ".join(accept)}, stream=True,
        )  # fmt: skip
        if response.status_code != 200:
            await self._raise_for(response, manifest=reference)
        try:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) > MAX_MANIFEST_SIZE:
                raise ManifestRefused(f"manifest too large: {length} bytes exceeds {MAX_MANIFEST_SIZE}")
            data = await read_limited(response, MAX_MANIFEST_SIZE, refuse=True)
        finally:
            await response.aclose()
        by_digest = bool(DIGEST_RE.match(reference)) or reference.partition(":")[0] in ("sha384", "sha512")
        if by_digest:
            digest = reference
            if digest_like(data, reference) != reference:
                raise DigestMismatch(f"manifest verification failed for digest {reference}")
        else:
            digest = digest_like(data)
            sent = response.headers.get("docker-content-digest")
            if sent and sent.startswith("sha256:") and sent != digest:
                raise DigestMismatch(
                    f"manifest for {self.familiar_name}:{reference}: registry says {sent}, content is {digest}"
                )
        reference_text = f"{self.familiar_name}{'@' if by_digest else ':'}{reference}"
        value = parse_fetched(response.headers.get("content-type"), data, name=reference_text)
        return FetchedManifest(media_type=value.media_type, digest=digest, data=data, value=value)

    async def head_manifest(self, reference: str, *, accept: Sequence[str] = MANIFEST_ACCEPT) -> tuple[str, str, int] | None:
        """``(media_type, digest, size)`` of a manifest by a ``HEAD``, or None if unknown.

        The digest is ``Docker-Content-Digest`` (or the reference, when it is a
        digest); a registry that sends neither gets a RegistryProtocolError.
        """

        async def head(endpoint: Endpoint) -> tuple[str, str, int] | None:
            response = await self._send(
                endpoint, "HEAD", self._url(endpoint, "manifests", reference),
                headers={"Accept": ", ".join(accept)},
            )  # fmt: skip
            if response.status_code == 404:
                if endpoint.mirror:
                    raise RegistryNotFound(f"manifest for {self.familiar_name}:{reference} not found")
                return None
            if response.status_code != 200:
                await self._raise_for(response, manifest=reference)
            digest = response.headers.get("docker-content-digest") or (
                reference if DIGEST_RE.match(reference) else ""
            )
            if not DIGEST_RE.match(digest):
                raise RegistryProtocolError(f"HEAD of manifest {reference} gave no usable digest")
            length = response.headers.get("content-length", "")
            return (
                content_type_media(response.headers.get("content-type")),
                digest,
                int(length) if length.isdigit() else -1,
            )

        return await self._on_endpoints(head)

    async def resolve(self, reference: str, platform: Platform = DEFAULT_PLATFORM) -> ResolvedImage:
        """The image manifest ``reference`` means on ``platform``: through an index if it
        names one. Raises ManifestRefused when no entry fits (dockerd's message)."""
        top = await self.get_manifest(reference)
        if isinstance(top.value, Manifest):
            return ResolvedImage(
                top_digest=top.digest, top_media_type=top.media_type,
                manifest_digest=top.digest, manifest=top.value,
            )  # fmt: skip
        entry = select_manifest(top.value, platform)
        inner = await self.get_manifest(entry.digest)
        if not isinstance(inner.value, Manifest):
            raise ManifestRefused(f"index entry {entry.digest} is not an image manifest")
        if len(inner.data) != entry.size:
            raise DigestMismatch(f"manifest {entry.digest}: {len(inner.data)} bytes, index says {entry.size}")
        return ResolvedImage(
            top_digest=top.digest, top_media_type=top.media_type,
            manifest_digest=inner.digest, manifest=inner.value,
        )  # fmt: skip

    async def put_manifest(self, reference: str, media_type: str, data: bytes) -> str:
        """``PUT`` a manifest under a tag (or its digest); returns its digest."""

        async def put(endpoint: Endpoint) -> str:
            response = await self._send(
                endpoint, "PUT", self._url(endpoint, "manifests", reference),
                headers={"Content-Type": media_type}, content=data,
            )  # fmt: skip
            if response.status_code not in (200, 201):
                await self._raise_for(response)
            digest = digest_like(data)
            sent = response.headers.get("docker-content-digest")
            if sent and sent.startswith("sha256:") and sent != digest:
                raise DigestMismatch(f"registry stored manifest as {sent}, content is {digest}")
            return digest

        return await self._on_endpoints(put)

    async def list_tags(self) -> tuple[str, ...]:
        """All tags, following ``Link: rel="next"`` pages, in the registry's order."""

        async def tags(endpoint: Endpoint) -> tuple[str, ...]:
            found: list[str] = []
            url: str | None = self._url(endpoint, "tags", "list")
            for _page in range(_MAX_TAG_PAGES):
                if url is None:
                    break
                response = await self._send(endpoint, "GET", url)
                if response.status_code != 200:
                    await self._raise_for(response)
                try:
                    value: Any = json.loads(response.content)
                except ValueError as exc:
                    raise RegistryProtocolError(f"invalid tag list: {exc}") from exc
                page = value.get("tags") if isinstance(value, dict) else None
                if page is not None and not (isinstance(page, list) and all(isinstance(t, str) for t in page)):
                    raise RegistryProtocolError("invalid tag list: tags is not a list of strings")
                found.extend(page or ())
                link = next_link(response.headers.get("link"))
                url = urllib.parse.urljoin(endpoint.base_url + "/", link) if link else None
            return tuple(found)

        return await self._on_endpoints(tags)

    # Blobs -----------------------------------------------------------------------

    async def blob_exists(self, digest: str) -> bool:
        async def head(endpoint: Endpoint) -> bool:
            response = await self._send(
                endpoint, "HEAD", self._url(endpoint, "blobs", digest), follow_redirects=True
            )
            if response.status_code == 404:
                if endpoint.mirror:
                    raise RegistryNotFound(f"blob {digest} not found")
                return False
            if response.status_code != 200:
                await self._raise_for(response)
            return True

        return await self._on_endpoints(head)

    async def _open_blob(self, endpoint: Endpoint, digest: str) -> httpx.Response:
        response = await self._send(
            endpoint, "GET", self._url(endpoint, "blobs", digest),
            headers={"Accept-Encoding": "identity"}, stream=True, follow_redirects=True,
        )  # fmt: skip
        if response.status_code != 200:
            await self._raise_for(response)
        return response

    async def fetch_blob(self, digest: str, size: int, *, check_digest: bool = True) -> AsyncIterator[bytes]:
        """Stream a blob, verifying size and digest as it comes (redirects followed).

        Raises DigestMismatch as soon as more than ``size`` bytes arrive, or at
        the end when size or digest differ; the final chunk is held back until
        both match. The caller discards what it got when anything is raised.

        ``check_digest=False`` checks the size only and leaves the digest to
        the caller, who must not trust the bytes before checking it. For a
        caller that hashes them anyway (containerd's commit with an expected
        digest), hashing here too costs about a CPU-second per 300 MB.
        """
        hasher = hasher_for(digest)  # refuses an unsupported algorithm either way
        failure = f"filesystem layer verification failed for digest {digest}"
        response = await self._on_endpoints(lambda ep: self._open_blob(ep, digest))
        try:
            length = response.headers.get("content-length", "")
            if length.isdigit() and int(length) != size:
                raise DigestMismatch(f"{failure}: registry sends {length} bytes, expected {size}")
            received = 0
            held: bytes | None = None
            with translate("GET", str(response.url)):
                async for chunk in body_pieces(response, _BLOB_CHUNK):
                    received += len(chunk)
                    if received > size:
                        raise DigestMismatch(f"{failure}: more than the expected {size} bytes")
                    if check_digest:
                        hasher.update(chunk)
                    if held is not None:
                        yield held
                    held = chunk
            if received != size:
                raise DigestMismatch(f"{failure}: got {received} bytes, expected {size}")
            if check_digest and f"{hasher.name}:{hasher.hexdigest()}" != digest:
                raise DigestMismatch(failure)
            if held is not None:
                yield held
        finally:
            await response.aclose()

    async def read_blob(self, digest: str, size: int, *, limit: int) -> bytes:
        """A whole (small) blob, verified; ManifestRefused if ``size`` exceeds ``limit``."""
        if size > limit:
            raise ManifestRefused(f"blob {digest} too large: {size} bytes exceeds {limit}")
        return b"".join([chunk async for chunk in self.fetch_blob(digest, size)])

    async def upload_blob(
        self,
        digest: str,
        size: int,
        content: bytes | AsyncIterable[bytes],
        *,
        mount_from: str | None = None,
    ) -> str:
        """Upload a blob; returns ``"mounted"`` or ``"uploaded"``.

        With ``mount_from`` (a repository of the same registry) the registry is
        first asked to mount the blob from it; if it will not, the content is
        sent in one monolithic ``PUT …?digest=``, checked for size and digest
        on the way (DigestMismatch aborts the request). A failed upload is
        cancelled with ``DELETE``.
        """
        if mount_from == self.path:
            mount_from = None

        async def start(endpoint: Endpoint) -> str | None:
            params = {"mount": digest, "from": mount_from} if mount_from else None
            response = await self._send(
                endpoint, "POST", self._url(endpoint, "blobs", "uploads/"),
                params=params, headers={"Content-Length": "0"},
            )  # fmt: skip
            if response.status_code == 201 and mount_from:
                return None
            if response.status_code != 202:
                await self._raise_for(response)
            location: str = response.headers.get("location", "")
            if not location:
                raise RegistryProtocolError("upload started without a Location")
            return str(urllib.parse.urljoin(endpoint.base_url + "/", location))

        location = await self._on_endpoints(start)
        if location is None:
            return "mounted"
        endpoint = self._pinned
        assert endpoint is not None
        split = urllib.parse.urlsplit(location)
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True) + [("digest", digest)]
        put_url = urllib.parse.urlunsplit(split._replace(query=urllib.parse.urlencode(query)))
        body = content if isinstance(content, bytes) else _checked(content, digest, size)
        if isinstance(content, bytes) and (len(content) != size or digest_like(content, digest) != digest):
            raise DigestMismatch(f"blob upload content does not match {digest} ({size} bytes)")
        try:
            response = await self._send(
                endpoint, "PUT", put_url, content=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )  # fmt: skip
            if response.status_code not in (201, 204):
                await self._raise_for(response)
            sent = response.headers.get("docker-content-digest")
            if sent and sent != digest:
                raise DigestMismatch(f"registry stored blob as {sent}, expected {digest}")
        except BaseException:
            await self._cancel_upload(endpoint, location)
            raise
        return "uploaded"

    async def _cancel_upload(self, endpoint: Endpoint, location: str) -> None:
        try:
            response = await self._send(endpoint, "DELETE", location)
            await response.aclose()
        except RegistryError:
            pass  # best effort: the registry purges abandoned uploads itself


async def _checked(chunks: AsyncIterable[bytes], digest: str, size: int) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, raising DigestMismatch before the last byte leaves
    if they are not ``size`` bytes hashing to ``digest``."""
    hasher = hasher_for(digest)
    sent = 0
    async for chunk in chunks:
        sent += len(chunk)
        if sent > size:
            raise DigestMismatch(f"blob upload content exceeds {size} bytes for {digest}")
        hasher.update(chunk)
        if sent == size and f"{hasher.name}:{hasher.hexdigest()}" != digest:
            raise DigestMismatch(f"blob upload content does not match {digest}")
        yield chunk
    if sent != size:
        raise DigestMismatch(f"blob upload content is {sent} bytes, expected {size} for {digest}")
