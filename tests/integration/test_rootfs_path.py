"""Container paths resolved inside their root, with real files: openat2 and the walk, both.

Each test builds a container root under a dedicated temp dir next to an
``outside`` directory holding a canary; the root plants symlinks that would
lead to the host (``/x -> /``, ``/y -> ../../..``, a link to the absolute host
path of ``outside``). After each test the temp dir must hold exactly
``root`` and ``outside``, the canary must be unchanged, and the host's
``/etc/passwd`` and ``/etc/hostname`` must be as they were.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.engine import rootfs_path
from dockyard.engine.rootfs_path import (
    PathLoop,
    PathNotADirectory,
    PathNotFound,
    Resolver,
    RootPathError,
    container_file_not_found,
    lstat_in_root,
    mkdir_all_in_root,
    open_in_root,
    resolve_in_root,
)

HOST_FILES = ("/etc/passwd", "/etc/hostname")


def _digest(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return "missing"


@dataclass
class Sandbox:
    top: Path
    root: Path
    outside: Path
    root_fd: int
    unique: str  # a name no host path has: a file with it appearing on the host is an escape

    def read(self, fd: int) -> bytes:
        return os.read(fd, 1 << 16)


@pytest.fixture(params=[Resolver.OPENAT2, Resolver.WALK], ids=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Resolver:
    if request.param is Resolver.OPENAT2:
        assert rootfs_path.openat2_available(), "this kernel is expected to have openat2"
    monkeypatch.setattr(rootfs_path, "RESOLVER", request.param)
    return request.param


@pytest.fixture
def sandbox(resolver: Resolver) -> Iterator[Sandbox]:
    host_before = {p: _digest(p) for p in HOST_FILES}
    with tempfile.TemporaryDirectory(prefix="dockyard-rootfs-") as tmp:
        top = Path(tmp)
        outside = top / "outside"
        outside.mkdir()
        (outside / "canary").write_text("host\n")
        root = top / "root"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "hostname").write_text("container\n")
        (root / "etc" / "passwd").write_text("root:x:0:0:container:/root:/bin/sh\n")
        (root / "x").symlink_to("/")
        (root / "y").symlink_to("../../..")
        (root / "esc").symlink_to(str(outside))            # the host path of outside, absolute
        (root / "up").symlink_to("../outside")              # ... and relative
        (root / "parent").symlink_to("x/y/etc")             # a symlinked parent directory
        (root / "loop1").symlink_to("loop2")
        (root / "loop2").symlink_to("/loop1")
        fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        box = Sandbox(top=top, root=root, outside=outside, root_fd=fd,
                      unique=f"dockyard-escape-{uuid.uuid4().hex}")
        try:
            yield box
        finally:
            os.close(fd)
            assert sorted(os.listdir(top)) == ["outside", "root"]
            assert os.listdir(outside) == ["canary"]
            assert (outside / "canary").read_text() == "host\n"
            assert not os.path.lexists("/" + box.unique)
            assert not os.path.lexists("/etc/" + box.unique)
    assert {p: _digest(p) for p in HOST_FILES} == host_before


@pytest.mark.parametrize("path", [
    "/x/etc/hostname", "x/etc/hostname", "/y/etc/hostname", "y/y/etc/hostname",
    "/../../../etc/hostname", "../etc/hostname", "/x/y/x/etc/../etc/hostname",
    "/parent/hostname", "/etc/hostname",
])
def test_reads_the_roots_file(sandbox: Sandbox, path: str) -> None:
    fd = open_in_root(sandbox.root_fd, path, os.O_RDONLY)
    try:
        assert sandbox.read(fd) == b"container\n"
    finally:
        os.close(fd)


def test_absolute_host_path_symlinks_stay_inside(sandbox: Sandbox) -> None:
    for path in ("/esc/canary", "/up/canary", "esc/../outside/canary"):
        with pytest.raises(PathNotFound):
            open_in_root(sandbox.root_fd, path, os.O_RDONLY)
    # Creating through them lands in the root, or fails; never in outside.
    with pytest.raises(PathNotFound):
        open_in_root(sandbox.root_fd, "/esc/new", os.O_WRONLY | os.O_CREAT, 0o644)


def test_create_through_dangling_absolute_link_lands_in_root(sandbox: Sandbox) -> None:
    (sandbox.root / "dangle").symlink_to("/" + sandbox.unique)
    with pytest.raises(RootPathError) as exclusive:  # O_EXCL never follows a final symlink
        open_in_root(sandbox.root_fd, "/x/dangle", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    assert exclusive.value.errno == errno.EEXIST
    fd = open_in_root(sandbox.root_fd, "/x/dangle", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"written")
    os.close(fd)
    assert (sandbox.root / sandbox.unique).read_bytes() == b"written"
    os.unlink(sandbox.root / sandbox.unique)


def test_write_under_x_etc_writes_the_roots_etc(sandbox: Sandbox) -> None:
    fd = open_in_root(sandbox.root_fd, f"/x/etc/{sandbox.unique}", os.O_WRONLY | os.O_CREAT, 0o644)
    os.close(fd)
    assert (sandbox.root / "etc" / sandbox.unique).exists()
    os.unlink(sandbox.root / "etc" / sandbox.unique)


def test_lstat_in_root(sandbox: Sandbox) -> None:
    assert stat.S_ISLNK(lstat_in_root(sandbox.root_fd, "/x").st_mode)
    assert stat.S_ISDIR(lstat_in_root(sandbox.root_fd, "/x/").st_mode)
    assert stat.S_ISDIR(lstat_in_root(sandbox.root_fd, "/x/.").st_mode)
    assert stat.S_ISLNK(lstat_in_root(sandbox.root_fd, "/x/y/esc").st_mode)
    inside = os.stat(sandbox.root / "etc" / "passwd")
    seen = lstat_in_root(sandbox.root_fd, "/y/etc/passwd")
    assert (seen.st_dev, seen.st_ino) == (inside.st_dev, inside.st_ino)
    root = lstat_in_root(sandbox.root_fd, "/")
    assert root.st_ino == os.stat(sandbox.root).st_ino
    assert lstat_in_root(sandbox.root_fd, "/..").st_ino == root.st_ino


def test_follow_final_false(sandbox: Sandbox) -> None:
    with pytest.raises(PathLoop):
        open_in_root(sandbox.root_fd, "/x", os.O_RDONLY, follow_final=False)
    fd = open_in_root(sandbox.root_fd, "/x", os.O_PATH, follow_final=False)
    try:
        assert os.readlink("", dir_fd=fd) == "/"
    finally:
        os.close(fd)
    # A trailing slash follows anyway, as the kernel does.
    fd = open_in_root(sandbox.root_fd, "/x/", os.O_RDONLY | os.O_DIRECTORY, follow_final=False)
    try:
        assert os.fstat(fd).st_ino == os.stat(sandbox.root).st_ino
    finally:
        os.close(fd)


def test_resolve_in_root(sandbox: Sandbox) -> None:
    fd = sandbox.root_fd
    assert resolve_in_root(fd, "/x") == "/"
    assert resolve_in_root(fd, "/x/y/etc/passwd") == "/etc/passwd"
    assert resolve_in_root(fd, "/parent") == "/etc"
    assert resolve_in_root(fd, "/esc") == str(sandbox.outside)  # where it would be, inside
    assert resolve_in_root(fd, "/up/canary") == "/outside/canary"
    assert resolve_in_root(fd, "/nope/../etc") == "/etc"
    assert resolve_in_root(fd, "../../..") == "/"
    with pytest.raises(PathLoop):
        resolve_in_root(fd, "/loop1")
    with pytest.raises(PathNotADirectory):
        resolve_in_root(fd, "/etc/passwd/x")


def test_errors(sandbox: Sandbox) -> None:
    with pytest.raises(PathNotFound) as missing:
        open_in_root(sandbox.root_fd, "/nope/file", os.O_RDONLY)
    assert missing.value.status == 404
    assert missing.value.path == "/nope/file"
    assert missing.value.errno == errno.ENOENT
    with pytest.raises(PathLoop):
        open_in_root(sandbox.root_fd, "/loop1", os.O_RDONLY)
    with pytest.raises(PathNotADirectory):
        open_in_root(sandbox.root_fd, "/etc/passwd/", os.O_RDONLY)
    with pytest.raises(PathNotADirectory):
        open_in_root(sandbox.root_fd, "/etc/passwd/x", os.O_RDONLY)
    err = container_file_not_found("/x/nope", "c0ffee")
    assert (err.status, err.message) == (404, "Could not find the file /x/nope in container c0ffee")


def test_mkdir_all_in_root(sandbox: Sandbox) -> None:
    fd = mkdir_all_in_root(sandbox.root_fd, "/x/y/new/a/../b/c", 0o750)
    try:
        made = sandbox.root / "new" / "b" / "c"
        assert os.fstat(fd).st_ino == os.stat(made).st_ino
        assert stat.S_IMODE(os.stat(made).st_mode) == 0o750
        assert (sandbox.root / "new" / "a").is_dir()
    finally:
        os.close(fd)
    # Through a symlink to the host path of outside: that path does not exist in
    # the root, and a dangling link is not a directory to make (as os.MkdirAll).
    with pytest.raises(PathNotFound):
        mkdir_all_in_root(sandbox.root_fd, "/esc/sub", 0o755)
    # Through one that exists in the root: made there.
    os.close(mkdir_all_in_root(sandbox.root_fd, "/x/y/parent/made", 0o755))
    assert (sandbox.root / "etc" / "made").is_dir()
    # Existing directories keep their mode.
    os.chmod(sandbox.root / "etc", 0o711)
    os.close(mkdir_all_in_root(sandbox.root_fd, "/etc", 0o700))
    assert stat.S_IMODE(os.stat(sandbox.root / "etc").st_mode) == 0o711
    with pytest.raises(PathNotADirectory):
        mkdir_all_in_root(sandbox.root_fd, "/etc/passwd/sub", 0o755)


def test_symlink_swapped_in_during_walks(sandbox: Sandbox) -> None:
    """A directory flipped to a host-path symlink and back while opens run: none escapes."""
    import threading
    import time

    work = sandbox.root / "work"
    work.mkdir()
    (work / "canary").write_text("container\n")
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            try:
                os.rename(work, sandbox.root / "work.tmp")
                os.symlink(str(sandbox.outside), work)
                os.unlink(work)
                os.rename(sandbox.root / "work.tmp", work)
            except OSError:
                pass

    flipper = threading.Thread(target=flip)
    flipper.start()
    seen = set()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                fd = open_in_root(sandbox.root_fd, "/work/canary", os.O_RDONLY)
            except PathNotFound:
                seen.add("missing")
                continue
            try:
                seen.add(sandbox.read(fd))
            finally:
                os.close(fd)
    finally:
        stop.set()
        flipper.join()
        if not work.exists() and (sandbox.root / "work.tmp").exists():
            if work.is_symlink():
                work.unlink()
            os.rename(sandbox.root / "work.tmp", work)
        elif work.is_symlink():
            work.unlink()
            os.rename(sandbox.root / "work.tmp", work)
    assert b"host\n" not in seen
    assert b"container\n" in seen
