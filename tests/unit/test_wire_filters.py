"""Semantics and messages follow moby's api/types/filters (v28)."""

import pytest

from dockyard.errors import InvalidParameter
from dockyard.wire.filters import Filters, InvalidFilter, parse


def test_empty_string_is_no_filters() -> None:
    filters = parse("")
    assert len(filters) == 0
    assert dict(filters) == {}
    assert filters.get("label") == frozenset()
    assert not filters.contains("label")


def test_null_and_empty_object() -> None:
    assert len(parse("null")) == 0
    assert len(parse("{}")) == 0


def test_modern_form() -> None:
    filters = parse('{"label":{"a=b":true,"c":true},"status":{"running":true}}')
    assert dict(filters) == {"label": frozenset({"a=b", "c"}), "status": frozenset({"running"})}
    assert filters["status"] == frozenset({"running"})
    assert filters.contains("status")


def test_legacy_form() -> None:
    filters = parse('{"label":["a=b","c"],"dangling":["true"]}')
    assert dict(filters) == {"label": frozenset({"a=b", "c"}), "dangling": frozenset({"true"})}


def test_both_forms_are_equal_values() -> None:
    assert parse('{"name":{"x":true}}') == parse('{"name":["x"]}')
    assert hash(parse('{"name":{"x":true}}')) == hash(parse('{"name":["x"]}'))


def test_key_with_no_values() -> None:
    for text in ('{"label":{}}', '{"label":[]}', '{"label":null}'):
        filters = parse(text)
        assert filters.contains("label")
        assert filters.get("label") == frozenset()


def test_legacy_null_element_is_empty_string() -> None:
    assert parse('{"name":["a",null]}').get("name") == frozenset({"a", ""})


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '"label"',
        "1",
        '{"label":"a=b"}',
        '{"label":{"a":"yes"}}',
        '{"label":[1]}',
        '{"a":{"x":true},"b":["y"]}',
        '{"label":{"a":NaN}}',
        '{"label":["a"]} trailing',
    ],
)
def test_malformed_is_invalid_filter(text: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse(text)
    assert info.value.message == "invalid filter"
    assert isinstance(info.value, InvalidParameter)


def test_validate() -> None:
    filters = parse('{"label":{"a":true},"status":{"running":true}}')
    filters.validate({"label", "status", "name"})
    with pytest.raises(InvalidFilter) as info:
        filters.validate({"label"})
    assert info.value.message == "invalid filter 'status'"
    assert isinstance(info.value, InvalidParameter)


def test_validate_reports_first_bad_key_sorted() -> None:
    with pytest.raises(InvalidFilter, match="^invalid filter 'bar'$"):
        parse('{"foo":["1"],"bar":["2"]}').validate(set())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ('{"label":{}}', True),
        ('{"label":{"a":true}}', True),
        ('{"label":{"a=1":true}}', True),
        ('{"label":{"a=2":true}}', False),
        ('{"label":{"a":true,"b=x=y":true}}', True),
        ('{"label":{"a":true,"missing":true}}', False),
        ('{"label":{"b=x":true}}', False),
        ('{"label":{"empty=":true}}', True),
        ('{"label":{"empty":true}}', True),
        ('{"label":{"empty=x":true}}', False),
    ],
)
def test_match_label(text: str, expected: bool) -> None:
    labels = {"a": "1", "b": "x=y", "empty": ""}
    assert parse(text).match_label(labels) is expected


def test_match_label_with_no_labels() -> None:
    assert parse('{"label":["a"]}').match_label({}) is False
    assert parse("").match_label({}) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ('{"label!":["a"]}', False),
        ('{"label!":["z"]}', True),
        ('{"label!":["a=2"]}', True),
        ('{"label!":["a=1"]}', False),
        ('{"label":["a"],"label!":["z"]}', True),
        ('{"label":["z"],"label!":["q"]}', False),
        # a bare "label!" key matches (and so excludes) everything, as in moby
        ('{"label!":[]}', False),
    ],
)
def test_match_labels_prune(text: str, expected: bool) -> None:
    assert parse(text).match_labels_prune({"a": "1"}) is expected


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("", False, False),
        ("", True, True),
        ('{"dangling":["true"]}', False, True),
        ('{"dangling":["1"]}', False, True),
        ('{"dangling":["false"]}', True, False),
        ('{"dangling":["0"]}', True, False),
        ('{"dangling":{"true":true}}', False, True),
    ],
)
def test_bool_value(text: str, default: bool, expected: bool) -> None:
    assert parse(text).bool_value("dangling", default) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"dangling":["maybe"]}', "invalid filter 'dangling=[maybe]'"),
        ('{"dangling":["true","false"]}', "invalid filter 'dangling=[false true]'"),
        ('{"dangling":[]}', "invalid filter 'dangling'"),
        # a value sent as false counts as neither
        ('{"dangling":{"true":false}}', "invalid filter 'dangling=[true]'"),
    ],
)
def test_bool_value_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidFilter) as info:
        parse(text).bool_value("dangling", False)
    assert info.value.message == message


def test_exact_fuzzy_and_regex_match() -> None:
    filters = parse('{"id":["abc"],"name":["^web-[0-9]+$","db"],"one":["x"],"two":["x","y"]}')
    assert filters.exact_match("id", "abc")
    assert not filters.exact_match("id", "abcdef")
    assert filters.exact_match("absent", "anything")
    assert filters.fuzzy_match("id", "abcdef")
    assert not filters.fuzzy_match("id", "xabc")
    assert filters.match("name", "web-12")
    assert filters.match("name", "my-db-1")
    assert not filters.match("name", "web-x")
    assert filters.unique_exact_match("one", "x")
    assert not filters.unique_exact_match("two", "x")
    assert filters.unique_exact_match("absent", "x")


def test_false_values_count_for_get_but_not_exact_match() -> None:
    filters = parse('{"id":{"abc":false}}')
    assert filters.get("id") == frozenset({"abc"})
    assert not filters.exact_match("id", "abc")


def test_bad_regex_is_skipped() -> None:
    assert not parse('{"name":["(unclosed"]}').match("name", "anything")


def test_filters_value_is_immutable() -> None:
    filters = Filters({"a": {"x": True}})
    with pytest.raises(TypeError):
        filters["b"] = frozenset()  # type: ignore[index]
    with pytest.raises(AttributeError):
        filters.other = 1  # type: ignore[attr-defined]
