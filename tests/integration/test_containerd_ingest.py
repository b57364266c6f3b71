"""Blobs written in place into their ingest's data file (containerd/ingest.py and
ContentCalls._write_in_place), against a real embedded containerd; and the
pure-ish helpers ``ingest.fill`` and ``ingest.find_ingest_data`` on fake layouts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

import pytest

from dockyard import errors
from dockyard.containerd import Containerd, Namespace
from dockyard.containerd import _proto as pb
from dockyard.containerd import ingest
from dockyard.containerd.errors import translate_errors
from dockyard.containerd.types import BlobInfo
from dockyard.testing.containerd_fixture import ContainerdUnderTest, embedded_containerd

NS = "ingest-test"
MiB = 1024 * 1024
#: Odd sizes, empty ones among them; none close to a multiple of another.
ODD_SIZES = [0, 1, 4093, 0, 65537, MiB + 3, 333_333, 7, 0, 2 * MiB + 1, 99_991]


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def cut(data: bytes, sizes: Iterable[int]) -> list[bytes]:
    """``data`` in pieces of the given sizes (cycled), the last one whatever is left."""
    pieces: list[bytes] = []
    sizes = list(sizes)
    start = 0
    index = 0
    while start < len(data):
        size = sizes[index % len(sizes)]
        pieces.append(data[start : start + size])
        start += size
        index += 1
    pieces.append(b"")  # an empty chunk at the very end too
    return pieces


async def source(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


class Untouchable:
    """An async iterable that fails the test if anyone iterates it."""

    def __init__(self) -> None:
        self.touched = False

    def __aiter__(self) -> Untouchable:
        self.touched = True
        raise AssertionError("the source was iterated")

    async def __anext__(self) -> bytes:
        self.touched = True
        raise AssertionError("the source was iterated")


class RecordingSlot(contextlib.AbstractAsyncContextManager[None]):
    """A verify_slot that appends to ``events`` and runs probes on entry and exit."""

    def __init__(
        self,
        events: list[tuple[str, object]],
        *,
        on_enter: Callable[[], object] | None = None,
        on_exit: Callable[[], object] | None = None,
    ) -> None:
        self.events = events
        self.on_enter = on_enter
        self.on_exit = on_exit

    async def __aenter__(self) -> None:
        self.events.append(("slot-enter", self.on_enter() if self.on_enter else None))

    async def __aexit__(self, *exc_info: object) -> None:
        self.events.append(("slot-exit", self.on_exit() if self.on_exit else None))


class Boom(Exception):
    pass


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Poll ``condition`` (something a thread or containerd changes) until it holds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ingest writer" and t.is_alive()]


def close_fds_open_on(path: Path) -> list[int]:
    """This process's descriptors open on ``path``, closed (so a failing test leaks none)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                found.append(int(name))
    for fd in found:
        os.close(fd)
    return found


def ingests_on_disk(content_root: Path) -> list[str]:
    """The backend refs (``<namespace>/<sequence>/<ref>``) of the ingests containerd has on disk."""
    folder = content_root / "ingest"
    if not folder.exists():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        try:
            found.append((entry / "ref").read_text())
        except OSError:
            found.append(f"<{entry.name} without a ref file>")
    return found


def ingests_of(content_root: Path, ref: str) -> list[str]:
    return [r for r in ingests_on_disk(content_root) if r.startswith(f"{NS}/") and r.endswith(f"/{ref}")]


async def no_ingest_named(ns: Namespace, ref: str) -> bool:
    """containerd's metadata has no ingest ``ref`` (aborting it is NotFound)."""
    try:
        with translate_errors():
            await ns._stubs.content.Abort(pb.content_pb2.AbortRequest(ref=ref), metadata=ns._metadata)
    except errors.NotFound:
        return True
    return False


@pytest.fixture(scope="module")
async def ctrd() -> AsyncIterator[ContainerdUnderTest]:
    async with embedded_containerd(prefix="dockyard-ctrd-ingest-") as running:
        await running.client.create_namespace(NS)
        yield running


@pytest.fixture
def ns(ctrd: ContainerdUnderTest) -> Namespace:
    return ctrd.client.namespace(NS)


@pytest.fixture
def root(ctrd: ContainerdUnderTest) -> Path:
    content_root = ctrd.supervisor.content_root
    assert content_root is not None and content_root.is_dir()
    return content_root


# -- write_blob in place, against containerd --------------------------------------------


async def test_async_blob_is_written_in_place_and_reads_back(ns: Namespace, root: Path) -> None:
    data = os.urandom(5 * MiB + 13)
    digest = digest_of(data)
    ref = "in-place-1"
    events: list[tuple[str, object]] = []
    # Before containerd verifies, the ingest's data file already holds every
    # byte: they went to disk directly, not over gRPC.
    slot = RecordingSlot(events, on_enter=lambda: ingest.find_ingest_data(root, NS, ref).read_bytes() == data)
    async with ns.lease() as leased:
        info = await leased.write_blob(
            ref, source(cut(data, ODD_SIZES)), expected_digest=digest, expected_size=len(data),
            labels={"a": "1", "b": "two"}, verify_slot=slot,
        )  # fmt: skip
        assert info == BlobInfo(digest=digest, size=len(data), labels={"a": "1", "b": "two"})
        assert events == [("slot-enter", True), ("slot-exit", None)]
        stored = await leased.blob_info(digest)
        assert stored == BlobInfo(digest=digest, size=len(data), labels={"a": "1", "b": "two"})
        assert b"".join([chunk async for chunk in leased.read_blob(digest)]) == data
        assert ingests_of(root, ref) == []
        with pytest.raises(ingest.IngestNotFound):
            ingest.find_ingest_data(root, NS, ref)


async def test_async_blob_without_expected_digest_or_size(ns: Namespace, root: Path) -> None:
    data = os.urandom(MiB + 5)
    async with ns.lease() as leased:
        info = await leased.write_blob("in-place-nodigest", source(cut(data, [4096, 0, 77])))
        assert info == BlobInfo(digest=digest_of(data), size=len(data), labels={})
        assert await leased.read_blob_bytes(info.digest, len(data)) == data
    assert ingests_of(root, "in-place-nodigest") == []


async def test_empty_async_blob(ns: Namespace, root: Path) -> None:
    async with ns.lease() as leased:
        info = await leased.write_blob(
            "in-place-empty", source([b"", b""]), expected_digest=digest_of(b""), expected_size=0
        )
        assert info == BlobInfo(digest=digest_of(b""), size=0, labels={})
        assert await leased.read_blob_bytes(digest_of(b""), 0) == b""
    assert ingests_of(root, "in-place-empty") == []


async def test_wrong_digest_is_invalid_and_leaves_nothing(ns: Namespace, root: Path) -> None:
    data = os.urandom(2 * MiB + 3)
    wrong = digest_of(b"not these bytes")
    events: list[tuple[str, object]] = []
    async with ns.lease() as leased:
        with pytest.raises(errors.InvalidParameter, match="does not match"):
            await leased.write_blob(
                "in-place-wrong-digest", source(cut(data, ODD_SIZES)), expected_digest=wrong,
                expected_size=len(data), verify_slot=RecordingSlot(events),
            )  # fmt: skip
        assert await leased.blob_info(wrong) is None
        assert await leased.blob_info(digest_of(data)) is None
        assert ingests_of(root, "in-place-wrong-digest") == []
    # containerd found the mismatch while it verified: inside the slot.
    assert [name for name, _ in events] == ["slot-enter", "slot-exit"]


@pytest.mark.parametrize("with_digest", [True, False], ids=["digest", "nodigest"])
@pytest.mark.parametrize("delta", [1, -1], ids=["source-shorter", "source-longer"])
async def test_wrong_size_is_invalid_and_leaves_nothing(
    ns: Namespace, root: Path, delta: int, with_digest: bool
) -> None:
    data = os.urandom(MiB + 101)
    ref = f"in-place-size-{delta}-{with_digest}"
    async with ns.lease() as leased:
        with pytest.raises(errors.InvalidParameter, match="does not match"):
            await leased.write_blob(
                ref, source(cut(data, ODD_SIZES)), expected_size=len(data) + delta,
                expected_digest=digest_of(data) if with_digest else None,
            )  # fmt: skip
        assert await leased.blob_info(digest_of(data)) is None
        assert ingests_of(root, ref) == []


async def test_existing_blob_is_not_read_again_and_gets_labels(ns: Namespace, root: Path) -> None:
    data = os.urandom(MiB + 9)
    digest = digest_of(data)
    untouchable = Untouchable()
    events: list[tuple[str, object]] = []
    async with ns.lease() as leased:
        await leased.write_blob("in-place-exists-1", data, expected_digest=digest, labels={"a": "1"})
        info = await leased.write_blob(
            "in-place-exists-2", untouchable, expected_digest=digest, expected_size=len(data),
            labels={"b": "2"}, verify_slot=RecordingSlot(events),
        )  # fmt: skip
        assert info == BlobInfo(digest=digest, size=len(data), labels={"a": "1", "b": "2"})
        assert await leased.blob_info(digest) == info
        assert await leased.read_blob_bytes(digest, len(data)) == data
    assert untouchable.touched is False
    assert events == []
    assert ingests_of(root, "in-place-exists-2") == []


async def test_same_bytes_again_without_digest_returns_the_blob(ns: Namespace, root: Path) -> None:
    data = os.urandom(MiB + 77)
    digest = digest_of(data)
    async with ns.lease() as leased:
        first = await leased.write_blob("in-place-again-1", source(cut(data, [65536])), labels={"a": "1"})
        assert first == BlobInfo(digest=digest, size=len(data), labels={"a": "1"})
        again = await leased.write_blob("in-place-again-2", source(cut(data, [999_999])), labels={"c": "3"})
        assert again == BlobInfo(digest=digest, size=len(data), labels={"a": "1", "c": "3"})
        assert await leased.read_blob_bytes(digest, len(data)) == data
        assert await no_ingest_named(leased, "in-place-again-2")
        assert await no_ingest_named(leased, "in-place-again-2-placed")
    assert ingests_of(root, "in-place-again-1") == []
    assert ingests_of(root, "in-place-again-2") == []


async def test_failing_source_propagates_and_leaves_no_ingest(ns: Namespace, root: Path) -> None:
    head = os.urandom(MiB + 11)
    opened: list[Path] = []

    async def failing() -> AsyncIterator[bytes]:
        yield head
        opened.append(ingest.find_ingest_data(root, NS, "in-place-failing"))  # the write was in place
        raise Boom("source broke")

    async with ns.lease() as leased:
        with pytest.raises(Boom, match="source broke"):
            await leased.write_blob("in-place-failing", failing(), expected_size=2 * len(head))
        assert ingests_of(root, "in-place-failing") == []
        assert await leased.blob_info(digest_of(head)) is None
    assert len(opened) == 1 and not opened[0].exists()


async def test_cancelled_mid_fill_leaves_no_ingest_and_ref_is_reusable(ns: Namespace, root: Path) -> None:
    ref = "in-place-cancelled"
    head = os.urandom(MiB + 5)
    reached = asyncio.Event()
    never = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield head
        reached.set()
        await never.wait()
        yield b"never sent"

    async with ns.lease() as leased:
        task = asyncio.create_task(leased.write_blob(ref, stalling(), expected_size=2 * len(head)))
        async with asyncio.timeout(30):
            await reached.wait()
        data_file = ingest.find_ingest_data(root, NS, ref)
        await until(lambda: data_file.stat().st_size == len(head))  # fill's thread caught up
        assert data_file.read_bytes() == head
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert ingests_of(root, ref) == []
        assert not data_file.exists()

        data = os.urandom(3 * MiB + 1)
        info = await leased.write_blob(ref, source(cut(data, ODD_SIZES)), expected_digest=digest_of(data))
        assert info == BlobInfo(digest=digest_of(data), size=len(data), labels={})
        assert await leased.read_blob_bytes(info.digest, len(data)) == data
        assert ingests_of(root, ref) == []


async def test_verify_slot_entered_once_after_the_source_is_consumed(ns: Namespace, root: Path) -> None:
    ref = "in-place-slot"
    data = os.urandom(3 * MiB + 333)
    pieces = cut(data, ODD_SIZES)
    events: list[tuple[str, object]] = []

    async def recorded() -> AsyncIterator[bytes]:
        for index, piece in enumerate(pieces):
            events.append(("chunk", index))
            yield piece
        events.append(("source-end", None))

    slot = RecordingSlot(
        events,
        # On entry the data file is complete; on exit containerd has committed.
        on_enter=lambda: ingest.find_ingest_data(root, NS, ref).stat().st_size,
        on_exit=lambda: ingests_of(root, ref),
    )
    async with ns.lease() as leased:
        info = await leased.write_blob(
            ref, recorded(), expected_digest=digest_of(data), expected_size=len(data), verify_slot=slot
        )
        assert info == BlobInfo(digest=digest_of(data), size=len(data), labels={})
        assert await leased.read_blob_bytes(info.digest, len(data)) == data
    assert events == [
        *[("chunk", index) for index in range(len(pieces))],
        ("source-end", None),
        ("slot-enter", len(data)),
        ("slot-exit", []),
    ]


async def test_verify_slot_unused_for_bytes(ns: Namespace, root: Path) -> None:
    data = os.urandom(2 * MiB + 1)
    events: list[tuple[str, object]] = []
    async with ns.lease() as leased:
        info = await leased.write_blob(
            "in-place-bytes", data, expected_digest=digest_of(data), verify_slot=RecordingSlot(events)
        )
        assert info == BlobInfo(digest=digest_of(data), size=len(data), labels={})
        assert await leased.read_blob_bytes(info.digest, len(data)) == data
    assert events == []
    assert ingests_of(root, "in-place-bytes") == []


async def test_many_small_chunks(ns: Namespace, root: Path) -> None:
    # A network source can hand over small pieces, thousands of them.
    data = os.urandom(2 * MiB + 4321)
    async with ns.lease() as leased:
        info = await leased.write_blob(
            "in-place-small-chunks", source(cut(data, [100])), expected_digest=digest_of(data)
        )
        assert info == BlobInfo(digest=digest_of(data), size=len(data), labels={})
        assert await leased.read_blob_bytes(info.digest, len(data)) == data
    assert ingests_of(root, "in-place-small-chunks") == []


async def test_blob_file_is_the_ingests_data_file_linked_read_only(ns: Namespace, root: Path) -> None:
    data = os.urandom(4 * MiB + 9)
    digest = digest_of(data)
    ref = "in-place-linked"
    inodes: list[int] = []
    slot = RecordingSlot([], on_enter=lambda: inodes.append(ingest.find_ingest_data(root, NS, ref).stat().st_ino))
    async with ns.lease() as leased:
        info = await leased.write_blob(ref, source(cut(data, ODD_SIZES)), expected_digest=digest, verify_slot=slot)
        assert info == BlobInfo(digest=digest, size=len(data), labels={})
        blob = ingest.blob_path(root, digest)
        assert blob.stat().st_ino == inodes[0]
        assert blob.stat().st_nlink == 1  # the ingest's name for it is gone
        assert blob.stat().st_mode & 0o777 == 0o444
        assert blob.read_bytes() == data
        assert ingests_of(root, ref) == []
        assert await no_ingest_named(leased, ref)
        assert await no_ingest_named(leased, f"{ref}-placed")


async def test_commit_takes_the_checked_file_without_containerd_hashing_it(ns: Namespace, root: Path) -> None:
    # What proves containerd did not read the file again: bytes changed after
    # dockyard hashed them (same size) are committed under the digest
    # dockyard computed. In real use nothing touches the file in between.
    data = os.urandom(MiB + 1)
    other = os.urandom(len(data))
    digest = digest_of(data)
    ref = "in-place-trusted"
    slot = RecordingSlot([], on_enter=lambda: ingest.find_ingest_data(root, NS, ref).write_bytes(other))
    async with ns.lease() as leased:
        info = await leased.write_blob(ref, source([data]), expected_digest=digest, verify_slot=slot)
        assert info == BlobInfo(digest=digest, size=len(data), labels={})
        assert await leased.read_blob_bytes(digest, len(data)) == other
        await leased.delete_blob(digest)


async def test_blob_known_to_another_namespace_is_shared(ctrd: ContainerdUnderTest, root: Path) -> None:
    data = os.urandom(2 * MiB + 3)
    digest = digest_of(data)
    await ctrd.client.create_namespace("ingest-test-other")
    other = ctrd.client.namespace("ingest-test-other")
    ns = ctrd.client.namespace(NS)
    async with other.lease() as leased_other, ns.lease() as leased:
        await leased_other.write_blob("in-place-shared-1", source([data]), expected_digest=digest)
        before = ingest.blob_path(root, digest).stat()
        info = await leased.write_blob(
            "in-place-shared-2", source(cut(data, ODD_SIZES)), expected_digest=digest, labels={"k": "v"}
        )
        assert info == BlobInfo(digest=digest, size=len(data), labels={"k": "v"})
        after = ingest.blob_path(root, digest).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # left alone
        assert await leased.read_blob_bytes(digest, len(data)) == data
        assert ingests_of(root, "in-place-shared-2") == []
        assert await no_ingest_named(leased, "in-place-shared-2-placed")


async def test_blob_removed_before_its_commit_is_verified_by_containerd(
    ns: Namespace, root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # containerd's garbage collector may remove the linked file before the
    # shared ingest expects it: the first ingest is then resumed and committed.
    data = os.urandom(3 * MiB + 5)
    digest = digest_of(data)
    ref = "in-place-collected"
    placed = ingest.place_blob

    def place_then_lose(content: Path, data_file: Path, blob_digest: str) -> bool:
        assert placed(content, data_file, blob_digest)
        ingest.blob_path(content, blob_digest).unlink()
        return True

    monkeypatch.setattr(ingest, "place_blob", place_then_lose)
    caplog.set_level(logging.WARNING, logger="dockyard.containerd")
    async with ns.lease() as leased:
        info = await leased.write_blob(ref, source(cut(data, ODD_SIZES)), expected_digest=digest, labels={"a": "b"})
        assert info == BlobInfo(digest=digest, size=len(data), labels={"a": "b"})
        assert await leased.read_blob_bytes(digest, len(data)) == data
        assert ingests_of(root, ref) == []
        assert await no_ingest_named(leased, f"{ref}-placed")
    assert [r.getMessage() for r in caplog.records if r.name == "dockyard.containerd"] == [
        f"blob {digest} vanished before its commit: containerd verifies ingest {ref} instead"
    ]


async def test_unknown_layout_falls_back_to_streaming(
    ctrd: ContainerdUnderTest, root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    elsewhere = tmp_path / "not-the-content-store"
    elsewhere.mkdir()
    data = os.urandom(3 * MiB + 7)
    ref = "fallback-stream"
    events: list[tuple[str, object]] = []
    caplog.set_level(logging.WARNING, logger="dockyard.containerd")
    async with Containerd(ctrd.address, content_root=elsewhere) as client:
        async with client.namespace(NS).lease() as leased:
            info = await leased.write_blob(
                ref, source(cut(data, ODD_SIZES)), expected_digest=digest_of(data), expected_size=len(data),
                labels={"x": "y"}, verify_slot=RecordingSlot(events),
            )  # fmt: skip
            assert info == BlobInfo(digest=digest_of(data), size=len(data), labels={"x": "y"})
            assert await leased.read_blob_bytes(info.digest, len(data)) == data
    assert list(os.walk(elsewhere)) == [(str(elsewhere), [], [])]
    assert events == []  # streamed writes hash as they go
    assert ingests_of(root, ref) == []
    assert [r.getMessage() for r in caplog.records if r.name == "dockyard.containerd"] == [
        f"streaming blob {ref} over gRPC: no ingest directory under {elsewhere}: No such file or directory"
    ]


# -- ingest.fill ------------------------------------------------------------------------


async def test_fill_truncates_and_writes_exactly(tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    data_file.write_bytes(b"stale bytes that are longer than nothing" * 1000)
    data = os.urandom(3 * MiB + 17)
    assert await ingest.fill(data_file, source(cut(data, ODD_SIZES))) == ingest.Filled(len(data), digest_of(data))
    assert data_file.read_bytes() == data

    assert await ingest.fill(data_file, source([b"", b"ab", b"", b"c"])) == ingest.Filled(3, digest_of(b"abc"))
    assert data_file.read_bytes() == b"abc"

    assert await ingest.fill(data_file, source([])) == ingest.Filled(0, digest_of(b""))
    assert data_file.read_bytes() == b""


async def test_fill_many_small_chunks(tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    data_file.write_bytes(b"")
    data = os.urandom(300_000)
    assert await ingest.fill(data_file, source(cut(data, [100, 0, 37]))) == ingest.Filled(len(data), digest_of(data))
    assert data_file.read_bytes() == data


async def test_fill_needs_an_existing_regular_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await ingest.fill(tmp_path / "missing", source([b"x"]))
    assert not (tmp_path / "missing").exists()

    target = tmp_path / "target"
    target.write_bytes(b"keep me")
    (tmp_path / "link").symlink_to(target)
    with pytest.raises(OSError):
        await ingest.fill(tmp_path / "link", source([b"x"]))
    assert target.read_bytes() == b"keep me"


async def test_fill_failing_source_propagates_and_closes_the_file(tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    data_file.write_bytes(b"")

    async def failing() -> AsyncIterator[bytes]:
        yield b"x" * (MiB + 1)
        raise Boom("mid-way")

    with pytest.raises(Boom, match="mid-way"):
        await ingest.fill(data_file, failing())
    assert data_file.read_bytes() == b"x" * (MiB + 1)
    assert close_fds_open_on(data_file) == []


async def test_fill_write_error_is_a_system_error_and_closes_the_file(tmp_path: Path) -> None:
    # A FIFO whose reader goes away: the writing thread's write fails (EPIPE).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)

    async def chunks() -> AsyncIterator[bytes]:
        os.close(reader)  # fill has opened the write end by now
        yield b"x" * 10
        yield b"y" * 10

    with pytest.raises(errors.SystemError, match="writing a blob into containerd's ingest: .*Broken pipe"):
        await ingest.fill(fifo, chunks())
    await until(lambda: writer_threads() == [])
    assert close_fds_open_on(fifo) == []


async def test_fill_cancelled_twice_still_closes_the_file(tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    data_file.write_bytes(b"")
    reached = asyncio.Event()
    task: asyncio.Task[ingest.Filled] | None = None

    async def stalling() -> AsyncIterator[bytes]:
        yield b"y" * MiB
        reached.set()
        try:
            await asyncio.Event().wait()
        finally:
            # fill's cleanup runs from here on without pausing until it waits
            # for its writing thread: a second cancel (a timeout and a task
            # group cancelling the same task, say) lands in that wait.
            assert task is not None
            asyncio.get_running_loop().call_soon(task.cancel)
        yield b"never"

    task = asyncio.create_task(ingest.fill(data_file, stalling()))
    async with asyncio.timeout(30):
        await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await until(lambda: writer_threads() == [])
    assert data_file.read_bytes() == b"y" * MiB
    assert close_fds_open_on(data_file) == []


# -- ingest.blob_path and ingest.place_blob ---------------------------------------------


def test_blob_path_is_the_local_stores_layout(tmp_path: Path) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    assert ingest.blob_path(tmp_path, digest) == tmp_path / "blobs" / "sha256" / ("0123456789abcdef" * 4)


@pytest.mark.parametrize("digest", [
    "sha256:../../../../etc/passwd", "sha256:" + "A" * 64, "sha256:" + "0" * 63, "sha256:" + "0" * 65,
    "sha512:" + "0" * 128, "0" * 64, "", "sha256:" + "0" * 63 + "/",
])  # fmt: skip
def test_blob_path_refuses_anything_but_sha256_hex(tmp_path: Path, digest: str) -> None:
    with pytest.raises(errors.InvalidParameter, match="not a sha256 digest"):
        ingest.blob_path(tmp_path, digest)


def test_place_blob_links_read_only_and_leaves_an_existing_file(tmp_path: Path) -> None:
    data_file = tmp_path / "data"
    data_file.write_bytes(b"blob bytes")
    digest = digest_of(b"blob bytes")
    assert ingest.place_blob(tmp_path / "store", data_file, digest) is True
    target = ingest.blob_path(tmp_path / "store", digest)
    assert target.stat().st_ino == data_file.stat().st_ino
    assert target.stat().st_mode & 0o777 == 0o444
    assert (tmp_path / "store" / "blobs" / "sha256").stat().st_mode & 0o777 == 0o755

    second = tmp_path / "second"
    second.write_bytes(b"blob bytes")
    assert ingest.place_blob(tmp_path / "store", second, digest) is False
    assert target.stat().st_ino == data_file.stat().st_ino
    assert second.stat().st_nlink == 1


# -- ingest.find_ingest_data ------------------------------------------------------------


def fake_ingest(root: Path, name: str, ref_content: str | None) -> Path:
    folder = root / "ingest" / name
    folder.mkdir(parents=True)
    (folder / "data").write_bytes(b"")
    if ref_content is not None:
        (folder / "ref").write_text(ref_content)
    return folder / "data"


def test_find_ingest_data_matches_namespace_sequence_and_ref_exactly(tmp_path: Path) -> None:
    decoys = {
        "other-namespace": "ns.c/3/layer-1",
        "namespace-prefix": "ns.b2/3/layer-1",
        "namespace-suffix": "xns.b/3/layer-1",
        "escaped-dot": "nsxb/3/layer-1",
        "ref-prefix": "ns.b/3/layer-10",
        "ref-suffix": "ns.b/3/a-layer-1",
        "no-sequence": "ns.b//layer-1",
        "sequence-not-digits": "ns.b/3a/layer-1",
        "extra-segment": "ns.b/3/4/layer-1",
        "trailing-newline": "ns.b/3/layer-1\n",
        "bare-ref": "layer-1",
        "no-ref-file": None,
    }
    for name, content in decoys.items():
        fake_ingest(tmp_path, name, content)
    (tmp_path / "ingest" / "a-plain-file").write_text("ns.b/3/layer-1")
    with pytest.raises(ingest.IngestNotFound):
        ingest.find_ingest_data(tmp_path, "ns.b", "layer-1")

    wanted = fake_ingest(tmp_path, "the-one", "ns.b/1234/layer-1")
    assert ingest.find_ingest_data(tmp_path, "ns.b", "layer-1") == wanted
    assert ingest.find_ingest_data(tmp_path, "ns.b", "layer-10") == tmp_path / "ingest" / "ref-prefix" / "data"
    assert ingest.find_ingest_data(tmp_path, "ns.b2", "layer-1") == tmp_path / "ingest" / "namespace-prefix" / "data"


def test_find_ingest_data_ref_with_slashes(tmp_path: Path) -> None:
    fake_ingest(tmp_path, "decoy", "ns/7/pull/1/layer")
    wanted = fake_ingest(tmp_path, "real", "ns/8/pull/2/layer")
    assert ingest.find_ingest_data(tmp_path, "ns", "pull/2/layer") == wanted
    with pytest.raises(ingest.IngestNotFound):
        ingest.find_ingest_data(tmp_path, "ns", "2/layer")
    with pytest.raises(ingest.IngestNotFound):
        ingest.find_ingest_data(tmp_path, "ns", "layer")


def test_find_ingest_data_without_ingest_directory(tmp_path: Path) -> None:
    with pytest.raises(ingest.IngestNotFound, match="no ingest directory") as raised:
        ingest.find_ingest_data(tmp_path, "ns", "ref")
    assert isinstance(raised.value, errors.SystemError)
    (tmp_path / "ingest").mkdir()
    with pytest.raises(ingest.IngestNotFound, match="'ref' of namespace 'ns' not found"):
        ingest.find_ingest_data(tmp_path, "ns", "ref")


def test_content_root_is_containerds_local_store(tmp_path: Path) -> None:
    assert ingest.content_root(tmp_path) == tmp_path / "io.containerd.content.v1.content"
