"""Manifests as a registry serves them: checked, typed, and matched to a platform (pure).

The JSON shapes and media-type constants are ``dockyard.oci.image``'s; this
module adds what pulling from an untrusted registry needs on top:

* :func:`parse_fetched` refuses, before anything is written, a manifest that
  is too large, of a media type that is not a Docker schema 2 / OCI manifest
  or index, whose body contradicts its ``Content-Type``, or whose descriptors
  claim absurd sizes or non-layer media types.
* :func:`parse_platform` / :func:`select_manifest` read ``--platform`` strings
  (``linux/arm64/v8``) with containerd's normalisation and pick from an index
  the best entry for a platform, variants included (``arm/v7`` accepts
  ``v6`` and ``v5`` images, ``amd64/v3`` accepts ``v2`` and ``v1``), with
  dockerd's message when none fits.

Errors::

    ManifestRefused (InvalidParameter)   any of the refusals above
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.oci.image import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageFormatError,
    Index,
    Manifest,
    Platform,
    media_kind,
    parse_index,
    parse_manifest,
)
from dockyard.registry.errors import ManifestRefused

#: The ``Accept`` list for manifest requests, in dockerd's order of preference.
MANIFEST_ACCEPT = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX)
#: Schema 1, which dockerd no longer pulls.
SCHEMA1_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    }
)
#: Content types a registry may send that say nothing about the manifest kind.
GENERIC_CONTENT_TYPES = frozenset({"", "application/json", "text/plain", "application/octet-stream"})
CONFIG_TYPES = frozenset({DOCKER_CONFIG, OCI_CONFIG})

#: containerd's ``MaxManifestSize``: manifests are read into memory whole.
MAX_MANIFEST_SIZE = 4 << 20
#: Image configs are read into memory too; real ones are kilobytes.
MAX_CONFIG_SIZE = 16 << 20
#: No real layer comes near this; a descriptor that claims more is hostile or broken.
MAX_LAYER_SIZE = 1 << 40
#: More entries than any real manifest or index has.
MAX_ENTRIES = 1000

SCHEMA1_MESSAGE = (
    "[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, "
    "schema 1 support has been removed. Suggest the author of {name} to upgrade the image "
    "to the OCI Format or Docker Image manifest v2, schema 2."
)


def content_type_media(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value (parameters dropped, lower case)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse_fetched(content_type: str | None, data: bytes, *, name: str = "") -> Manifest | Index:
    """Turn a fetched manifest body into a :class:`Manifest` or :class:`Index`.

    ``name`` (the familiar reference) only appears in messages. Raises
    :class:`ManifestRefused`; never returns a value whose descriptors exceed
    the size limits of this module.
    """
    if len(data) > MAX_MANIFEST_SIZE:
        raise ManifestRefused(f"manifest too large: {len(data)} bytes exceeds {MAX_MANIFEST_SIZE}")
    declared = content_type_media(content_type)
    if declared in SCHEMA1_TYPES:
        raise ManifestRefused(SCHEMA1_MESSAGE.format(name=name or "the image"))
    if declared not in GENERIC_CONTENT_TYPES and declared not in MANIFEST_TYPES | INDEX_TYPES:
        raise ManifestRefused(f"unsupported manifest media type {declared!r}")
    try:
        kind = media_kind(data, "" if declared in GENERIC_CONTENT_TYPES else declared)
        if kind in SCHEMA1_TYPES:
            raise ManifestRefused(SCHEMA1_MESSAGE.format(name=name or "the image"))
        if kind in INDEX_TYPES:
            index = parse_index(data, kind)
            _check_body_type(index.media_type, kind)
            _check_index(index)
            return index
        if kind in MANIFEST_TYPES:
            manifest = parse_manifest(data, kind)
            _check_body_type(manifest.media_type, kind)
            _check_manifest(manifest)
            return manifest
    except ImageFormatError as exc:
        raise ManifestRefused(exc.message) from exc
    raise ManifestRefused(f"unsupported manifest media type {kind!r}")


def _check_body_type(body_type: str, declared: str) -> None:
    # parse_* fall back to the declared type when the body has none; a body
    # that names another type than the header is a registry (or attacker)
    # mixing documents up.
    if body_type != declared:
        raise ManifestRefused(f"manifest media type {body_type!r} does not match Content-Type {declared!r}")


def _check_manifest(manifest: Manifest) -> None:
    if manifest.config.media_type not in CONFIG_TYPES:
        raise ManifestRefused(f"unsupported image config media type {manifest.config.media_type!r}")
    if manifest.config.size > MAX_CONFIG_SIZE:
        raise ManifestRefused(f"image config too large: {manifest.config.size} bytes")
    if len(manifest.layers) > MAX_ENTRIES:
        raise ManifestRefused(f"too many layers: {len(manifest.layers)}")
    for layer in manifest.layers:
        if layer.media_type not in LAYER_TYPES:
            raise ManifestRefused(f"unsupported layer media type {layer.media_type!r}")
        if layer.size > MAX_LAYER_SIZE:
            raise ManifestRefused(f"layer {layer.digest} claims an absurd size: {layer.size} bytes")


def _check_index(index: Index) -> None:
    if len(index.manifests) > MAX_ENTRIES:
        raise ManifestRefused(f"too many manifests in index: {len(index.manifests)}")
    for entry in index.manifests:
        if entry.size > MAX_MANIFEST_SIZE:
            raise ManifestRefused(f"manifest {entry.digest} too large: {entry.size} bytes")


# Platforms ---------------------------------------------------------------------

DEFAULT_PLATFORM = Platform(os="linux", architecture="amd64")

_KNOWN_OS = frozenset(
    {"aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
     "linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos"}
)  # fmt: skip


def _normalize_os(os: str) -> str:
    os = os.lower()
    return "darwin" if os == "macos" else os


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """containerd's ``normalizeArch``: canonical names, variants with a ``v``."""
    arch, variant = arch.lower(), variant.lower()
    if arch in ("i386",):
        return "386", ""
    if arch in ("x86_64", "x86-64", "amd64"):
        return "amd64", "" if variant in ("", "v1") else variant
    if arch in ("aarch64", "arm64"):
        if variant in ("8", "v8", "v8.0"):
            variant = ""
        elif variant in ("9", "9.0", "v9.0"):
            variant = "v9"
        elif variant and not variant.startswith("v"):
            variant = "v" + variant
        return "arm64", variant
    if arch == "armhf":
        return "arm", "v7"
    if arch == "armel":
        return "arm", "v6"
    if arch == "arm":
        if variant in ("", "7"):
            variant = "v7"
        elif variant in ("5", "6", "8"):
            variant = "v" + variant
        return "arm", variant
    return arch, variant


def normalize_platform(platform: Platform) -> Platform:
    arch, variant = _normalize_arch(platform.architecture, platform.variant)
    return Platform(os=_normalize_os(platform.os), architecture=arch, variant=variant)


def parse_platform(text: str) -> Platform:
    """Parse ``os[/arch[/variant]]`` or a bare ``arch``; normalised as containerd does.

    A single known OS name gives that OS on amd64; any other single word is an
    architecture on linux. Raises ManifestRefused for empty or malformed text.
    """
    parts = text.strip().split("/")
    if not text.strip() or len(parts) > 3 or any(not p for p in parts):
        raise ManifestRefused(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    if len(parts) == 1:
        word = parts[0].lower()
        if _normalize_os(word) in _KNOWN_OS:
            return Platform(os=_normalize_os(word), architecture="amd64")
        arch, variant = _normalize_arch(word, "")
        return Platform(os="linux", architecture=arch, variant=variant)
    variant = parts[2] if len(parts) == 3 else ""
    return normalize_platform(Platform(os=parts[0], architecture=parts[1], variant=variant))


def format_platform(platform: Platform) -> str:
    """``os/arch[/variant]``, as containerd's ``platforms.Format``."""
    parts = [platform.os or "unknown", platform.architecture or "unknown"]
    if platform.variant:
        parts.append(platform.variant)
    return "/".join(parts)


def _variant_order(platform: Platform) -> list[str]:
    """Variants an image may have and still run on ``platform``, best first."""
    arch, variant = platform.architecture, platform.variant
    if arch == "arm" and variant.startswith("v") and variant[1:].isdigit():
        level = int(variant[1:])
        return [f"v{n}" for n in range(level, 4, -1)]  # v7 → v7, v6, v5
    if arch == "amd64" and variant.startswith("v") and variant[1:].isdigit():
        level = int(variant[1:])
        return [f"v{n}" for n in range(level, 1, -1)] + [""]  # v3 → v3, v2, v1 ("")
    if arch == "arm64":
        return [variant] if variant else [""]
    return [variant]


def select_manifest(index: Index, platform: Platform = DEFAULT_PLATFORM) -> Descriptor:
    """The index entry to pull for ``platform``: the exact variant first, then
    older compatible ones; entries without a platform only if nothing else fits.

    Entries that are not image manifests (attestations, nested indexes) are
    skipped. Raises ManifestRefused with dockerd's message when none fits.
    """
    wanted = normalize_platform(platform)
    order = _variant_order(wanted)
    best: tuple[int, Descriptor] | None = None
    unlabelled: Descriptor | None = None
    for entry in index.manifests:
        if entry.media_type and entry.media_type not in MANIFEST_TYPES:
            continue
        if entry.platform is None:
            unlabelled = unlabelled or entry
            continue
        have = normalize_platform(entry.platform)
        if have.os != wanted.os or have.architecture != wanted.architecture:
            continue
        if have.variant in order:
            rank = order.index(have.variant)
            if best is None or rank < best[0]:
                best = (rank, entry)
    if best is not None:
        return best[1]
    if unlabelled is not None:
        return unlabelled
    raise ManifestRefused(
        f"no matching manifest for {format_platform(platform)} in the manifest list entries"
    )


@dataclass(frozen=True, kw_only=True)
class ResolvedImage:
    """What a pull resolves a reference to: the top-level digest and the image manifest."""

    top_digest: str  # the digest the tag points at (index or manifest): RepoDigests
    top_media_type: str
    manifest_digest: str
    manifest: Manifest
