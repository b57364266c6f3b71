import pytest

from dockyard.wire.pathmatch import BadPattern, compile_match


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "dir/a.txt", False),  # * never crosses /
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[ab]x", "bx", True),
        ("[!ab]x", "cx", True),
        ("[^ab]x", "ax", False),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("busybox:*", "busybox:latest", True),
        ("dockyard-test/*", "dockyard-test/busybox", True),
    ],
)
def test_matches_like_go_path_match(pattern, name, matches):
    assert bool(compile_match(pattern).match(name)) is matches


def test_unclosed_class_is_go_bad_pattern():
    with pytest.raises(BadPattern, match="^syntax error in pattern$"):
        compile_match("[ab")
