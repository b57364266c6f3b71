"""Registry client: pull, push and login over the OCI distribution protocol (httpx).

    auth.py        challenges, credentials, token requests and cache (pure)
    manifests.py   fetched manifests checked and typed; platform selection (pure)
    endpoints.py   registry names → base URLs, insecure registries, mirrors (pure)
    httpio.py      the httpx boundary: error translation, bounded reads
    client.py      RegistryClient: endpoints, ping, login, tokens, HTTP clients
    repository.py  Repository: manifests, blobs, uploads, tags of one repository
    errors.py      the error tree (each class also a dockyard.errors class)

The image engine calls :class:`RegistryClient` and :class:`Repository`; it
never imports httpx.
"""

from dockyard.registry.auth import AuthConfig, decode_registry_auth
from dockyard.registry.client import LoginResult, PingResult, RegistryClient
from dockyard.registry.errors import (
    DigestMismatch,
    InvalidAuthHeader,
    ManifestRefused,
    RegistryDenied,
    RegistryError,
    RegistryNotFound,
    RegistryProtocolError,
    RegistryUnauthorized,
    Unreachable,
)
from dockyard.registry.manifests import (
    DEFAULT_PLATFORM,
    ResolvedImage,
    format_platform,
    parse_platform,
    select_manifest,
)
from dockyard.registry.repository import FetchedManifest, Repository

__all__ = [
    "DEFAULT_PLATFORM",
    "AuthConfig",
    "DigestMismatch",
    "FetchedManifest",
    "InvalidAuthHeader",
    "LoginResult",
    "ManifestRefused",
    "PingResult",
    "RegistryClient",
    "RegistryDenied",
    "RegistryError",
    "RegistryNotFound",
    "RegistryProtocolError",
    "RegistryUnauthorized",
    "Repository",
    "ResolvedImage",
    "Unreachable",
    "decode_registry_auth",
    "format_platform",
    "parse_platform",
    "select_manifest",
]
