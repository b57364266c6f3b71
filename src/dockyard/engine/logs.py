"""Container logs in Docker's ``json-file`` format: the encoder, the decoder, and ``docker logs``.

The file holds one JSON object a line, exactly as dockerd writes it::

    {"log":"hello\\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}

Three layers, the first two pure (bytes and integers in, bytes and values
out; no files, no clocks -- the caller passes the time):

* :class:`JsonLogEncoder` splits one stream's raw output into entries the way
  moby's ``daemon/logger/copier.go`` does (a line per entry, a line of 16 KiB or
  more cut into partial entries that carry no newline, leftovers at EOF logged
  as a partial) and encodes them like ``jsonlog.JSONLogs.MarshalJSONBuf``
  (ffjson string escaping: ``<``, ``>``, ``&`` as ``\\u003c``…, control bytes
  other than ``\\n``/``\\r`` as ``\\u00XX`` -- so ``\\t`` is ``\\u0009``, unlike
  Go's ``encoding/json`` --, each byte of invalid UTF-8 as ``\\ufffd``, U+2028
  and U+2029 escaped; time as Go's ``time.RFC3339Nano``, trailing zeros cut).
* :func:`decode_entry`, :func:`tail_offset` and :class:`Selection` read entries
  back and apply ``tail``/``since``/``until`` as dockerd does: tail counts
  entries of both streams, ``since`` keeps entries at or after it, the first
  entry after ``until`` ends the read, and the stream filter comes last.
* :func:`read_logs` is the file adapter behind ``GET /containers/{id}/logs``.

Errors::

    LogFormatError (ValueError)   a line of the log file is not a json-file entry
"""

from __future__ import annotations

import asyncio
import calendar
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.wire.stdcopy import STDERR, STDOUT

__all__ = [
    "PARTIAL_SIZE",
    "JsonLogEncoder",
    "LogEntry",
    "LogFormatError",
    "LogSignal",
    "LogsOptions",
    "Selection",
    "decode_entry",
    "escape_log",
    "format_time",
    "format_time_fixed",
    "parse_time",
    "read_logs",
    "tail_offset",
]

# moby copier's defaultBufSize: a line that fills the buffer without a newline
# is logged as a partial entry of exactly this many bytes.
PARTIAL_SIZE = 16 * 1024

STREAM_NAMES = {STDOUT: "stdout", STDERR: "stderr"}
_STREAM_NUMBERS = {"stdout": STDOUT, "stderr": STDERR}


class LogFormatError(ValueError):
    """A line of a json-file log is not valid JSON or lacks the time."""


# --- encoding ---------------------------------------------------------------

# Bytes ffjsonWriteJSONBytesAsString copies unchanged, plus the newline, which
# the encoder handles itself as the line separator.
_PASS = bytes(b for b in range(0x20, 0x80) if b not in b'\\"<>&') + b"\n"
_HIGH = bytes(range(0x80, 0x100))
_ESCAPES = {b: b"\\u00%02x" % b for b in range(0x20)}
_ESCAPES.update({ord("\r"): b"\\r", ord('"'): b'\\"', ord("<"): b"\\u003c",
                 ord(">"): b"\\u003e", ord("&"): b"\\u0026"})
_SURROGATES = re.compile("[\udc80-\udcff]")


def _escape_body(data: bytes) -> bytes:
    """Escape ``data`` as a JSON string body, leaving ``\\n`` bytes raw.

    The common case (printable ASCII) is one C-level scan and no copy; each
    special byte present costs one ``replace`` pass, never a Python loop.
    """
    unsafe = data.translate(None, _PASS)
    if not unsafe:
        return data
    specials = unsafe.translate(None, _HIGH)
    if specials:
        # Backslash first: the other escapes introduce backslashes.
        if b"\\" in specials:
            data = data.replace(b"\\", b"\\\\")
        for byte in set(specials):
            if byte != 0x5C:
                data = data.replace(bytes((byte,)), _ESCAPES[byte])
    if len(specials) != len(unsafe):
        data = _escape_non_ascii(data)
    return data


def _escape_non_ascii(data: bytes) -> bytes:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        # surrogateescape turns every byte outside a well-formed sequence into
        # its own surrogate, which is Go's one-RuneError-per-byte rule.
        text = data.decode("utf-8", "surrogateescape")
        data = _SURROGATES.sub("\\\\ufffd", text).encode("utf-8")
    # E2 is never a continuation byte, so these sequences are always U+2028/9.
    if b"\xe2\x80\xa8" in data:
        data = data.replace(b"\xe2\x80\xa8", b"\\u2028")
    if b"\xe2\x80\xa9" in data:
        data = data.replace(b"\xe2\x80\xa9", b"\\u2029")
    return data


def escape_log(data: bytes) -> bytes:
    """Return ``data`` as Docker writes it inside the ``"log"`` string (no quotes)."""
    return _escape_body(data).replace(b"\n", b"\\n")


def format_time(ns: int) -> str:
    """Go's ``time.RFC3339Nano`` in UTC: fraction without trailing zeros, none at all if zero."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def format_time_fixed(ns: int) -> str:
    """moby's ``RFC3339NanoFixed`` (always nine digits), the ``docker logs -t`` prefix."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


class JsonLogEncoder:
    """Turns one stream's raw output into json-file lines, byte-exact with dockerd.

    :meth:`feed` each chunk read from the container with the time it was read
    (nanoseconds since the epoch) and write what it returns; call
    :meth:`flush` once at end of output. Every complete line of a chunk gets
    that chunk's time; the pieces of a line cut into partial entries all get
    the time of the first piece, as moby's copier does. A line shorter than
    :data:`PARTIAL_SIZE` waits, unlogged, for its newline or for EOF.
    """

    def __init__(self, stream: int) -> None:
        self._stream = STREAM_NAMES[stream].encode()
        self._pending = b""
        self._partial_time: bytes | None = None
        self._time_ns = -1
        self._time = b""

    def _stamp(self, now_ns: int) -> bytes:
        if now_ns != self._time_ns:
            self._time_ns = now_ns
            self._time = format_time(now_ns).encode()
        return self._time

    def _entry(self, piece: bytes, stamp: bytes, *, newline: bool) -> bytes:
        end = b'\\n","stream":"' if newline else b'","stream":"'
        return b'{"log":"' + _escape_body(piece) + end + self._stream + b'","time":"' + stamp + b'"}\n'

    def _long_line(self, content: bytes, stamp: bytes, out: list[bytes]) -> None:
        """A line already cut (or about to be) into partials: pieces, then the rest with its newline."""
        start = 0
        while len(content) - start >= PARTIAL_SIZE:
            out.append(self._entry(content[start:start + PARTIAL_SIZE], stamp, newline=False))
            start += PARTIAL_SIZE
        out.append(self._entry(content[start:], stamp, newline=True))

    def _short_lines(self, region: bytes, stamp: bytes) -> bytes:
        """Entries for ``region``: whole lines, each under PARTIAL_SIZE, the last ending in ``\\n``.

        One escape pass and one ``replace`` for the lot: every newline left in
        the escaped region is a line end, so it becomes the seam between two
        entries.
        """
        tail = b'\\n","stream":"' + self._stream + b'","time":"' + stamp + b'"}\n'
        body = _escape_body(region)
        return b'{"log":"' + body[:-1].replace(b"\n", tail + b'{"log":"') + tail

    def _lines(self, data: bytes, end: int, now_ns: int, out: list[bytes]) -> None:
        """Encode ``data[:end]``, which is whole lines (``data[end - 1]`` is a newline)."""
        pos = 0
        if self._partial_time is not None:
            newline = data.index(b"\n")
            self._long_line(data[:newline], self._partial_time, out)
            self._partial_time = None
            pos = newline + 1
        while pos < end:
            # The last newline within PARTIAL_SIZE bytes of a line start proves
            # every line up to it short; hop such windows to find a run of
            # short lines with a few C-level scans per 16 KiB.
            run = pos
            while pos < end:
                last = data.rfind(b"\n", pos, min(pos + PARTIAL_SIZE, end))
                if last < 0:
                    break
                pos = last + 1
            if pos > run:
                out.append(self._short_lines(data[run:pos], self._stamp(now_ns)))
            if pos < end:
                newline = data.index(b"\n", pos + PARTIAL_SIZE)
                self._long_line(data[pos:newline], self._stamp(now_ns), out)
                pos = newline + 1

    def feed(self, data: bytes, now_ns: int) -> bytes:
        """Return the json-file lines that ``data`` completes (possibly ``b""``)."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        out: list[bytes] = []
        last = data.rfind(b"\n")
        if last >= 0:
            self._lines(data, last + 1, now_ns, out)
            rest = data[last + 1:]
        else:
            rest = data
        if len(rest) >= PARTIAL_SIZE:
            if self._partial_time is None:
                self._partial_time = self._stamp(now_ns)
            start = 0
            while len(rest) - start >= PARTIAL_SIZE:
                out.append(self._entry(rest[start:start + PARTIAL_SIZE], self._partial_time, newline=False))
                start += PARTIAL_SIZE
            rest = rest[start:]
        self._pending = rest
        return b"".join(out)

    def flush(self, now_ns: int) -> bytes:
        """At end of output: the unterminated last line, as a partial entry (no newline)."""
        if not self._pending:
            return b""
        stamp = self._partial_time if self._partial_time is not None else self._stamp(now_ns)
        line = self._entry(self._pending, stamp, newline=False)
        self._pending = b""
        self._partial_time = None
        return line


# --- decoding and selection -------------------------------------------------

_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z")
_LONE_SURROGATES = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, kw_only=True, slots=True)
class LogEntry:
    """One json-file entry: stream number (1 stdout, 2 stderr), raw bytes, time in ns."""

    stream: int
    data: bytes
    time_ns: int


_last_second: tuple[str, int] = ("", 0)


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time as Go writes it; raises :class:`LogFormatError`."""
    global _last_second
    # Consecutive entries share their second, and ours are all UTC with
    # nine digits or fewer: a slice and a cached second, no regex.
    key = text[:19]
    if _last_second[0] == key and text[-1:] == "Z":
        rest = text[19:-1]
        if not rest:
            return _last_second[1] * 1_000_000_000
        if rest[0] == "." and 1 < len(rest) <= 10 and rest[1:].isdigit():
            return _last_second[1] * 1_000_000_000 + int(rest[1:].ljust(9, "0"))
    match = _TIME.match(text)
    if match is None:
        raise LogFormatError(f"bad time: {text!r}")
    year, month, day, hour, minute, second = map(int, match.groups()[:6])
    seconds = calendar.timegm((year, month, day, hour, minute, second))
    _last_second = (key, seconds)
    fraction, zone = match.group(7), match.group(8)
    if zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        seconds -= offset if zone[0] == "+" else -offset
    nanos = int(fraction.ljust(9, "0")) if fraction else 0
    return seconds * 1_000_000_000 + nanos


# The line as our encoder (and dockerd) writes it when the text needed no
# escaping but the final newline: no JSON parser needed.
_PLAIN = re.compile(rb'\{"log":"([^"\\]*)(\\n)?","stream":"(stdout|stderr)","time":"([^"]+)"\}\n?\Z')


def _decode(line: bytes, *, timed: bool = True) -> tuple[int, bytes, int]:
    """``(stream, data, time_ns)``; with ``timed`` False a plain line's time is not parsed (0)."""
    plain = _PLAIN.match(line)
    if plain is not None:
        text, newline, stream, stamp = plain.groups()
        return (STDOUT if stream == b"stdout" else STDERR, text + b"\n" if newline else text,
                parse_time(stamp.decode()) if timed else 0)
    try:
        obj = json.loads(line)
        text = obj.get("log", "")
        stamp = obj["time"]
        stream = _STREAM_NUMBERS.get(obj.get("stream"), STDOUT)
    except (ValueError, KeyError, AttributeError, TypeError) as exc:
        raise LogFormatError(f"bad json-file line: {line[:80]!r}") from exc
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone \\udXXX escape: Go's decoder makes it U+FFFD.
        data = _LONE_SURROGATES.sub("\ufffd", text).encode("utf-8")
    return stream, data, parse_time(stamp)


def decode_entry(line: bytes) -> LogEntry:
    """Decode one json-file line (with or without its newline).

    An entry without a known ``stream`` counts as stdout; raises
    :class:`LogFormatError`.
    """
    stream, data, time_ns = _decode(line)
    return LogEntry(stream=stream, data=data, time_ns=time_ns)


def tail_offset(read_at: Callable[[int, int], bytes], end: int, count: int, *, block: int = 65536) -> int:
    """Offset of the first of the last ``count`` entries in ``[0, end)``.

    ``read_at(offset, size)`` returns file bytes; ``end`` is just after a
    newline (the end of the last complete entry). Reads backwards a block at a
    time, so a 10-line tail of a 1 GB log reads one block. ``count <= 0``
    gives ``end``.
    """
    if count <= 0:
        return end
    # The newline ending the last entry does not start anything: skip it.
    position = end - 1
    seen = 0
    while position > 0:
        start = max(0, position - block)
        chunk = read_at(start, position - start)
        index = len(chunk)
        while True:
            index = chunk.rfind(b"\n", 0, index)
            if index < 0:
                break
            seen += 1
            if seen == count:
                return start + index + 1
        position = start
    return 0


@dataclass(frozen=True, kw_only=True, slots=True)
class LogsOptions:
    """What ``docker logs`` asked for. Times are nanoseconds since the epoch.

    ``tail`` None means all entries; ``since_ns``/``until_ns`` None mean no bound.
    """

    follow: bool = False
    since_ns: int | None = None
    until_ns: int | None = None
    tail: int | None = None
    timestamps: bool = False
    stdout: bool = True
    stderr: bool = True


class Selection:
    """dockerd's filter over entries in file order: since, until, then stream.

    :meth:`accept` says whether to show an entry; once it has seen an entry
    after ``until`` :attr:`done` is true and every later entry is refused.
    """

    def __init__(self, options: LogsOptions) -> None:
        self._since = options.since_ns
        self._until = options.until_ns
        self._streams = frozenset(s for s, on in ((STDOUT, options.stdout), (STDERR, options.stderr)) if on)
        self.done = False

    def accept(self, stream: int, time_ns: int) -> bool:
        """Whether to show an entry of ``stream`` written at ``time_ns``."""
        if self.done:
            return False
        if self._until is not None and time_ns > self._until:
            self.done = True
            return False
        if self._since is not None and time_ns < self._since:
            return False
        return stream in self._streams


def render(entry: LogEntry, *, timestamps: bool) -> tuple[int, bytes]:
    """The event ``docker logs`` shows for ``entry``: one per entry, prefixed when asked."""
    if timestamps:
        return entry.stream, format_time_fixed(entry.time_ns).encode() + b" " + entry.data
    return entry.stream, entry.data


# --- the file adapter -------------------------------------------------------

class LogSignal:
    """Tells followers of a log file that it grew, and that its writer is gone.

    The writer calls :meth:`notify` after each append and :meth:`end` after
    its last; a follower takes :meth:`changed` *before* reading to the end, then
    waits on it, so no append slips between the read and the wait.
    """

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self._ended = False

    @property
    def ended(self) -> bool:
        return self._ended

    def changed(self) -> asyncio.Event:
        return self._changed

    def notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def end(self) -> None:
        self._ended = True
        self.notify()


_READ_BLOCK = 1 << 20


async def read_logs(path: Path, options: LogsOptions, *,
                    live: LogSignal | None = None) -> AsyncIterator[tuple[int, bytes]]:
    """Yield ``(stream, data)`` events of a json-file log, one per entry.

    Reads the rotated files (``path.N`` … ``path.1``) before ``path``, in
    order. Follows only when ``options.follow`` and ``live`` (the running
    process's signal) is given and not ended; then it waits for appends until
    the writer ends or ``until`` passes, drains, and stops; a rotation while
    following is followed into the next file. A missing file is an empty
    log. Only complete lines are read: a line being written is picked up on
    the next pass. Raises :class:`LogFormatError` on a corrupt line.
    """
    segments = _open_segments(path, options.tail)
    if not segments:
        return
    try:
        selection = Selection(options)
        # Parsing times is a third of the cost of a line: only when used.
        timed = options.timestamps or options.since_ns is not None or options.until_ns is not None
        follow = options.follow and live is not None
        index = 0
        while True:
            ended = live.ended if live is not None else True
            changed = live.changed() if live is not None else None
            while True:
                fd, offset = segments[index]
                if offset > os.fstat(fd).st_size:
                    offset = 0  # truncated (max-file 1) under us: start over
                while True:
                    block = os.pread(fd, _READ_BLOCK, offset)
                    last = block.rfind(b"\n")
                    if last < 0:
                        break
                    offset += last + 1
                    segments[index] = (fd, offset)
                    stamped = options.timestamps
                    for line in block[:last].split(b"\n"):
                        stream, data, time_ns = _decode(line, timed=timed)
                        if selection.accept(stream, time_ns):
                            if stamped:
                                data = format_time_fixed(time_ns).encode() + b" " + data
                            yield stream, data
                        elif selection.done:
                            return
                if index + 1 < len(segments):
                    index += 1
                    continue
                if not follow:
                    break
                successor = _successor(path, fd)
                if successor is None:
                    break
                segments.append((successor, 0))
                index += 1
            if not follow or ended or changed is None:
                return
            timeout = None
            if options.until_ns is not None:
                timeout = (options.until_ns - time.time_ns()) / 1e9
                if timeout <= 0:
                    return
            try:
                await asyncio.wait_for(changed.wait(), timeout)
            except TimeoutError:
                return
    finally:
        for fd, _ in segments:
            os.close(fd)


def _rotated(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


def _open_segments(path: Path, tail: int | None) -> list[tuple[int, int]]:
    """Open the files to read, oldest first, each with its start offset.

    Newest first while counting the tail; the writer rotates in this thread,
    so the set of files cannot change while this runs.
    """
    segments: list[tuple[int, int]] = []
    remaining = tail
    index = 0
    try:
        while remaining is None or remaining > 0 or index == 0:
            try:
                fd = os.open(_rotated(path, index), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                if index == 0:
                    index += 1
                    continue  # rotated, live file not yet made: older files still count
                break
            start = 0
            if remaining is not None:
                end = _complete_end(fd, os.fstat(fd).st_size)
                start = tail_offset(lambda at, n: os.pread(fd, n, at), end, remaining)
                if start == 0:
                    remaining -= _count_lines(fd, end)
                else:
                    remaining = 0
            segments.append((fd, start))
            index += 1
            if remaining is not None and remaining <= 0 and start > 0:
                break
    except BaseException:
        for fd, _ in segments:
            os.close(fd)
        raise
    segments.reverse()
    return segments


def _count_lines(fd: int, end: int) -> int:
    count = 0
    offset = 0
    while offset < end:
        block = os.pread(fd, min(_READ_BLOCK, end - offset), offset)
        if not block:
            break
        count += block.count(b"\n")
        offset += len(block)
    return count


def _successor(path: Path, fd: int) -> int | None:
    """The file written after the one open as ``fd``, once it has been rotated away; None if none yet.

    The file we read is found again by inode among ``path``, ``path.1`` …;
    the next newer one is opened. If it was rotated out of the set
    altogether, reading resumes at the oldest file left (lines are lost, as
    with dockerd when a follower falls that far behind).
    """
    inode = os.fstat(fd).st_ino
    names: list[Path] = []
    index = 0
    found = -1
    while True:
        candidate = _rotated(path, index)
        try:
            st = os.stat(candidate)
        except FileNotFoundError:
            if index == 0:
                index += 1
                names.append(candidate)
                continue
            break
        if st.st_ino == inode:
            found = index
        names.append(candidate)
        index += 1
    if found == 0:
        return None
    target = found - 1 if found > 0 else len(names) - 1
    while target >= 0:
        try:
            return os.open(names[target], os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            target -= 1
    return None


def _complete_end(fd: int, size: int) -> int:
    """End of the last complete line at or before ``size``."""
    position = size
    while position > 0:
        start = max(0, position - 65536)
        chunk = os.pread(fd, position - start, start)
        last = chunk.rfind(b"\n")
        if last >= 0:
            return start + last + 1
        position = start
    return 0
