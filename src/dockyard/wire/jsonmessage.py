"""Docker's JSON message stream: pull, push, load, import and build progress.

Each message is one compact JSON object followed by ``\\r\\n``, fields in the
order and with the ``omitempty`` rules of moby's ``jsonmessage.JSONMessage``
(API 1.50 / moby v28)::

    stream, status, progressDetail, progress, id, from, time, timeNano,
    errorDetail, error, aux

Strings are escaped as Go's ``encoding/json`` does: ``<``, ``>``, ``&``,
U+2028 and U+2029 become ``\\u003c`` etc., other non-ASCII is sent as UTF-8.

The ``progress`` text is rendered server-side, as dockerd does, for a
200-column "terminal" (dockerd's stdin is not a tty) and without the
time-left estimate (dockerd never sets ``start``), e.g.
``[==========>                                        ]  1.049MB/4.846MB``.

Pure: no I/O, no clocks. Errors::

    MessageError (ValueError)   :func:`iter_messages` got bytes that are not a message stream
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MessageError",
    "ProgressDetail",
    "aux",
    "encode",
    "error",
    "human_size",
    "iter_messages",
    "progress",
    "progress_bar",
    "status",
    "stream",
]

NEWLINE = b"\r\n"
# dockerd asks the terminal on its fd 0 for a width and falls back to this.
_DAEMON_WIDTH = 200
_BAR_WIDTH = 50
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


class MessageError(ValueError):
    """A line of the stream is not a JSON object."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgressDetail:
    """``progressDetail``: moby's ``JSONProgress``; zero fields are omitted."""

    current: int = 0
    total: int = 0
    start: int = 0
    hide_counts: bool = False
    units: str = ""

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        if self.current:
            obj["current"] = self.current
        if self.total:
            obj["total"] = self.total
        if self.start:
            obj["start"] = self.start
        if self.hide_counts:
            obj["hidecounts"] = True
        if self.units:
            obj["units"] = self.units
        return obj


def _go_json(value: Any) -> str:
    """Compact JSON escaped the way Go's ``json.Marshal`` escapes it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # Go escapes these for safe embedding in HTML and JavaScript; clients see them.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def encode(obj: Mapping[str, Any]) -> bytes:
    """One message: ``obj`` in its own key order, Go-escaped, then ``\\r\\n``.

    Go sorts the keys of a map but keeps a struct's field order; callers
    building an ``aux`` payload give the keys in the order dockerd would.
    """
    # Go replaces invalid UTF-8 (here: lone surrogates) with U+FFFD.
    text = _LONE_SURROGATE.sub("\ufffd", _go_json(dict(obj)))
    return text.encode("utf-8") + NEWLINE


def status(
    status: str,
    *,
    id: str | None = None,  # noqa: A002 - Docker's field name
    progress: str | None = None,
    progress_detail: ProgressDetail | None = None,
) -> bytes:
    """A status line, as ``FormatStatus`` (or a hand-built progress message).

    Empty strings are omitted like Go's ``omitempty``; ``progress_detail``,
    when given, is always sent, even as ``{}``.
    """
    obj: dict[str, Any] = {}
    if status:
        obj["status"] = status
    if progress_detail is not None:
        obj["progressDetail"] = progress_detail.to_json()
    if progress:
        obj["progress"] = progress
    if id:
        obj["id"] = id
    return encode(obj)


def progress(
    action: str,
    *,
    id: str | None = None,  # noqa: A002 - Docker's field name
    detail: ProgressDetail | None = None,
    aux: Any = None,
) -> bytes:
    """A progress update exactly as dockerd's ``formatProgress`` writes it.

    ``progressDetail`` is always present (``{}`` for "Pulling fs layer",
    "Waiting", "Download complete"…), ``progress`` is the rendered bar when
    it is not empty.
    """
    detail = detail if detail is not None else ProgressDetail()
    obj: dict[str, Any] = {}
    if action:
        obj["status"] = action
    obj["progressDetail"] = detail.to_json()
    text = progress_bar(
        detail.current, detail.total, units=detail.units, hide_counts=detail.hide_counts
    )
    if text:
        obj["progress"] = text
    if id:
        obj["id"] = id
    if aux is not None:
        obj["aux"] = aux
    return encode(obj)


def stream(text: str) -> bytes:
    """A ``{"stream": …}`` message (build output); empty text gives ``{}``."""
    return encode({"stream": text} if text else {})


def aux(obj: Any, *, id: str | None = None) -> bytes:  # noqa: A002
    """An out-of-band message, as ``AuxFormatter.Emit``: ``{"id":…,"aux":…}``.

    ``docker build`` needs ``aux({"ID": "sha256:…"})``; ``docker push`` gets
    ``aux({"Tag": …, "Digest": …, "Size": …})``.
    """
    message: dict[str, Any] = {}
    if id:
        message["id"] = id
    message["aux"] = obj
    return encode(message)


def error(message: str, *, code: int | None = None) -> bytes:
    """An error message, as ``FormatError``: ``errorDetail`` then the legacy ``error``."""
    detail: dict[str, Any] = {}
    if code:
        detail["code"] = code
    if message:
        detail["message"] = message
    obj: dict[str, Any] = {"errorDetail": detail}
    if message:
        obj["error"] = message
    return encode(obj)


def human_size(size: float) -> str:
    """go-units ``HumanSize``: decimal units, four significant digits (``3.408MB``)."""
    index = 0
    while size >= 1000.0 and index < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        index += 1
    return _format_g4(size) + _DECIMAL_UNITS[index]


def _format_g4(value: float) -> str:
    # Go's %.4g and C's agree, except that Go spells infinities "+Inf".
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return "%.4g" % value


def progress_bar(
    current: int, total: int, *, units: str = "", hide_counts: bool = False
) -> str:
    """``JSONProgress.String()`` as dockerd renders it (200 columns, no start time)."""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        if units == "":
            return "%8s" % human_size(float(current))
        return f"{current} {units}"
    # Go truncates the float towards zero, then integer-divides.
    percentage = _go_int_div(int(float(current) / float(total) * 100), 2)
    percentage = min(percentage, _BAR_WIDTH)
    bar = ""
    if _DAEMON_WIDTH > 110:
        spaces = max(_BAR_WIDTH - percentage, 0)
        bar = "[" + "=" * percentage + ">" + " " * spaces + "] "
    if hide_counts:
        numbers = ""
    elif units == "":
        cur = human_size(float(current))
        numbers = "%8s" % cur if current > total else "%8s/%s" % (cur, human_size(float(total)))
    else:
        numbers = f"{current} {units}" if current > total else f"{current}/{total} {units}"
    return bar + numbers


def _go_int_div(a: int, b: int) -> int:
    """Go's integer division truncates towards zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def iter_messages(data: bytes) -> Iterator[dict[str, Any]]:
    """Decode a whole message stream (for tests and clients).

    Accepts ``\\r\\n`` or ``\\n`` separators and concatenated objects, as the
    CLI's decoder does; raises :class:`MessageError` on anything else.
    """
    decoder = json.JSONDecoder()
    text = data.decode("utf-8")
    pos = 0
    length = len(text)
    while True:
        while pos < length and text[pos] in " \t\r\n":
            pos += 1
        if pos >= length:
            return
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise MessageError(f"invalid JSON message at offset {exc.pos}: {exc.msg}") from exc
        if not isinstance(obj, dict):
            raise MessageError(f"JSON message is not an object: {obj!r}")
        yield obj
