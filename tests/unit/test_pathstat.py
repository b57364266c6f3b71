"""The X-Docker-Container-Path-Stat header and docker cp's path rules, byte for byte."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from dockyard.wire.pathstat import (
    ArchiveCopyPlan,
    ArchiveSource,
    CannotCopyDir,
    CopyInfo,
    DirNotExists,
    PathStat,
    Rebase,
    archive_source,
    asserts_directory,
    container_abs_path,
    decode_path_stat,
    encode_path_stat,
    go_base,
    go_clean,
    go_dir,
    go_file_mode,
    go_join,
    go_json_string,
    go_split,
    path_stat_json,
    posix_mode,
    prepare_archive_copy,
    preserve_trailing_dot_or_separator,
    rebase_entry_name,
    rfc3339nano,
    split_path_dir_entry,
    tar_entry_name,
)

# -- Go's os.FileMode ---------------------------------------------------------------


@pytest.mark.parametrize(("st_mode", "go_mode"), [
    (stat.S_IFREG | 0o644, 420),
    (stat.S_IFDIR | 0o755, (1 << 31) | 0o755),            # 2147484141
    (stat.S_IFLNK | 0o777, (1 << 27) | 0o777),            # 134218239
    (stat.S_IFCHR | 0o666, (1 << 26) | (1 << 21) | 0o666),
    (stat.S_IFBLK | 0o660, (1 << 26) | 0o660),
    (stat.S_IFIFO | 0o600, (1 << 25) | 0o600),
    (stat.S_IFSOCK | 0o755, (1 << 24) | 0o755),
    (stat.S_IFREG | 0o4755, (1 << 23) | 0o755),
    (stat.S_IFREG | 0o2755, (1 << 22) | 0o755),
    (stat.S_IFDIR | 0o1777, (1 << 31) | (1 << 20) | 0o777),
])
def test_go_file_mode(st_mode: int, go_mode: int) -> None:
    assert go_file_mode(st_mode) == go_mode
    assert posix_mode(go_mode) == st_mode


def test_go_mode_literals() -> None:
    assert go_file_mode(stat.S_IFDIR | 0o755) == 2147484141
    assert go_file_mode(stat.S_IFLNK | 0o777) == 134218239
    assert go_file_mode(stat.S_IFCHR | 0o666) == 69206454


# -- time and JSON ------------------------------------------------------------------


@pytest.mark.parametrize(("ns", "offset", "text"), [
    (0, 0, "1970-01-01T00:00:00Z"),
    (1_500_000_000, 0, "1970-01-01T00:00:01.5Z"),
    (1_700_000_000_000_000_000, 0, "2023-11-14T22:13:20Z"),
    (1_700_000_000_123_456_789, 0, "2023-11-14T22:13:20.123456789Z"),
    (1_700_000_000_120_000_000, 0, "2023-11-14T22:13:20.12Z"),
    (1_700_000_000_000_000_001, 0, "2023-11-14T22:13:20.000000001Z"),
    (1_700_000_000_000_000_000, 3600, "2023-11-14T23:13:20+01:00"),
    (1_700_000_000_000_000_000, -19800, "2023-11-14T16:43:20-05:30"),
    (-1, 0, "1969-12-31T23:59:59.999999999Z"),
])
def test_rfc3339nano(ns: int, offset: int, text: str) -> None:
    assert rfc3339nano(ns, utc_offset_seconds=offset) == text


@pytest.mark.parametrize(("text", "json_text"), [
    ("passwd", '"passwd"'),
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("<a>&", '"\\u003ca\\u003e\\u0026"'),
    ("\n\r\t\b\f", '"\\n\\r\\t\\b\\f"'),
    ("\x01\x1f\x7f", '"\\u0001\\u001f\x7f"'),
    ("é\u2028\u2029日", '"é\\u2028\\u2029日"'),
    ("\ufffd", '"\ufffd"'),                               # a real U+FFFD stays UTF-8
    (os.fsdecode(b"a\xff\xfeb"), '"a\\ufffd\\ufffdb"'),   # each bad byte: the escape
    (os.fsdecode(b"\xe2\x82x"), '"\\ufffd\\ufffdx"'),     # a cut-short sequence, per byte
])
def test_go_json_string(text: str, json_text: str) -> None:
    assert go_json_string(text) == json_text


FILE_STAT = PathStat(name="passwd", size=1234, mode=420, mtime_ns=1_700_000_000_123_456_789)
FILE_JSON = (b'{"name":"passwd","size":1234,"mode":420,'
             b'"mtime":"2023-11-14T22:13:20.123456789Z","linkTarget":""}')


def test_path_stat_json_file() -> None:
    assert path_stat_json(FILE_STAT) == FILE_JSON


def test_path_stat_header_file() -> None:
    assert encode_path_stat(FILE_STAT) == (
        "eyJuYW1lIjoicGFzc3dkIiwic2l6ZSI6MTIzNCwibW9kZSI6NDIwLCJtdGltZSI6IjIwMjMtMTEtMTRU"
        "MjI6MTM6MjAuMTIzNDU2Nzg5WiIsImxpbmtUYXJnZXQiOiIifQ=="
    )
    assert base64.b64decode(encode_path_stat(FILE_STAT)) == FILE_JSON


def test_path_stat_json_symlink_and_root() -> None:
    link = PathStat(name="x", size=1, mode=134218239, mtime_ns=1_000_000_000, link_target="/")
    assert path_stat_json(link) == (
        b'{"name":"x","size":1,"mode":134218239,"mtime":"1970-01-01T00:00:01Z","linkTarget":"/"}')
    root = PathStat(name="/", size=4096, mode=2147484141, mtime_ns=0)
    assert path_stat_json(root) == (
        b'{"name":"/","size":4096,"mode":2147484141,"mtime":"1970-01-01T00:00:00Z","linkTarget":""}')


def test_path_stat_json_local_zone() -> None:
    assert path_stat_json(FILE_STAT, utc_offset_seconds=7200) == (
        b'{"name":"passwd","size":1234,"mode":420,'
        b'"mtime":"2023-11-15T00:13:20.123456789+02:00","linkTarget":""}')


def test_decode_path_stat_round_trip() -> None:
    for value in (FILE_STAT, PathStat(name="d", size=0, mode=2147484141, mtime_ns=-1,
                                      link_target="/a/b")):
        assert decode_path_stat(encode_path_stat(value)) == value
    assert decode_path_stat(encode_path_stat(FILE_STAT, utc_offset_seconds=-3600)) == FILE_STAT
    assert PathStat(name="d", size=0, mode=2147484141, mtime_ns=0).is_dir
    assert PathStat(name="l", size=0, mode=134218239, mtime_ns=0).is_symlink


def test_decode_path_stat_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        decode_path_stat("!!!")
    with pytest.raises(ValueError):
        decode_path_stat(base64.b64encode(b"[1]").decode())


# -- Go's path/filepath ---------------------------------------------------------------


@pytest.mark.parametrize(("path", "clean"), [
    ("", "."), (".", "."), ("/", "/"), ("//", "/"), ("a/b/", "a/b"), ("a//b/./c", "a/b/c"),
    ("/../x", "/x"), ("../x", "../x"), ("a/../../x", "../x"), ("a/..", "."), ("/a/b/..", "/a"),
    ("../../", "../.."),
])
def test_go_clean(path: str, clean: str) -> None:
    assert go_clean(path) == clean


def test_go_join_base_dir_split() -> None:
    assert go_join("/", "etc/passwd") == "/etc/passwd"
    assert go_join("/dest", "/abs") == "/dest/abs"
    assert go_join("/dest", "../../x") == "/x"
    assert go_join("", "") == ""
    assert go_join("a", "") == "a"
    assert [go_base(p) for p in ("", "/", "///", "/a/b", "/a/b/", "/a/.", "a")] == \
        [".", "/", "/", "b", "b", ".", "a"]
    assert [go_dir(p) for p in ("a", "/a", "/a/b/", "/a/b", "")] == [".", "/", "/a/b", "/a", "."]
    assert go_split("/a/b") == ("/a/", "b")
    assert go_split("/a/b/") == ("/a/b/", "")
    assert go_split("a") == ("", "a")


# -- docker cp rules -------------------------------------------------------------------


@pytest.mark.parametrize(("cleaned", "original", "result"), [
    ("/foo", "/foo", "/foo"),
    ("/foo", "/foo/", "/foo/"),
    ("/foo", "/foo/.", "/foo/."),
    ("/foo", "/foo/./", "/foo/./"),
    ("/", "/", "/"),
    ("/", "/.", "/."),
    (".", ".", "."),
    ("/", "", "/."),   # Base("") is "." in Go, so an empty path "specifies the current dir"
])
def test_preserve_trailing_dot_or_separator(cleaned: str, original: str, result: str) -> None:
    assert preserve_trailing_dot_or_separator(cleaned, original) == result


def test_asserts_directory() -> None:
    assert asserts_directory("/foo/")
    assert asserts_directory("/foo/.")
    assert asserts_directory(".")
    assert not asserts_directory("/foo")
    assert not asserts_directory("/foo/..")


@pytest.mark.parametrize(("path", "split"), [
    ("/foo/bar", ("/foo", "bar")),
    ("/foo/bar/", ("/foo", "bar")),
    ("/foo/.", ("/foo", ".")),
    ("/", ("/", "/")),
    ("foo", (".", "foo")),
    (".", (".", ".")),
])
def test_split_path_dir_entry(path: str, split: tuple[str, str]) -> None:
    assert split_path_dir_entry(path) == split


@pytest.mark.parametrize(("path", "abs_path"), [
    ("etc/passwd", "/etc/passwd"),
    ("/etc/", "/etc/"),
    ("/etc/.", "/etc/."),
    ("etc//./", "/etc/./"),  # Base("etc//./") is ".", so both marks come back
    ("../../etc", "/etc"),
    ("/", "/"),
    ("x/..", "/"),
    ("/x/y/", "/x/y/"),
])
def test_container_abs_path(path: str, abs_path: str) -> None:
    assert container_abs_path(path) == abs_path


def info(path: str, *, exists: bool = False, is_dir: bool = False, rebase: str = "") -> CopyInfo:
    return CopyInfo(path=path, exists=exists, is_dir=is_dir, rebase_name=rebase)


def test_prepare_archive_copy() -> None:
    # Into an existing directory: extracted there as is.
    assert prepare_archive_copy(info("/a/f", exists=True), info("/d", exists=True, is_dir=True)) \
        == ArchiveCopyPlan(dst_dir="/d", rebase=None)
    # A file over an existing file: renamed to the destination's name.
    assert prepare_archive_copy(info("/a/f", exists=True), info("/d/g", exists=True)) \
        == ArchiveCopyPlan(dst_dir="/d", rebase=Rebase(old_base="f", new_base="g"))
    # A directory to a new name.
    assert prepare_archive_copy(info("/a/dir", exists=True, is_dir=True), info("/d/new")) \
        == ArchiveCopyPlan(dst_dir="/d", rebase=Rebase(old_base="dir", new_base="new"))
    # dir/. to a new name: the contents go in a directory of that name.
    assert prepare_archive_copy(info("/a/dir/.", exists=True, is_dir=True), info("/d/new")) \
        == ArchiveCopyPlan(dst_dir="/d", rebase=Rebase(old_base=".", new_base="new"))
    # A file to a new name; the source's rebase name wins over its base.
    assert prepare_archive_copy(info("/a/l", exists=True, rebase="f"), info("/d/new")) \
        == ArchiveCopyPlan(dst_dir="/d", rebase=Rebase(old_base="f", new_base="new"))


def test_prepare_archive_copy_refusals() -> None:
    with pytest.raises(CannotCopyDir, match="^cannot copy directory$") as caught:
        prepare_archive_copy(info("/a/dir", exists=True, is_dir=True), info("/d/f", exists=True))
    assert caught.value.status == 400
    with pytest.raises(DirNotExists, match="^no such directory$"):
        prepare_archive_copy(info("/a/f", exists=True), info("/d/new/"))
    with pytest.raises(DirNotExists):
        prepare_archive_copy(info("/a/f", exists=True), info("/d/new/."))


def test_rebase_entry_name() -> None:
    assert rebase_entry_name("./x", Rebase(old_base=".", new_base="new")) == "new/x"
    assert rebase_entry_name("dir/sub", Rebase(old_base="dir", new_base="new")) == "new/sub"
    assert rebase_entry_name("/etc/x", Rebase(old_base="/", new_base="new")) == "new/etc/x"
    # strings.Replace(…, 1): the first occurrence, wherever it is.
    assert rebase_entry_name("a/dir", Rebase(old_base="dir", new_base="n")) == "a/n"


def test_archive_source_and_entry_names() -> None:
    tree = archive_source("/etc", is_dir=True)
    assert tree == ArchiveSource(source_dir="/etc", source_base=".", rebase_name="etc")
    assert [tar_entry_name(r, tree, is_dir=d) for r, d in
            ((".", True), ("passwd", False), ("ssl", True), ("ssl/certs", True))] == \
        ["etc/", "etc/passwd", "etc/ssl/", "etc/ssl/certs/"]

    contents = archive_source("/etc/.", is_dir=True)
    assert contents.rebase_name == "."
    assert [tar_entry_name(r, contents, is_dir=d) for r, d in ((".", True), ("passwd", False))] \
        == ["./", "./passwd"]

    trailing = archive_source("/x/", is_dir=True)
    assert trailing == ArchiveSource(source_dir="/x/", source_base=".", rebase_name="x")
    assert tar_entry_name("a", trailing, is_dir=False) == "x/a"

    root = archive_source("/", is_dir=True)
    assert [tar_entry_name(r, root, is_dir=d) for r, d in ((".", True), ("bin", True),
                                                           ("etc/passwd", False))] \
        == ["/", "/bin/", "/etc/passwd"]

    one = archive_source("/etc/passwd", is_dir=False)
    assert one == ArchiveSource(source_dir="/etc/", source_base="passwd", rebase_name="passwd")
    assert tar_entry_name("passwd", one, is_dir=False) == "passwd"
    renamed = ArchiveSource(source_dir="/etc/", source_base="passwd", rebase_name="other")
    assert tar_entry_name("passwd", renamed, is_dir=False) == "other"


# Captured from dockerd 20.10 (Debian docker.io) answering HEAD /containers/{id}/archive.
DOCKERD_VALUES = [
    b'{"name":"x","size":1,"mode":134218239,"mtime":"2026-11-28T16:11:42Z","linkTarget":"/"}',
    b'{"name":"/","size":4096,"mode":2147484141,"mtime":"2026-11-28T16:11:49.67629685Z",'
    b'"linkTarget":""}',
    b'{"name":".","size":4096,"mode":2147484141,"mtime":"2026-11-28T16:11:42Z","linkTarget":""}',
    b'{"name":"hostname","size":0,"mode":493,"mtime":"2026-11-28T16:11:49.663081113Z",'
    b'"linkTarget":""}',
]


@pytest.mark.parametrize("raw", DOCKERD_VALUES)
def test_same_bytes_as_dockerd(raw: bytes) -> None:
    header = base64.b64encode(raw).decode()
    assert encode_path_stat(decode_path_stat(header)) == header
