"""Image archives on the wire: tar safety, docker-archive and OCI layout (pure).

Nothing here reads a file. The caller feeds bytes or tar headers in and gets
values or a verdict out:

- :class:`TarScanner` is an incremental tar parser: ``feed()`` it a layer's
  uncompressed bytes as they stream by (chunks of any size), and it raises
  :class:`UnsafeArchive` at the first hostile member, or at ``close()`` when
  the stream ends inside a member (a header claiming 10 GB that is not there).
  It never holds more than one header's worth of bytes.
- :class:`LayerPolicy` is the per-member verdict it applies: no absolute
  paths, no ``..``, no symlink that leads out of the root, no write through a
  symlink made earlier in the same layer, no hard link that leaves the root.
- :func:`parse_docker_manifest` / :func:`parse_oci_layout` read what ``docker
  save`` and OCI tools write; :func:`tar_member_header` and friends produce a
  docker-archive without a temp file.

    ArchiveError (InvalidParameter)
    ├── UnsafeArchive         a member that would escape or abuse the root
    └── MalformedArchive      not a tar, truncated, or a manifest that makes no sense
"""

from __future__ import annotations

import enum
import json
import posixpath
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidParameter

BLOCK = 512
MANIFEST_JSON = "manifest.json"
REPOSITORIES = "repositories"
OCI_LAYOUT = "oci-layout"
INDEX_JSON = "index.json"
OCI_LAYOUT_VERSION = "1.0.0"


class ArchiveError(InvalidParameter):
    """An image archive or layer that dockyard refuses."""


class UnsafeArchive(ArchiveError):
    """A member that would write outside the root, or through a link."""


class MalformedArchive(ArchiveError):
    """Not a tar, truncated, or with metadata that does not add up."""


# Compression -------------------------------------------------------------------


class Compression(enum.Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"
    BZIP2 = "bzip2"
    XZ = "xz"


#: Magic numbers, as moby's ``archive.DetectCompression`` reads them.
_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b\x08", Compression.GZIP),
    (b"\x28\xb5\x2f\xfd", Compression.ZSTD),
    (b"BZh", Compression.BZIP2),
    (b"\xfd7zXZ\x00", Compression.XZ),
)

#: Bytes :func:`detect_compression` wants to see.
MAGIC_LENGTH = 6


def detect_compression(head: bytes) -> Compression:
    """Compression of a stream from its first bytes (at least MAGIC_LENGTH when the
    stream is that long)."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return Compression.NONE


# Paths -------------------------------------------------------------------------


def clean_member_path(name: str) -> str:
    """Normalize a member name to ``a/b/c`` ("" for the root).

    Raises UnsafeArchive for absolute names and for any ``..`` component: a
    tar that needs them was not written by ``docker save`` or a layer differ.
    """
    if "\x00" in name:
        raise UnsafeArchive(f"invalid tar member name {name!r}")
    if name.startswith("/"):
        raise UnsafeArchive(f"absolute path in archive: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"path escapes the archive root: {name!r}")
    return "/".join(parts)


def _resolve_lexically(base_dir: str, target: str) -> str | None:
    """Join ``target`` onto ``base_dir`` (both relative to the root); None if it leaves."""
    parts = [p for p in base_dir.split("/") if p] if not target.startswith("/") else []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


# Member verdicts ---------------------------------------------------------------


class EntryType(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


@dataclass(frozen=True, kw_only=True)
class TarEntry:
    """One member as its header (and any PAX/GNU extension headers) describes it."""

    name: str
    type: EntryType
    size: int = 0
    linkname: str = ""
    mode: int = 0o644
    sparse: bool = False


class LayerPolicy:
    """The verdict on each member of one layer, in archive order.

    Symlink targets are resolved against the link's own directory; an absolute
    target is fine (containerd resolves it inside the root), a relative one
    that climbs above the root is not. Any later member whose parent path is a
    symlink of this layer would be written through that link, and is refused.
    """

    def __init__(self) -> None:
        self._symlinks: set[str] = set()
        self.entries = 0

    def check(self, entry: TarEntry) -> str:
        """Return the cleaned path of ``entry``; raise UnsafeArchive if hostile."""
        path = clean_member_path(entry.name)
        self.entries += 1
        self._refuse_through_symlink(path, entry.name)
        if entry.type is EntryType.SYMLINK:
            if not entry.linkname:
                raise UnsafeArchive(f"symlink {entry.name!r} has no target")
            target = entry.linkname
            if not target.startswith("/"):
                if _resolve_lexically(posixpath.dirname(path), target) is None:
                    raise UnsafeArchive(
                        f"symlink {entry.name!r} -> {target!r} points outside the root"
                    )
            self._symlinks.add(path)
        else:
            self._symlinks.discard(path)
        if entry.type is EntryType.HARDLINK:
            if entry.linkname.startswith("/"):
                raise UnsafeArchive(f"hard link {entry.name!r} -> {entry.linkname!r} is absolute")
            link_target = _resolve_lexically("", entry.linkname)
            if not link_target:
                raise UnsafeArchive(
                    f"hard link {entry.name!r} -> {entry.linkname!r} points outside the root"
                )
            self._refuse_through_symlink(link_target, entry.linkname, is_link=True)
        if entry.sparse:
            raise UnsafeArchive(f"sparse member {entry.name!r} is not accepted in an image layer")
        return path

    def _refuse_through_symlink(self, path: str, shown: str, *, is_link: bool = False) -> None:
        if not self._symlinks:
            return
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in self._symlinks:
                what = "hard link target" if is_link else "member"
                raise UnsafeArchive(f"{what} {shown!r} would be written through a symlink")


# Incremental tar parsing -------------------------------------------------------


def _parse_number(field_bytes: bytes) -> int:
    if field_bytes and field_bytes[0] & 0x80:
        # GNU base-256: the first byte's high bit marks it; 0xff means negative.
        value = int.from_bytes(field_bytes[1:], "big")
        if field_bytes[0] == 0xFF:
            raise MalformedArchive("negative number in tar header")
        return value | ((field_bytes[0] & 0x7F) << (8 * (len(field_bytes) - 1)))
    text = field_bytes.split(b"\x00", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as exc:
        raise MalformedArchive("invalid number in tar header") from exc


def _parse_str(field_bytes: bytes) -> str:
    return field_bytes.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _checksum_ok(block: bytes) -> bool:
    stored = _parse_number(block[148:156])
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 32
    return stored in (unsigned, signed)


def _parse_pax(data: bytes) -> dict[str, str]:
    """PAX records ``"%d %s=%s\\n"``; malformed records are an error."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            if data[pos:].strip(b"\x00") == b"":
                break
            raise MalformedArchive("invalid PAX header")
        try:
            length = int(data[pos:space])
        except ValueError as exc:
            raise MalformedArchive("invalid PAX header") from exc
        if length <= 0 or pos + length > len(data):
            raise MalformedArchive("invalid PAX header")
        record = data[space + 1 : pos + length - 1]
        key, sep, value = record.partition(b"=")
        if not sep:
            raise MalformedArchive("invalid PAX header")
        out[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


#: Extension headers carry metadata for the next member; they are small, and a
#: larger one is a memory attack, not a long file name.
_MAX_EXTENSION = 1 << 20

_TYPEFLAGS: Mapping[bytes, EntryType] = {
    b"0": EntryType.FILE,
    b"\x00": EntryType.FILE,
    b"7": EntryType.FILE,
    b"S": EntryType.FILE,
    b"1": EntryType.HARDLINK,
    b"2": EntryType.SYMLINK,
    b"3": EntryType.CHAR,
    b"4": EntryType.BLOCK,
    b"5": EntryType.DIR,
    b"6": EntryType.FIFO,
}


class TarScanner:
    """Parse a tar stream incrementally and check every member with a policy.

    ``feed(chunk)`` any number of times, then ``close()``. Member data is
    skipped, never kept. Raises UnsafeArchive / MalformedArchive.
    """

    def __init__(self, policy: LayerPolicy | None = None) -> None:
        self.policy = policy or LayerPolicy()
        self._buf = bytearray()
        self._skip = 0  # data (plus padding) bytes of the current member still to come
        self._ext: bytearray | None = None  # collecting an extension header's data
        self._ext_kind = b""
        self._ext_left = 0
        self._pax: dict[str, str] = {}
        self._global_pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._zero_blocks = 0
        self._finished = False
        self.total_bytes = 0
        self.members: list[str] = []

    def feed(self, data: bytes) -> None:
        self.total_bytes += len(data)
        if self._finished:
            return  # after the end-of-archive marker: padding, ignored as Go's reader does
        view = memoryview(data)
        while view:
            if self._skip:
                n = min(self._skip, len(view))
                if self._ext is not None:
                    take = min(n, self._ext_left)
                    self._ext += view[:take]
                    self._ext_left -= take
                self._skip -= n
                view = view[n:]
                if self._skip == 0 and self._ext is not None:
                    self._finish_extension()
                continue
            need = BLOCK - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            if len(self._buf) == BLOCK:
                block = bytes(self._buf)
                self._buf.clear()
                self._header(block)
                if self._finished:
                    return

    def close(self) -> None:
        """Declare the end of the stream; raises MalformedArchive if it ends mid-member."""
        if self._finished:
            return
        if self._skip or self._buf or self._ext is not None:
            raise MalformedArchive("unexpected EOF: the layer tar is truncated")
        if self._long_name is not None or self._long_link is not None or self._pax:
            raise MalformedArchive("unexpected EOF: extension header without a member")
        if self.total_bytes == 0:
            raise MalformedArchive("empty layer stream is not a tar archive")

    def _header(self, block: bytes) -> None:
        if block == b"\x00" * BLOCK:
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self._finished = True
            return
        if self._zero_blocks:
            raise MalformedArchive("invalid tar header after a zero block")
        if not _checksum_ok(block):
            raise MalformedArchive("invalid tar header: checksum mismatch")
        typeflag = block[156:157]
        size = _parse_number(block[124:136])
        if typeflag in (b"x", b"g", b"L", b"K"):
            if size > _MAX_EXTENSION:
                raise MalformedArchive("tar extension header too large")
            self._ext = bytearray()
            self._ext_kind = typeflag
            self._ext_left = size
            self._skip = _padded(size)
            if self._skip == 0:
                self._finish_extension()
            return
        kind = _TYPEFLAGS.get(typeflag)
        if kind is None:
            raise UnsafeArchive(f"unsupported tar member type {typeflag!r}")
        name = _parse_str(block[0:100])
        if block[257:262] == b"ustar":
            prefix = _parse_str(block[345:500]) if block[262:264] == b"\x0000" else ""
            if prefix:
                name = f"{prefix}/{name}"
        linkname = _parse_str(block[157:257])
        pax = {**self._global_pax, **self._pax}
        if self._long_name is not None:
            name = self._long_name
        if self._long_link is not None:
            linkname = self._long_link
        name = pax.get("path", name)
        linkname = pax.get("linkpath", linkname)
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError as exc:
                raise MalformedArchive("invalid PAX size") from exc
        sparse = typeflag == b"S" or any(k.startswith("GNU.sparse.") for k in pax)
        self._pax, self._long_name, self._long_link = {}, None, None
        if kind in (EntryType.FILE,):
            data_size = size
        else:
            data_size = 0  # links, dirs and devices carry no data whatever size says
        entry = TarEntry(
            name=name,
            type=kind,
            size=size,
            linkname=linkname,
            mode=_parse_number(block[100:108]),
            sparse=sparse,
        )
        self.members.append(self.policy.check(entry))
        self._skip = _padded(data_size)

    def _finish_extension(self) -> None:
        assert self._ext is not None
        data = bytes(self._ext)
        kind = self._ext_kind
        self._ext = None
        if kind == b"x":
            self._pax.update(_parse_pax(data))
        elif kind == b"g":
            self._global_pax.update(_parse_pax(data))
        elif kind == b"L":
            self._long_name = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")
        else:
            self._long_link = data.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


# docker-archive / OCI layout: reading ------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ArchiveImage:
    """One entry of a docker-archive ``manifest.json``: member paths, not contents."""

    config: str
    repo_tags: tuple[str, ...]
    layers: tuple[str, ...]


def parse_docker_manifest(data: bytes) -> list[ArchiveImage]:
    """Parse ``manifest.json`` as ``docker save`` writes it. Raises MalformedArchive."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedArchive(f"invalid manifest.json: {exc}") from exc
    if not isinstance(value, list):
        raise MalformedArchive("invalid manifest.json: not a list")
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise MalformedArchive("invalid manifest.json: entry is not an object")
        config = item.get("Config")
        tags = item.get("RepoTags") or []
        layers = item.get("Layers") or []
        if not isinstance(config, str) or not config:
            raise MalformedArchive("invalid manifest.json: Config missing")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise MalformedArchive("invalid manifest.json: RepoTags is not a list of strings")
        if not isinstance(layers, list) or not all(isinstance(x, str) and x for x in layers):
            raise MalformedArchive("invalid manifest.json: Layers is not a list of paths")
        out.append(
            ArchiveImage(
                config=clean_member_path(config),
                repo_tags=tuple(tags),
                layers=tuple(clean_member_path(x) for x in layers),
            )
        )
    return out


def check_oci_layout(data: bytes) -> None:
    """Accept the ``oci-layout`` file of a version we read. Raises MalformedArchive."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedArchive(f"invalid oci-layout: {exc}") from exc
    if not isinstance(value, dict) or value.get("imageLayoutVersion") != OCI_LAYOUT_VERSION:
        raise MalformedArchive("unsupported OCI image layout version")


def blob_path(digest: str) -> str:
    """Where an OCI layout (and moby 25+'s docker-archive) keeps a blob."""
    algorithm, _, hex_part = digest.partition(":")
    return f"blobs/{algorithm}/{hex_part}"


def resolve_member(
    name: str, links: Mapping[str, tuple[bool, str]], *, max_depth: int = 16
) -> str:
    """Follow archive-internal links to a regular member's path.

    ``links`` maps a cleaned member path to ``(is_symlink, linkname)``. A
    symlink is resolved against its own directory, a hard link against the root
    (tar semantics); either leaving the archive, or a cycle, is UnsafeArchive.
    moby's legacy ``docker save`` writes ``<id>/layer.tar`` as a symlink to an
    identical layer of another image, so links must be followed, safely.
    """
    path = clean_member_path(name)
    for _ in range(max_depth):
        # A link may also sit on a parent directory of the path.
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            link = links.get(prefix)
            if link is None:
                continue
            is_symlink, target = link
            if target.startswith("/"):
                raise UnsafeArchive(f"link {prefix!r} -> {target!r} in archive is absolute")
            base = posixpath.dirname(prefix) if is_symlink else ""
            resolved = _resolve_lexically(base, target)
            if resolved is None or resolved == "":
                raise UnsafeArchive(f"link {prefix!r} -> {target!r} points outside the archive")
            rest = "/".join(parts[i:])
            path = f"{resolved}/{rest}" if rest else resolved
            break
        else:
            return path
    raise UnsafeArchive(f"too many links resolving {name!r} in archive")


# docker-archive: writing -------------------------------------------------------

#: Fixed mtime of generated metadata members, so the same images give the same
#: archive bytes (moby uses the image's created time; any fixed value loads).
ARCHIVE_MTIME = 0


def tar_member_header(
    name: str,
    size: int,
    *,
    mode: int = 0o644,
    mtime: int = ARCHIVE_MTIME,
    kind: EntryType = EntryType.FILE,
    linkname: str = "",
) -> bytes:
    """The header block(s) of one member (PAX extension when a name is long)."""
    info = tarfile.TarInfo(name)
    info.size = size if kind is EntryType.FILE else 0
    info.mode = mode
    info.mtime = mtime
    info.type = {
        EntryType.FILE: tarfile.REGTYPE,
        EntryType.DIR: tarfile.DIRTYPE,
        EntryType.SYMLINK: tarfile.SYMTYPE,
        EntryType.HARDLINK: tarfile.LNKTYPE,
    }[kind]
    info.linkname = linkname
    info.uname = info.gname = ""
    return info.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="surrogateescape")


def tar_padding(size: int) -> bytes:
    return b"\x00" * (_padded(size) - size)


def tar_end() -> bytes:
    """The end-of-archive marker: two zero blocks."""
    return b"\x00" * (2 * BLOCK)


def tar_file(name: str, data: bytes, *, mode: int = 0o644, mtime: int = ARCHIVE_MTIME) -> bytes:
    """A complete small member: header, data, padding."""
    return tar_member_header(name, len(data), mode=mode, mtime=mtime) + data + tar_padding(len(data))


@dataclass(frozen=True, kw_only=True)
class SavedImage:
    """What one image contributes to a docker-archive's metadata files."""

    config_digest: str
    repo_tags: tuple[str, ...]
    layer_digests: tuple[str, ...]  # blob digests, in order, as written under blobs/
    manifest: Mapping[str, Any] = field(default_factory=dict)  # descriptor JSON, for index.json


def docker_manifest_json(images: Sequence[SavedImage]) -> bytes:
    """``manifest.json`` in moby 25+'s shape: blob paths for Config and Layers."""
    return json.dumps(
        [
            {
                "Config": blob_path(img.config_digest),
                "RepoTags": list(img.repo_tags),
                "Layers": [blob_path(d) for d in img.layer_digests],
            }
            for img in images
        ],
        separators=(",", ":"),
    ).encode()


def repositories_json(tags: Iterable[tuple[str, str, str]]) -> bytes:
    """The legacy ``repositories`` file: ``{repo: {tag: top layer id}}``.

    ``tags`` yields (familiar repository, tag, hex id of the top layer's chain id
    as old loaders expect it). Insertion order is kept.
    """
    out: dict[str, dict[str, str]] = {}
    for repo, tag, layer_id in tags:
        out.setdefault(repo, {})[tag] = layer_id
    return json.dumps(out, separators=(",", ":")).encode()


def oci_layout_json() -> bytes:
    return json.dumps({"imageLayoutVersion": OCI_LAYOUT_VERSION}, separators=(",", ":")).encode()


def oci_index_json(manifests: Sequence[Mapping[str, Any]]) -> bytes:
    """``index.json`` listing one descriptor per (image, tag), as moby 25+ writes it."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": list(manifests),
        },
        separators=(",", ":"),
    ).encode()
