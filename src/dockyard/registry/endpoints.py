"""Where a registry name is served: base URLs, TLS modes, mirrors (pure).

dockerd's rules (``registry/config.go``, ``registry/service.go``):

* ``docker.io`` (also ``index.docker.io``, ``registry-1.docker.io``) is
  served at ``https://registry-1.docker.io``; ``registry-mirrors`` are tried
  before it, for pulls only.
* A registry is insecure when ``insecure-registries`` names it (``host`` or
  ``host:port``) or holds a CIDR containing one of its addresses; loopback
  (127.0.0.0/8, ::1) is insecure by default. An insecure registry is tried
  over HTTPS without certificate checks, then over plain HTTP.
* Everything else is HTTPS with verified certificates (plus a ``certs.d``
  directory's CAs and client certificates, which ``client.py`` loads).

Name resolution is the caller's: :meth:`InsecurePolicy.is_insecure` takes the
addresses a name resolved to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

DOCKER_IO = "docker.io"
DOCKER_IO_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_IO_ENDPOINT = "https://registry-1.docker.io"
#: What the CLI sends as ``serveraddress`` for Docker Hub.
DOCKER_IO_LEGACY_ADDRESS = "https://index.docker.io/v1/"

_DEFAULT_INSECURE_CIDRS = ("127.0.0.0/8", "::1/128")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    """One place to send a repository's requests."""

    registry: str  # the registry name in references: "docker.io", "127.0.0.1:5000"
    base_url: str  # "https://registry-1.docker.io", "http://127.0.0.1:5000"
    verify_tls: bool
    mirror: bool = False

    @property
    def host(self) -> str:
        """``host[:port]`` of ``base_url``: the ``certs.d`` directory name."""
        return self.base_url.split("://", 1)[1].split("/", 1)[0]


def normalize_registry(name: str) -> str:
    """A registry name as references spell it; Docker Hub's aliases become ``docker.io``.

    Accepts what ``docker login`` sends as ``serveraddress`` too: a URL
    (``https://index.docker.io/v1/``, ``http://host:5000/``) is cut to its host.
    """
    text = name.strip()
    for prefix in ("https://", "http://"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
            break
    text = text.split("/", 1)[0].lower()
    if not text or text in DOCKER_IO_ALIASES:
        return DOCKER_IO
    return text


def split_host(registry: str) -> str:
    """The host part of ``host[:port]``, brackets of an IPv6 literal removed."""
    if registry.startswith("["):
        return registry[1:].split("]", 1)[0]
    if registry.count(":") > 1:
        return registry  # a bare IPv6 literal
    return registry.split(":", 1)[0]


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class InsecurePolicy:
    """``insecure-registries`` parsed: names and CIDRs, with loopback added."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        names: set[str] = set()
        networks: list[Network] = [ipaddress.ip_network(c) for c in _DEFAULT_INSECURE_CIDRS]
        for entry in entries:
            text = entry.strip()
            for prefix in ("https://", "http://"):
                if text.lower().startswith(prefix):
                    text = text[len(prefix) :]
            text = text.rstrip("/")
            if not text:
                continue
            if "/" in text:
                try:
                    networks.append(ipaddress.ip_network(text, strict=False))
                    continue
                except ValueError:
                    pass
            names.add(normalize_registry(text))
        self.names = frozenset(names)
        self.networks = tuple(networks)

    def needs_lookup(self, registry: str) -> bool:
        """Whether :meth:`is_insecure` would want the name's addresses."""
        host = split_host(registry)
        return registry not in self.names and ip_literal(host) is None and host != "localhost"

    def is_insecure(self, registry: str, addresses: Sequence[str] = ()) -> bool:
        registry = normalize_registry(registry)
        if registry == DOCKER_IO:
            return False
        if registry in self.names:
            return True
        host = split_host(registry)
        candidates = [host] if ip_literal(host) is not None else list(addresses)
        if host == "localhost":
            candidates = ["127.0.0.1", "::1"]
        for text in candidates:
            address = ip_literal(text)
            if address is not None and any(address in net for net in self.networks):
                return True
        return False


def registry_endpoints(
    registry: str, *, insecure: bool, docker_io: str = DOCKER_IO_ENDPOINT
) -> tuple[Endpoint, ...]:
    """The endpoints of a registry, in the order dockerd tries them.

    ``docker_io`` replaces Docker Hub's origin (tests point it at 127.0.0.1).
    """
    registry = normalize_registry(registry)
    if registry == DOCKER_IO:
        verify = not docker_io.startswith("http://")
        return (Endpoint(registry=registry, base_url=docker_io.rstrip("/"), verify_tls=verify),)
    if insecure:
        return (
            Endpoint(registry=registry, base_url=f"https://{registry}", verify_tls=False),
            Endpoint(registry=registry, base_url=f"http://{registry}", verify_tls=False),
        )
    return (Endpoint(registry=registry, base_url=f"https://{registry}", verify_tls=True),)


def mirror_endpoint(mirror: str, *, insecure: bool) -> Endpoint:
    """An endpoint for a ``registry-mirrors`` entry (``https://`` assumed without a scheme)."""
    url = mirror.strip().rstrip("/")
    if "://" not in url:
        url = "https://" + url
    return Endpoint(registry=DOCKER_IO, base_url=url, verify_tls=not insecure, mirror=True)


def mirror_host(mirror: str) -> str:
    url = mirror.strip()
    if "://" in url:
        url = url.split("://", 1)[1]
    return url.split("/", 1)[0].lower()
