"""The json-file log on disk: ``max-size``/``max-file`` options, the rotating writer, the file set.

Rotation follows moby's ``daemon/logger/loggerutils/logfile.go``: the live
file is ``<id>-json.log``; when an append would take it to ``max-size`` or
beyond, ``.<max-file - 1>`` is dropped, each ``.N`` becomes ``.N+1``, the live
file becomes ``.1`` and a fresh live file is started. With ``max-file`` 1 the
live file is truncated instead. An entry larger than ``max-size`` is written
whole into a fresh file (as moby does: entries are never cut).

The writer sits on the stdio hot path (hundreds of MB/s through
:class:`dockyard.engine.stdio.StdioHub`), so it compares sizes once per
appended chunk, not per line, and only a chunk that crosses the limit is
split -- at line ends, since every json-file entry is one line.

:func:`parse_log_options` is pure (moby's ``jsonfilelog.New`` and
``ValidateLogOpt``): ``max-size`` in ``units.FromHumanSize`` notation
(decimal: ``1k`` is 1000 bytes), ``max-file`` a positive integer; other json-file
options moby knows are refused as not implemented, unknown ones as unknown.

Errors::

    LogOptionError (dockyard.errors.InvalidParameter)  an invalid or unsupported log option
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidParameter

__all__ = [
    "LOG_DRIVER",
    "LogFileOptions",
    "LogOptionError",
    "RotatingLogWriter",
    "log_file_options",
    "log_files",
    "parse_log_options",
    "rotated_path",
    "with_log_defaults",
]

log = logging.getLogger(__name__)

LOG_DRIVER = "json-file"
# Options moby's json-file accepts that dockyard does not implement yet.
_NOT_IMPLEMENTED = ("compress", "labels", "labels-regex", "env", "env-regex", "tag")
_SIZE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


class LogOptionError(InvalidParameter):
    """A log option dockyard cannot honour (message as dockerd words it where it has one)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class LogFileOptions:
    """``max_size`` in bytes (None: unlimited); ``max_file`` files kept, the live one included."""

    max_size: int | None = None
    max_file: int = 1


def _human_size(text: str) -> int:
    match = _SIZE.match(text)
    if match is None:
        raise LogOptionError(f"invalid size: '{text}'")
    unit = (match.group(2) or "").lower()
    return int(float(match.group(1)) * _DECIMAL.get(unit, 1))


def parse_log_options(config: Mapping[str, str] | None) -> LogFileOptions:
    """The json-file options of a ``LogConfig.Config`` (or daemon.json ``log-opts``)."""
    config = config or {}
    for key, value in config.items():
        if key in _NOT_IMPLEMENTED:
            if key == "compress" and str(value).lower() in ("false", "0", ""):
                continue
            raise LogOptionError(f"log opt '{key}' for json-file log driver is not supported by dockyard")
        if key not in ("max-size", "max-file"):
            raise LogOptionError(f"unknown log opt '{key}' for json-file log driver")
    max_size = None
    if "max-size" in config:
        max_size = _human_size(str(config["max-size"]))
        if max_size <= 0:
            raise LogOptionError("max-size must be a positive number")
    max_file = 1
    if "max-file" in config:
        try:
            max_file = int(str(config["max-file"]))
        except ValueError:
            raise LogOptionError(f"strconv.Atoi: parsing \"{config['max-file']}\": invalid syntax") from None
        if max_file < 1:
            raise LogOptionError("max-file cannot be less than 1")
    return LogFileOptions(max_size=max_size, max_file=max_file)


def log_file_options(host_config: Mapping[str, object]) -> LogFileOptions:
    """The options of a stored container's ``HostConfig.LogConfig`` (checked at create)."""
    log_config = host_config.get("LogConfig")
    config = log_config.get("Config") if isinstance(log_config, Mapping) else None
    return parse_log_options(config if isinstance(config, Mapping) else None)


def with_log_defaults(host_config: Mapping[str, object], defaults: Mapping[str, str]) -> dict[str, object]:
    """``host_config`` with daemon ``log-opts`` merged into its ``LogConfig``, checked.

    As moby's ``mergeAndVerifyLogConfig``: an unset type is the daemon's
    (json-file), options the container did not set come from the daemon.
    Raises :class:`LogOptionError` for an invalid result.
    """
    log_config = host_config.get("LogConfig")
    log_config = log_config if isinstance(log_config, Mapping) else {}
    log_type = log_config.get("Type") or LOG_DRIVER
    if log_type != LOG_DRIVER:
        raise LogOptionError(f"logging driver {log_type!r} is not supported by dockyard (only json-file)")
    config = log_config.get("Config")
    merged = {**defaults, **(config if isinstance(config, Mapping) else {})}
    parse_log_options(merged)
    return {**host_config, "LogConfig": {"Type": log_type, "Config": merged}}


def rotated_path(path: Path, index: int) -> Path:
    """``<path>.<index>``; index 0 is the live file."""
    return path if index == 0 else path.with_name(f"{path.name}.{index}")


def log_files(path: Path) -> list[Path]:
    """The existing files of a log, oldest first, the live file last (if it exists)."""
    older: list[Path] = []
    index = 1
    while (candidate := rotated_path(path, index)).exists():
        older.append(candidate)
        index += 1
    older.reverse()
    if path.exists():
        older.append(path)
    return older


class RotatingLogWriter:
    """Appends whole json-file lines to a log, rotating as configured.

    Synchronous on purpose (see StdioHub: a page-cache write is cheaper than a
    thread hop). ``append`` raises ``OSError``; the caller decides what a
    failed log write means.
    """

    def __init__(self, path: Path, options: LogFileOptions = LogFileOptions()) -> None:
        self.path = path
        self._max_size = options.max_size
        self._max_file = options.max_file
        # 0640 and O_APPEND, as dockerd's json-file: a restarted container
        # appends to the log of its earlier runs.
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._size = os.fstat(self._fd).st_size

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def append(self, data: bytes) -> None:
        """Append complete lines (every chunk the encoder gives ends at a line end)."""
        if not data or self._fd < 0:
            return
        limit = self._max_size
        if limit is None or self._size + len(data) < limit:
            self._write(data)
            return
        self._append_rotating(data, limit)

    def _append_rotating(self, data: bytes, limit: int) -> None:
        start = 0
        while start < len(data):
            room = limit - self._size
            # The longest run of whole lines that keeps the file under the limit.
            cut = data.rfind(b"\n", start, start + room - 1) + 1 if room > 1 else 0
            if cut <= start:
                if self._size > 0:
                    self._rotate()
                    continue
                # An entry larger than the limit goes whole into a fresh file.
                end = data.find(b"\n", start)
                cut = len(data) if end < 0 else end + 1
            self._write(data[start:cut])
            start = cut

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            self._size += written
            view = view[written:]

    def _rotate(self) -> None:
        os.close(self._fd)
        self._fd = -1
        if self._max_file >= 2:
            for index in range(self._max_file - 1, 0, -1):
                source = rotated_path(self.path, index - 1)
                try:
                    os.replace(source, rotated_path(self.path, index))
                except FileNotFoundError:
                    pass
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self._size = 0

    def close(self) -> None:
        """Close the live file; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
