"""Docker image references, parsed as distribution/reference does.

``parse`` is ``ParseDockerRef``'s normalisation (``ParseNormalizedNamed``)
without the tag-dropping: it turns what a user types into the fully qualified
form dockerd stores (``alpine:3.20`` → ``docker.io/library/alpine:3.20``) and
keeps both tag and digest when both are given. ``Reference.familiar()`` is
the reverse, what ``docker images`` shows.

The grammar (distribution/reference ``reference.go``)::

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [domain "/"] path
    domain      := host [":" port]      host: DNS-ish name, IPv4, or [IPv6]
    path        := component ("/" component)*
    component   := [a-z0-9]+ ((\\.|_|__|-+) [a-z0-9]+)*
    tag         := [\\w][\\w.-]{0,127}
    digest      := algorithm ":" hex{32,}

The first path element is a domain only if it contains ``.`` or ``:``, is
``localhost``, or has an upper-case letter; so ``alpine:3.20`` is a name and
a tag, never a host and a port. ``index.docker.io`` is rewritten to
``docker.io`` and single-element Hub names get ``library/``.

Pure: no I/O. Errors::

    dockyard.errors.InvalidParameter
    └── InvalidReference     message is Docker's, byte for byte
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from dockyard.errors import InvalidParameter

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "LEGACY_DEFAULT_DOMAIN",
    "NAME_TOTAL_LENGTH_MAX",
    "OFFICIAL_REPO_PREFIX",
    "InvalidReference",
    "Reference",
    "is_full_id",
    "looks_like_id_prefix",
    "parse",
    "validate_digest",
    "validate_tag",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
# distribution checks this against the path only, not domain + path.
NAME_TOTAL_LENGTH_MAX = 255

# Messages exactly as distribution/reference and go-digest word them.
ERR_REFERENCE_INVALID_FORMAT = "invalid reference format"
ERR_NAME_CONTAINS_UPPERCASE = "repository name must be lowercase"
ERR_NAME_EMPTY = "repository name must have at least one component"
ERR_NAME_TOO_LONG = f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
ERR_TAG_INVALID_FORMAT = "invalid tag format"
ERR_DIGEST_INVALID_FORMAT = "invalid checksum digest format"
ERR_DIGEST_INVALID_LENGTH = "invalid checksum digest length"
ERR_DIGEST_UNSUPPORTED = "unsupported digest algorithm"


class InvalidReference(InvalidParameter):
    """The text is not a reference Docker would accept."""


# The regular expressions are built from distribution's own pieces so they can
# be compared with regexp.go line by line. Go's RE2 is leftmost-first like
# Python's re, so captures agree; \w is ASCII in Go, hence re.ASCII.
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_DOMAIN_NAME_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OPTIONAL_PORT = r"(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
_IDENTIFIER = r"[a-f0-9]{64}"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME = _DOMAIN_NAME_COMPONENT + r"(?:\." + _DOMAIN_NAME_COMPONENT + r")*"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")"
_DOMAIN_AND_PORT = _HOST + _OPTIONAL_PORT
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(
    r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?", re.ASCII
)
_ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_DIGEST_RE = re.compile(_DIGEST, re.ASCII)
_IDENTIFIER_RE = re.compile(_IDENTIFIER)
_ID_PREFIX_RE = re.compile(r"[a-f0-9]{1,64}")

# go-digest's registered algorithms as moby links them, with hex lengths.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_LOWER_HEX_RE = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True, kw_only=True, slots=True)
class Reference:
    """A normalised reference: ``domain/path[:tag][@digest]``.

    ``domain`` is empty only in distribution's odd case of a first element
    that looks like a host but is not one (``ho_st.com/x``): the whole text
    is then the path. Construct through :func:`parse`; the constructor does
    not validate.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``domain/path``, the repository as containerd stores it."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text

    @property
    def familiar_name(self) -> str:
        """The name as the CLI shows it: ``alpine``, ``user/repo``, ``host:5000/x``."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX):
            rest = path[len(OFFICIAL_REPO_PREFIX) :]
            # Hub has no nested official namespaces, so "library/a/b" stays as is.
            if "/" not in rest:
                return rest
        return path

    def familiar(self) -> str:
        """The whole reference in familiar form, e.g. ``alpine:3.20``."""
        text = self.familiar_name
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text

    def with_default_tag(self) -> Reference:
        """Add ``latest`` when there is neither tag nor digest (``TagNameOnly``)."""
        if self.tag is None and self.digest is None:
            return replace(self, tag=DEFAULT_TAG)
        return self

    def with_tag(self, tag: str) -> Reference:
        """The same name with ``tag`` (digest kept); raises on a bad tag."""
        validate_tag(tag)
        return replace(self, tag=tag)

    def without_tag_if_digested(self) -> Reference:
        """``ParseDockerRef``'s form: a digest wins over a tag."""
        if self.tag is not None and self.digest is not None:
            return replace(self, tag=None)
        return self

    def trimmed(self) -> Reference:
        """The name alone, no tag or digest (``TrimNamed``)."""
        return Reference(domain=self.domain, path=self.path)


def parse(text: str) -> Reference:
    """Parse ``text`` as ``ParseNormalizedNamed`` does; raise :class:`InvalidReference`.

    A tag or digest is kept as given; nothing is added. Call
    :meth:`Reference.with_default_tag` for ``docker pull``'s implied
    ``latest``.
    """
    if _IDENTIFIER_RE.fullmatch(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(text)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(
            f"invalid reference format: repository name ({remote}) must be lowercase"
        )
    return _parse_canonical(domain + "/" + remainder)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """distribution's ``splitDockerDomain``: guess whether the first element is a host."""
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        # A single element is always a Hub name, so "alpine:3.20" is never host:port.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == "localhost":
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain.lower() != maybe_domain:
        # Namespaces are lower case, so an upper-case first element must be a host.
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _parse_canonical(text: str) -> Reference:
    """distribution's ``Parse`` for a string that already has its domain."""
    if text == "":
        raise InvalidReference(ERR_NAME_EMPTY)
    match = _REFERENCE_RE.fullmatch(text)
    if match is None:
        lowered = text.lower()
        if lowered != text and _REFERENCE_RE.fullmatch(lowered) is not None:
            raise InvalidReference(ERR_NAME_CONTAINS_UPPERCASE)
        raise InvalidReference(ERR_REFERENCE_INVALID_FORMAT)
    name, tag, digest = match.group(1), match.group(2), match.group(3)
    name_match = _ANCHORED_NAME_RE.fullmatch(name)
    if name_match is not None:
        domain, path = name_match.group(1) or "", name_match.group(2)
    else:  # pragma: no cover - the reference regexp already matched a name
        domain, path = "", name
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(ERR_NAME_TOO_LONG)
    if digest is not None:
        _check_digest(digest)
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def _check_digest(digest: str) -> None:
    """go-digest's ``Digest.Validate`` for the algorithms moby registers."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not encoded:
        raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)
    length = _DIGEST_HEX_LENGTHS.get(algorithm)
    if length is None:
        if not _DIGEST_RE.fullmatch(digest):
            raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)
        raise InvalidReference(ERR_DIGEST_UNSUPPORTED)
    if len(encoded) != length:
        raise InvalidReference(ERR_DIGEST_INVALID_LENGTH)
    if not _LOWER_HEX_RE.fullmatch(encoded):
        raise InvalidReference(ERR_DIGEST_INVALID_FORMAT)


def validate_tag(tag: str) -> None:
    """Raise :class:`InvalidReference` (``invalid tag format``) unless ``tag`` is valid."""
    if not _TAG_RE.fullmatch(tag):
        raise InvalidReference(ERR_TAG_INVALID_FORMAT)


def validate_digest(digest: str) -> None:
    """Raise :class:`InvalidReference` with go-digest's message unless ``digest`` is valid."""
    _check_digest(digest)


def is_full_id(text: str) -> bool:
    """True for a bare 64-hex image or container id (no ``sha256:``)."""
    return _IDENTIFIER_RE.fullmatch(text) is not None


def looks_like_id_prefix(text: str) -> bool:
    """True if ``text`` could be a (possibly shortened) hex id, with or without ``sha256:``."""
    if text.startswith("sha256:"):
        text = text[len("sha256:") :]
    return _ID_PREFIX_RE.fullmatch(text) is not None
