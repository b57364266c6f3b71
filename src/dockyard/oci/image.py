"""Image JSON values: manifests, indexes, configs, media types, chain ids (pure).

Everything here turns bytes into frozen values or values into canonical bytes;
nothing reads a file, a socket or a clock.

    ImageFormatError (InvalidParameter)   JSON that is not a manifest/index/config

Wire vocabulary (media types, containerd GC label keys) lives in the constants
below so that the engine never spells a media type by hand.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dockyard.errors import InvalidParameter

# Media types -------------------------------------------------------------------

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

MANIFEST_TYPES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
LAYER_TYPES = frozenset(
    {
        DOCKER_LAYER,
        DOCKER_LAYER_GZIP,
        DOCKER_LAYER_FOREIGN_GZIP,
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
        OCI_LAYER,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)

# containerd labels and OCI annotations ----------------------------------------

LABEL_GC_CONFIG = "containerd.io/gc.ref.content.config"
LABEL_GC_LAYER_PREFIX = "containerd.io/gc.ref.content.l."
LABEL_GC_MANIFEST_PREFIX = "containerd.io/gc.ref.content.m."
LABEL_GC_SNAPSHOT_PREFIX = "containerd.io/gc.ref.snapshot."
LABEL_UNCOMPRESSED = "containerd.io/uncompressed"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageFormatError(InvalidParameter):
    """A manifest, index or config that cannot be understood."""


# Values ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""


@dataclass(frozen=True, kw_only=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None


@dataclass(frozen=True, kw_only=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


@dataclass(frozen=True, kw_only=True)
class ImageConfig:
    """An image config; ``raw`` keeps every field, known or not, for inspect."""

    architecture: str
    os: str
    variant: str
    created: str
    author: str
    comment: str
    config: Mapping[str, Any]
    diff_ids: tuple[str, ...]
    history: tuple[HistoryEntry, ...]
    raw: Mapping[str, Any]


# Digests -----------------------------------------------------------------------


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    return bool(DIGEST_RE.match(text))


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """Chain ids as the OCI image spec defines them: the snapshot names of an image."""
    chain: list[str] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(digest_of(f"{chain[-1]} {diff_id}".encode()))
    return chain


# Parsing -----------------------------------------------------------------------


def _load_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageFormatError(f"invalid {what}: {exc}") from exc
    if not isinstance(value, dict):
        raise ImageFormatError(f"invalid {what}: not a JSON object")
    return value


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ImageFormatError(f"invalid {what}: annotations must map strings to strings")
    return dict(value)


def descriptor_from_json(value: Any, what: str = "descriptor") -> Descriptor:
    if not isinstance(value, dict):
        raise ImageFormatError(f"invalid {what}: not an object")
    media_type = value.get("mediaType", "")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str) or not is_digest(digest):
        raise ImageFormatError(f"invalid {what}: bad mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageFormatError(f"invalid {what}: bad size")
    platform = None
    raw_platform = value.get("platform")
    if isinstance(raw_platform, dict):
        platform = Platform(
            os=str(raw_platform.get("os", "")),
            architecture=str(raw_platform.get("architecture", "")),
            variant=str(raw_platform.get("variant", "")),
        )
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        annotations=_str_map(value.get("annotations"), what),
        platform=platform,
    )


def descriptor_to_json(desc: Descriptor) -> dict[str, Any]:
    out: dict[str, Any] = {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}
    if desc.annotations:
        out["annotations"] = dict(sorted(desc.annotations.items()))
    if desc.platform is not None:
        plat: dict[str, str] = {
            "architecture": desc.platform.architecture,
            "os": desc.platform.os,
        }
        if desc.platform.variant:
            plat["variant"] = desc.platform.variant
        out["platform"] = plat
    return out


def parse_manifest(data: bytes, media_type: str = "") -> Manifest:
    """Parse an OCI or Docker schema2 manifest. Raises ImageFormatError."""
    obj = _load_object(data, "manifest")
    mt = obj.get("mediaType") or media_type or OCI_MANIFEST
    if mt not in MANIFEST_TYPES:
        raise ImageFormatError(f"invalid manifest: unsupported media type {mt}")
    layers = obj.get("layers")
    if not isinstance(layers, list):
        raise ImageFormatError("invalid manifest: layers missing")
    return Manifest(
        media_type=mt,
        config=descriptor_from_json(obj.get("config"), "manifest config"),
        layers=tuple(descriptor_from_json(layer, "manifest layer") for layer in layers),
        annotations=_str_map(obj.get("annotations"), "manifest"),
    )


def parse_index(data: bytes, media_type: str = "") -> Index:
    """Parse an OCI index or Docker manifest list. Raises ImageFormatError."""
    obj = _load_object(data, "index")
    mt = obj.get("mediaType") or media_type or OCI_INDEX
    if mt not in INDEX_TYPES:
        raise ImageFormatError(f"invalid index: unsupported media type {mt}")
    manifests = obj.get("manifests")
    if not isinstance(manifests, list):
        raise ImageFormatError("invalid index: manifests missing")
    return Index(
        media_type=mt,
        manifests=tuple(descriptor_from_json(m, "index entry") for m in manifests),
        annotations=_str_map(obj.get("annotations"), "index"),
    )


def parse_config(data: bytes) -> ImageConfig:
    """Parse an image config (Docker and OCI share the shape). Raises ImageFormatError."""
    obj = _load_object(data, "image config")
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list):
        raise ImageFormatError("invalid image config: rootfs missing")
    diff_ids = tuple(rootfs.get("diff_ids") or ())
    if not all(isinstance(d, str) and is_digest(d) for d in diff_ids):
        raise ImageFormatError("invalid image config: bad diff_ids")
    history = []
    for entry in obj.get("history") or ():
        if not isinstance(entry, dict):
            raise ImageFormatError("invalid image config: bad history")
        history.append(
            HistoryEntry(
                created=str(entry.get("created") or ""),
                created_by=str(entry.get("created_by") or ""),
                author=str(entry.get("author") or ""),
                comment=str(entry.get("comment") or ""),
                empty_layer=bool(entry.get("empty_layer", False)),
            )
        )
    inner = obj.get("config") or {}
    if not isinstance(inner, dict):
        raise ImageFormatError("invalid image config: config is not an object")
    return ImageConfig(
        architecture=str(obj.get("architecture") or ""),
        os=str(obj.get("os") or ""),
        variant=str(obj.get("variant") or ""),
        created=str(obj.get("created") or ""),
        author=str(obj.get("author") or ""),
        comment=str(obj.get("comment") or ""),
        config=inner,
        diff_ids=diff_ids,
        history=tuple(history),
        raw=obj,
    )


def media_kind(data: bytes, declared: str = "") -> str:
    """Tell an index from a manifest when the declared media type is missing."""
    if declared in INDEX_TYPES or declared in MANIFEST_TYPES:
        return declared
    obj = _load_object(data, "manifest")
    if isinstance(obj.get("mediaType"), str) and obj["mediaType"]:
        return str(obj["mediaType"])
    return OCI_INDEX if "manifests" in obj else OCI_MANIFEST


def select_platform(
    index: Index, *, os: str = "linux", architecture: str = "amd64"
) -> Descriptor:
    """Pick the manifest for a platform; an entry without platform counts as a match
    only when nothing matches exactly. Raises ImageFormatError when none fits."""
    unlabelled: Descriptor | None = None
    for desc in index.manifests:
        if desc.media_type not in MANIFEST_TYPES and desc.media_type:
            continue  # attestations and nested indexes
        if desc.platform is None:
            unlabelled = unlabelled or desc
        elif desc.platform.os == os and desc.platform.architecture == architecture:
            return desc
    if unlabelled is not None:
        return unlabelled
    raise ImageFormatError(f"no matching manifest for {os}/{architecture} in the manifest list entries")


# Encoding ----------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Compact, key-ordered JSON: the same value always gives the same digest."""
    return json.dumps(value, separators=(",", ":"), sort_keys=False, ensure_ascii=False).encode()


def encode_manifest(manifest: Manifest) -> bytes:
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest.media_type,
        "config": descriptor_to_json(manifest.config),
        "layers": [descriptor_to_json(layer) for layer in manifest.layers],
    }
    if manifest.annotations:
        out["annotations"] = dict(sorted(manifest.annotations.items()))
    return canonical_json(out)


def encode_index(index: Index) -> bytes:
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": index.media_type,
        "manifests": [descriptor_to_json(m) for m in index.manifests],
    }
    if index.annotations:
        out["annotations"] = dict(sorted(index.annotations.items()))
    return canonical_json(out)


def manifest_gc_labels(manifest: Manifest) -> dict[str, str]:
    """Labels a manifest blob needs so containerd's GC keeps its config and layers."""
    labels = {LABEL_GC_CONFIG: manifest.config.digest}
    for i, layer in enumerate(manifest.layers):
        labels[f"{LABEL_GC_LAYER_PREFIX}{i}"] = layer.digest
    return labels


def index_gc_labels(index: Index) -> dict[str, str]:
    return {f"{LABEL_GC_MANIFEST_PREFIX}{i}": m.digest for i, m in enumerate(index.manifests)}


def config_gc_labels(config: ImageConfig, snapshotter: str = "overlayfs") -> dict[str, str]:
    """Label that keeps the unpacked top snapshot alive as long as the config is."""
    chain = chain_ids(config.diff_ids)
    if not chain:
        return {}
    return {f"{LABEL_GC_SNAPSHOT_PREFIX}{snapshotter}": chain[-1]}


# Docker's presentation of a config ----------------------------------------------

#: The fields of API 1.50's ``ImageConfig`` (moby's ``DockerOCIImageConfig``), in
#: its order; container-only fields an old config may still carry are dropped.
_CONFIG_KEYS = (
    "User", "ExposedPorts", "Env", "Cmd", "Healthcheck", "ArgsEscaped", "Volumes",
    "WorkingDir", "Entrypoint", "OnBuild", "Labels", "StopSignal", "Shell",
)  # fmt: skip


def inspect_config(config: ImageConfig) -> dict[str, Any]:
    """The ``Config`` object of ``GET /images/{name}/json`` (API 1.50): the image's
    own values for the ``ImageConfig`` fields, omitting empty ones as moby does."""
    inner = config.config
    return {key: inner[key] for key in _CONFIG_KEYS if inner.get(key) not in (None, "", [], {}, False)}


def created_unix(created: str) -> int:
    """Unix seconds of an RFC 3339 ``created`` value; 0 when absent or unreadable."""
    parsed = parse_rfc3339(created)
    return int(parsed.timestamp()) if parsed else 0


def parse_rfc3339(text: str) -> datetime | None:
    if not text:
        return None
    m = re.match(
        r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", text
    )
    if not m:
        return None
    frac = (m.group(3) or ".0")[1:7].ljust(6, "0")
    tz = m.group(4)
    tz = "+00:00" if tz in ("Z", "z") else tz
    try:
        return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{tz}")
    except ValueError:
        return None


def format_rfc3339_nano(moment: datetime) -> str:
    """Go's RFC3339Nano: UTC ``Z``, fractional seconds without trailing zeros."""
    moment = moment.astimezone(timezone.utc)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{moment.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"
