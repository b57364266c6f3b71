"""The json-file log's options, rotating writer and cross-file reader."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.engine.log_file import (
    LogFileOptions,
    LogOptionError,
    RotatingLogWriter,
    log_files,
    parse_log_options,
    with_log_defaults,
)
from dockyard.engine.logs import JsonLogEncoder, LogSignal, LogsOptions, read_logs


def test_options_as_moby_parses_them() -> None:
    assert parse_log_options({"max-size": "1k", "max-file": "3"}) == LogFileOptions(max_size=1000, max_file=3)
    assert parse_log_options({"max-size": "10m"}).max_size == 10_000_000
    assert parse_log_options({"max-size": "1.5kb"}).max_size == 1500
    assert parse_log_options(None) == LogFileOptions()
    assert parse_log_options({"compress": "false"}) == LogFileOptions()
    for bad, message in (({"max-size": "x"}, "invalid size"), ({"max-size": "0"}, "positive"),
                         ({"max-file": "0"}, "less than 1"), ({"max-file": "a"}, "invalid syntax"),
                         ({"compress": "true"}, "not supported"), ({"mode": "x"}, "unknown log opt 'mode'")):
        with pytest.raises(LogOptionError, match=message):
            parse_log_options(bad)


def test_daemon_defaults_fill_what_the_container_left_unset() -> None:
    merged = with_log_defaults({"LogConfig": {"Type": "", "Config": {"max-file": "2"}}},
                               {"max-size": "1k", "max-file": "5"})
    assert merged["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1k", "max-file": "2"}}
    assert with_log_defaults({}, {})["LogConfig"] == {"Type": "json-file", "Config": {}}
    with pytest.raises(LogOptionError, match="syslog"):
        with_log_defaults({"LogConfig": {"Type": "syslog"}}, {})


def _lines(first: int, count: int) -> bytes:
    return b"".join(b"line %04d\n" % i for i in range(first, first + count))


def test_rotation_keeps_max_file_files_under_max_size(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = RotatingLogWriter(path, LogFileOptions(max_size=100, max_file=3))
    for i in range(0, 100, 7):
        writer.append(_lines(i, 7))  # chunks of 70 bytes: most cross the limit
    writer.close()
    files = log_files(path)
    assert [f.name for f in files] == ["c-json.log.2", "c-json.log.1", "c-json.log"]
    assert all(f.stat().st_size < 100 for f in files)
    data = b"".join(f.read_bytes() for f in files)
    numbers = [int(line.split()[1]) for line in data.splitlines()]
    assert numbers == list(range(numbers[0], 105))


def test_single_file_truncates_and_oversized_entries_go_whole(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = RotatingLogWriter(path, LogFileOptions(max_size=20, max_file=1))
    writer.append(b"a" * 50 + b"\n")
    writer.append(b"short\n")
    writer.close()
    assert log_files(path) == [path]
    assert path.read_bytes() == b"short\n"


def _encoded(count: int, start: int = 0) -> bytes:
    return JsonLogEncoder(1).feed(_lines(start, count), 1_700_000_000_000_000_000)


async def _collect(path: Path, options: LogsOptions, live: LogSignal | None = None) -> list[bytes]:
    return [data async for _, data in read_logs(path, options, live=live)]


def test_reading_across_rotated_files_with_tail(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    writer = RotatingLogWriter(path, LogFileOptions(max_size=400, max_file=4))
    for i in range(40):
        writer.append(_encoded(1, i))
    writer.close()
    assert len(log_files(path)) == 4
    everything = asyncio.run(_collect(path, LogsOptions()))
    first = int(everything[0].split()[1])
    assert everything == [b"line %04d\n" % i for i in range(first, 40)]
    for tail in (0, 1, 3, 9, 20, 1000):
        got = asyncio.run(_collect(path, LogsOptions(tail=tail)))
        assert got == everything[len(everything) - min(tail, len(everything)):]


def test_follow_continues_across_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"

    async def scenario() -> list[bytes]:
        writer = RotatingLogWriter(path, LogFileOptions(max_size=300, max_file=3))
        signal = LogSignal()
        got: list[bytes] = []

        async def follow() -> None:
            async for _, data in read_logs(path, LogsOptions(follow=True), live=signal):
                got.append(data)

        task = asyncio.ensure_future(follow())
        for i in range(12):
            writer.append(_encoded(1, i))
            signal.notify()
            await asyncio.sleep(0)
        writer.close()
        signal.end()
        await asyncio.wait_for(task, 10)
        return got

    assert asyncio.run(scenario()) == [b"line %04d\n" % i for i in range(12)]


def test_daemon_json_log_keys() -> None:
    from dockyard.config import Flags, load_config, parse_config_file
    from dockyard.errors import InvalidParameter

    data = parse_config_file('{"log-driver": "json-file", "log-opts": {"max-size": "1k", "max-file": "3"}}')
    assert load_config(Flags(), data).log_opts == (("max-file", "3"), ("max-size", "1k"))
    with pytest.raises(InvalidParameter, match="log driver 'syslog' is not supported"):
        load_config(Flags(), parse_config_file('{"log-driver": "syslog"}'))
    with pytest.raises(LogOptionError, match="less than 1"):
        load_config(Flags(), parse_config_file('{"log-opts": {"max-file": "0"}}'))
    with pytest.raises(InvalidParameter, match="invalid value for 'log-opts'"):
        parse_config_file('{"log-opts": {"max-file": 3}}')
