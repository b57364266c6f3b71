"""A busybox image built locally, so tests never need a registry or the internet.

Built in pure Python from Debian's ``/bin/busybox`` (busybox-static): one layer
with the binary, a symlink for every applet it reports, ``/etc/passwd``,
``/etc/group`` and a few directories; optional extra layers. Every byte is
deterministic (fixed mtimes, owners and ordering), so the image Id is stable
for a given busybox binary.

``build_docker_archive(path)`` writes what ``docker save`` (20.10) writes;
``build_oci_layout(path)`` writes an OCI image layout tar. The lower-level
:func:`assemble_docker_archive` wraps arbitrary (even hostile) layer bytes,
for tests of what a loader must refuse.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import zstandard

from dockyard.wire.archive import Compression

BUSYBOX = Path("/bin/busybox")
DEFAULT_TAG = "dockyard-test/busybox:latest"
FIXTURE_MTIME = 1704067200  # 2024-01-01T00:00:00Z
FIXTURE_CREATED = "2024-01-01T00:00:00Z"
FIXTURE_LABEL = ("org.dockyard.fixture", "busybox")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    "tester:x:1000:1000:tester:/home/tester:/bin/sh\n"
)
GROUP = (
    "root:x:0:\n"
    "daemon:x:1:\n"
    "staff:x:50:tester\n"
    "testers:x:1000:\n"
    "nogroup:x:65534:\n"
)


@dataclass(frozen=True, kw_only=True)
class FixtureImage:
    """An image as bytes: config JSON and layer blobs (compressed as asked)."""

    config: bytes
    layers: tuple[bytes, ...]  # blobs as they go into an archive
    diff_ids: tuple[str, ...]
    tags: tuple[str, ...]
    compression: Compression = Compression.NONE

    @property
    def id(self) -> str:
        return sha256(self.config)

    @property
    def layer_digests(self) -> tuple[str, ...]:
        return tuple(sha256(blob) for blob in self.layers)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    """The applets ``busybox --list`` reports, sorted (the binary's own name excluded)."""
    out = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True)
    return sorted({a for a in out.stdout.split() if a and a != "busybox" and "/" not in a})


@dataclass(frozen=True, kw_only=True)
class LayerEntry:
    path: str
    data: bytes = b""
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""
    uid: int = 0
    gid: int = 0


def layer_tar(entries: Sequence[LayerEntry], *, mtime: int = FIXTURE_MTIME) -> bytes:
    """A deterministic uncompressed layer tar of ``entries``, in the order given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.type = entry.kind
            info.mode = entry.mode
            info.mtime = mtime
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            info.linkname = entry.linkname
            if entry.kind == tarfile.REGTYPE:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def _dir(path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> LayerEntry:
    return LayerEntry(path=path, kind=tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)


def busybox_layer(busybox: Path = BUSYBOX) -> bytes:
    """The base layer: busybox, its applet symlinks, users, groups, home dirs."""
    entries = [
        _dir("bin/"),
        LayerEntry(path="bin/busybox", data=busybox.read_bytes(), mode=0o755),
    ]
    entries += [
        LayerEntry(path=f"bin/{applet}", kind=tarfile.SYMTYPE, linkname="busybox", mode=0o777)
        for applet in busybox_applets(busybox)
    ]
    entries += [
        _dir("etc/"),
        LayerEntry(path="etc/group", data=GROUP.encode()),
        LayerEntry(path="etc/passwd", data=PASSWD.encode()),
        _dir("home/"),
        _dir("home/tester/", uid=1000, gid=1000),
        _dir("root/", mode=0o700),
        _dir("tmp/", mode=0o1777),
        _dir("usr/"),
        _dir("usr/bin/"),
        _dir("var/"),
    ]
    return layer_tar(entries)


def files_layer(files: Mapping[str, bytes]) -> bytes:
    """An extra layer holding ``files`` (path → content), parents created, sorted."""
    entries: list[LayerEntry] = []
    seen: set[str] = set()
    for path in sorted(files):
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i]) + "/"
            if parent not in seen:
                seen.add(parent)
                entries.append(_dir(parent))
        entries.append(LayerEntry(path="/".join(parts), data=files[path]))
    return layer_tar(entries)


def compress(data: bytes, compression: Compression) -> bytes:
    """Deterministic compression (gzip without a timestamp)."""
    if compression is Compression.NONE:
        return data
    if compression is Compression.GZIP:
        return gzip.compress(data, mtime=0)
    if compression is Compression.ZSTD:
        return zstandard.ZstdCompressor(level=3).compress(data)
    raise ValueError(f"fixture cannot compress with {compression}")


def image_config(
    diff_ids: Sequence[str], *, history: Sequence[Mapping[str, object]] | None = None
) -> bytes:
    """The fixture's config JSON: Cmd sh, PATH, a label, one exposed port."""
    if history is None:
        history = [
            {"created": FIXTURE_CREATED, "created_by": "/bin/sh -c #(nop) ADD file:busybox in / "}
        ]
        history += [
            {"created": FIXTURE_CREATED, "created_by": f"/bin/sh -c #(nop) ADD layer {i} in / "}
            for i in range(1, len(diff_ids))
        ]
        history.append(
            {"created": FIXTURE_CREATED, "created_by": '/bin/sh -c #(nop)  CMD ["sh"]', "empty_layer": True}
        )
    config = {
        "architecture": "amd64",
        "config": {
            "Env": [PATH_ENV],
            "Cmd": ["sh"],
            "Labels": {FIXTURE_LABEL[0]: FIXTURE_LABEL[1]},
            "ExposedPorts": {"8080/tcp": {}},
        },
        "created": FIXTURE_CREATED,
        "history": list(history),
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    return json.dumps(config, separators=(",", ":")).encode()


def build_image(
    *,
    tags: Sequence[str] = (DEFAULT_TAG,),
    extra_layers: Sequence[Mapping[str, bytes]] = (),
    compression: Compression = Compression.NONE,
    busybox: Path = BUSYBOX,
) -> FixtureImage:
    tars = [busybox_layer(busybox)] + [files_layer(files) for files in extra_layers]
    diff_ids = tuple(sha256(t) for t in tars)
    return FixtureImage(
        config=image_config(diff_ids),
        layers=tuple(compress(t, compression) for t in tars),
        diff_ids=diff_ids,
        tags=tuple(tags),
        compression=compression,
    )


@dataclass(frozen=True, kw_only=True)
class ArchiveMember:
    path: str
    data: bytes = b""
    kind: bytes = tarfile.REGTYPE
    linkname: str = ""


def tar_bytes(members: Sequence[ArchiveMember], *, mtime: int = FIXTURE_MTIME) -> bytes:
    """A deterministic outer tar of ``members``; no directory entries are added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            info = tarfile.TarInfo(m.path)
            info.type = m.kind
            info.mtime = mtime
            info.mode = 0o644
            info.linkname = m.linkname
            if m.kind == tarfile.REGTYPE:
                info.size = len(m.data)
                tar.addfile(info, io.BytesIO(m.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def docker_archive_members(images: Sequence[FixtureImage]) -> list[ArchiveMember]:
    """docker 20.10's ``docker save`` layout: ``<id>.json``, ``<layer>/layer.tar``,
    ``manifest.json``, ``repositories``. A layer id is the hex of its blob digest."""
    members: list[ArchiveMember] = []
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    for image in images:
        config_name = image.id.removeprefix("sha256:") + ".json"
        if config_name not in written:
            written.add(config_name)
            members.append(ArchiveMember(path=config_name, data=image.config))
        layer_paths = []
        for blob in image.layers:
            layer_path = sha256(blob).removeprefix("sha256:") + "/layer.tar"
            layer_paths.append(layer_path)
            if layer_path not in written:
                written.add(layer_path)
                members.append(ArchiveMember(path=layer_path, data=blob))
        manifest.append({"Config": config_name, "RepoTags": list(image.tags), "Layers": layer_paths})
        for tag in image.tags:
            repo, _, name = tag.rpartition(":")
            repositories.setdefault(repo, {})[name] = layer_paths[-1].split("/")[0]
    members.append(ArchiveMember(path="manifest.json", data=json.dumps(manifest).encode()))
    if repositories:
        members.append(ArchiveMember(path="repositories", data=json.dumps(repositories).encode()))
    return members


def assemble_docker_archive(images: Sequence[FixtureImage]) -> bytes:
    return tar_bytes(docker_archive_members(images))


def _layer_media_type(compression: Compression) -> str:
    return {
        Compression.NONE: "application/vnd.oci.image.layer.v1.tar",
        Compression.GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression.ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
    }[compression]


def oci_layout_members(image: FixtureImage, *, ref_name_annotation: bool = True) -> list[ArchiveMember]:
    """An OCI image layout with one OCI manifest, named by containerd's annotation
    (full name) and, when asked, ``org.opencontainers.image.ref.name`` (the tag)."""
    layers = [
        {"mediaType": _layer_media_type(image.compression), "digest": sha256(b), "size": len(b)}
        for b in image.layers
    ]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": image.id,
                "size": len(image.config),
            },
            "layers": layers,
        },
        separators=(",", ":"),
    ).encode()
    index_entries = []
    for tag in image.tags or ("",):
        annotations = {}
        if tag:
            annotations["io.containerd.image.name"] = tag
            if ref_name_annotation:
                annotations["org.opencontainers.image.ref.name"] = tag.rpartition(":")[2]
        entry: dict[str, object] = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(manifest),
            "size": len(manifest),
        }
        if annotations:
            entry["annotations"] = annotations
        index_entries.append(entry)
    index = json.dumps({"schemaVersion": 2, "manifests": index_entries}).encode()
    members = [ArchiveMember(path="oci-layout", data=b'{"imageLayoutVersion":"1.0.0"}')]
    blobs = {image.id: image.config, sha256(manifest): manifest}
    blobs.update({sha256(b): b for b in image.layers})
    for digest, data in blobs.items():
        members.append(ArchiveMember(path="blobs/sha256/" + digest.removeprefix("sha256:"), data=data))
    members.append(ArchiveMember(path="index.json", data=index))
    return members


def build_docker_archive(
    path: Path,
    *,
    tags: Sequence[str] = (DEFAULT_TAG,),
    extra_layers: Sequence[Mapping[str, bytes]] = (),
    compression: Compression = Compression.NONE,
) -> FixtureImage:
    """Write a docker-archive of the busybox fixture to ``path``; return the image."""
    image = build_image(tags=tags, extra_layers=extra_layers, compression=compression)
    path.write_bytes(assemble_docker_archive([image]))
    return image


def build_oci_layout(
    path: Path,
    *,
    tags: Sequence[str] = (DEFAULT_TAG,),
    extra_layers: Sequence[Mapping[str, bytes]] = (),
    compression: Compression = Compression.NONE,
) -> FixtureImage:
    """Write an OCI image layout tar of the busybox fixture to ``path``."""
    image = build_image(tags=tags, extra_layers=extra_layers, compression=compression)
    path.write_bytes(tar_bytes(oci_layout_members(image)))
    return image

