"""Instruction flags and flag values, as BuildKit parses them (pure).

BuildKit's `BFlags` (`--name`, `--name=value`, repeated list flags, booleans),
its "did you mean" suggestions, and the Go parsers flag values go through
(`time.ParseDuration`, `strconv.ParseInt`), with Go's error messages.
Raises `DockerfileError` (see `instructions.py`); the caller adds the line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from dockyard.build.instructions import DockerfileError
from dockyard.build.shellwords import go_quote

__all__ = ["Flags", "parse_duration", "parse_interval", "parse_int32", "suggest"]


FlagKind = Literal["bool", "string", "strings"]


class Flags:
    """A flag set for one instruction; `parse()` raises DockerfileError with
    BuildKit's message (unknown, duplicate, missing or non-boolean values)."""

    def __init__(self, args: Sequence[str]) -> None:
        self.args = args
        self.kinds: dict[str, FlagKind] = {}
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.used: list[str] = []

    def add(self, name: str, kind: FlagKind, default: str = "") -> None:
        self.kinds[name] = kind
        self.values[name] = default
        self.lists[name] = []

    def parse(self) -> None:
        for arg in self.args:
            if arg == "--":
                return
            if not arg.startswith("--"):
                raise DockerfileError(f"arg should start with -- : {arg}")
            flag_name, has_value, value = arg.partition("=")
            name = flag_name[2:]
            kind = self.kinds.get(name)
            if kind is None:
                raise DockerfileError(
                    suggest(f"unknown flag: {flag_name}", name, list(self.kinds), case_sensitive=True)
                )
            if name in self.used and kind != "strings":
                raise DockerfileError(f"duplicate flag specified: {flag_name}")
            if name not in self.used:
                self.used.append(name)
            if kind == "bool":
                if has_value and value == "":
                    raise DockerfileError(f"missing a value on flag: {flag_name}")
                if value.lower() not in ("true", "false", ""):
                    raise DockerfileError(
                        f"expecting boolean value for flag {flag_name}, not: {value}"
                    )
                self.values[name] = "false" if value.lower() == "false" else "true"
            elif not has_value:
                raise DockerfileError(f"missing a value on flag: {flag_name}")
            elif kind == "string":
                self.values[name] = value
            else:
                self.lists[name].append(value)

    def string(self, name: str) -> str | None:
        return self.values[name] if name in self.used else None

    def true(self, name: str) -> bool:
        return self.values[name] == "true"

    def optional_bool(self, name: str) -> bool | None:
        return self.values[name] == "true" if name in self.used else None


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def suggest(message: str, value: str, options: Sequence[str], *, case_sensitive: bool) -> str:
    """BuildKit's suggest.WrapError: add "(did you mean X?)" for a near miss."""
    wanted = value if case_sensitive else value.lower()
    best, best_distance = "", 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return message
        distance = _levenshtein(wanted, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
            if not case_sensitive:
                if value == value.lower():
                    best = candidate.lower()
                elif value == value.upper():
                    best = candidate.upper()
    return f"{message} (did you mean {best}?)" if best else message


# --- Go number and duration parsing ----------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_INT64 = (1 << 63) - 1


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; raises DockerfileError."""
    invalid = DockerfileError(f"time: invalid duration {go_quote(text)}")
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        digits = _leading_digits(s)
        whole = int(digits) if digits else 0
        s = s[len(digits) :]
        fraction = ""
        if s.startswith("."):
            s = s[1:]
            fraction = _leading_digits(s)
            s = s[len(fraction) :]
        if not digits and not fraction:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise DockerfileError(f"time: missing unit in duration {go_quote(text)}")
        unit_name, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise DockerfileError(
                f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(text)}"
            )
        value = whole * unit
        if fraction:
            value += int(fraction) * unit // 10 ** len(fraction)
        total += value
        if total > _MAX_INT64 + (1 if negative else 0):
            raise invalid
    return -total if negative else total


def _leading_digits(s: str) -> str:
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    return s[:i]


def parse_int32(text: str) -> int:
    """Go's strconv.ParseInt(text, 10, 32); raises DockerfileError."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all("0" <= c <= "9" for c in body):
        raise DockerfileError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 31) <= value < (1 << 31):
        raise DockerfileError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def parse_interval(flags: Flags, name: str) -> int:
    """A HEALTHCHECK duration flag in nanoseconds: 0 when unset or zero,
    at least 1ms otherwise (BuildKit's parseOptInterval)."""
    text = flags.values[name]
    if not text:
        return 0
    nanos = parse_duration(text)
    if nanos == 0:
        return 0
    if nanos < 1_000_000:
        raise DockerfileError(f"Interval {go_quote(name)} cannot be less than 1ms")
    return nanos
