"""The ``filters`` query parameter, with moby's ``api/types/filters`` semantics.

Clients send a JSON object of key → values, in the modern form
``{"label":{"a=b":true}}`` or the pre-1.22 form ``{"label":["a=b"]}``; an
empty string means no filters. :func:`parse` accepts both, as dockerd's
``FromJSON`` does, and yields a :class:`Filters` value whose matching
methods are moby's ``Args`` methods, name for name.

Pure: no I/O. Errors::

    dockyard.errors.InvalidParameter
    └── InvalidFilter      ``invalid filter``, ``invalid filter 'x'``,
                           ``invalid filter 'dangling=[maybe]'``
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from dockyard.errors import InvalidParameter

__all__ = ["Filters", "InvalidFilter", "parse"]


class InvalidFilter(InvalidParameter):
    """A filter key is not accepted here, or its value is not usable."""

    def __init__(self, key: str = "", values: list[str] | None = None) -> None:
        # Built like moby's invalidFilter.Error(); values print as a Go slice.
        message = "invalid filter"
        if key:
            message += " '" + key
            if values is not None:
                message += "=[" + " ".join(values) + "]"
            message += "'"
        super().__init__(message)
        self.key = key


def _reject_constant(name: str) -> Any:
    # Go's encoding/json knows no NaN or Infinity.
    raise ValueError(name)


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


class Filters(Mapping[str, frozenset[str]]):
    """Filter key → set of values; immutable.

    Each value keeps the boolean the client sent with it (always ``True``
    from the CLI and docker-py). Like Go, a value sent as ``false`` still
    counts for :meth:`get` and the key/value matchers, but not for
    :meth:`exact_match` or :meth:`bool_value`.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Mapping[str, bool]] | None = None) -> None:
        frozen = {key: MappingProxyType(dict(values)) for key, values in (fields or {}).items()}
        self._fields: Mapping[str, Mapping[str, bool]] = MappingProxyType(frozen)

    def __repr__(self) -> str:
        return f"Filters({ {k: dict(v) for k, v in self._fields.items()} !r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Filters):
            return self._fields == other._fields
        return super().__eq__(other)

    # Mapping protocol: key → frozenset of values.
    def __getitem__(self, key: str) -> frozenset[str]:
        return frozenset(self._fields[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, tuple(sorted(v.items()))) for k, v in self._fields.items())))

    def get(self, key: str, default: frozenset[str] = frozenset()) -> frozenset[str]:  # type: ignore[override]
        """The values of ``key``; an empty set when absent (moby's ``Get``)."""
        values = self._fields.get(key)
        if values is None:
            return default
        return frozenset(values)

    def contains(self, key: str) -> bool:
        """True if ``key`` was sent, even with no values."""
        return key in self._fields

    def validate(self, accepted: set[str] | frozenset[str]) -> None:
        """Raise :class:`InvalidFilter` (``invalid filter 'x'``) for a key not in ``accepted``."""
        # Go reports whichever bad key its map yields first; sorting makes it stable.
        for key in sorted(self._fields):
            if key not in accepted:
                raise InvalidFilter(key)

    def bool_value(self, key: str, default: bool) -> bool:
        """moby's ``GetBoolOrDefault``: ``dangling=true|1`` or ``false|0``.

        Absent → ``default``. No values, neither, or both truthy and falsy
        values → :class:`InvalidFilter` naming the values.
        """
        values = self._fields.get(key)
        if values is None:
            return default
        if len(values) == 0:
            raise InvalidFilter(key)
        is_false = values.get("0", False) or values.get("false", False)
        is_true = values.get("1", False) or values.get("true", False)
        if is_false == is_true:
            raise InvalidFilter(key, sorted(values))
        return is_true

    def match_kv_list(self, key: str, sources: Mapping[str, str]) -> bool:
        """moby's ``MatchKVList``: every ``k`` / ``k=v`` value of ``key`` is in ``sources``.

        No values (or no key) matches everything; with values, an empty
        ``sources`` matches nothing.
        """
        values = self._fields.get(key)
        if not values:
            return True
        if not sources:
            return False
        for value in values:
            want_key, has_value, want_value = value.partition("=")
            if want_key not in sources:
                return False
            if has_value and sources[want_key] != want_value:
                return False
        return True

    def match_label(self, labels: Mapping[str, str]) -> bool:
        """The ``label`` filter of list endpoints: ``label=key`` and ``label=key=value``, ANDed."""
        return self.match_kv_list("label", labels)

    def match_labels_prune(self, labels: Mapping[str, str]) -> bool:
        """Prune endpoints: ``label`` must match and ``label!`` must not.

        As in moby's ``matchLabels``, a ``label!`` key with no values excludes
        everything.
        """
        if not self.match_kv_list("label", labels):
            return False
        if self.contains("label!") and self.match_kv_list("label!", labels):
            return False
        return True

    def exact_match(self, key: str, source: str) -> bool:
        """True if no ``key`` filter is set, or ``source`` is one of its (true) values."""
        values = self._fields.get(key)
        if not values:
            return True
        return values.get(source, False)

    def unique_exact_match(self, key: str, source: str) -> bool:
        """Like :meth:`exact_match`, but more than one value never matches."""
        values = self._fields.get(key)
        if not values:
            return True
        if len(values) != 1:
            return False
        return values.get(source, False)

    def fuzzy_match(self, key: str, source: str) -> bool:
        """Exact match, or ``source`` starts with one of the values (ids)."""
        if self.exact_match(key, source):
            return True
        return any(source.startswith(prefix) for prefix in self._fields.get(key, {}))

    def match(self, key: str, source: str) -> bool:
        """Exact match, or any value as a regular expression found in ``source`` (names).

        Go uses RE2; Python's ``re`` agrees on the patterns people use for
        names. A value that does not compile is skipped, as in Go.
        """
        if self.exact_match(key, source):
            return True
        for pattern in self._fields.get(key, {}):
            try:
                if re.search(pattern, source):
                    return True
            except re.error:
                continue
        return False


def parse(text: str) -> Filters:
    """Decode a ``filters`` query value; ``""`` gives empty :class:`Filters`.

    Raises :class:`InvalidFilter` (``invalid filter``) when the text is
    neither form, as dockerd's ``FromJSON``.
    """
    if text == "":
        return Filters()
    try:
        raw = _loads(text)
    except ValueError as exc:
        raise InvalidFilter() from exc
    if raw is None:
        return Filters()
    if not isinstance(raw, dict):
        raise InvalidFilter()
    modern = _modern(raw)
    if modern is not None:
        return Filters(modern)
    legacy = _legacy(raw)
    if legacy is not None:
        return Filters(legacy)
    raise InvalidFilter()


def _modern(raw: dict[str, Any]) -> dict[str, dict[str, bool]] | None:
    """``map[string]map[string]bool``, with Go's treatment of ``null``."""
    fields: dict[str, dict[str, bool]] = {}
    for key, values in raw.items():
        if values is None:
            fields[key] = {}
            continue
        if not isinstance(values, dict):
            return None
        inner: dict[str, bool] = {}
        for value, flag in values.items():
            if flag is None:
                # Go leaves the zero value in place for null.
                inner[value] = False
            elif isinstance(flag, bool):
                inner[value] = flag
            else:
                return None
        fields[key] = inner
    return fields


def _legacy(raw: dict[str, Any]) -> dict[str, dict[str, bool]] | None:
    """``map[string][]string``, each listed value set to true."""
    fields: dict[str, dict[str, bool]] = {}
    for key, values in raw.items():
        if values is None:
            fields[key] = {}
            continue
        if not isinstance(values, list):
            return None
        inner: dict[str, bool] = {}
        for value in values:
            if value is None:
                value = ""  # Go leaves "" for a null element
            elif not isinstance(value, str):
                return None
            inner[value] = True
        fields[key] = inner
    return fields
