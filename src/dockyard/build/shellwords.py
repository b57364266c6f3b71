"""Dockerfile word expansion, as BuildKit's shell lexer does it (pure).

The builder expands the arguments of ENV, ARG, WORKDIR, COPY, ADD, USER,
EXPOSE, … with :func:`expand_word` (one word, spaces kept) or
:func:`expand_words` (split into words after expansion, as for EXPOSE).
This is not a shell: it knows quotes, the escape character, ``$NAME``,
``${NAME}`` and the ``${NAME<op>word}`` forms ``:-`` ``-`` ``:+`` ``+``
``:?`` ``?`` ``#`` ``##`` ``%`` ``%%`` ``/`` ``//``, nothing else.

Errors::

    ValueError
     └── ShellWordError     bad substitution, unterminated quote, `${X?}` on an
                            unset X; the message is BuildKit's, e.g.
                            `failed to process "${}": syntax error: bad substitution`

One deliberate difference from BuildKit (v0.20+): its lexer shares one word
buffer between a `${…}` body and the surrounding word, so `ProcessWords`
drops the text before a `${X:-…}`; words here are split as BuildKit v0.12
and every shell do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "GO_SPACES",
    "Expansion",
    "Lexer",
    "ShellWordError",
    "expand_word",
    "expand_words",
    "go_is_space",
    "go_quote",
]


class ShellWordError(ValueError):
    """A word could not be expanded; `str()` is BuildKit's message."""


# Go's unicode.IsSpace: narrower than str.isspace(), which also counts the
# ASCII separators \x1c-\x1f; BuildKit splits words with the Go rule.
GO_SPACES = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_GO_SPACES = frozenset(GO_SPACES)


def go_is_space(ch: str) -> bool:
    """Go's `unicode.IsSpace` for one character."""
    return ch in _GO_SPACES


def go_quote(text: str) -> str:
    """Go's `strconv.Quote` (the `%q` verb) for a valid string."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in _GO_SIMPLE_ESCAPES:
            out.append(_GO_SIMPLE_ESCAPES[ch])
        elif ch == " " or (ch.isprintable() and not go_is_space(ch)):
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


_GO_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}

_EOF = ""  # the scanner's end marker: no real character is empty
_SPECIAL_PARAMS = frozenset("@*#?-$!0")


@dataclass(frozen=True, kw_only=True)
class Expansion:
    """The result of one expansion.

    `result` is the word with spaces kept, `words` the same split on
    unquoted whitespace, `matched`/`unmatched` the variable names looked up
    that were set/unset (the builder warns about undefined ARGs with them).
    """

    result: str
    words: tuple[str, ...]
    matched: frozenset[str]
    unmatched: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class Lexer:
    """BuildKit's `shell.Lex` with its switches.

    `raw_quotes` keeps quote characters in the output, `raw_escapes` keeps
    escape characters, `skip_unset_env` leaves `$X` as written when X is
    unset (the parser's heredoc detection uses these three), and
    `skip_process_quotes` treats quotes as ordinary characters.
    """

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset_env: bool = False

    def process(self, word: str, env: Mapping[str, str]) -> Expansion:
        """Expand `word` with `env`; raises ShellWordError."""
        state = _State(lexer=self, text=word, env=env, raw_escapes=self.raw_escapes)
        try:
            result, words = state.process_stop_on(_EOF, self.raw_escapes)
        except ShellWordError as exc:
            raise ShellWordError(f"failed to process {go_quote(word)}: {exc}") from None
        return Expansion(
            result=result,
            words=tuple(words),
            matched=frozenset(state.matched),
            unmatched=frozenset(state.unmatched),
        )


def expand_word(word: str, env: Mapping[str, str], *, escape: str = "\\") -> str:
    """Expand one Dockerfile word (BuildKit `ProcessWord`); spaces are kept."""
    return Lexer(escape=escape).process(word, env).result


def expand_words(word: str, env: Mapping[str, str], *, escape: str = "\\") -> list[str]:
    """Expand then split on unquoted whitespace (BuildKit `ProcessWords`)."""
    return list(Lexer(escape=escape).process(word, env).words)


class _Words:
    """Word splitting that follows the expansion (BuildKit's wordsStruct)."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if go_is_space(ch):
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf.clear()
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.buf and "".join(self.buf):
            self.words.append("".join(self.buf))
            self.buf.clear()
            self.in_word = False
        return self.words


@dataclass(kw_only=True)
class _State:
    lexer: Lexer
    text: str
    env: Mapping[str, str]
    raw_escapes: bool
    pos: int = 0
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch

    def get_env(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved = self.raw_escapes
        self.raw_escapes = raw_escapes
        try:
            return self._process_stop_on(stop)
        finally:
            self.raw_escapes = saved

    def _process_stop_on(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        quotes = not self.lexer.skip_process_quotes
        escape = self.lexer.escape
        while self.peek() != _EOF:
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.get_words()
            if ch == "$":
                tmp = self.process_dollar()
                result.append(tmp)
                words.add_string(tmp)
            elif ch == "<":
                tmp = self.process_possible_heredoc()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif quotes and ch in "'\"":
                tmp = self.process_single_quote() if ch == "'" else self.process_double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            else:
                ch = self.next()
                if ch == escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if ch == _EOF:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise ShellWordError(
                f"unexpected end of statement while looking for matching {stop}"
            )
        return "".join(result), words.get_words()

    def process_single_quote(self) -> str:
        raw = self.lexer.raw_quotes
        out: list[str] = []
        ch = self.next()
        if raw:
            out.append(ch)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise ShellWordError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                if raw:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def process_double_quote(self) -> str:
        raw = self.lexer.raw_quotes
        escape = self.lexer.escape
        out: list[str] = []
        ch = self.next()
        if raw:
            out.append(ch)
        while True:
            nxt = self.peek()
            if nxt == _EOF:
                raise ShellWordError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if nxt == '"':
                ch = self.next()
                if raw:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.process_dollar())
                continue
            ch = self.next()
            if ch == escape:
                if self.raw_escapes:
                    out.append(ch)
                after = self.peek()
                if after == _EOF:
                    continue  # the loop then reports the missing quote
                if after in ('"', "$", escape):
                    ch = self.next()
            out.append(ch)

    def process_dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.process_name()
            if not name:
                return "$"
            value, found = self.get_env(name)
            if not found and self.lexer.skip_unset_env:
                return "$" + name
            return value

        self.next()
        nxt = self.peek()
        if nxt == _EOF:
            raise ShellWordError("syntax error: missing '}'")
        if nxt in "{}:":
            raise ShellWordError("syntax error: bad substitution")
        name = self.process_name()
        ch = self.next()
        chs = ch or "\ufffd"  # Go prints the EOF rune as U+FFFD
        if ch == "}":
            value, found = self.get_env(name)
            if not found and self.lexer.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._process_replace(name)
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self.next()
            chs += ch or "\ufffd"
        elif ch not in ("+", "-", "?", "#", "%") or ch == _EOF:
            raise ShellWordError(f"unsupported modifier ({chs}) in substitution")
        raw_escapes = ch in ("#", "%") and ch != _EOF
        if null_is_unset and raw_escapes:
            raise ShellWordError(f"unsupported modifier ({chs}) in substitution")
        try:
            word, _ = self.process_stop_on("}", raw_escapes)
        except ShellWordError:
            if self.peek() == _EOF:
                raise ShellWordError("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lexer.skip_unset_env and not is_set:
            return "${" + name + chs + word + "}"
        unset = not is_set or (null_is_unset and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if not is_set:
                raise ShellWordError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ShellWordError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("%", "#"):
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise ShellWordError(f"unsupported modifier ({chs}) in substitution")

    def _process_replace(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.process_stop_on("/", True)
        except ShellWordError:
            if self.peek() == _EOF:
                raise ShellWordError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.process_stop_on("}", True)
        except ShellWordError:
            if self.peek() == _EOF:
                raise ShellWordError("syntax error: missing '}'") from None
            raise
        value, is_set = self.get_env(name)
        if self.lexer.skip_unset_env and not is_set:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        regex = _shell_pattern(pattern, greedy=True, anchored=False)
        if replace_all:
            return regex.sub(lambda m: _go_expand(replacement, m), value)
        found = regex.search(value)
        if found:
            value = value[: found.start()] + replacement + value[found.end() :]
        return value

    def process_name(self) -> str:
        name: list[str] = []
        while (ch := self.peek()) != _EOF:
            if not name and ch.isdecimal():
                while self.peek() != _EOF and self.peek().isdecimal():
                    name.append(self.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            name.append(self.next())
        return "".join(name)

    def process_possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        space: list[str] = []
        while self.peek() in ("\t", "\r", " ") and self.peek() != _EOF:
            space.append(self.next())
        return "<<" + "".join(space)


_REGEX_SPECIALS = frozenset("[]{}.+()|^$")


def _shell_pattern(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """BuildKit's convertShellPatternToRegex: `*` and `?` wildcards, `\\` escapes."""
    out: list[str] = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out.append(star)
            continue
        if tok == "?":
            out.append(".")
            continue
        if tok == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue  # escapes `}` and `/` for ${…}, not part of the pattern
            out.append("\\")
            tok = pattern[i] if i < len(pattern) else ""
            i += 1
            if tok not in ("*", "?", "\\") or tok == "":
                raise ShellWordError(
                    f"invalid pattern ({pattern}) in substitution: "
                    f"invalid escape '\\{tok or chr(0xFFFD)}'"
                )
        elif tok in _REGEX_SPECIALS:
            out.append("\\")
        out.append(tok)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    found = _shell_pattern(pattern, greedy=greedy, anchored=True).search(value)
    return value[found.end() :] if found else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a pattern keeping each `\\x` escape pair in order."""
    out = [""] * len(pattern)
    last = len(pattern) - 1
    i = 0
    while i <= last:
        tok = pattern[i]
        j = last - i
        if tok == "\\" and i != last:
            out[j - 1] = tok
            out[j] = pattern[i + 1]
            i += 2
        else:
            out[j] = tok
            i += 1
    return "".join(out)


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    # A regex cannot find the shortest rightmost match, so search the
    # reversed value with the reversed pattern, as BuildKit does.
    return _trim_prefix(_reverse_pattern(pattern), value[::-1], greedy)[::-1]


_GO_TEMPLATE_REF = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)|(\$))")


def _go_expand(template: str, match: re.Match[str]) -> str:
    """Go's Regexp.Expand for a pattern without groups: `$0` is the match,
    `$$` a dollar, every other reference empty, a malformed `$` literal."""

    def one(ref: re.Match[str]) -> str:
        if ref.group(3):
            return "$"
        name = ref.group(1) or ref.group(2) or ""
        if name.isdigit() and int(name) == 0:
            return match.group(0)
        return ""

    return _GO_TEMPLATE_REF.sub(one, template)
