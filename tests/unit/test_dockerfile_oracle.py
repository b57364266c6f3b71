"""Our line parser against BuildKit's own (the `dockerfile` package, a Go
build of BuildKit v0.12.5's parser): every file of the corpus must split
into the same instructions, flags, arguments, heredocs and line numbers,
and every malformed file must fail with the same message.

We follow current BuildKit where it changed since v0.12.5, so the corpus
avoids those few inputs (each has a unit test in test_dockerfile.py):
JSON arrays followed by other text (now shell form, v0.12 took the array),
whitespace between `<<` and a heredoc name (now a heredoc), the escape
character inside flags when `# escape=` changed it (now honoured), the
`# check=` directive (new). Representation differences are normalised in
`_ours`: ENV/LABEL nodes carry a third "=" value since v0.13.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import dockerfile as oracle  # type: ignore[import-not-found]  # no stubs
import pytest

from dockyard.build.dockerfile import parse_lines
from dockyard.build.instructions import DockerfileSyntaxError, Node

CORPUS = Path(__file__).resolve().parents[1] / "data" / "dockerfiles"
GOOD = sorted(p for p in CORPUS.glob("*.Dockerfile") if not p.name.startswith("error-"))
BAD = sorted(CORPUS.glob("error-*.Dockerfile"))

Shape = tuple[object, ...]


def _theirs(cmd: oracle.Command) -> Shape:
    # The package reports an empty string as None.
    return (
        cmd.cmd or "",
        cmd.sub_cmd,
        cmd.json,
        cmd.original or "",
        cmd.start_line,
        cmd.end_line,
        tuple(cmd.flags),
        tuple(cmd.value),
        tuple((h.name, h.file_descriptor, h.content) for h in cmd.heredocs),
    )


def _ours(node: Node) -> Shape:
    shown = node.child if node.child is not None else node
    values = shown.values
    if shown.child is not None:
        values = ("",)  # BuildKit's node for a nested ONBUILD has an empty value
    elif shown.keyword.lower() in ("env", "label"):
        values = tuple(v for i, v in enumerate(values) if i % 3 != 2)
    original = node.original
    # The oracle lists heredocs of the node it shows: ONBUILD's child has none.
    heredocs = node.heredocs if node.child is None else ()
    if heredocs:
        original += "\n" + "".join(h.content + h.name + "\n" for h in heredocs)
    return (
        node.keyword,
        node.child.keyword if node.child is not None else None,
        shown.json,
        original,
        node.start_line,
        node.end_line,
        node.flags,
        values,
        tuple((h.name, h.file_descriptor, h.content) for h in heredocs),
    )


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def test_corpus_is_not_empty() -> None:
    assert len(GOOD) >= 15 and len(BAD) >= 5


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.name)
def test_same_instructions_as_buildkit(path: Path) -> None:
    text = _read(path)
    theirs = [_theirs(c) for c in oracle.parse_string(text)]
    ours = [_ours(n) for n in parse_lines(text).nodes]
    assert ours == theirs


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_same_error_as_buildkit(path: Path) -> None:
    text = _read(path)
    with pytest.raises(oracle.GoParseError) as theirs:
        oracle.parse_string(text)
    with pytest.raises(DockerfileSyntaxError) as ours:
        parse_lines(text)
    assert str(ours.value) == str(theirs.value)


# Fragments for generated files: keywords, separators, quotes, escapes,
# comments, directives, heredoc openers and JSON arrays ending the line (a
# JSON array followed by text is a known, deliberate difference; so is
# whitespace after `<<`, which the generator never puts there on its own).
_FRAGMENTS = (
    "FROM", "RUN", "COPY", "ENV", "LABEL", "ONBUILD", "ADD", "CMD", "HEALTHCHECK",
    "ARG", "VOLUME", "EXPOSE", "SHELL", "foo", " ", "  ", "\t", "\\", "`", "\n", "\n",
    "\n", "\r\n", "#", "# syntax=x", "<<", "<<-", "EOF", "-EOF", "'", '"', "=", "a",
    "b=c", "--from=x", "--", '["a"]\n', ",", "$", "${x}", "\t\tEOF", "3", "\\\\",
    "{", "}", "<",
)  # fmt: skip


def _generated(seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(_FRAGMENTS) for _ in range(rng.randint(1, 40)))


@pytest.mark.parametrize("block", range(10))
def test_generated_files_match_buildkit(block: int) -> None:
    for seed in range(block * 500, (block + 1) * 500):
        text = _generated(seed)
        if re.search(r"<<-?[ \t\r]", text):
            continue  # whitespace after `<<`: BuildKit changed this after v0.12
        try:
            theirs: object = [_theirs(c) for c in oracle.parse_string(text)]
        except oracle.GoParseError as exc:
            theirs = str(exc)
        try:
            ours: object = [_ours(n) for n in parse_lines(text).nodes]
        except DockerfileSyntaxError as exc:
            ours = str(exc)
        assert ours == theirs, text
