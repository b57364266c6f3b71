"""Tar out of and into a container root with real files, for both resolvers.

Same sandbox as test_rootfs_path: a root with planted escapes next to an
``outside`` directory; after each test the temp dir holds only ``root`` and
``outside``, the canary is intact, and the host's files are untouched.
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
import tarfile
import threading
import time
from collections.abc import AsyncIterator

import pytest

from dockyard.engine.rootfs_archive import (
    BreakoutError,
    ExtractionPointNotDirectory,
    MalformedTar,
    OverwriteError,
    archive_path,
    extract_into,
    extract_into_async,
    stat_path,
)
from dockyard.engine.rootfs_path import PathNotFound, RootPathError
from dockyard.wire.pathstat import go_file_mode

from test_rootfs_path import Sandbox, resolver, sandbox  # noqa: F401 - fixtures

MTIME = 1_600_000_000


def member(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", linkname: str = "",
           mode: int = 0o644, uid: int = 0, gid: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.mtime = MTIME
    info.linkname = linkname
    info.size = len(data)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    return info, data


def make_tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def read_tar(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def extract(box: Sandbox, dest: str, data: bytes, *, no_overwrite: bool = True,
            owner: tuple[int, int] | None = None) -> None:
    extract_into(box.root_fd, dest, io.BytesIO(data), no_overwrite_dir_non_dir=no_overwrite,
                 copy_uid_gid=owner)


def archive_bytes(box: Sandbox, path: str) -> bytes:
    with archive_path(box.root_fd, path) as tar:
        return b"".join(tar)


# -- HEAD / GET ----------------------------------------------------------------------


def test_stat_path(sandbox: Sandbox) -> None:
    hostname = stat_path(sandbox.root_fd, "/x/etc/hostname")
    on_disk = os.stat(sandbox.root / "etc" / "hostname")
    assert (hostname.name, hostname.size, hostname.mode, hostname.mtime_ns, hostname.link_target) \
        == ("hostname", 10, go_file_mode(on_disk.st_mode), on_disk.st_mtime_ns, "")
    link = stat_path(sandbox.root_fd, "/x")
    assert (link.name, link.is_symlink, link.link_target) == ("x", True, "/")
    assert stat_path(sandbox.root_fd, "/y").link_target == "/"
    assert stat_path(sandbox.root_fd, "/parent").link_target == "/etc"
    assert stat_path(sandbox.root_fd, "/esc").link_target == str(sandbox.outside)
    followed = stat_path(sandbox.root_fd, "/x/")
    assert (followed.name, followed.is_dir, followed.link_target) == ("x", True, "")
    assert stat_path(sandbox.root_fd, "/").name == "/"
    assert stat_path(sandbox.root_fd, "/etc/.").name == "."
    with pytest.raises(PathNotFound):
        stat_path(sandbox.root_fd, "/esc/canary")
    with pytest.raises(PathNotFound):
        stat_path(sandbox.root_fd, "")


def test_archive_a_file_through_planted_links(sandbox: Sandbox) -> None:
    for path in ("/x/etc/hostname", "/y/etc/hostname", "/parent/hostname"):
        data = archive_bytes(sandbox, path)
        [entry] = read_tar(data)
        assert entry.name == "hostname"
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            extracted = tar.extractfile(entry)
            assert extracted is not None
            assert extracted.read() == b"container\n"
    with pytest.raises(PathNotFound):
        archive_path(sandbox.root_fd, "/esc/canary")


def build_tree(box: Sandbox) -> None:
    tree = box.root / "tree"
    (tree / "empty").mkdir(parents=True)
    (tree / "sub").mkdir()
    (tree / "sub" / "file").write_bytes(b"x" * 70000)
    os.chown(tree / "sub" / "file", 1234, 5678)
    os.chmod(tree / "sub" / "file", 0o4750)  # after chown, which clears set-id bits
    os.link(tree / "sub" / "file", tree / "hard")
    (tree / "root-link").symlink_to("/")
    (tree / "sub" / "rel-link").symlink_to("../empty")
    os.mkfifo(tree / "fifo", 0o640)
    os.mknod(tree / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))


def test_archive_a_tree(sandbox: Sandbox) -> None:
    build_tree(sandbox)
    entries = read_tar(archive_bytes(sandbox, "/tree"))
    shape = [(e.name, e.type, e.linkname) for e in entries]
    assert shape == [
        ("tree", tarfile.DIRTYPE, ""),
        ("tree/empty", tarfile.DIRTYPE, ""),
        ("tree/fifo", tarfile.FIFOTYPE, ""),
        ("tree/hard", tarfile.REGTYPE, ""),
        ("tree/null", tarfile.CHRTYPE, ""),
        ("tree/root-link", tarfile.SYMTYPE, "/"),            # archived as a link, never followed
        ("tree/sub", tarfile.DIRTYPE, ""),
        ("tree/sub/file", tarfile.LNKTYPE, "tree/hard"),      # same inode as the first one seen
        ("tree/sub/rel-link", tarfile.SYMTYPE, "../empty"),
    ]
    hard = entries[3]
    assert (hard.size, hard.mode, hard.uid, hard.gid) == (70000, 0o4750, 1234, 5678)
    assert (entries[4].devmajor, entries[4].devminor) == (1, 3)
    # A trailing /. archives the contents; /x/ follows the link and keeps its name.
    assert [e.name for e in read_tar(archive_bytes(sandbox, "/tree/."))][:3] == \
        [".", "./empty", "./fifo"]
    via_link = [e.name for e in read_tar(archive_bytes(sandbox, "/x/"))]
    assert via_link[0] == "x" and "x/etc/hostname" in via_link and "x/tree/sub/file" in via_link
    # The root: absolute names, as dockerd writes them.
    assert "/etc/hostname" in [e.name for e in read_tar(archive_bytes(sandbox, "/"))]


def test_archive_async_and_close_early(sandbox: Sandbox) -> None:
    build_tree(sandbox)

    async def collect() -> bytes:
        tar = archive_path(sandbox.root_fd, "/tree")
        return b"".join([chunk async for chunk in tar.aiter()])

    assert [e.name for e in read_tar(asyncio.run(collect()))][0] == "tree"
    tar = archive_path(sandbox.root_fd, "/tree")
    next(iter(tar))
    tar.close()
    tar.close()


# -- PUT -----------------------------------------------------------------------------


def test_extract_into_x_lands_in_root(sandbox: Sandbox) -> None:
    extract(sandbox, "/x/", make_tar(member("new", data=b"hello"), member("d", tarfile.DIRTYPE),
                                     member("d/f", data=b"in d")))
    assert (sandbox.root / "new").read_bytes() == b"hello"
    assert (sandbox.root / "d" / "f").read_bytes() == b"in d"
    extract(sandbox, "/x/etc/", make_tar(member(sandbox.unique, data=b"etc")))
    assert (sandbox.root / "etc" / sandbox.unique).read_bytes() == b"etc"
    extract(sandbox, "/parent", make_tar(member("p", data=b"p")))
    assert (sandbox.root / "etc" / "p").read_bytes() == b"p"


def test_round_trip(sandbox: Sandbox) -> None:
    build_tree(sandbox)
    (sandbox.root / "copy").mkdir()
    extract(sandbox, "/copy", archive_bytes(sandbox, "/tree"))
    copy = sandbox.root / "copy" / "tree"
    assert (copy / "sub" / "file").read_bytes() == b"x" * 70000
    st = os.lstat(copy / "sub" / "file")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o4750, 1234, 5678)
    assert os.lstat(copy / "hard").st_ino == st.st_ino
    assert os.readlink(copy / "root-link") == "/"
    assert os.readlink(copy / "sub" / "rel-link") == "../empty"
    assert stat.S_ISFIFO(os.lstat(copy / "fifo").st_mode)
    assert os.lstat(copy / "null").st_rdev == os.makedev(1, 3)
    original = os.stat(sandbox.root / "tree" / "sub")
    assert os.stat(copy / "sub").st_mtime_ns // 10**9 == original.st_mtime_ns // 10**9


def test_entry_names_outside_dest(sandbox: Sandbox) -> None:
    (sandbox.root / "dest").mkdir()
    # ../ is refused, as moby refuses it; nothing is written anywhere.
    for name in ("../escape", "a/../../escape", ".."):
        with pytest.raises(BreakoutError):
            extract(sandbox, "/dest", make_tar(member(name, data=b"evil")))
    assert not (sandbox.root / "escape").exists()
    # An absolute name is taken relative to the destination.
    extract(sandbox, "/dest", make_tar(member("/abs", data=b"abs"),
                                       member(f"/etc/{sandbox.unique}", data=b"abs")))
    assert (sandbox.root / "dest" / "abs").read_bytes() == b"abs"
    assert (sandbox.root / "dest" / "etc" / sandbox.unique).exists()


def test_symlink_entry_then_write_through_it(sandbox: Sandbox) -> None:
    (sandbox.root / "dest").mkdir()
    extract(sandbox, "/dest", make_tar(
        member("a", tarfile.SYMTYPE, linkname="/"),
        member(f"a/{sandbox.unique}", data=b"through a"),
        member("a/etc/hostname", data=b"replaced\n"),
    ))
    # Through a -> / means the container's root, never the host's.
    assert os.readlink(sandbox.root / "dest" / "a") == "/"
    assert (sandbox.root / sandbox.unique).read_bytes() == b"through a"
    assert (sandbox.root / "etc" / "hostname").read_bytes() == b"replaced\n"


def test_symlink_to_host_path_then_write_through_it(sandbox: Sandbox) -> None:
    (sandbox.root / "dest").mkdir()
    # The lexical check passes (absolute targets are joined under dest), the write
    # then resolves in-root, where the host path does not exist: it fails.
    with pytest.raises(RootPathError):
        extract(sandbox, "/dest", make_tar(member("b", tarfile.SYMTYPE, linkname=str(sandbox.outside)),
                                           member("b/evil", data=b"evil")))
    with pytest.raises(RootPathError):
        extract(sandbox, "/", make_tar(member("c", tarfile.SYMTYPE, linkname=str(sandbox.outside)),
                                       member("c/evil", data=b"evil")))


def test_relative_symlinks_leaving_dest_are_refused(sandbox: Sandbox) -> None:
    (sandbox.root / "dest").mkdir()
    with pytest.raises(BreakoutError, match="invalid symlink"):
        extract(sandbox, "/dest", make_tar(member("up", tarfile.SYMTYPE, linkname="../../..")))
    # Into / it is the container's own business, and resolves in-root later.
    extract(sandbox, "/", make_tar(member("up2", tarfile.SYMTYPE, linkname="../../../outside")))
    assert os.readlink(sandbox.root / "up2") == "../../../outside"
    with pytest.raises(PathNotFound):  # /outside does not exist in the root
        extract(sandbox, "/", make_tar(member("up2/evil", data=b"evil")))
    (sandbox.root / "outside").mkdir()
    extract(sandbox, "/", make_tar(member("up2/evil", data=b"evil")))
    assert (sandbox.root / "outside" / "evil").read_bytes() == b"evil"


def test_hard_links(sandbox: Sandbox) -> None:
    root_passwd = os.stat(sandbox.root / "etc" / "passwd")
    # "/etc/passwd" into / names the container's /etc/passwd.
    extract(sandbox, "/", make_tar(member("pw", tarfile.LNKTYPE, linkname="/etc/passwd")))
    linked = os.stat(sandbox.root / "pw")
    assert (linked.st_dev, linked.st_ino) == (root_passwd.st_dev, root_passwd.st_ino)
    # Through a planted link, still the container's.
    extract(sandbox, "/", make_tar(member("pw2", tarfile.LNKTYPE, linkname="x/y/etc/passwd")))
    assert os.stat(sandbox.root / "pw2").st_ino == root_passwd.st_ino
    (sandbox.root / "dest").mkdir()
    with pytest.raises(BreakoutError, match="invalid hardlink"):
        extract(sandbox, "/dest", make_tar(member("pw", tarfile.LNKTYPE, linkname="../etc/passwd")))
    # Under /dest, /etc/passwd means /dest/etc/passwd, which does not exist.
    with pytest.raises(PathNotFound):
        extract(sandbox, "/dest", make_tar(member("pw", tarfile.LNKTYPE, linkname="/etc/passwd")))
    # A hard link to a symlink links the symlink, never its target.
    extract(sandbox, "/", make_tar(member("xl", tarfile.LNKTYPE, linkname="x")))
    assert os.readlink(sandbox.root / "xl") == "/"


def test_devices_fifos_and_owners(sandbox: Sandbox) -> None:
    (sandbox.root / "dest").mkdir()
    extract(sandbox, "/dest", make_tar(member("null", tarfile.CHRTYPE, mode=0o666),
                                       member("fifo", tarfile.FIFOTYPE, mode=0o600, uid=7, gid=8),
                                       member("f", data=b"f", mode=0o2755, uid=1000, gid=1001)))
    null = os.lstat(sandbox.root / "dest" / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(null.st_mode) == 0o666
    fifo = os.lstat(sandbox.root / "dest" / "fifo")
    assert (stat.S_ISFIFO(fifo.st_mode), fifo.st_uid, fifo.st_gid) == (True, 7, 8)
    f = os.lstat(sandbox.root / "dest" / "f")
    assert (stat.S_IMODE(f.st_mode), f.st_uid, f.st_gid, f.st_mtime) == (0o2755, 1000, 1001, MTIME)
    extract(sandbox, "/dest", make_tar(member("g", data=b"g", uid=1000)), owner=(55, 66))
    g = os.lstat(sandbox.root / "dest" / "g")
    assert (g.st_uid, g.st_gid) == (55, 66)


def test_no_overwrite_dir_non_dir(sandbox: Sandbox) -> None:
    dest = sandbox.root / "dest"
    (dest / "d" / "inner").mkdir(parents=True)
    (dest / "f").write_text("file")
    with pytest.raises(OverwriteError, match="cannot overwrite directory"):
        extract(sandbox, "/dest", make_tar(member("d", data=b"file now")))
    with pytest.raises(OverwriteError, match="cannot overwrite non-directory"):
        extract(sandbox, "/dest", make_tar(member("f", tarfile.DIRTYPE)))
    assert (dest / "d" / "inner").is_dir() and (dest / "f").read_text() == "file"
    # Allowed: whatever is in the way goes.
    extract(sandbox, "/dest", make_tar(member("d", data=b"file now"), member("f", tarfile.DIRTYPE)),
            no_overwrite=False)
    assert (dest / "d").read_bytes() == b"file now" and (dest / "f").is_dir()
    # A directory over a directory merges; a file over a file replaces it.
    extract(sandbox, "/dest", make_tar(member("f", tarfile.DIRTYPE, mode=0o700),
                                       member("f/g", data=b"g"), member("d", data=b"again")))
    assert stat.S_IMODE(os.stat(dest / "f").st_mode) == 0o700
    assert (dest / "d").read_bytes() == b"again"


def test_existing_symlink_is_replaced_not_followed(sandbox: Sandbox) -> None:
    (sandbox.root / "dest").mkdir()
    (sandbox.root / "dest" / "link").symlink_to(str(sandbox.outside / "canary"))
    extract(sandbox, "/dest", make_tar(member("link", data=b"plain file")))
    assert not (sandbox.root / "dest" / "link").is_symlink()
    assert (sandbox.root / "dest" / "link").read_bytes() == b"plain file"


def test_implied_directories(sandbox: Sandbox) -> None:
    (sandbox.root / "dest").mkdir()
    extract(sandbox, "/dest", make_tar(member("a/b/c", data=b"deep")))
    assert stat.S_IMODE(os.stat(sandbox.root / "dest" / "a" / "b").st_mode) == 0o755
    assert (sandbox.root / "dest" / "a" / "b" / "c").read_bytes() == b"deep"


def test_extraction_point(sandbox: Sandbox) -> None:
    with pytest.raises(ExtractionPointNotDirectory) as not_dir:
        extract(sandbox, "/etc/passwd", make_tar(member("f")))
    assert not_dir.value.status == 400
    with pytest.raises(PathNotFound) as missing:
        extract(sandbox, "/esc", make_tar(member("f")))
    assert (missing.value.status, missing.value.path) == (404, "/esc")
    extract(sandbox, "/", b"")  # an empty body is an empty archive
    with pytest.raises(MalformedTar) as bad:
        extract(sandbox, "/", b"this is not a tar archive" * 40)
    assert bad.value.status == 500  # dockerd: "archive/tar: invalid tar header", a 500
    cut = make_tar(member("big", data=b"b" * 5000))[:2048]
    with pytest.raises(MalformedTar):
        extract(sandbox, "/", cut)


def test_extract_async(sandbox: Sandbox) -> None:
    data = make_tar(member("big", data=os.urandom(300_000)), member("small", data=b"s"))

    async def chunks(payload: bytes) -> AsyncIterator[bytes]:
        for at in range(0, len(payload), 7000):
            yield payload[at:at + 7000]
        yield b"\0" * 50_000  # trailing padding after the end of the archive is read and dropped

    async def run() -> None:
        await extract_into_async(sandbox.root_fd, "/x", chunks(data), no_overwrite_dir_non_dir=True)
        with pytest.raises(BreakoutError):
            await extract_into_async(sandbox.root_fd, "/x", chunks(
                make_tar(member("../evil", data=b"e")) + b"\0" * 200_000),
                no_overwrite_dir_non_dir=True)

    asyncio.run(run())
    assert (sandbox.root / "big").stat().st_size == 300_000
    assert (sandbox.root / "small").read_bytes() == b"s"


def test_symlink_swapped_in_while_extracting(sandbox: Sandbox) -> None:
    """A directory flipped to a symlink at the host path of outside while entries go into it."""
    work = sandbox.root / "work"
    work.mkdir()
    spare = sandbox.root / "work.tmp"
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            try:
                os.rename(work, spare)
                os.symlink(str(sandbox.outside), work)
                os.symlink("/", sandbox.root / "w2")
                os.unlink(work)
                os.unlink(sandbox.root / "w2")
                os.rename(spare, work)
            except OSError:
                pass

    tar = make_tar(*[member(f"work/f{i}", data=b"in container") for i in range(300)])
    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                extract(sandbox, "/", tar, no_overwrite=False)
            except RootPathError:
                pass
    finally:
        stop.set()
        flipper.join()
    for leftover in (work, sandbox.root / "w2"):
        if leftover.is_symlink():
            leftover.unlink()
    if spare.exists():
        if work.exists():
            import shutil
            shutil.rmtree(spare)
        else:
            os.rename(spare, work)
    # The sandbox fixture checks that outside holds only its canary.

