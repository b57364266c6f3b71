"""Word expansion as BuildKit's shell lexer does it."""

from __future__ import annotations

import pytest

from dockyard.build.shellwords import (
    Lexer,
    ShellWordError,
    expand_word,
    expand_words,
    go_quote,
)

ENV = {"HOME": "/root", "EMPTY": "", "NAME": "dock yard", "FILE": "archive.tar.gz", "PATH": "/a:/b:/c"}


@pytest.mark.parametrize(
    ("word", "result"),
    [
        ("plain", "plain"),
        ("$HOME/x", "/root/x"),
        ("${HOME}x", "/rootx"),
        ("$UNSET-", "-"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${HOME:-fallback}", "/root"),
        ("${HOME:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-${HOME:-x}}", "/root"),
        ("${UNSET:-$HOME}", "/root"),
        ("\\$HOME", "$HOME"),
        ("\\\\$HOME", "\\/root"),
        ("'$HOME'", "$HOME"),
        ("'a\\b'", "a\\b"),
        ('"$HOME"', "/root"),
        ('"\\$HOME"', "$HOME"),
        ('"a\\b"', "a\\b"),
        ('"a\\"b"', 'a"b'),
        ("a\\ b", "a b"),
        ("it\\'s", "it's"),
        ("$", "$"),
        ("$.", "$."),
        ("$1x", "x"),
        ("${FILE%.*}", "archive.tar"),
        ("${FILE%%.*}", "archive"),
        ("${FILE#*.}", "tar.gz"),
        ("${FILE##*.}", "gz"),
        ("${PATH/:/;}", "/a;/b:/c"),
        ("${PATH//:/;}", "/a;/b;/c"),
        ("${NAME}", "dock yard"),
        ("end\\", "end"),
        ("a<<b", "a<<b"),
    ],
)
def test_expand_word(word: str, result: str) -> None:
    assert expand_word(word, ENV) == result


def test_backtick_escape() -> None:
    assert expand_word("C:\\dir`$HOME", ENV, escape="`") == "C:\\dir$HOME"


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${}", 'failed to process "${}": syntax error: bad substitution'),
        ("${:x}", 'failed to process "${:x}": syntax error: bad substitution'),
        ("${HOME", 'failed to process "${HOME": unsupported modifier (\ufffd) in substitution'),
        ("${HOME:-x", "failed to process \"${HOME:-x\": syntax error: missing '}'"),
        ("${HOME:=x}", 'failed to process "${HOME:=x}": unsupported modifier (:=) in substitution'),
        ("${HOME:#x}", 'failed to process "${HOME:#x}": unsupported modifier (:#) in substitution'),
        ("${UNSET?}", 'failed to process "${UNSET?}": UNSET: is not allowed to be unset'),
        ("${EMPTY:?must be set}", 'failed to process "${EMPTY:?must be set}": EMPTY: must be set'),
        ("'open", 'failed to process "\'open": unexpected end of statement while looking for matching single-quote'),
        ('"open', 'failed to process "\\"open": unexpected end of statement while looking for matching double-quote'),
        ("${FILE%\\x}", 'failed to process "${FILE%\\\\x}": invalid pattern (\\x) in substitution: invalid escape \'\\x\''),
    ],
)  # fmt: skip
def test_expansion_errors(word: str, message: str) -> None:
    with pytest.raises(ShellWordError) as caught:
        expand_word(word, ENV)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("word", "words"),
    [
        ("a b  c", ["a", "b", "c"]),
        ("x${NAME}y", ["xdock", "yardy"]),
        ('x"${NAME}"y', ["xdock yardy"]),
        ("'a b' c", ["a b", "c"]),
        ("a\\ b", ["a b"]),
        ("", []),
        ("80/tcp $UNSET 443", ["80/tcp", "443"]),
    ],
)
def test_expand_words(word: str, words: list[str]) -> None:
    assert expand_words(word, ENV) == words


def test_matched_and_unmatched_names() -> None:
    result = Lexer().process("$HOME ${UNSET:-x} $EMPTY", ENV)
    assert (result.matched, result.unmatched) == (frozenset({"HOME", "EMPTY"}), frozenset({"UNSET"}))


def test_skip_unset_and_raw_modes() -> None:
    lexer = Lexer(skip_unset_env=True, raw_quotes=True, raw_escapes=True)
    assert lexer.process("'a' \"b\" \\c $U ${U} ${U:-d}", {}).result == "'a' \"b\" \\c $U ${U} ${U:-d}"


@pytest.mark.parametrize(
    ("text", "quoted"),
    [("a", '"a"'), ('"\\', '"\\"\\\\"'), ("\t\n\x00", '"\\t\\n\\x00"'), ("é", '"é"'), ("\u2028", '"\\u2028"')],
)  # fmt: skip
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted
