"""json-file encoding and decoding, tail/since/until selection: byte-exact, no I/O.

The oracle for the encoder is a slow, byte-at-a-time model of moby's copier
(16 KiB buffer, 2 KiB reads) and of ffjsonWriteJSONBytesAsString (Go's
utf8.DecodeRune rules), written here from their documented behaviour; the
fast encoder must agree with it on every input and every chunking.
"""

from __future__ import annotations

import json
import random

import pytest

from dockyard.engine.logs import (
    PARTIAL_SIZE,
    JsonLogEncoder,
    LogEntry,
    LogFormatError,
    LogsOptions,
    Selection,
    decode_entry,
    escape_log,
    format_time,
    format_time_fixed,
    parse_time,
    render,
    tail_offset,
)
from dockyard.wire.stdcopy import STDERR, STDOUT

T0 = 1_704_164_645_123_456_789  # 2024-01-02T03:04:05.123456789Z
T0_TEXT = b"2024-01-02T03:04:05.123456789Z"


# --- the oracle ---------------------------------------------------------------

def _go_decode_rune(s: bytes, i: int) -> tuple[bool, int]:
    """(valid, size) as Go's utf8.DecodeRune: an invalid sequence consumes one byte."""
    b0 = s[i]
    if b0 < 0x80:
        return True, 1
    if 0xC2 <= b0 <= 0xDF:
        need, lo, hi = 1, 0x80, 0xBF
    elif b0 == 0xE0:
        need, lo, hi = 2, 0xA0, 0xBF
    elif b0 == 0xED:
        need, lo, hi = 2, 0x80, 0x9F
    elif 0xE1 <= b0 <= 0xEF:
        need, lo, hi = 2, 0x80, 0xBF
    elif b0 == 0xF0:
        need, lo, hi = 3, 0x90, 0xBF
    elif 0xF1 <= b0 <= 0xF3:
        need, lo, hi = 3, 0x80, 0xBF
    elif b0 == 0xF4:
        need, lo, hi = 3, 0x80, 0x8F
    else:
        return False, 1
    if i + need >= len(s):
        return False, 1
    if not lo <= s[i + 1] <= hi:
        return False, 1
    for k in range(2, need + 1):
        if not 0x80 <= s[i + k] <= 0xBF:
            return False, 1
    return True, need + 1


def oracle_escape(s: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        b = s[i]
        if b < 0x80:
            if b >= 0x20 and b not in b'\\"<>&':
                out.append(b)
            elif b in b'\\"':
                out += b"\\" + bytes((b,))
            elif b == 0x0A:
                out += b"\\n"
            elif b == 0x0D:
                out += b"\\r"
            else:
                out += b"\\u00%02x" % b
            i += 1
            continue
        valid, size = _go_decode_rune(s, i)
        if not valid:
            out += b"\\ufffd"
        elif s[i:i + size] in (b"\xe2\x80\xa8", b"\xe2\x80\xa9"):
            out += b"\\u202" + b"89"[s[i + 2] - 0xA8:s[i + 2] - 0xA7]
        else:
            out += s[i:i + size]
        i += size
    return bytes(out)


def oracle_copier(chunks: list[bytes], stream: str, stamp: bytes) -> bytes:
    """moby's copier + jsonfilelog marshalling, one constant time for every entry."""
    source = b"".join(chunks)
    buf = bytearray()
    out = bytearray()
    pos = 0

    def entry(line: bytes, newline: bool) -> None:
        out.extend(b'{"log":"' + oracle_escape(line + (b"\n" if newline else b"")) + b'","stream":"'
                   + stream.encode() + b'","time":"' + stamp + b'"}\n')

    eof = False
    while True:
        upto = min(len(buf) + 2048, PARTIAL_SIZE)
        if upto > len(buf):
            piece = source[pos:pos + upto - len(buf)]
            pos += len(piece)
            eof = not piece
            buf += piece
        if not buf and eof:
            break
        p = 0
        while (q := buf.find(b"\n", p)) >= 0:
            entry(bytes(buf[p:q]), True)
            p = q + 1
        if eof or (p == 0 and len(buf) == PARTIAL_SIZE):
            if p < len(buf):
                entry(bytes(buf[p:]), False)
                p = len(buf)
            if eof:
                break
        del buf[:p]
    return bytes(out)


def encode_all(chunks: list[bytes], stream: int = STDOUT, now: int = T0) -> bytes:
    encoder = JsonLogEncoder(stream)
    return b"".join(encoder.feed(c, now) for c in chunks) + encoder.flush(now)


# --- escaping -------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "escaped"), [
    (b"plain text", b"plain text"),
    (b'q"b\\', b'q\\"b\\\\'),
    (b"<a href='x'>&amp;</a>", b"\\u003ca href='x'\\u003e\\u0026amp;\\u003c/a\\u003e"),
    (b"tab\there\r\n", b"tab\\u0009here\\r\\n"),
    (b"\x00\x01\x1b[0m\x7f", b"\\u0000\\u0001\\u001b[0m\x7f"),
    ("héllo €𝄞".encode(), "héllo €𝄞".encode()),
    (b"bad\xffbyte", b"bad\\ufffdbyte"),
    (b"\xe2\x80a", b"\\ufffd\\ufffda"),           # truncated 3-byte sequence: one per byte
    (b"\xed\xa0\x80", b"\\ufffd\\ufffd\\ufffd"),    # UTF-8 encoded surrogate
    (b"\xc0\xaf", b"\\ufffd\\ufffd"),               # overlong
    (b"\xf4\x90\x80\x80", b"\\ufffd" * 4),          # above U+10FFFF
    ("a\u2028b\u2029c".encode(), b"a\\u2028b\\u2029c"),
    (b"\\\xff<", b"\\\\\\ufffd\\u003c"),
])
def test_escape_log(raw: bytes, escaped: bytes) -> None:
    assert escape_log(raw) == escaped
    assert oracle_escape(raw) == escaped


def test_escape_matches_oracle_on_random_bytes() -> None:
    rng = random.Random(7)
    alphabet = b"ab\n\r\t\"\\<>&\x00\x7f" + "é€𝄞\u2028".encode() + bytes([0xff, 0xc3, 0xe2, 0x80, 0xa8, 0xf0, 0x9d])
    for _ in range(2000):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        assert escape_log(raw) == oracle_escape(raw), raw


# --- entries ----------------------------------------------------------------------

def test_lines_byte_exact() -> None:
    assert encode_all([b"out\nsecond line\n"]) == (
        b'{"log":"out\\n","stream":"stdout","time":"' + T0_TEXT + b'"}\n'
        b'{"log":"second line\\n","stream":"stdout","time":"' + T0_TEXT + b'"}\n'
    )
    assert encode_all([b"err\n"], STDERR) == b'{"log":"err\\n","stream":"stderr","time":"' + T0_TEXT + b'"}\n'


def test_line_waits_for_newline_and_eof_leftover_is_partial() -> None:
    encoder = JsonLogEncoder(STDOUT)
    assert encoder.feed(b"no newline", T0) == b""
    assert encoder.feed(b" yet", T0 + 1) == b""
    assert encoder.flush(T0 + 2) == b'{"log":"no newline yet","stream":"stdout","time":"2024-01-02T03:04:05.123456791Z"}\n'
    assert encoder.flush(T0 + 3) == b""


def test_empty_lines() -> None:
    assert encode_all([b"\n\n"]) == (b'{"log":"\\n","stream":"stdout","time":"' + T0_TEXT + b'"}\n') * 2


def test_long_line_is_cut_into_partials_sharing_the_first_time() -> None:
    encoder = JsonLogEncoder(STDOUT)
    first = encoder.feed(b"x" * (PARTIAL_SIZE + 5), T0)
    assert first == b'{"log":"' + b"x" * PARTIAL_SIZE + b'","stream":"stdout","time":"' + T0_TEXT + b'"}\n'
    later = encoder.feed(b"yz\nnext\n", T0 + 999)
    assert later == (
        b'{"log":"xxxxxyz\\n","stream":"stdout","time":"' + T0_TEXT + b'"}\n'
        b'{"log":"next\\n","stream":"stdout","time":"2024-01-02T03:04:05.123457788Z"}\n'
    )


def test_line_of_exactly_partial_size_ends_with_a_bare_newline_entry() -> None:
    out = encode_all([b"a" * PARTIAL_SIZE + b"\n"]).splitlines()
    assert [json.loads(line)["log"] for line in out] == ["a" * PARTIAL_SIZE, "\n"]


@pytest.mark.parametrize("seed", range(16))
def test_encoder_matches_copier_oracle(seed: int) -> None:
    rng = random.Random(seed)
    parts = []
    for _ in range(rng.randrange(1, 60)):
        kind = rng.random()
        if kind < 0.5:
            parts.append(b"line %d\n" % rng.randrange(10**6))
        elif kind < 0.7:
            parts.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        elif kind < 0.85:
            parts.append(b"L" * rng.choice([PARTIAL_SIZE - 1, PARTIAL_SIZE, PARTIAL_SIZE + 1,
                                             2 * PARTIAL_SIZE, 3 * PARTIAL_SIZE + 7]) + b"\n")
        else:
            parts.append("ünï<&>\u2028\t".encode() * rng.randrange(1, 50) + b"\n")
    data = b"".join(parts)
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(0, 30))))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    assert encode_all(chunks) == oracle_copier(chunks, "stdout", T0_TEXT)


def test_time_formats() -> None:
    assert format_time(T0) == "2024-01-02T03:04:05.123456789Z"
    assert format_time(1_704_164_645_120_000_000) == "2024-01-02T03:04:05.12Z"
    assert format_time(1_704_164_645_000_000_000) == "2024-01-02T03:04:05Z"
    assert format_time_fixed(1_704_164_645_120_000_000) == "2024-01-02T03:04:05.120000000Z"
    assert format_time_fixed(1_704_164_645_000_000_000) == "2024-01-02T03:04:05.000000000Z"


@pytest.mark.parametrize(("text", "ns"), [
    ("2024-01-02T03:04:05.123456789Z", T0),
    ("2024-01-02T03:04:05.12Z", 1_704_164_645_120_000_000),
    ("2024-01-02T03:04:05Z", 1_704_164_645_000_000_000),
    ("2024-01-02T04:04:05.123456789+01:00", T0),
])
def test_parse_time(text: str, ns: int) -> None:
    assert parse_time(text) == ns


# --- decoding ---------------------------------------------------------------------

def test_decode_round_trip() -> None:
    raw = b"a\t<b> \xff \xe2\x80\xa8 \"q\"\n"
    line = encode_all([raw], STDERR)
    assert decode_entry(line) == LogEntry(stream=STDERR, data="a\t<b> \ufffd \u2028 \"q\"\n".encode(), time_ns=T0)


def test_decode_dockerd_line() -> None:
    line = b'{"log":"hi \\u003cthere\\u003e\\n","stream":"stdout","time":"2023-05-06T07:08:09.5Z"}\n'
    assert decode_entry(line) == LogEntry(stream=STDOUT, data=b"hi <there>\n", time_ns=1_683_356_889_500_000_000)


def test_decode_rejects_garbage() -> None:
    with pytest.raises(LogFormatError):
        decode_entry(b"not json\n")
    with pytest.raises(LogFormatError):
        decode_entry(b'{"log":"x"}\n')


def test_render_timestamps_prefix_each_entry() -> None:
    entry = LogEntry(stream=STDOUT, data=b"x\n", time_ns=1_704_164_645_100_000_000)
    assert render(entry, timestamps=True) == (STDOUT, b"2024-01-02T03:04:05.100000000Z x\n")
    assert render(entry, timestamps=False) == (STDOUT, b"x\n")


# --- tail, since, until -------------------------------------------------------------

def _reader(data: bytes):
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, size: int) -> bytes:
        reads.append((offset, size))
        return data[offset:offset + size]
    return read_at, reads


def test_tail_offset() -> None:
    data = b"".join(b"entry %d\n" % i for i in range(10))
    read_at, _ = _reader(data)
    assert data[tail_offset(read_at, len(data), 3):] == b"entry 7\nentry 8\nentry 9\n"
    assert tail_offset(read_at, len(data), 10) == 0
    assert tail_offset(read_at, len(data), 50) == 0
    assert tail_offset(read_at, len(data), 0) == len(data)
    assert data[tail_offset(read_at, len(data), 1, block=3):] == b"entry 9\n"
    assert data[tail_offset(read_at, len(data), 4, block=5):] == b"entry 6\nentry 7\nentry 8\nentry 9\n"
    assert tail_offset(read_at, 0, 5) == 0


def test_tail_reads_only_the_end() -> None:
    data = b"x" * 10_000_000 + b"".join(b"%d\n" % i for i in range(100))
    read_at, reads = _reader(data)
    assert data[tail_offset(read_at, len(data), 2):] == b"98\n99\n"
    assert sum(size for _, size in reads) <= 65536


def _entries(*spec: tuple[int, int]) -> list[LogEntry]:
    return [LogEntry(stream=s, data=b"%d" % t, time_ns=t) for s, t in spec]


def test_selection_since_until_streams() -> None:
    entries = _entries((STDOUT, 1), (STDERR, 2), (STDOUT, 3), (STDERR, 4), (STDOUT, 5), (STDOUT, 3))
    pick = Selection(LogsOptions(since_ns=2, until_ns=4))
    assert [e.time_ns for e in entries if pick.accept(e.stream, e.time_ns)] == [2, 3, 4]
    assert pick.done
    pick = Selection(LogsOptions(stderr=False))
    assert [e.time_ns for e in entries if pick.accept(e.stream, e.time_ns)] == [1, 3, 5, 3]
    pick = Selection(LogsOptions(stdout=False, since_ns=3))
    assert [e.time_ns for e in entries if pick.accept(e.stream, e.time_ns)] == [4]
