import random
import re

import pytest

from dockyard.errors import InvalidParameter
from dockyard.wire.names import (
    ADJECTIVES,
    SURNAMES,
    InvalidName,
    generate,
    is_valid_name,
    validate_name,
)


def test_generate_shape_and_determinism() -> None:
    names = [generate(random.Random(42)) for _ in range(3)]
    assert len(set(names)) == 1  # same seed, same name
    adjective, surname = names[0].split("_")
    assert adjective in ADJECTIVES
    assert surname in SURNAMES


def test_generate_names_are_valid_and_varied() -> None:
    rand = random.Random(7)
    names = {generate(rand) for _ in range(200)}
    assert len(names) > 150
    for name in names:
        assert re.fullmatch(r"[a-z]+_[a-z]+", name)
        validate_name(name)


def test_generate_retry_appends_a_digit() -> None:
    rand = random.Random(1)
    for _ in range(50):
        assert re.fullmatch(r"[a-z]+_[a-z]+[0-9]", generate(rand, retry=1))


def test_word_lists_are_sized_and_clean() -> None:
    assert len(ADJECTIVES) >= 30
    assert len(SURNAMES) >= 30
    assert len(set(ADJECTIVES)) == len(ADJECTIVES)
    assert len(set(SURNAMES)) == len(SURNAMES)
    for word in ADJECTIVES + SURNAMES:
        assert re.fullmatch(r"[a-z]+", word)


@pytest.mark.parametrize(
    "name",
    ["web", "/web", "ab", "a1", "My.App_2-x", "0abc", "x" * 300],
)
def test_valid_names(name: str) -> None:
    assert is_valid_name(name)
    validate_name(name)


@pytest.mark.parametrize(
    "name",
    ["a", "/a", "", "/", "//web", "_web", "-web", ".web", "we b", "web/", "wéb", "web\n", "web!"],
)
def test_invalid_names(name: str) -> None:
    assert not is_valid_name(name)
    with pytest.raises(InvalidName) as info:
        validate_name(name)
    assert info.value.message == (
        f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    )
    assert isinstance(info.value, InvalidParameter)
