"""layer_stage's pure parts: the StageTurns gate and the _TarStream reader.

_TarStream replaces ``tarfile.open(mode="r|")`` for a layer being unpacked
while it downloads, so tarfile's own stream mode is the oracle: every member
of a corpus (USTAR, GNU and PAX archives with every entry type and the
awkward headers) must come out with the same attributes and the same data,
whatever the chunks the download delivers, and the inflow's hash must be
the diff ID (the sha256 of the whole decompressed archive).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import queue
import tarfile
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from dockyard.engine.layer_stage import StageTurns, _Inflow, _TarStream

#: Every wait in this file is bounded: a hang is a failure, not a stuck run.
TIMEOUT = 30.0
MIB = 1 << 20
CHUNK_SIZES = [1, 7, 512, 4093, MIB + 1]


# ---------------------------------------------------------------- StageTurns


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (state, not time, is what is waited on) up to TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _waiting(turns: StageTurns) -> int:
    with turns._changed:
        return len(turns._waiting)


def _free(turns: StageTurns) -> int:
    with turns._changed:
        return turns._free


@pytest.mark.parametrize("size", [0, -1])
def test_stage_turns_needs_at_least_one_turn(size: int) -> None:
    with pytest.raises(ValueError):
        StageTurns(size)


def test_stage_turns_size_one_is_allowed() -> None:
    turns = StageTurns(1)
    turns.acquire(0)
    turns.release()
    turns.acquire(0)
    turns.release()


class _Occupancy:
    """How many threads are inside a turn now, and the most there ever were."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1


def _start(count: int, worker: Callable[[int], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def _join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_stage_turns_at_most_size_holders() -> None:
    size, count = 3, 8
    turns = StageTurns(size)
    inside_turns = _Occupancy()
    entered: queue.SimpleQueue[int] = queue.SimpleQueue()
    go = [threading.Event() for _ in range(count)]

    def worker(index: int) -> None:
        turns.acquire(index)
        inside_turns.enter()
        entered.put(index)
        go[index].wait(TIMEOUT)
        inside_turns.leave()
        turns.release()

    threads = _start(count, worker)
    first = {entered.get(timeout=TIMEOUT) for _ in range(size)}
    # Everyone else is queued and no turn is free: nobody else can be in.
    _wait_until(lambda: _waiting(turns) == count - size, "the others to queue")
    assert _free(turns) == 0
    assert entered.empty()
    assert inside_turns.now == size
    # Each release lets exactly one more in.
    inside = set(first)
    for _ in range(count - size):
        leaving = min(inside)
        inside.remove(leaving)
        go[leaving].set()
        newcomer = entered.get(timeout=TIMEOUT)
        inside.add(newcomer)
        _wait_until(lambda: _free(turns) == 0, "the newcomer to take its turn")
        assert inside_turns.now <= size
    for index in inside:
        go[index].set()
    _join(threads)
    assert inside_turns.most == size
    assert _free(turns) == size and _waiting(turns) == 0


def test_stage_turns_lowest_key_first_then_arrival() -> None:
    turns = StageTurns(2)
    turns.acquire("held")
    turns.acquire("held")  # both turns taken by the test itself
    # (key, label): labels tell apart the threads with equal keys.
    arrivals = [(5, "a"), (1, "b"), (3, "c"), (1, "d"), (0, "e"), (3, "f"), (9, "g"), (1, "h")]
    entered: queue.SimpleQueue[str] = queue.SimpleQueue()
    threads = []
    for number, (key, label) in enumerate(arrivals, 1):

        def worker(key: int = key, label: str = label) -> None:
            turns.acquire(key)
            entered.put(label)  # holds its turn: the test releases for it

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        threads.append(thread)
        # Arrival order is the order they queued in: wait for each to queue.
        _wait_until(lambda n=number: _waiting(turns) == n, f"waiter {label} to queue")
    assert entered.empty()
    order = []
    for left in range(len(arrivals) - 1, -1, -1):
        turns.release()
        order.append(entered.get(timeout=TIMEOUT))
        # Exactly one came in: the turn is taken again, the rest still queue.
        _wait_until(lambda: _free(turns) == 0, "the turn to be taken")
        assert _waiting(turns) == left
        assert entered.empty()
    assert order == ["e", "b", "d", "h", "c", "f", "a", "g"]
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()


def test_stage_turns_release_with_nobody_waiting_frees_a_turn() -> None:
    turns = StageTurns(1)
    turns.acquire(1)
    entered = threading.Event()

    def worker() -> None:
        turns.acquire(2)
        entered.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    _wait_until(lambda: _waiting(turns) == 1, "the waiter to queue")
    assert not entered.is_set()
    turns.release()
    assert entered.wait(TIMEOUT)
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    turns.release()
    assert _free(turns) == 1


def test_stage_turns_many_threads_never_exceed_size() -> None:
    size, count, rounds = 3, 12, 40
    turns = StageTurns(size)
    inside_turns = _Occupancy()

    def worker(index: int) -> None:
        for round_ in range(rounds):
            turns.acquire((round_ * 7 + index) % 5)
            inside_turns.enter()
            inside_turns.leave()
            turns.release()

    _join(_start(count, worker))
    assert 1 <= inside_turns.most <= size
    assert _free(turns) == size and _waiting(turns) == 0


# ---------------------------------------------------------------- the corpus


def _data(size: int, seed: int) -> bytes:
    """Deterministic bytes that differ from member to member and block to block."""
    pattern = hashlib.sha256(f"{seed}".encode()).digest() * 8
    whole, rest = divmod(size, len(pattern))
    out = bytearray(pattern * whole + pattern[:rest])
    for at in range(0, size, 509):  # so no two blocks of a member are equal
        out[at] = (at // 509 + seed) % 256
    return bytes(out)


LONG_NAME = "long/" + "d" * 60 + "/" + "n" * 70 + "/file.txt"  # > 100, splittable for USTAR
LONGER_NAME = "x" * 180 + "/" + "y" * 120  # > 255: GNU longname / PAX path only
LONG_TARGET = "target/" + "t" * 150


def _entry(name: str, type_: bytes, **fields: Any) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    info.type = type_
    info.mode = fields.pop("mode", 0o644)
    info.mtime = fields.pop("mtime", 1_700_000_000)
    info.uid = fields.pop("uid", 1000)
    info.gid = fields.pop("gid", 1000)
    info.uname = fields.pop("uname", "user")
    info.gname = fields.pop("gname", "group")
    data = fields.pop("data", None)
    for key, value in fields.items():
        setattr(info, key, value)
    if data is not None:
        info.size = len(data)
    return info, data


def _members(format_: int) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    entries = [
        _entry("dir", tarfile.DIRTYPE, mode=0o755),
        _entry("dir/empty", tarfile.REGTYPE, data=b""),
        _entry("dir/one", tarfile.REGTYPE, data=_data(1, 1)),
        _entry("dir/b511", tarfile.REGTYPE, data=_data(511, 2), mode=0o4755),
        _entry("dir/b512", tarfile.REGTYPE, data=_data(512, 3), mode=0o600),
        _entry("dir/b513", tarfile.REGTYPE, data=_data(513, 4), uid=0, gid=0),
        _entry("dir/big", tarfile.REGTYPE, data=_data(MIB + 7, 5), mtime=1),
        _entry(LONG_NAME, tarfile.REGTYPE, data=_data(700, 6)),
        _entry("dir/symlink", tarfile.SYMTYPE, linkname="b511", mode=0o777),
        _entry("dir/hardlink", tarfile.LNKTYPE, linkname="dir/b512"),
        _entry("dir/fifo", tarfile.FIFOTYPE),
        _entry("dir/chr", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        _entry("dir/blk", tarfile.BLKTYPE, devmajor=8, devminor=17, mode=0o660),
        _entry("dir/.wh.gone", tarfile.CHRTYPE, devmajor=0, devminor=0, mode=0),
        _entry("dir/after", tarfile.REGTYPE, data=_data(1000, 7)),
        _entry("nonascii-żółw-日本", tarfile.REGTYPE, data=_data(3, 8)),
        _entry("dir/emptydir/", tarfile.DIRTYPE, mode=0o700),
    ]
    if format_ != tarfile.USTAR_FORMAT:  # USTAR cannot hold these
        entries += [
            _entry(LONGER_NAME, tarfile.REGTYPE, data=_data(1025, 9)),
            _entry(LONGER_NAME + "-dir", tarfile.DIRTYPE, mode=0o755),
            _entry("dir/longsymlink", tarfile.SYMTYPE, linkname=LONG_TARGET, mode=0o777),
            _entry("dir/longhardlink", tarfile.LNKTYPE, linkname=LONGER_NAME),
            _entry("dir/bigids", tarfile.REGTYPE, data=_data(10, 10), uid=2097152, gid=4_000_000_000),
        ]
    if format_ == tarfile.PAX_FORMAT:
        entries += [
            _entry(
                "dir/xattrs",
                tarfile.REGTYPE,
                data=_data(20, 11),
                pax_headers={"SCHILY.xattr.user.x": "value", "SCHILY.xattr.security.capability": "\x01\x02"},
            ),
            _entry("dir/xattrdir", tarfile.DIRTYPE, mode=0o755, pax_headers={"SCHILY.xattr.user.y": "ÿ"}),
            _entry("dir/mtimefloat", tarfile.REGTYPE, data=b"f", pax_headers={"mtime": "1700000000.25"}),
            _entry("dir/hugeuid", tarfile.REGTYPE, data=b"u", uid=10**12, gid=2**40, uname="ü" * 40),
        ]
    entries.append(_entry("last", tarfile.REGTYPE, data=_data(100, 12)))
    return entries


def _archive(format_: int, pax_headers: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=format_, encoding="utf-8", pax_headers=pax_headers) as tar:
        for info, data in _members(format_):
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _without_end(archive: bytes) -> bytes:
    """The archive cut right after the last member's padding: no zero blocks."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        last = tar.getmembers()[-1]
        end = last.offset_data + -(-last.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    assert archive[end:].count(0) == len(archive) - end
    return archive[:end]


FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}


def _corpus() -> dict[str, bytes]:
    corpus = {name: _archive(format_) for name, format_ in FORMATS.items()}
    corpus["pax-global"] = _archive(
        tarfile.PAX_FORMAT, pax_headers={"comment": "global", "SCHILY.xattr.user.g": "1", "uname": "globaluser"}
    )
    for name in ("ustar", "gnu", "pax"):
        corpus[f"{name}-trailing-garbage"] = corpus[name] + b"garbage after the end \xff" * 100
        corpus[f"{name}-no-end"] = _without_end(corpus[name])
    corpus["only-end-blocks"] = bytes(1024)
    return corpus


CORPUS = _corpus()


# ---------------------------------------------------------------- helpers


def _inflow(chunks: list[bytes], *, gzip_: bool = False) -> _Inflow:
    queued: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    for chunk in chunks:
        queued.put(chunk)
    queued.put(None)
    return _Inflow(queued, gzip_)


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[at : at + size] for at in range(0, len(data), size)]


ATTRIBUTES = (
    "name", "type", "size", "mode", "uid", "gid", "mtime", "linkname",
    "uname", "gname", "devmajor", "devminor", "pax_headers", "offset", "offset_data",
)  # fmt: skip


def _attributes(member: tarfile.TarInfo) -> dict[str, Any]:
    return {name: getattr(member, name) for name in ATTRIBUTES}


def _skips(index: int, member: tarfile.TarInfo) -> bool:
    """Whose data goes unread (the reader must skip it itself): every third."""
    return index % 3 == 1


def _read_all(data: Any, piece: int = 1000) -> bytes:
    parts = []
    while chunk := data.read(piece):
        assert len(chunk) <= piece
        parts.append(chunk)
    return b"".join(parts)


def _oracle(archive: bytes) -> list[tuple[dict[str, Any], bytes | None]]:
    """What tarfile's stream mode makes of ``archive``: the same reading pattern."""
    out: list[tuple[dict[str, Any], bytes | None]] = []
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
        for index, member in enumerate(tar):
            data = None
            if member.isreg() and not _skips(index, member):
                data = _read_all(tar.extractfile(member))
            out.append((_attributes(member), data))
    return out


def _streamed(inflow: _Inflow) -> list[tuple[dict[str, Any], bytes | None]]:
    stream = _TarStream(inflow)
    out: list[tuple[dict[str, Any], bytes | None]] = []
    for index, member in enumerate(stream):
        data = None
        if member.isreg() and not _skips(index, member):
            data = _read_all(stream.extractfile(member))
        out.append((_attributes(member), data))
    return out


def _bounded(work: Callable[[], Any]) -> Any:
    """``work()`` in a thread, failing the test if it has not returned in TIMEOUT."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive(), "the tar reader hangs"
    if failure:
        raise failure[0]
    return result[0]


# ---------------------------------------------------------------- _TarStream vs tarfile


def test_corpus_has_what_it_claims() -> None:
    """The corpus itself: the headers the comparison is meant to cover are there."""
    gnu, pax = CORPUS["gnu"], CORPUS["pax"]
    assert b"././@LongLink" in gnu and tarfile.GNUTYPE_LONGNAME in gnu and tarfile.GNUTYPE_LONGLINK in gnu
    assert b"SCHILY.xattr.user.x=value" in pax and b" path=" in pax and b" linkpath=" in pax
    assert b" uid=2097152" in pax and b"g" == CORPUS["pax-global"][156:157]  # a global header first
    members = _oracle(pax)
    types = {m["type"] for m, _ in members}
    assert {tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
            tarfile.CHRTYPE, tarfile.BLKTYPE} <= types  # fmt: skip
    assert {m["size"] for m, _ in members} >= {0, 1, 511, 512, 513, MIB + 7}
    assert any(len(m["name"]) > 255 for m, _ in members)
    assert not CORPUS["gnu-no-end"].endswith(bytes(512))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("name", sorted(CORPUS))
def test_members_and_data_match_tarfile(name: str, chunk_size: int) -> None:
    archive = CORPUS[name]
    expected = _oracle(archive)
    inflow = _inflow(_chunked(archive, chunk_size))

    def read() -> list[tuple[dict[str, Any], bytes | None]]:
        got = _streamed(inflow)
        inflow.drain()
        return got

    got = _bounded(read)
    assert [m for m, _ in got] == [m for m, _ in expected]
    for (member, data), (_, want) in zip(got, expected):
        assert data == want, member["name"]
    assert inflow.ended
    assert inflow.hasher.hexdigest() == hashlib.sha256(archive).hexdigest()


@pytest.mark.parametrize("chunk_size", [1, 4093, MIB + 1])
@pytest.mark.parametrize("name", ["gnu", "pax-global", "ustar-trailing-garbage", "pax-no-end"])
def test_gzip_input_matches_tarfile_and_hashes_the_tar(name: str, chunk_size: int) -> None:
    archive = CORPUS[name]
    compressed = gzip.compress(archive, mtime=0)
    inflow = _inflow(_chunked(compressed, chunk_size), gzip_=True)

    def read() -> list[tuple[dict[str, Any], bytes | None]]:
        got = _streamed(inflow)
        inflow.drain()
        return got

    assert _bounded(read) == _oracle(archive)
    assert inflow.hasher.hexdigest() == hashlib.sha256(archive).hexdigest()


def test_gzip_of_several_members_is_one_stream() -> None:
    """gzip allows members one after the other (pigz, concatenated blobs)."""
    archive = CORPUS["pax"]
    half = len(archive) // 2 + 3
    compressed = gzip.compress(archive[:half], mtime=0) + gzip.compress(archive[half:], mtime=0)
    inflow = _inflow(_chunked(compressed, 4093), gzip_=True)
    got = _bounded(lambda: (_streamed(inflow), inflow.drain())[0])
    assert got == _oracle(archive)
    assert inflow.hasher.hexdigest() == hashlib.sha256(archive).hexdigest()


@pytest.mark.parametrize("chunk_size", [1, 7, 4093])
def test_data_read_in_odd_pieces_and_whole_chunks(chunk_size: int) -> None:
    """Any read size: short reads add up to the data, b"" only at its end."""
    archive = CORPUS["gnu"]
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|") as tar:
        want = {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]
    stream = _TarStream(_inflow(_chunked(archive, chunk_size)))
    for index, member in enumerate(stream):
        if member.isreg():
            data = stream.extractfile(member)
            parts = []
            piece = (1, 3, 512, 513, 65536, -1)[index % 6]
            while chunk := data.read(piece):
                parts.append(chunk)
            assert data.read(piece) == b""  # stays at its end
            assert b"".join(parts) == want[member.name]


def test_data_read_of_zero_bytes_is_empty_like_tarfile() -> None:
    """tarfile's extractfile(m).read(0) is b"" and reads nothing, whatever is left."""
    archive = CORPUS["ustar"]
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|") as tar:
        for member in tar:
            if member.isreg() and member.size:
                assert tar.extractfile(member).read(0) == b""  # type: ignore[union-attr]
                break
    stream = _TarStream(_inflow(_chunked(archive, 4093)))
    for member in stream:
        if member.isreg() and member.size:
            data = stream.extractfile(member)
            assert _bounded(lambda: data.read(0)) == b""
            assert _read_all(data) == _data(1, 1)
            break


def test_empty_stream_is_an_empty_layer() -> None:
    """No bytes at all: tarfile's stream mode says "empty file", but the layer
    reader follows containerd's (Go's archive/tar reports the end of the
    archive at once, and containerd applies an empty layer): no members."""
    with pytest.raises(tarfile.ReadError):
        tarfile.open(fileobj=io.BytesIO(b""), mode="r|")
    assert _bounded(lambda: list(_TarStream(_inflow([])))) == []


def test_garbage_first_header_is_an_error() -> None:
    garbage = b"this is not a tar header" * 50
    with pytest.raises(tarfile.ReadError):
        tarfile.open(fileobj=io.BytesIO(garbage), mode="r|")
    with pytest.raises(tarfile.ReadError):
        _bounded(lambda: list(_TarStream(_inflow(_chunked(garbage, 7)))))


@pytest.mark.parametrize("name", ["ustar", "gnu", "pax"])
def test_garbage_instead_of_the_end_blocks_is_an_error(name: str) -> None:
    """Garbage where the next header would be (no end blocks before it): tarfile's
    stream mode stops there quietly, but containerd's reader (Go's archive/tar)
    fails with "invalid tar header", and so does this one, after the same
    members: a stage that fails leaves the layer to containerd, which refuses it."""
    archive = _without_end(CORPUS[name]) + b"garbage, no end blocks \xff" * 40
    expected = _oracle(archive)
    stream = _TarStream(_inflow(_chunked(archive, 4093)))
    seen: list[tuple[dict[str, Any], bytes | None]] = []

    def walk() -> None:
        for index, member in enumerate(stream):
            data = None
            if member.isreg() and not _skips(index, member):
                data = _read_all(stream.extractfile(member))
            seen.append((_attributes(member), data))

    with pytest.raises(tarfile.ReadError, match="invalid header"):
        _bounded(walk)
    assert seen == expected


# ---------------------------------------------------------------- truncated archives


def _truncation_points(archive: bytes) -> dict[str, int]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = tar.getmembers()
    big = next(m for m in members if m.size == MIB + 7)
    last = members[-1]
    extended = next((m for m in members if m.name == LONGER_NAME), None)
    return {
        "in-big-data": big.offset_data + 300_001,
        "in-last-data": last.offset_data + 50,
        "in-header": last.offset + 100,
        # In the GNU longname / PAX records before a header (USTAR has none: its header).
        "in-extended-header": extended.offset + 700 if extended else big.offset + 100,
        "on-header-boundary": last.offset,  # cut exactly before a header: no end blocks
    }


def _stream_until_failure(inflow: _Inflow) -> tuple[list[tuple[str, bytes | None]], BaseException | None]:
    """Members and data read (all data, even partial) until it ends or fails."""
    stream = _TarStream(inflow)
    got: list[tuple[str, bytes | None]] = []
    try:
        for member in stream:
            got.append((member.name, None))
            if member.isreg():
                data = stream.extractfile(member)
                parts: list[bytes] = []
                try:
                    while chunk := data.read(1000):
                        parts.append(chunk)
                finally:
                    got[-1] = (member.name, b"".join(parts))
    except tarfile.ReadError as exc:
        return got, exc
    return got, None


@pytest.mark.parametrize("chunk_size", [7, 4093])
@pytest.mark.parametrize("point", ["in-big-data", "in-last-data", "in-header", "in-extended-header", "on-header-boundary"])
@pytest.mark.parametrize("name", ["ustar", "gnu", "pax"])
def test_truncated_archive(name: str, point: str, chunk_size: int) -> None:
    """What a cut archive does. Observed and asserted:

    * cut in a member's data: reading that member's data raises
      ``tarfile.ReadError("unexpected end of data")`` after handing over
      exactly the bytes before the cut (tarfile's stream mode raises too);
    * cut in the middle of a header block: _TarStream raises
      ``tarfile.ReadError`` ("truncated header") when it reaches it, whereas
      tarfile's stream mode just ends the iteration there (TruncatedHeaderError
      past offset 0 is swallowed). A layer must not pass for whole, so the
      error is the behaviour wanted; the members before it are the same;
    * cut in a GNU longname / PAX record block: both raise ``tarfile.ReadError``
      ("empty header", from the header expected after the records);
    * cut exactly on a header boundary: both end quietly (a tar with no end
      blocks is a tar), so only the diff ID can tell.
    Never a hang, never a byte past the cut.
    """
    archive = CORPUS[name]
    cut = _truncation_points(archive)[point]
    truncated = archive[:cut]
    inflow = _inflow(_chunked(truncated, chunk_size))
    got, failure = _bounded(lambda: _stream_until_failure(inflow))

    # Nothing handed over comes from past the cut: every byte of data is the
    # archive's own at the member's offset, and within the cut.
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        whole = {m.name: m for m in tar.getmembers()}
    for member_name, data in got:
        member = whole[member_name]
        if data is not None:
            assert member.offset_data + len(data) <= cut
            assert data == archive[member.offset_data : member.offset_data + len(data)]
    assert len(got) <= len(whole)

    # What tarfile's stream mode gives up to the cut, read the same way.
    oracle: list[tuple[str, bytes | None]] = []
    oracle_failure: BaseException | None = None
    try:
        with tarfile.open(fileobj=io.BytesIO(truncated), mode="r|") as tar:
            for member in tar:
                oracle.append((member.name, None))
                if member.isreg():
                    oracle[-1] = (member.name, tar.extractfile(member).read())  # type: ignore[union-attr]
    except tarfile.ReadError as exc:
        oracle_failure = exc

    if point in ("in-big-data", "in-last-data"):
        assert isinstance(failure, tarfile.ReadError) and isinstance(oracle_failure, tarfile.ReadError)
        # tarfile's read() raises before returning the partial member; ours hands it over as it comes.
        assert [n for n, _ in got] == [n for n, _ in oracle]
        assert got[:-1] == oracle[:-1]
        assert got[-1][1] == archive[whole[got[-1][0]].offset_data : cut]
    elif point == "on-header-boundary":
        assert failure is None and oracle_failure is None
        assert got == oracle
    else:  # in a header
        assert isinstance(failure, tarfile.ReadError), "a cut header must not pass for the archive's end"
        assert got == oracle  # the same members (and data) before the cut
        if point == "in-extended-header" and name != "ustar":
            # Cut in a GNU longname / PAX record block: tarfile raises too ("empty header").
            assert isinstance(oracle_failure, tarfile.ReadError)
        else:
            # Cut in a plain header block: tarfile's stream mode ends quietly, ours raises.
            assert oracle_failure is None
    inflow.drain()
    assert inflow.hasher.hexdigest() == hashlib.sha256(truncated).hexdigest()


def test_truncated_gzip_fails_at_the_end() -> None:
    """A compressed stream cut short: EOFError from the inflow, never a hang."""
    compressed = gzip.compress(CORPUS["gnu"], mtime=0)
    inflow = _inflow(_chunked(compressed[: len(compressed) // 2], 4093), gzip_=True)
    with pytest.raises((EOFError, tarfile.ReadError)):
        _bounded(lambda: (_streamed(inflow), inflow.drain()))


# ---------------------------------------------------------------- sparse members


def _checksum(header: bytearray) -> None:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)


def _gnu_sparse_archive() -> bytes:
    """A GNU 'S' member by hand (tarfile reads but does not write them): a
    10000-byte file of which two 512-byte pieces are stored."""
    info = tarfile.TarInfo("sparse")
    info.size = 1024
    info.mtime = 1_700_000_000
    header = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    header[156:157] = tarfile.GNUTYPE_SPARSE
    for index, (offset, numbytes) in enumerate([(0, 512), (8192, 512)]):
        at = 386 + index * 24
        header[at : at + 12] = b"%011o\0" % offset
        header[at + 12 : at + 24] = b"%011o\0" % numbytes
    header[482:483] = b"\0"  # isextended
    header[483:495] = b"%011o\0" % 10000  # realsize
    _checksum(header)
    before, _ = _entry("before", tarfile.REGTYPE, data=b"b" * 10)
    after, _ = _entry("after", tarfile.REGTYPE, data=b"a" * 10)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(before, io.BytesIO(b"b" * 10))
        out.write(bytes(header) + _data(1024, 13))
        tar.offset = out.tell()
        tar.addfile(after, io.BytesIO(b"a" * 10))
    return out.getvalue()


def _pax_sparse_archive() -> bytes:
    """A PAX member with GNU sparse 0.1 records."""
    out = io.BytesIO()
    info, data = _entry(
        "paxsparse", tarfile.REGTYPE, data=b"s" * 5,
        pax_headers={"GNU.sparse.size": "100", "GNU.sparse.numblocks": "1", "GNU.sparse.map": "10,5"},
    )  # fmt: skip
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("make", [_gnu_sparse_archive, _pax_sparse_archive])
def test_sparse_member_is_a_read_error(make: Callable[[], bytes]) -> None:
    archive = make()
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r|") as tar:
        assert any(m.issparse() for m in tar)  # a sparse member, as tarfile sees it
    stream = _TarStream(_inflow(_chunked(archive, 7)))
    seen: list[str] = []

    def read() -> None:
        for member in stream:
            seen.append(member.name)

    with pytest.raises(tarfile.ReadError, match="sparse"):
        _bounded(read)
    assert "sparse" not in seen and "paxsparse" not in seen and "after" not in seen
