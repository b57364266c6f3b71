"""Dockerfile parser: text in, a typed `Dockerfile` out (pure, no I/O).

A port of BuildKit's `frontend/dockerfile/parser` (line splitting,
continuations, comments, parser directives, JSON vs shell form, flags,
heredocs) followed by its `instructions` package (typed instructions,
stages); error messages are BuildKit's. Raises the `DockerfileError` tree
drawn in `instructions.py`.

Behaviour is current BuildKit's (v0.2x, what moby vendors), which differs
from v0.12 in a few inputs: a JSON array followed by more text is shell
form, whitespace may follow `<<`, flags honour `# escape=`, `# check=` is
a directive. Deliberate differences from BuildKit: flags are split on
characters where BuildKit splits on bytes (it mangles non-ASCII flag
values), and shell-word splitting keeps the text before `${X:-…}` (see
`shellwords`). The `tests/unit/test_dockerfile_oracle.py` corpus checks
the rest against BuildKit's own parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.build.instruction_parse import heredocs_from_line, stages_from_nodes
from dockyard.build.instructions import (
    Directive,
    Dockerfile,
    DockerfileError,
    DockerfileSyntaxError,
    Heredoc,
    Node,
)
from dockyard.build.shellwords import go_is_space, go_quote

__all__ = ["ParsedLines", "parse_dockerfile", "parse_lines"]

_HEREDOC_INSTRUCTIONS = frozenset({"add", "copy", "run"})
_VALID_DIRECTIVES = frozenset({"syntax", "escape", "check"})
# Go's regexp \s is ASCII [\t\n\f\r ], without \v.
_DIRECTIVE_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_WHITESPACE_RE = re.compile(r"[\t\v\f\r ]+")
_BOM = "\ufeff"
_MAX_LINE_BYTES = 64 * 1024  # bufio.MaxScanTokenSize


@dataclass(frozen=True, kw_only=True)
class ParsedLines:
    """The line parser's result: BuildKit's `parser.Result`."""

    directives: tuple[Directive, ...]
    escape: str
    nodes: tuple[Node, ...]
    warnings: tuple[str, ...]


def parse_dockerfile(text: str | bytes) -> Dockerfile:
    """Parse a Dockerfile into directives, meta ARGs and stages.

    Raises DockerfileSyntaxError when the text cannot be split into
    instructions, InstructionError for invalid instruction arguments or
    flags, DockerfileError("no build stage in current context") for an
    instruction other than ARG before the first FROM.
    """
    lines = parse_lines(text)
    meta_args, stages = stages_from_nodes(lines.nodes)
    syntax = next((d.value for d in lines.directives if d.name == "syntax"), None)
    return Dockerfile(
        directives=lines.directives,
        escape=lines.escape,
        syntax=syntax,
        meta_args=meta_args,
        stages=stages,
        warnings=lines.warnings,
    )


def parse_lines(text: str | bytes) -> ParsedLines:
    """Split a Dockerfile into instruction nodes (BuildKit's `parser.Parse`).

    Bytes are decoded as UTF-8 (invalid sequences replaced). Raises
    DockerfileSyntaxError.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return _LineParser(text).run()


class _Directives:
    """The directive state: BuildKit's DirectiveParser plus the escape token."""

    def __init__(self) -> None:
        self.done = False
        self.seen: list[Directive] = []
        self.escape = "\\"
        self.continuation = _continuation_re("\\")
        self.line = 0

    def possible_directive(self, line: str) -> bool:
        self.line += 1
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE_RE.match(_trim_left_space(line[1:]))
        if match is None or match.group(1).lower() not in _VALID_DIRECTIVES:
            self.done = True
            return False
        name = match.group(1).lower()
        if any(d.name == name for d in self.seen):
            raise DockerfileSyntaxError(
                f"only one {name} parser directive can be used", start_line=self.line
            )
        value = match.group(2)
        if name == "escape":
            if value not in ("`", "\\"):
                raise DockerfileSyntaxError(
                    f"invalid escape token '{value}' does not match ` or \\",
                    start_line=self.line,
                )
            self.escape = value
            self.continuation = _continuation_re(value)
        self.seen.append(Directive(name=name, value=value, line=self.line))
        return True


def _continuation_re(escape: str) -> re.Pattern[str]:
    # The escape token last on a line (trailing blanks allowed) continues
    # it, unless the token itself is escaped; alone on a line it too.
    e = re.escape(escape)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|\A{e}[ \t]*\Z")


def _trim_left_space(text: str) -> str:
    i = 0
    while i < len(text) and go_is_space(text[i]):
        i += 1
    return text[i:]


def _trim_space(text: str) -> str:
    text = _trim_left_space(text)
    j = len(text)
    while j > 0 and go_is_space(text[j - 1]):
        j -= 1
    return text[:j]


def _trim_newline(text: str) -> str:
    return text.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _trim_left_space(line).startswith("#")


def _split_lines(text: str) -> list[str]:
    """Lines with their "\\n" kept (BuildKit's scanLines); only "\\n" ends a line."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


class _LineParser:
    def __init__(self, text: str) -> None:
        self.lines = _split_lines(text)
        self.pos = 0
        self.current_line = 0
        self.d = _Directives()

    def scan(self) -> str | None:
        if self.pos >= len(self.lines):
            return None
        line = self.lines[self.pos]
        self.pos += 1
        if len(line.encode("utf-8", errors="surrogatepass")) > _MAX_LINE_BYTES:
            raise DockerfileSyntaxError(
                f"dockerfile line greater than max allowed size of {_MAX_LINE_BYTES - 1}",
                start_line=self.current_line + 1,
            )
        return line

    def process_line(self, token: str, strip_left: bool) -> str:
        token = _trim_newline(token)
        if strip_left:
            token = _trim_left_space(token)
        self.d.possible_directive(token)
        return "" if _is_comment(token) else token

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        match = self.d.continuation.search(line)
        if match is None:
            return line, True
        return line[: match.start()] + (match.group(1) or ""), False

    def run(self) -> ParsedLines:
        nodes: list[Node] = []
        warnings: list[str] = []
        while (raw := self.scan()) is not None:
            if self.current_line == 0 and raw.startswith(_BOM):
                raw = raw[1:]
            text = self.process_line(raw, strip_left=True)
            self.current_line += 1
            start_line = self.current_line
            text, end = self.trim_continuation(text)
            if end and not text:
                continue
            parts = [text]
            empty_continuation = False
            while not end and (raw := self.scan()) is not None:
                text = self.process_line(raw, strip_left=False)
                self.current_line += 1
                if _is_comment(raw):
                    continue
                if not _trim_left_space(_trim_newline(text)):
                    empty_continuation = True
                    continue
                text, end = self.trim_continuation(text)
                parts.append(text)
            line = "".join(parts)
            if empty_continuation:
                warnings.append(f"Empty continuation line found in: {line}")
            try:
                node = _node_from_line(line, self.d.escape)
            except DockerfileError as exc:
                raise DockerfileSyntaxError(
                    exc.message, start_line=start_line, end_line=self.current_line
                ) from None
            heredocs: list[Heredoc] = []
            if _can_contain_heredoc(node) and "<<" in line:
                for doc in heredocs_from_line(line, start_line, self.current_line):
                    heredocs.append(self.read_heredoc(doc, start_line))
            nodes.append(_with_lines(node, start_line, self.current_line, tuple(heredocs)))
        if not nodes:
            raise DockerfileSyntaxError(
                "file with no instructions", start_line=max(self.current_line, 1)
            )
        return ParsedLines(
            directives=tuple(self.d.seen),
            escape=self.d.escape,
            nodes=tuple(nodes),
            warnings=tuple(warnings),
        )

    def read_heredoc(self, doc: Heredoc, start_line: int) -> Heredoc:
        content: list[str] = []
        while (raw := self.scan()) is not None:
            self.current_line += 1
            candidate = _trim_newline(raw)
            if doc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == doc.name:
                return Heredoc(
                    name=doc.name,
                    content="".join(content),
                    expand=doc.expand,
                    chomp=doc.chomp,
                    file_descriptor=doc.file_descriptor,
                )
            content.append(raw)
        raise DockerfileSyntaxError(
            "unterminated heredoc", start_line=start_line, end_line=self.current_line
        )


def _with_lines(node: Node, start: int, end: int, heredocs: tuple[Heredoc, ...]) -> Node:
    return Node(
        keyword=node.keyword,
        flags=node.flags,
        values=node.values,
        json=node.json,
        child=node.child,
        heredocs=heredocs,
        original=node.original,
        start_line=start,
        end_line=end,
    )


def _can_contain_heredoc(node: Node) -> bool:
    if node.keyword.lower() == "onbuild" and node.child is not None:
        node = node.child
    return node.keyword.lower() in _HEREDOC_INSTRUCTIONS and not node.json


# --- one logical line → Node (BuildKit's newNodeFromLine and line parsers) ---


def _node_from_line(line: str, escape: str) -> Node:
    keyword, flags, rest = _split_command(line, escape)
    parser = _LINE_PARSERS.get(keyword.lower())
    values: tuple[str, ...] = ()
    is_json = False
    child: Node | None = None
    if keyword.lower() == "onbuild":
        child = _node_from_line(rest, escape) if rest else None
    elif parser is not None:
        values, is_json = parser(rest, escape)
    else:
        values = ("",)  # BuildKit's parseIgnore leaves one empty argument
    return Node(
        keyword=keyword,
        flags=flags,
        values=values,
        json=is_json,
        child=child,
        heredocs=(),
        original=line,
        start_line=0,
        end_line=0,
    )


def _split_command(line: str, escape: str) -> tuple[str, tuple[str, ...], str]:
    cmdline = _WHITESPACE_RE.split(_trim_space(line), maxsplit=1)
    if len(cmdline) < 2:
        return cmdline[0], (), ""
    rest, flags = _extract_flags(cmdline[1], escape)
    return cmdline[0], tuple(flags), _trim_space(rest)


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading `--flag[=value]` words (quotes and escapes removed) and the rest."""
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    pos = 0
    n = len(line)
    while pos <= n:
        ch = line[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if go_is_space(ch):
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or line[pos + 1] != "-":
                return line[pos:], words
            phase = in_word
        if pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            break
        if phase == in_word:
            if go_is_space(ch):
                text = "".join(word)
                phase = in_spaces
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
                pos += 1
                continue
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                pos += 1
                ch = line[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
            pos += 1
            continue
        if ch == escape:
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            ch = line[pos]
        word.append(ch)
        pos += 1
    return "", words


def _parse_words(rest: str, escape: str) -> list[str]:
    """Words split on unquoted space; quotes and escapes kept (BuildKit parseWords)."""
    words: list[str] = []
    word: list[str] = []
    in_spaces, in_word, in_quote = 0, 1, 2
    phase = in_spaces
    quote = ""
    blank_ok = False
    pos = 0
    n = len(rest)
    while pos <= n:
        ch = rest[pos] if pos < n else ""
        if phase == in_spaces:
            if pos == n:
                break
            if go_is_space(ch):
                pos += 1
                continue
            phase = in_word
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == in_word:
            if go_is_space(ch):
                phase = in_spaces
                if blank_ok or word:
                    words.append("".join(word))
                word = []
                blank_ok = False
                pos += 1
                continue
            if ch in ("'", '"'):
                quote = ch
                blank_ok = True
                phase = in_quote
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        # in_quote
        if ch == quote:
            phase = in_word
        if ch == escape and quote != "'":
            if pos + 1 == n:
                phase = in_word
                pos += 1
                continue
            pos += 1
            word.append(ch)
            ch = rest[pos]
        word.append(ch)
        pos += 1
    return words


_LineResult = tuple[tuple[str, ...], bool]


def _parse_name_val(rest: str, escape: str, keyword: str) -> _LineResult:
    words = _parse_words(rest, escape)
    if not words:
        return (), False
    if "=" not in words[0]:
        parts = _WHITESPACE_RE.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise DockerfileError(f"{keyword} must have two arguments")
        return (parts[0], parts[1], ""), False
    values: list[str] = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(
                f"Syntax error - can't find = in {go_quote(word)}. "
                "Must be of the form: name=value"
            )
        key, value = word.split("=", 1)
        values += [key, value, "="]
    return tuple(values), False


def _parse_env(rest: str, escape: str) -> _LineResult:
    return _parse_name_val(rest, escape, "ENV")


def _parse_label(rest: str, escape: str) -> _LineResult:
    return _parse_name_val(rest, escape, "LABEL")


def _parse_name_or_name_val(rest: str, escape: str) -> _LineResult:
    return tuple(_parse_words(rest, escape)), False


def _parse_whitespace_delimited(rest: str, escape: str) -> _LineResult:
    if not rest:
        return (), False
    return tuple(_WHITESPACE_RE.split(rest)), False


def _parse_string(rest: str, escape: str) -> _LineResult:
    return ((rest,) if rest else ()), False


class _NotStringArray(DockerfileError):
    pass


class _NotJSON(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise ValueError(name)  # Go's encoding/json has no NaN/Infinity


def _parse_json(rest: str) -> tuple[str, ...]:
    rest = _trim_left_space(rest)
    if not rest.startswith("["):
        raise _NotJSON
    try:
        array = json.loads(rest, parse_constant=_reject_constant)
    except ValueError:
        raise _NotJSON from None
    if not isinstance(array, list):
        raise _NotJSON
    if not all(isinstance(item, str) for item in array):
        raise _NotStringArray(
            "when using JSON array syntax, arrays must be comprised of strings only"
        )
    return tuple(array)


def _parse_maybe_json(rest: str, escape: str) -> _LineResult:
    if not rest:
        return (), False
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return (rest,), False


def _parse_maybe_json_to_list(rest: str, escape: str) -> _LineResult:
    try:
        return _parse_json(rest), True
    except _NotJSON:
        return _parse_whitespace_delimited(rest, escape)


def _parse_health_config(rest: str, escape: str) -> _LineResult:
    sep = 0
    while sep < len(rest) and not go_is_space(rest[sep]):
        sep += 1
    nxt = sep
    while nxt < len(rest) and go_is_space(rest[nxt]):
        nxt += 1
    if sep == 0:
        return (), False
    values, is_json = _parse_maybe_json(rest[nxt:], escape)
    return (rest[:sep], *values), is_json


_LINE_PARSERS: dict[str, Callable[[str, str], _LineResult]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _parse_env,
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _parse_label,
    "maintainer": _parse_string,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}
