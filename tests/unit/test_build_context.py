"""Build context unpacking, .dockerignore and COPY file rules, on temp directories."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dockyard.build import context
from dockyard.build import copy as build_copy
from dockyard.wire import archive


def tar_bytes(entries: list[tuple[str, str, bytes | str]]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for kind, name, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1704067200
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                info.mode = 0o640
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o750
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = str(payload)
                tar.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = str(payload)
                tar.addfile(info)
    buffer.seek(0)
    return buffer


def test_unpack_keeps_modes_times_and_symlinks(tmp_path: Path):
    body = tar_bytes([("dir", "d", b""), ("file", "d/f.txt", b"data"), ("symlink", "d/l", "/etc/passwd"),
                      ("hardlink", "d/h", "d/f.txt"), ("file", "deep/er/x", b"x")])
    assert context.unpack_context(body, tmp_path) is True
    assert (tmp_path / "d/f.txt").read_bytes() == b"data"
    assert stat.S_IMODE((tmp_path / "d/f.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750
    assert (tmp_path / "d/f.txt").stat().st_mtime == 1704067200
    assert os.readlink(tmp_path / "d/l") == "/etc/passwd"
    assert (tmp_path / "d/h").read_bytes() == b"data" and not (tmp_path / "d/h").is_symlink()
    assert (tmp_path / "deep/er/x").read_bytes() == b"x"


@pytest.mark.parametrize("name", ["../x", "/x", "a/../../x"])
def test_unpack_refuses_names_outside_the_root(tmp_path: Path, name: str):
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(archive.UnsafeArchive):
        context.unpack_context(tar_bytes([("file", name, b"evil")]), root)
    assert not (tmp_path / "x").exists()


def test_unpack_refuses_writes_through_symlinks(tmp_path: Path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    body = tar_bytes([("symlink", "l", str(outside)), ("file", "l/planted", b"x")])
    with pytest.raises(archive.UnsafeArchive, match="through a symlink"):
        context.unpack_context(body, root)
    assert list(outside.iterdir()) == []


def test_a_plain_body_is_the_dockerfile(tmp_path: Path):
    assert context.unpack_context(io.BytesIO(b"FROM scratch\n"), tmp_path) is False
    assert context.read_dockerfile(tmp_path, "") == ("Dockerfile", b"FROM scratch\n")
    with pytest.raises(context.ContextError, match="Cannot locate specified Dockerfile: Other"):
        context.read_dockerfile(tmp_path, "Other")


def test_dockerignore_with_exceptions_and_kept_dockerfile(tmp_path: Path):
    for name in ("a.txt", "logs/1.log", "logs/keep.log", "src/x.tmp", "src/y.py", "Dockerfile"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("logs\n!logs/keep.log\n**/*.tmp\nDockerfile\n.dockerignore\n")
    context.apply_dockerignore(tmp_path, keep=("Dockerfile",))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["Dockerfile", "a.txt", "logs/keep.log", "src/y.py"]


def test_copy_rules(tmp_path: Path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for name, text in (("dir/a", "a"), ("dir/sub/b", "b"), ("one.txt", "1"), ("two.md", "2")):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text)
    os.symlink("one.txt", src / "alias")
    os.symlink("/etc", src / "etc")
    (dst / "existing").mkdir(parents=True)
    src_fd, dst_fd = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDONLY)
    owner = build_copy.Owner(uid=os.getuid(), gid=os.getgid())
    try:
        found = build_copy.find_sources(src_fd, ["dir"], context=True)
        build_copy.copy_sources(src_fd, found, dst_fd, "/d/", owner=owner, chmod=None, unpack_archives=False)
        assert (dst / "d/a").read_text() == "a" and (dst / "d/sub/b").read_text() == "b"
        found = build_copy.find_sources(src_fd, ["*.txt", "alias"], context=True)
        assert [s.name for s in found] == ["one.txt", "alias"]
        build_copy.copy_sources(src_fd, found, dst_fd, "/existing/", owner=owner, chmod=0o700,
                                unpack_archives=False)
        assert (dst / "existing/alias").read_text() == "1"
        assert stat.S_IMODE((dst / "existing/one.txt").stat().st_mode) == 0o700
        found = build_copy.find_sources(src_fd, ["two.md"], context=True)
        build_copy.copy_sources(src_fd, found, dst_fd, "/existing", owner=owner, chmod=None,
                                unpack_archives=False)
        build_copy.copy_sources(src_fd, found, dst_fd, "/renamed.md", owner=owner, chmod=None,
                                unpack_archives=False)
        assert (dst / "existing/two.md").read_text() == "2" and (dst / "renamed.md").read_text() == "2"
        with pytest.raises(build_copy.CopyError, match="stat etc/passwd: file does not exist"):
            build_copy.find_sources(src_fd, ["etc/passwd"], context=True)
        with pytest.raises(build_copy.CopyError, match="no source files were specified"):
            build_copy.find_sources(src_fd, ["*.none"], context=True)
        with pytest.raises(build_copy.CopyError, match="must be a directory and end with a /"):
            build_copy.copy_sources(src_fd, build_copy.find_sources(src_fd, ["one.txt", "two.md"], context=True),
                                    dst_fd, "/nodir", owner=owner, chmod=None, unpack_archives=False)
        first = build_copy.hash_sources(src_fd, build_copy.find_sources(src_fd, ["dir"], context=True))
        (src / "dir/sub/b").write_text("changed")
        assert build_copy.hash_sources(src_fd, build_copy.find_sources(src_fd, ["dir"], context=True)) != first
    finally:
        os.close(src_fd)
        os.close(dst_fd)
