"""`.dockerignore` files and Docker's path patterns (pure).

A port of moby/patternmatcher (`ignorefile.ReadAll`, `New`,
`MatchesOrParentMatches`, `MatchesUsingParentResults`): the rules the
docker CLI applies when it sends a build context and dockerd applies when
it drops an ignored Dockerfile or `.dockerignore` from it. Patterns are
Go `filepath.Match` globs plus `**` (any number of directories), matched
against slash-separated paths relative to the context root; a pattern that
matches a directory matches everything below it; a later `!pattern`
re-includes what earlier patterns excluded.

Errors::

    ValueError
     └── DockerignoreError   a malformed pattern: "syntax error in pattern"
                             (Go's filepath.ErrBadPattern) or
                             `illegal exclusion pattern: "!"`
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from dockyard.build.shellwords import go_is_space

__all__ = [
    "DockerignoreError",
    "MatchInfo",
    "Pattern",
    "PatternMatcher",
    "go_clean",
    "matches_or_parent_matches",
    "read_dockerignore",
]


class DockerignoreError(ValueError):
    """A pattern Docker refuses."""


_BAD_PATTERN = "syntax error in pattern"


def _trim_space(text: str) -> str:
    start, end = 0, len(text)
    while start < end and go_is_space(text[start]):
        start += 1
    while end > start and go_is_space(text[end - 1]):
        end -= 1
    return text[start:end]


def go_clean(path: str) -> str:
    """Go's `filepath.Clean` on a slash-separated path."""
    if not path:
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for element in path.split("/"):
        if element in ("", "."):
            continue
        if element == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(element)
    cleaned = "/".join(parts)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def _go_dir(path: str) -> str:
    """Go's `filepath.Dir`."""
    return go_clean(path[: path.rfind("/") + 1])


def read_dockerignore(text: str | bytes) -> list[str]:
    """The patterns of a `.dockerignore` file (patternmatcher's ignorefile.ReadAll).

    A UTF-8 BOM is dropped, lines starting with `#` are comments, blank
    lines are skipped; each pattern is trimmed and cleaned, and a leading
    `/` removed (the context root is the only root), keeping a `!` prefix.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text.removeprefix("\ufeff")
    patterns: list[str] = []
    # bufio.ScanLines: "\n" ends a line and one "\r" before it is dropped.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        line = line.removesuffix("\r")
        if line.startswith("#"):
            continue
        pattern = _trim_space(line)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = _trim_space(pattern[1:])
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


class _Kind(Enum):
    EXACT = 1
    PREFIX = 2
    SUFFIX = 3
    REGEXP = 4


# Regexp metacharacters that are ordinary in filepath.Match patterns.
_ESCAPED = frozenset(".+()|{}$")


@dataclass(frozen=True, kw_only=True)
class Pattern:
    """One compiled pattern; `text` is the cleaned pattern without its `!`."""

    text: str
    exclusion: bool
    dirs: tuple[str, ...]
    kind: _Kind
    regexp: re.Pattern[str] | None

    @classmethod
    def compile(cls, text: str, *, exclusion: bool) -> Pattern:
        regex = "^"
        kind = _Kind.EXACT
        i = 0
        pos = 0
        n = len(text)
        while pos < n:
            ch = text[pos]
            pos += 1
            if ch == "*":
                if pos < n and text[pos] == "*":
                    pos += 1
                    if pos < n and text[pos] == "/":
                        pos += 1  # `**/` is `**`
                    if pos >= n:
                        # trailing `**` takes everything, as in .gitignore
                        if kind == _Kind.EXACT:
                            kind = _Kind.PREFIX
                        else:
                            regex += ".*"
                            kind = _Kind.REGEXP
                    else:
                        regex += "(.*/)?"
                        kind = _Kind.REGEXP
                    if i == 0:
                        kind = _Kind.SUFFIX
                else:
                    regex += "[^/]*"
                    kind = _Kind.REGEXP
            elif ch == "?":
                regex += "[^/]"
                kind = _Kind.REGEXP
            elif ch in _ESCAPED:
                regex += "\\" + ch
            elif ch == "\\":
                if pos < n:
                    regex += "\\" + text[pos]
                    pos += 1
                    kind = _Kind.REGEXP
                else:
                    regex += "\\"
            elif ch in "[]":
                regex += ch
                kind = _Kind.REGEXP
            else:
                regex += ch
            i += 1
        compiled: re.Pattern[str] | None = None
        if kind == _Kind.REGEXP:
            try:
                compiled = re.compile(regex + r"\Z")
            except re.error:
                raise DockerignoreError(_BAD_PATTERN) from None
        return cls(
            text=text, exclusion=exclusion, dirs=tuple(text.split("/")), kind=kind,
            regexp=compiled,
        )  # fmt: skip

    def match(self, path: str) -> bool:
        """Whether this pattern (ignoring `!`) matches `path` itself."""
        if self.kind == _Kind.EXACT:
            return path == self.text
        if self.kind == _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == _Kind.SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regexp is not None
        return self.regexp.match(path) is not None


@dataclass(frozen=True, kw_only=True)
class MatchInfo:
    """Per-pattern results for a directory, handed to its children's match."""

    parent_matched: tuple[bool, ...] = ()


class PatternMatcher:
    """A list of patterns, later ones winning (patternmatcher.New)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        self.exclusions = False
        for raw in patterns:
            text = _trim_space(raw)
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise DockerignoreError('illegal exclusion pattern: "!"')
                text = text[1:]
                self.exclusions = True
            _check_glob(text)
            self.patterns.append(Pattern.compile(text, exclusion=exclusion))

    def matches(self, path: str) -> bool:
        """Whether `path` (slash-separated, relative to the context) is ignored:
        it or one of its parent directories matches, and no later `!`
        pattern re-includes it (MatchesOrParentMatches)."""
        path = go_clean(path)
        if path == ".":
            return False  # the context root itself is never ignored
        parent = _go_dir(path)
        parent_dirs = parent.split("/")
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            hit = pattern.match(path)
            if not hit and parent != ".":
                hit = any(
                    pattern.match("/".join(parent_dirs[: i + 1])) for i in range(len(parent_dirs))
                )
            if hit:
                matched = not pattern.exclusion
        return matched

    def matches_using_parent_results(
        self, path: str, parent: MatchInfo
    ) -> tuple[bool, MatchInfo]:
        """`matches` for a tree walk: pass the MatchInfo returned for the
        parent directory (MatchInfo() at the root) to skip re-matching the
        parents (MatchesUsingParentResults)."""
        parent_matched = parent.parent_matched
        if parent_matched and len(parent_matched) != len(self.patterns):
            raise ValueError("wrong number of values in parentMatched")
        matched = False
        results: list[bool] = []
        for index, pattern in enumerate(self.patterns):
            hit = parent_matched[index] if parent_matched else False
            if not hit:
                if pattern.exclusion != matched:
                    results.append(False)
                    continue
                hit = pattern.match(path)
                if not hit and not parent_matched:
                    parent_path = _go_dir(path)
                    if parent_path != ".":
                        dirs = parent_path.split("/")
                        hit = any(
                            pattern.match("/".join(dirs[: i + 1])) for i in range(len(dirs))
                        )
            results.append(hit)
            if hit:
                matched = not pattern.exclusion
        return matched, MatchInfo(parent_matched=tuple(results))


def matches_or_parent_matches(path: str, patterns: Sequence[str]) -> bool:
    """Whether `path` is ignored by `patterns`; raises DockerignoreError."""
    return PatternMatcher(patterns).matches(path)


def _check_glob(pattern: str) -> None:
    """Refuse what Go's filepath.Match calls a malformed pattern."""
    pos, n = 0, len(pattern)
    while pos < n:
        ch = pattern[pos]
        pos += 1
        if ch == "\\":
            if pos >= n:
                raise DockerignoreError(_BAD_PATTERN)
            pos += 1
        elif ch == "[":
            if pos < n and pattern[pos] == "^":
                pos += 1
            ranges = 0
            while True:
                if pos < n and pattern[pos] == "]" and ranges > 0:
                    pos += 1
                    break
                pos = _class_char(pattern, pos)
                if pattern[pos] == "-":
                    pos = _class_char(pattern, pos + 1)
                ranges += 1


def _class_char(pattern: str, pos: int) -> int:
    """Go's getEsc: one (possibly escaped) class character, never the last."""
    n = len(pattern)
    if pos >= n or pattern[pos] in "-]":
        raise DockerignoreError(_BAD_PATTERN)
    if pattern[pos] == "\\":
        pos += 1
        if pos >= n:
            raise DockerignoreError(_BAD_PATTERN)
    pos += 1
    if pos >= n:
        raise DockerignoreError(_BAD_PATTERN)
    return pos
