"""Times and durations the way Docker prints and parses them.

* :func:`human_duration` is go-units ``HumanDuration``, the text after
  ``Up`` / ``Exited (0)`` in ``docker ps`` (``About a minute``, ``3 hours``).
* :func:`format_time` is Go's ``time.RFC3339Nano`` in UTC, as dockerd writes
  ``Created``, ``StartedAt``… (trailing zeros of the fraction trimmed, no
  fraction at all when it is zero); :data:`ZERO_TIME` is Go's zero time.
* :func:`parse_timestamps` is moby's ``ParseTimestamps``: what the logs and
  events endpoints accept for ``since`` / ``until`` (``1700000000.123``).
* :func:`get_timestamp` / :func:`parse_time` are moby's ``GetTimestamp``
  (Go durations like ``10m`` relative to a reference, RFC3339 and its
  shorter forms, or a unix timestamp), used by the ``until`` filters.

Pure: the reference time is always a parameter, never read from a clock.
Errors::

    dockyard.errors.InvalidParameter
    └── InvalidTime       message is Go's (strconv, time.ParseError or moby's own)
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidParameter

__all__ = [
    "ZERO_TIME",
    "InvalidTime",
    "format_time",
    "get_timestamp",
    "human_duration",
    "human_duration_ns",
    "parse_duration",
    "parse_time",
    "parse_timestamps",
]

ZERO_TIME = "0001-01-01T00:00:00Z"

_NS = 1_000_000_000
_MINUTE_NS = 60 * _NS
_HOUR_NS = 60 * _MINUTE_NS
_INT64_MAX = (1 << 63) - 1
_INT64_MIN = -(1 << 63)


class InvalidTime(InvalidParameter):
    """A ``since`` / ``until`` value that Docker would not accept either."""


# -- HumanDuration -----------------------------------------------------------


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration`` for a duration given in seconds."""
    return human_duration_ns(int(round(seconds * _NS)))


def human_duration_ns(ns: int) -> str:
    """go-units ``HumanDuration`` for a Go ``time.Duration`` (nanoseconds)."""
    # time.Duration's float accessors split into whole and remainder first.
    secs = int(_go_div(ns, _NS) + _go_mod(ns, _NS) / 1e9)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(_go_div(ns, _MINUTE_NS) + _go_mod(ns, _MINUTE_NS) / 60e9)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours_f = _go_div(ns, _HOUR_NS) + _go_mod(ns, _HOUR_NS) / 3600e9
    hours = int(hours_f + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(hours_f) // 24 // 365} years"


def _go_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _go_mod(a: int, b: int) -> int:
    return a - _go_div(a, b) * b


# -- calendar arithmetic (proleptic Gregorian, any year, as Go's time) --------


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 (Howard Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _days_in(month: int, year: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


# -- formatting --------------------------------------------------------------


def format_time(epoch_ns: int) -> str:
    """Go's ``t.UTC().Format(time.RFC3339Nano)`` for unix time in nanoseconds.

    ``format_time(1704164645_123456780)`` → ``2024-01-02T03:04:05.12345678Z``.
    """
    secs, nanos = divmod(epoch_ns, _NS)
    days, rem = divmod(secs, 86400)
    year, month, day = _civil_from_days(days)
    hour, rem = divmod(rem, 3600)
    minute, second = divmod(rem, 60)
    year_text = f"-{-year:04d}" if year < 0 else f"{year:04d}"
    text = f"{year_text}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


# -- ParseTimestamps ---------------------------------------------------------


def _go_quote(text: str) -> str:
    """strconv.Quote, close enough for the printable text users type."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_GO_INT_RE = re.compile(r"[+-]?[0-9]+")


def _parse_int64(text: str) -> int:
    """strconv.ParseInt(text, 10, 64) with Go's error messages."""
    if not _GO_INT_RE.fullmatch(text):
        raise InvalidTime(f"strconv.ParseInt: parsing {_go_quote(text)}: invalid syntax")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise InvalidTime(f"strconv.ParseInt: parsing {_go_quote(text)}: value out of range")
    return value


def parse_timestamps(value: str, default_seconds: int = 0) -> tuple[int, int]:
    """moby's ``ParseTimestamps``: ``"1700000000.5"`` → ``(1700000000, 500000000)``.

    ``""`` gives ``(default_seconds, 0)``. Digits past the ninth are dropped;
    the odd cases Go allows (a sign after the dot) are kept as Go has them.
    """
    if value == "":
        return default_seconds, 0
    return _parse_timestamp(value)


def _parse_timestamp(value: str) -> tuple[int, int]:
    whole, dot, fraction = value.partition(".")
    seconds = _parse_int64(whole)
    if not dot:
        return seconds, 0
    nanos = _parse_int64(fraction)
    # Go scales through float64 and math.Pow; 10**k and 1/10**k are exact the same way.
    exponent = 9 - len(fraction)
    scale = float(10**exponent) if exponent >= 0 else 1.0 / float(10**-exponent)
    return seconds, int(float(nanos) * scale)


def parse_time(value: str, *, now_ns: int, utc_offset: int = 0) -> int:
    """``GetTimestamp`` then ``ParseTimestamps``: unix nanoseconds for a filter value.

    ``now_ns`` is the reference for durations (``"10m"`` → ten minutes
    before it); ``utc_offset`` (seconds east of UTC) is the daemon's zone,
    used for RFC3339 forms without one.
    """
    seconds, nanos = parse_timestamps(get_timestamp(value, now_ns=now_ns, utc_offset=utc_offset))
    return seconds * _NS + nanos


# -- Go durations --------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": _NS,
    "m": _MINUTE_NS,
    "h": _HOUR_NS,
}


def parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration``, in nanoseconds; raises :class:`InvalidTime`."""
    original = text
    bad = InvalidTime(f"time: invalid duration {_go_quote(original)}")
    total = 0
    negative = False
    if text and text[0] in "+-":
        negative = text[0] == "-"
        text = text[1:]
    if text == "0":
        return 0
    if text == "":
        raise bad
    while text:
        if not (text[0] == "." or text[0].isascii() and text[0].isdigit()):
            raise bad
        match = re.match(r"[0-9]*", text)
        assert match is not None
        whole_digits = match.group()
        text = text[len(whole_digits) :]
        whole = int(whole_digits) if whole_digits else 0
        if whole > 1 << 63:
            raise bad
        fraction, scale, has_fraction = 0, 1.0, False
        if text.startswith("."):
            match = re.match(r"[0-9]*", text[1:])
            assert match is not None
            frac_digits = match.group()
            text = text[1 + len(frac_digits) :]
            has_fraction = bool(frac_digits)
            for digit in frac_digits:
                # Go stops accumulating before overflow but keeps consuming.
                if fraction > _INT64_MAX // 10:
                    break
                candidate = fraction * 10 + int(digit)
                if candidate > _INT64_MAX:
                    break
                fraction = candidate
                scale *= 10
        if not whole_digits and not has_fraction:
            raise bad
        match = re.match(r"[^0-9.]*", text)
        assert match is not None
        unit_text = match.group()
        if not unit_text:
            raise InvalidTime(f"time: missing unit in duration {_go_quote(original)}")
        text = text[len(unit_text) :]
        unit = _UNITS.get(unit_text)
        if unit is None:
            raise InvalidTime(
                f"time: unknown unit {_go_quote(unit_text)} in duration {_go_quote(original)}"
            )
        if whole > (1 << 63) // unit:
            raise bad
        whole *= unit
        if fraction > 0:
            whole += int(float(fraction) * (float(unit) / scale))
            if whole > 1 << 63:
                raise bad
        total += whole
        if total > 1 << 63:
            raise bad
    if negative:
        return -total
    if total > _INT64_MAX:
        raise bad
    return total


# -- GetTimestamp ----------------------------------------------------------------

_RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
_RFC3339 = "2006-01-02T15:04:05Z07:00"
_RFC3339_NANO_LOCAL = "2006-01-02T15:04:05.999999999"
_RFC3339_LOCAL = "2006-01-02T15:04:05"
_DATE_WITH_ZONE = "2006-01-02Z07:00"
_DATE_LOCAL = "2006-01-02"
_STD_TOKENS = ("2006", "Z07:00", ".999999999", "01", "02", "15", "04", "05")


def get_timestamp(value: str, *, now_ns: int, utc_offset: int = 0) -> str:
    """moby's ``GetTimestamp``: a ``"seconds[.nanoseconds]"`` string for ``value``.

    Go durations count back from ``now_ns``; RFC3339 forms become
    ``"%d.%09d"``; a value that is already a unix timestamp comes back as is.
    """
    if value != "0":
        try:
            duration = parse_duration(value)
        except InvalidTime:
            pass
        else:
            # time.Time.Unix() floors towards the past.
            return str((now_ns - duration) // _NS)

    in_location = not any(c in value for c in "zZ+") and value.count("-") != 3
    if "." in value:
        layout = _RFC3339_NANO_LOCAL if in_location else _RFC3339_NANO
    elif "T" in value:
        colons = value.count(":")
        if not in_location and "z" not in value and "Z" not in value and colons > 0:
            colons -= 1  # the zone offset's own colon
        if in_location:
            layout = ("2006-01-02T15", "2006-01-02T15:04")[colons] if colons < 2 else _RFC3339_LOCAL
        else:
            layout = (
                ("2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00")[colons]
                if colons < 2
                else _RFC3339
            )
    elif in_location:
        layout = _DATE_LOCAL
    else:
        layout = _DATE_WITH_ZONE

    try:
        unix_ns = _go_parse(layout, value, utc_offset if in_location else None)
    except InvalidTime:
        if "-" in value:
            raise
        try:
            _parse_timestamp(value)
        except InvalidTime:
            raise InvalidTime(
                f"failed to parse value as time or duration: {_go_quote(value)}"
            ) from None
        return value
    seconds, nanos = divmod(unix_ns, _NS)
    return f"{seconds}.{nanos:09d}"


def _split_layout(layout: str) -> list[tuple[str, str]]:
    """Layout → [(literal prefix, std token)], the last token possibly ''."""
    chunks: list[tuple[str, str]] = []
    prefix = ""
    i = 0
    while i < len(layout):
        for token in _STD_TOKENS:
            if layout.startswith(token, i):
                chunks.append((prefix, token))
                prefix = ""
                i += len(token)
                break
        else:
            prefix += layout[i]
            i += 1
    chunks.append((prefix, ""))
    return chunks


def _getnum(value: str, fixed: bool) -> tuple[int, str] | None:
    if not value or not value[0].isascii() or not value[0].isdigit():
        return None
    if len(value) < 2 or not value[1].isascii() or not value[1].isdigit():
        if fixed:
            return None
        return int(value[0]), value[1:]
    return int(value[:2]), value[2:]


def _parse_fraction(value: str) -> tuple[int, str]:
    """``value`` starts with '.' or ',' and a digit; returns nanoseconds and the rest."""
    n = 1
    while n < len(value) and value[n].isascii() and value[n].isdigit():
        n += 1
    digits = value[1:n][:9]
    return int(digits) * 10 ** (9 - len(digits)), value[n:]


def _go_parse(layout: str, value: str, local_offset: int | None) -> int:
    """A subset of Go's ``time.Parse`` for the layouts above; unix nanoseconds.

    ``local_offset`` set means ``ParseInLocation`` in that fixed zone.
    """
    original = value
    year = month = day = 1
    hour = minute = second = nanos = 0
    offset: int | None = None

    def cannot(elem_value: str, elem_layout: str) -> InvalidTime:
        return InvalidTime(
            f"parsing time {_go_quote(original)} as {_go_quote(layout)}: "
            f"cannot parse {_go_quote(elem_value)} as {_go_quote(elem_layout)}"
        )

    def out_of_range(what: str) -> InvalidTime:
        return InvalidTime(f"parsing time {_go_quote(original)}: {what} out of range")

    for prefix, token in _split_layout(layout):
        if not value.startswith(prefix):
            # skip() stops at the first differing byte.
            common = 0
            while common < len(prefix) and common < len(value) and value[common] == prefix[common]:
                common += 1
            raise cannot(value[common:], prefix)
        value = value[len(prefix) :]
        if token == "":
            if value:
                raise InvalidTime(
                    f"parsing time {_go_quote(original)}: extra text: {_go_quote(value)}"
                )
            break
        hold = value
        if token == "2006":
            if len(value) < 4 or not value[:4].isascii() or not value[:4].isdigit():
                raise cannot(hold, token)
            year, value = int(value[:4]), value[4:]
        elif token in ("01", "02", "15", "04", "05"):
            got = _getnum(value, fixed=token != "15")
            if got is None:
                raise cannot(hold, token)
            number, value = got
            if token == "01":
                if not 1 <= number <= 12:
                    raise out_of_range("month")
                month = number
            elif token == "02":
                day = number  # checked against the month once all is parsed
            elif token == "15":
                if number >= 24:
                    raise out_of_range("hour")
                hour = number
            elif token == "04":
                if number >= 60:
                    raise out_of_range("minute")
                minute = number
            else:
                if number >= 60:
                    raise out_of_range("second")
                second = number
                # A fraction is accepted even where the layout has none.
                if (
                    ".999999999" not in layout
                    and len(value) >= 2
                    and value[0] in ".,"
                    and value[1].isascii()
                    and value[1].isdigit()
                ):
                    nanos, value = _parse_fraction(value)
        elif token == ".999999999":
            if len(value) >= 2 and value[0] in ".," and value[1].isascii() and value[1].isdigit():
                nanos, value = _parse_fraction(value)
        elif token == "Z07:00":
            if value.startswith("Z"):
                offset, value = 0, value[1:]
                continue
            if len(value) < 6 or value[3] != ":":
                raise cannot(hold, token)
            sign, hh, mm, value = value[0], value[1:3], value[4:6], value[6:]
            hours_got = _getnum(hh, fixed=True)
            minutes_got = _getnum(mm, fixed=True)
            if hours_got is None or minutes_got is None or sign not in "+-":
                raise cannot(hold, token)
            if hours_got[0] > 24:
                raise out_of_range("time zone offset hour")
            if minutes_got[0] > 60:
                raise out_of_range("time zone offset minute")
            offset = (hours_got[0] * 60 + minutes_got[0]) * 60
            if sign == "-":
                offset = -offset
    if day < 1 or day > _days_in(month, year):
        raise InvalidTime(f"parsing time {_go_quote(original)}: day out of range")
    if offset is None:
        offset = local_offset if local_offset is not None else 0
    civil = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return (civil - offset) * _NS + nanos
