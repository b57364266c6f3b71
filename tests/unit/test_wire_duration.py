"""Vectors follow go-units' HumanDuration, Go's RFC3339Nano and moby's
api/types/time (GetTimestamp / ParseTimestamps) behaviour."""

import pytest

from dockyard.errors import InvalidParameter
from dockyard.wire.duration import (
    ZERO_TIME,
    InvalidTime,
    format_time,
    get_timestamp,
    human_duration,
    human_duration_ns,
    parse_duration,
    parse_time,
    parse_timestamps,
)

SECOND = 1
MINUTE = 60
HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY
YEAR = 365 * DAY


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.45, "Less than a second"),
        (0.999, "Less than a second"),
        (-5, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (3, "3 seconds"),
        (45, "45 seconds"),
        (59, "59 seconds"),
        (59.999, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (3 * MINUTE, "3 minutes"),
        (35 * MINUTE + 40, "35 minutes"),
        (59 * MINUTE, "59 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 29 * MINUTE, "About an hour"),
        (HOUR + 31 * MINUTE, "2 hours"),
        (3 * HOUR + 29 * MINUTE, "3 hours"),
        (3 * HOUR + 31 * MINUTE, "4 hours"),
        (24 * HOUR, "24 hours"),
        (DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


def test_human_duration_ns() -> None:
    assert human_duration_ns(999_999_999) == "Less than a second"
    assert human_duration_ns(1_000_000_000) == "1 second"
    assert human_duration_ns(90 * 60 * 10**9) == "2 hours"


@pytest.mark.parametrize(
    ("epoch_ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_704_164_645_123_456_789, "2024-01-02T03:04:05.123456789Z"),
        (1_704_164_645_123_456_780, "2024-01-02T03:04:05.12345678Z"),
        (1_704_164_645_100_000_000, "2024-01-02T03:04:05.1Z"),
        (1_704_164_645_000_000_000, "2024-01-02T03:04:05Z"),
        (1_704_164_645_000_000_001, "2024-01-02T03:04:05.000000001Z"),
        (951_782_400 * 10**9, "2000-02-29T00:00:00Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
        (-62_135_596_800 * 10**9, ZERO_TIME),
        (253_402_300_799 * 10**9, "9999-12-31T23:59:59Z"),
    ],
)
def test_format_time(epoch_ns: int, text: str) -> None:
    assert format_time(epoch_ns) == text


def test_zero_time() -> None:
    assert ZERO_TIME == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [
        ("1136073600", 0, (1136073600, 0)),
        ("1136073600.000000001", 0, (1136073600, 1)),
        ("1136073600.0000000010", 0, (1136073600, 1)),
        ("1136073600.0000000001", 0, (1136073600, 0)),
        ("1136073600.0000000009", 0, (1136073600, 0)),
        ("1136073600.00000001", 0, (1136073600, 10)),
        ("1700000000.123", 0, (1700000000, 123000000)),
        ("1700000000.5", 0, (1700000000, 500000000)),
        ("+5", 0, (5, 0)),
        ("-5", 0, (-5, 0)),
        ("", -1, (-1, 0)),
        ("", 0, (0, 0)),
    ],
)
def test_parse_timestamps(value: str, default: int, expected: tuple[int, int]) -> None:
    assert parse_timestamps(value, default) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("foo.bar", 'strconv.ParseInt: parsing "foo": invalid syntax'),
        ("1136073600.bar", 'strconv.ParseInt: parsing "bar": invalid syntax'),
        ("1.", 'strconv.ParseInt: parsing "": invalid syntax'),
        ("2024-01-02", 'strconv.ParseInt: parsing "2024-01-02": invalid syntax'),
        ("99999999999999999999", 'strconv.ParseInt: parsing "99999999999999999999": value out of range'),
        (" 1", 'strconv.ParseInt: parsing " 1": invalid syntax'),
    ],
)
def test_parse_timestamps_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidTime) as info:
        parse_timestamps(value)
    assert info.value.message == message
    assert isinstance(info.value, InvalidParameter)


NOW = 1_700_000_000_250_000_000  # a reference with a fraction, to check flooring


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2006-01-02T15:04:05.999999999+07:00", "1136189045.999999999"),
        ("2006-01-02T15:04:05.999999999Z", "1136214245.999999999"),
        ("2006-01-02T15:04:05.999999999", "1136214245.999999999"),
        ("2006-01-02T15:04:05Z", "1136214245.000000000"),
        ("2006-01-02T15:04:05", "1136214245.000000000"),
        ("2006-01-02T15:04Z", "1136214240.000000000"),
        ("2006-01-02T15:04+00:00", "1136214240.000000000"),
        ("2006-01-02T15:04-00:00", "1136214240.000000000"),
        ("2006-01-02T15:04", "1136214240.000000000"),
        ("2006-01-02T15Z", "1136214000.000000000"),
        ("2006-01-02T15+00:00", "1136214000.000000000"),
        ("2006-01-02T15-00:00", "1136214000.000000000"),
        ("2006-01-02T15", "1136214000.000000000"),
        ("2006-01-02T1Z", "1136163600.000000000"),
        ("2006-01-02T1", "1136163600.000000000"),
        ("2006-01-02+00:00", "1136160000.000000000"),
        ("2006-01-02-00:00", "1136160000.000000000"),
        ("2006-01-02-00:01", "1136160060.000000000"),
        ("2006-01-02Z", "1136160000.000000000"),
        ("2006-01-02", "1136160000.000000000"),
        ("2015-05-13T20:39:09Z", "1431549549.000000000"),
        ("2024-01-02T03:04:05.5+01:00", "1704161045.500000000"),
        ("1136073600", "1136073600"),
        ("1136073600.000000001", "1136073600.000000001"),
        ("0", "0"),
        ("1m", "1699999940"),
        ("1.5h", "1699994600"),
        ("1h30m", "1699994600"),
        ("-1s", "1700000001"),
        ("250ms", "1700000000"),
        ("251ms", "1699999999"),
    ],
)
def test_get_timestamp(value: str, expected: str) -> None:
    assert get_timestamp(value, now_ns=NOW) == expected


def test_get_timestamp_local_zone() -> None:
    # A value without a zone is read in the daemon's zone (here UTC+2).
    assert get_timestamp("2006-01-02T15:04:05", now_ns=NOW, utc_offset=7200) == "1136207045.000000000"
    assert get_timestamp("2006-01-02T15:04:05Z", now_ns=NOW, utc_offset=7200) == "1136214245.000000000"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2006-01-02T15:04:0Z", 'parsing time "2006-01-02T15:04:0Z" as "2006-01-02T15:04:05Z07:00": cannot parse "0Z" as "05"'),
        ("2006-01-02T15:04:0", 'parsing time "2006-01-02T15:04:0" as "2006-01-02T15:04:05": cannot parse "0" as "05"'),
        ("2006-01-02T15:0Z", 'parsing time "2006-01-02T15:0Z" as "2006-01-02T15:04Z07:00": cannot parse "0Z" as "04"'),
        ("2006-01-02TZ", 'parsing time "2006-01-02TZ" as "2006-01-02T15Z07:00": cannot parse "Z" as "15"'),
        ("2006-01-02T", 'parsing time "2006-01-02T" as "2006-01-02T15": cannot parse "" as "15"'),
        ("2024-13-02", 'parsing time "2024-13-02": month out of range'),
        ("2023-02-29", 'parsing time "2023-02-29": day out of range'),
        ("2024-01-02T24", 'parsing time "2024-01-02T24": hour out of range'),
        ("2024-01-02T03:60", 'parsing time "2024-01-02T03:60": minute out of range'),
        ("2024-01-02x", 'parsing time "2024-01-02x": extra text: "x"'),
        ("2024/01/02-", 'parsing time "2024/01/02-" as "2006-01-02": cannot parse "/01/02-" as "-"'),
        ("invalid", 'failed to parse value as time or duration: "invalid"'),
        ("", 'failed to parse value as time or duration: ""'),
        ("1.x", 'failed to parse value as time or duration: "1.x"'),
    ],
)
def test_get_timestamp_errors(value: str, message: str) -> None:
    with pytest.raises(InvalidTime) as info:
        get_timestamp(value, now_ns=NOW)
    assert info.value.message == message


def test_leap_day_accepted() -> None:
    assert get_timestamp("2024-02-29", now_ns=NOW) == "1709164800.000000000"


def test_parse_time() -> None:
    assert parse_time("1700000000.123", now_ns=0) == 1_700_000_000_123_000_000
    assert parse_time("2006-01-02T15:04:05.5Z", now_ns=0) == 1_136_214_245_500_000_000
    assert parse_time("10m", now_ns=NOW) == 1_699_999_400 * 10**9
    with pytest.raises(InvalidTime):
        parse_time("nope", now_ns=0)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("1s", 10**9),
        ("1.5h", 90 * 60 * 10**9),
        ("1h30m", 90 * 60 * 10**9),
        ("-2m3s", -123 * 10**9),
        ("+.5s", 5 * 10**8),
        ("1us", 1000),
        ("1\u00b5s", 1000),
        ("1\u03bcs", 1000),
        ("3ms4ns", 3_000_004),
        ("2562047h47m16.854775807s", (1 << 63) - 1),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("1", 'time: missing unit in duration "1"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
        (".s", 'time: invalid duration ".s"'),
        ("s", 'time: invalid duration "s"'),
        ("2562047h47m16.854775808s", 'time: invalid duration "2562047h47m16.854775808s"'),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidTime) as info:
        parse_duration(text)
    assert info.value.message == message
