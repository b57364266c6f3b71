"""wire/archive: the incremental tar scanner and its verdicts, archive metadata
parsing and the docker-archive writing helpers (byte-exact)."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from dockyard.testing import fixtures
from dockyard.wire import archive
from dockyard.wire.archive import EntryType, LayerPolicy, TarEntry, TarScanner

f = fixtures.LayerEntry


def scan(data: bytes, chunk: int = 333) -> list[str]:
    scanner = TarScanner()
    for i in range(0, len(data), chunk):
        scanner.feed(data[i : i + chunk])
    scanner.close()
    return scanner.members


def test_scanner_lists_members_whatever_the_chunking() -> None:
    layer = fixtures.layer_tar(
        [
            f(path="dir/", kind=tarfile.DIRTYPE, mode=0o755),
            f(path="dir/file", data=b"x" * 1000),
            f(path="dir/link", kind=tarfile.SYMTYPE, linkname="file"),
            f(path="hard", kind=tarfile.LNKTYPE, linkname="dir/file"),
            f(path="abs", kind=tarfile.SYMTYPE, linkname="/proc/mounts"),
            f(path="d/" + "long" * 40, data=b"pax name"),
            f(path="up", kind=tarfile.SYMTYPE, linkname="dir/../dir/file"),
        ]
    )
    expected = ["dir", "dir/file", "dir/link", "hard", "abs", "d/" + "long" * 40, "up"]
    for chunk in (1, 7, 512, 1 << 20):
        assert scan(layer, chunk) == expected


def test_scanner_accepts_gnu_long_names() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("a/" + "n" * 200)
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
        info = tarfile.TarInfo("l")
        info.type = tarfile.SYMTYPE
        info.linkname = "t" * 150
        tar.addfile(info)
    assert scan(buf.getvalue()) == ["a/" + "n" * 200, "l"]


def test_busybox_fixture_layer_is_clean() -> None:
    members = scan(fixtures.busybox_layer(), 65536)
    assert "bin/busybox" in members and "bin/sh" in members and "etc/passwd" in members


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([f(path="../x", data=b"")], "escapes the archive root"),
        ([f(path="a/../../x", data=b"")], "escapes the archive root"),
        ([f(path="/etc/passwd", data=b"")], "absolute path"),
        ([f(path="a", kind=tarfile.SYMTYPE, linkname="/"), f(path="a/etc/x", data=b"")], "through a symlink"),
        ([f(path="a", kind=tarfile.SYMTYPE, linkname="../.."), f(path="b", data=b"")], "points outside"),
        ([f(path="d/a", kind=tarfile.SYMTYPE, linkname="../../x")], "points outside"),
        ([f(path="a", kind=tarfile.SYMTYPE, linkname="x"), f(path="a/b/c", data=b"")], "through a symlink"),
        ([f(path="h", kind=tarfile.LNKTYPE, linkname="../etc/passwd")], "points outside"),
        ([f(path="h", kind=tarfile.LNKTYPE, linkname="/etc/passwd")], "is absolute"),
        (
            [f(path="s", kind=tarfile.SYMTYPE, linkname="/"), f(path="h", kind=tarfile.LNKTYPE, linkname="s/etc/shadow")],
            "through a symlink",
        ),
    ],
)
def test_scanner_refuses_hostile_members(entries: list, message: str) -> None:
    with pytest.raises(archive.UnsafeArchive, match=message):
        scan(fixtures.layer_tar(entries))


def test_a_symlink_replaced_by_a_directory_is_no_longer_a_symlink() -> None:
    layer = fixtures.layer_tar(
        [f(path="a", kind=tarfile.SYMTYPE, linkname="/"), f(path="a/", kind=tarfile.DIRTYPE), f(path="a/x", data=b"")]
    )
    assert scan(layer) == ["a", "a", "a/x"]


def test_truncated_member_and_missing_data() -> None:
    layer = fixtures.files_layer({"f": b"y" * 5000})
    with pytest.raises(archive.MalformedArchive, match="truncated"):
        scan(layer[:1500])
    info = tarfile.TarInfo("big")
    info.size = 10 << 30
    with pytest.raises(archive.MalformedArchive, match="truncated"):
        scan(info.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 4096)


def test_sparse_members_are_refused() -> None:
    pax = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.realsize": str(10 << 30)}
    header = tarfile.TarInfo("sparse")
    header.pax_headers = pax
    data = header.tobuf(format=tarfile.PAX_FORMAT) + b"\0" * 1024
    with pytest.raises(archive.UnsafeArchive, match="sparse"):
        scan(data)


def test_bad_checksum_and_empty_stream() -> None:
    layer = bytearray(fixtures.files_layer({"f": b"1"}))
    layer[0] ^= 0xFF
    with pytest.raises(archive.MalformedArchive, match="checksum"):
        scan(bytes(layer))
    with pytest.raises(archive.MalformedArchive, match="empty"):
        TarScanner().close()


def test_policy_on_tarinfo_entries() -> None:
    policy = LayerPolicy()
    assert policy.check(TarEntry(name="./a/b/", type=EntryType.DIR)) == "a/b"
    assert policy.check(TarEntry(name="dev/null", type=EntryType.CHAR)) == "dev/null"


def test_detect_compression() -> None:
    assert archive.detect_compression(b"\x1f\x8b\x08\x00") is archive.Compression.GZIP
    assert archive.detect_compression(b"\x28\xb5\x2f\xfd\x00") is archive.Compression.ZSTD
    assert archive.detect_compression(b"BZh91") is archive.Compression.BZIP2
    assert archive.detect_compression(b"\xfd7zXZ\x00") is archive.Compression.XZ
    assert archive.detect_compression(b"ustar") is archive.Compression.NONE
    assert archive.detect_compression(b"") is archive.Compression.NONE


def test_parse_docker_manifest() -> None:
    data = json.dumps(
        [{"Config": "abc.json", "RepoTags": ["busybox:latest"], "Layers": ["./l1/layer.tar", "l2/layer.tar"]}]
    ).encode()
    [image] = archive.parse_docker_manifest(data)
    assert image == archive.ArchiveImage(
        config="abc.json", repo_tags=("busybox:latest",), layers=("l1/layer.tar", "l2/layer.tar")
    )
    assert archive.parse_docker_manifest(b'[{"Config":"c","RepoTags":null}]')[0].repo_tags == ()
    for bad in (b"{}", b"[1]", b'[{"Config":""}]', b'[{"Config":"c","Layers":[1]}]', b"nope"):
        with pytest.raises(archive.MalformedArchive):
            archive.parse_docker_manifest(bad)
    with pytest.raises(archive.UnsafeArchive):
        archive.parse_docker_manifest(b'[{"Config":"../c","Layers":[]}]')


def test_oci_layout_version() -> None:
    archive.check_oci_layout(b'{"imageLayoutVersion":"1.0.0"}')
    with pytest.raises(archive.MalformedArchive):
        archive.check_oci_layout(b'{"imageLayoutVersion":"2.0.0"}')


def test_resolve_member_follows_links_inside_the_archive() -> None:
    links = {
        "b/layer.tar": (True, "../a/layer.tar"),
        "c": (True, "b"),
        "h": (False, "a/layer.tar"),
        "evil": (True, "../../etc/passwd"),
        "abs": (True, "/etc/passwd"),
        "loop": (True, "loop"),
    }
    assert archive.resolve_member("b/layer.tar", links) == "a/layer.tar"
    assert archive.resolve_member("c/layer.tar", links) == "a/layer.tar"
    assert archive.resolve_member("h", links) == "a/layer.tar"
    assert archive.resolve_member("plain", links) == "plain"
    for name in ("evil", "abs", "loop"):
        with pytest.raises(archive.UnsafeArchive):
            archive.resolve_member(name, links)


def test_generated_members_are_exact_tar() -> None:
    data = archive.tar_file("manifest.json", b"[]") + archive.tar_end()
    assert len(data) == 512 + 512 + 1024
    assert data[:13] == b"manifest.json"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        [info] = tar.getmembers()
        assert (info.name, info.size, info.mtime, info.mode) == ("manifest.json", 2, 0, 0o644)
        assert tar.extractfile(info).read() == b"[]"
    long = archive.tar_member_header("blobs/sha256/" + "a" * 120, 5)
    assert len(long) == 3 * 512  # PAX header block, its data, the ustar header
    assert archive.tar_padding(5) == b"\0" * 507 and archive.tar_padding(512) == b""


def test_metadata_files() -> None:
    image = archive.SavedImage(
        config_digest="sha256:" + "c" * 64, repo_tags=("busybox:latest",), layer_digests=("sha256:" + "1" * 64,)
    )
    assert archive.docker_manifest_json([image]) == (
        b'[{"Config":"blobs/sha256/' + b"c" * 64 + b'","RepoTags":["busybox:latest"],'
        b'"Layers":["blobs/sha256/' + b"1" * 64 + b'"]}]'
    )
    assert archive.repositories_json([("busybox", "latest", "ab"), ("busybox", "1", "ab")]) == (
        b'{"busybox":{"latest":"ab","1":"ab"}}'
    )
    assert archive.oci_layout_json() == b'{"imageLayoutVersion":"1.0.0"}'
    assert archive.oci_index_json([]) == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )
