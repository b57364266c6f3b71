""".dockerignore reading and Docker's pattern matching (moby/patternmatcher rules)."""

from __future__ import annotations

import pytest

from dockyard.build.dockerignore import (
    DockerignoreError,
    MatchInfo,
    PatternMatcher,
    go_clean,
    matches_or_parent_matches,
    read_dockerignore,
)


def test_read_dockerignore() -> None:
    text = (
        b"\xef\xbb\xbf# comment\r\n"
        b"  /node_modules/  \r\n"
        b"\n"
        b"  # indented hash is a pattern\n"
        b"! /keep//me/../this \n"
        b"a/./b/\n"
        b"/\n"
        b"!\n"
        b"../outside"
    )
    assert read_dockerignore(text) == [
        "node_modules",
        "# indented hash is a pattern",
        "!keep/this",
        "a/b",
        "/",
        "!",
        "../outside",
    ]


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "."), ("a//b/./c/..", "a/b"), ("/../a", "/a"), ("../../a", "../../a"), ("a/../..", ".."), ("/", "/")],
)  # fmt: skip
def test_go_clean(path: str, cleaned: str) -> None:
    assert go_clean(path) == cleaned


PATTERNS = [
    "node_modules",
    "**/*.log",
    "!keep.log",
    "docs/**",
    "!docs/README.md",
    "*.tmp",
    "build/",
    "[a-c]?.txt",
    "**/cache",
    "sp\\*cial",
]


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        ("node_modules", True),
        ("node_modules/pkg/index.js", True),
        ("src/node_modules", False),  # patterns are anchored at the context root
        ("a.log", True),
        ("deep/dir/b.log", True),
        ("keep.log", False),
        ("sub/keep.log", True),
        ("docs", False),
        ("docs/guide.md", True),
        ("docs/README.md", False),
        ("x.tmp", True),
        ("sub/x.tmp", False),  # `*` does not cross `/`
        ("build", True),
        ("build/out/bin", True),
        ("ab.txt", True),
        ("d1.txt", False),
        ("cache", True),
        ("a/b/cache/c", True),
        ("sp*cial", True),
        ("spXcial", False),
        ("Dockerfile", False),
        (".", False),
        ("./node_modules/", True),
    ],
)
def test_matches(path: str, ignored: bool) -> None:
    assert PatternMatcher(PATTERNS).matches(path) is ignored
    assert matches_or_parent_matches(path, PATTERNS) is ignored


def test_exclusion_flag_and_order() -> None:
    assert PatternMatcher(["a", "!a"]).matches("a") is False
    assert PatternMatcher(["!a", "a"]).matches("a") is True
    assert PatternMatcher(["*", "!important"]).exclusions is True
    assert PatternMatcher(["*"]).exclusions is False


def test_double_star_forms() -> None:
    pm = PatternMatcher(["**"])
    assert pm.matches("anything/at/all")
    pm = PatternMatcher(["a/**/b"])
    assert [pm.matches(p) for p in ("a/b", "a/x/b", "a/x/y/b", "a/xb", "b")] == [True, True, True, False, False]
    pm = PatternMatcher(["a**"])
    assert [pm.matches(p) for p in ("a", "abc", "abc/d", "b")] == [True, True, True, False]


def test_walk_with_parent_results() -> None:
    pm = PatternMatcher(["dir", "!dir/keep"])
    top, info = pm.matches_using_parent_results("dir", MatchInfo())
    assert top is True
    child, _ = pm.matches_using_parent_results("dir/keep", info)
    other, _ = pm.matches_using_parent_results("dir/drop", info)
    assert (child, other) == (False, True)
    fresh, _ = pm.matches_using_parent_results("dir/drop", MatchInfo())
    assert fresh is True


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("[", "syntax error in pattern"),
        ("a[]", "syntax error in pattern"),
        ("[a-", "syntax error in pattern"),
        ("[^]", "syntax error in pattern"),
        ("trailing\\", "syntax error in pattern"),
        ("!", 'illegal exclusion pattern: "!"'),
    ],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(DockerignoreError) as caught:
        PatternMatcher([pattern])
    assert str(caught.value) == message


def test_valid_classes() -> None:
    pm = PatternMatcher(["[^a]x", "[\\]]y"])
    assert [pm.matches(p) for p in ("bx", "ax", "]y")] == [True, False, True]
