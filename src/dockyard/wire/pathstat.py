"""``docker cp`` on the wire (pure): the path-stat header and docker cp's path rules.

- :func:`encode_path_stat` gives the ``X-Docker-Container-Path-Stat`` value of
  ``HEAD``/``GET /containers/{id}/archive`` byte for byte as dockerd does:
  ``base64.StdEncoding`` of Go's ``json.Marshal`` of ``container.PathStat``
  (``{"name","size","mode","mtime","linkTarget"}``), where ``mode`` is a Go
  ``os.FileMode`` (type bits at the top of the word, not POSIX ``S_IF*``) and
  ``mtime`` is RFC 3339 with nanoseconds, trailing zeros dropped.
- Go's ``path/filepath`` on Unix (:func:`go_clean`, :func:`go_join`,
  :func:`go_base`, :func:`go_dir`, :func:`go_split`), because docker cp's
  rules are written in terms of it, quirks included.
- docker cp's rules from moby ``pkg/archive/copy.go``: trailing ``/`` and
  ``/.`` (:func:`preserve_trailing_dot_or_separator`,
  :func:`split_path_dir_entry`, :func:`asserts_directory`), the copy decision
  (:class:`CopyInfo`, :func:`prepare_archive_copy`), entry renaming
  (:func:`rebase_entry_name`), and the daemon's side of ``GET .../archive``
  (:func:`container_abs_path`, :func:`archive_source`, :func:`tar_entry_name`).

    CopyPathError (InvalidParameter)    the copy cannot be done as asked
    ├── CannotCopyDir                   "cannot copy directory": a dir onto an existing file
    └── DirNotExists                    "no such directory": a file onto a missing dir/ path
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
import stat as _stat
from dataclasses import dataclass

from dockyard.errors import InvalidParameter

__all__ = [
    "ArchiveSource",
    "CannotCopyDir",
    "CopyInfo",
    "CopyPathError",
    "DirNotExists",
    "PATH_STAT_HEADER",
    "PathStat",
    "Rebase",
    "archive_source",
    "asserts_directory",
    "container_abs_path",
    "decode_path_stat",
    "encode_path_stat",
    "go_base",
    "go_clean",
    "go_dir",
    "go_file_mode",
    "go_join",
    "go_json_string",
    "go_split",
    "path_stat_json",
    "posix_mode",
    "prepare_archive_copy",
    "preserve_trailing_dot_or_separator",
    "rebase_entry_name",
    "rfc3339nano",
    "split_path_dir_entry",
    "tar_entry_name",
]

PATH_STAT_HEADER = "X-Docker-Container-Path-Stat"

# Go's os.FileMode type and special bits (io/fs/fs.go), highest first.
MODE_DIR = 1 << 31
MODE_APPEND = 1 << 30
MODE_EXCLUSIVE = 1 << 29
MODE_TEMPORARY = 1 << 28
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20
MODE_IRREGULAR = 1 << 19
MODE_PERM = 0o777


class CopyPathError(InvalidParameter):
    """docker cp's copy decision refused the source/destination pair."""


class CannotCopyDir(CopyPathError):
    def __init__(self) -> None:
        super().__init__("cannot copy directory")


class DirNotExists(CopyPathError):
    def __init__(self) -> None:
        super().__init__("no such directory")


def go_file_mode(st_mode: int) -> int:
    """Go's ``os.FileMode`` for a POSIX ``st_mode`` (``fillFileStatFromSys``)."""
    mode = st_mode & MODE_PERM
    kind = _stat.S_IFMT(st_mode)
    if kind == _stat.S_IFBLK:
        mode |= MODE_DEVICE
    elif kind == _stat.S_IFCHR:
        mode |= MODE_DEVICE | MODE_CHAR_DEVICE
    elif kind == _stat.S_IFDIR:
        mode |= MODE_DIR
    elif kind == _stat.S_IFIFO:
        mode |= MODE_NAMED_PIPE
    elif kind == _stat.S_IFLNK:
        mode |= MODE_SYMLINK
    elif kind == _stat.S_IFSOCK:
        mode |= MODE_SOCKET
    if st_mode & _stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & _stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & _stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def posix_mode(go_mode: int) -> int:
    """The inverse of :func:`go_file_mode` (for clients reading the header)."""
    mode = go_mode & MODE_PERM
    if go_mode & MODE_DIR:
        mode |= _stat.S_IFDIR
    elif go_mode & MODE_SYMLINK:
        mode |= _stat.S_IFLNK
    elif go_mode & MODE_NAMED_PIPE:
        mode |= _stat.S_IFIFO
    elif go_mode & MODE_SOCKET:
        mode |= _stat.S_IFSOCK
    elif go_mode & MODE_DEVICE:
        mode |= _stat.S_IFCHR if go_mode & MODE_CHAR_DEVICE else _stat.S_IFBLK
    else:
        mode |= _stat.S_IFREG
    if go_mode & MODE_SETUID:
        mode |= _stat.S_ISUID
    if go_mode & MODE_SETGID:
        mode |= _stat.S_ISGID
    if go_mode & MODE_STICKY:
        mode |= _stat.S_ISVTX
    return mode


@dataclass(frozen=True, kw_only=True, slots=True)
class PathStat:
    """moby ``container.PathStat``. ``mode`` is a Go ``os.FileMode``; ``mtime_ns`` since the epoch."""

    name: str
    size: int
    mode: int
    mtime_ns: int
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & MODE_DIR)

    @property
    def is_symlink(self) -> bool:
        return bool(self.mode & MODE_SYMLINK)


def rfc3339nano(mtime_ns: int, *, utc_offset_seconds: int = 0) -> str:
    """Go's ``time.RFC3339Nano`` (what ``time.Time.MarshalJSON`` writes, without quotes).

    Go writes the daemon's local zone; dockerd in a container or under
    systemd without TZ runs in UTC, hence the default.
    """
    seconds, nanos = divmod(mtime_ns, 1_000_000_000)
    when = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=seconds + utc_offset_seconds)
    text = (f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
            f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}")
    if nanos:
        text += f".{nanos:09d}".rstrip("0")
    if utc_offset_seconds == 0:
        return text + "Z"
    sign = "-" if utc_offset_seconds < 0 else "+"
    minutes = abs(utc_offset_seconds) // 60
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


_RFC3339 = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z"
)


def _parse_rfc3339nano(text: str) -> int:
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    frac, zone = match.group(7) or "", match.group(8)
    offset = 0
    if zone != "Z":
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60 * (-1 if zone[0] == "-" else 1)
    local = _dt.datetime(year, month, day, hour, minute, second) - _dt.datetime(1970, 1, 1)
    seconds = local.days * 86400 + local.seconds - offset
    return seconds * 1_000_000_000 + int(frac.ljust(9, "0"))


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                  "\r": "\\r", "\t": "\\t"}


def go_json_string(text: str) -> str:
    """A JSON string as Go's ``json.Marshal`` writes it (HTML escaping on).

    ``text`` is a file name as Python's ``os`` gives it: bytes that are not
    UTF-8 arrive as surrogate escapes, and Go writes each such byte as
    ``\\ufffd``; ``<``, ``>``, ``&``, U+2028 and U+2029 are escaped; other
    non-ASCII is written as UTF-8.
    """
    # Round trip so a str built with surrogatepass and one from os.fsdecode agree.
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif code < 0x20 or char in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def path_stat_json(stat: PathStat, *, utc_offset_seconds: int = 0) -> bytes:
    """``json.Marshal(container.PathStat)``: compact, fields in struct order."""
    return (
        '{"name":' + go_json_string(stat.name)
        + f',"size":{stat.size},"mode":{stat.mode}'
        + f',"mtime":"{rfc3339nano(stat.mtime_ns, utc_offset_seconds=utc_offset_seconds)}"'
        + ',"linkTarget":' + go_json_string(stat.link_target) + "}"
    ).encode("utf-8")


def encode_path_stat(stat: PathStat, *, utc_offset_seconds: int = 0) -> str:
    """The ``X-Docker-Container-Path-Stat`` header value (standard base64, padded)."""
    raw = path_stat_json(stat, utc_offset_seconds=utc_offset_seconds)
    return base64.b64encode(raw).decode("ascii")


def decode_path_stat(value: str) -> PathStat:
    """Read a ``X-Docker-Container-Path-Stat`` value (ours or dockerd's). Raises ``ValueError``."""
    try:
        doc = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, json.JSONDecodeError) as err:
        raise ValueError(f"bad {PATH_STAT_HEADER} value") from err
    if not isinstance(doc, dict):
        raise ValueError(f"bad {PATH_STAT_HEADER} value")
    return PathStat(
        name=str(doc.get("name", "")),
        size=int(doc.get("size", 0)),
        mode=int(doc.get("mode", 0)),
        mtime_ns=_parse_rfc3339nano(str(doc.get("mtime", "0001-01-01T00:00:00Z"))),
        link_target=str(doc.get("linkTarget", "")),
    )


# -- Go's path/filepath on Unix ---------------------------------------------------


def go_clean(path: str) -> str:
    """``filepath.Clean``: ``..`` above ``/`` is dropped, above a relative start kept."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    joined = "/".join(parts)
    if rooted:
        return "/" + joined
    return joined or "."


def go_join(*elems: str) -> str:
    """``filepath.Join``: the non-empty elements joined by ``/``, cleaned; ``""`` if none."""
    kept = [e for e in elems if e]
    return go_clean("/".join(kept)) if kept else ""


def go_split(path: str) -> tuple[str, str]:
    """``filepath.Split``: everything up to and including the last ``/``, and the rest."""
    cut = path.rfind("/") + 1
    return path[:cut], path[cut:]


def go_base(path: str) -> str:
    """``filepath.Base``: trailing ``/`` ignored; ``"."`` for empty, ``"/"`` for all slashes."""
    if path == "":
        return "."
    path = path.rstrip("/")
    if path == "":
        return "/"
    return path[path.rfind("/") + 1:]


def go_dir(path: str) -> str:
    """``filepath.Dir``: ``Clean`` of everything up to the last ``/``."""
    return go_clean(go_split(path)[0])


# -- docker cp (moby pkg/archive/copy.go) --------------------------------------------


def has_trailing_separator(path: str) -> bool:
    return path.endswith("/")


def specifies_current_dir(path: str) -> bool:
    """The last element is ``.`` (``filepath.Base(path) == "."``, so ``""`` counts too)."""
    return go_base(path) == "."


def asserts_directory(path: str) -> bool:
    """A trailing ``/`` or ``/.`` says the path must be a directory."""
    return has_trailing_separator(path) or specifies_current_dir(path)


def preserve_trailing_dot_or_separator(cleaned: str, original: str) -> str:
    """Put back the trailing ``/.`` or ``/`` of ``original`` that cleaning took off ``cleaned``."""
    if not specifies_current_dir(cleaned) and specifies_current_dir(original):
        if not has_trailing_separator(cleaned):
            cleaned += "/"
        cleaned += "."
    if not has_trailing_separator(cleaned) and has_trailing_separator(original):
        cleaned += "/"
    return cleaned


def split_path_dir_entry(path: str) -> tuple[str, str]:
    """Directory and last element of ``path``, cleaned, keeping a trailing ``.`` as the element."""
    cleaned = go_clean(path)
    if specifies_current_dir(path):
        cleaned += "/."
    return go_dir(cleaned), go_base(cleaned)


def container_abs_path(path: str) -> str:
    """The daemon's ``absPath`` for the archive API: rooted, cleaned, trailing ``/``/``/.`` kept."""
    return preserve_trailing_dot_or_separator(go_join("/", path), path)


@dataclass(frozen=True, kw_only=True, slots=True)
class CopyInfo:
    """moby ``archive.CopyInfo``: one end of a copy."""

    path: str
    exists: bool
    is_dir: bool
    rebase_name: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Rebase:
    """Rename the first occurrence of ``old_base`` in each entry name to ``new_base``."""

    old_base: str
    new_base: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveCopyPlan:
    """Where to extract (``dst_dir``), and how to rename the entries first (``None``: as they are)."""

    dst_dir: str
    rebase: Rebase | None


def prepare_archive_copy(src: CopyInfo, dst: CopyInfo) -> ArchiveCopyPlan:
    """moby ``PrepareArchiveCopy``: the client-side decision of a ``docker cp``.

    Raises :class:`CannotCopyDir` (directory onto an existing non-directory)
    and :class:`DirNotExists` (a file onto a missing path that ends in ``/``).
    """
    dst_dir, dst_base = split_path_dir_entry(dst.path)
    _, src_base = split_path_dir_entry(src.path)
    if dst.exists and dst.is_dir:
        return ArchiveCopyPlan(dst_dir=dst.path, rebase=None)
    if dst.exists and src.is_dir:
        raise CannotCopyDir()
    if not dst.exists and not src.is_dir and asserts_directory(dst.path):
        raise DirNotExists()
    return ArchiveCopyPlan(dst_dir=dst_dir,
                           rebase=Rebase(old_base=src.rebase_name or src_base, new_base=dst_base))


def rebase_entry_name(name: str, rebase: Rebase) -> str:
    """moby ``RebaseArchiveEntries`` on one name (and on a hard link's target).

    Go's ``strings.Replace(name, old, new, 1)``: the first occurrence,
    wherever it is; an ``old_base`` of ``/`` means the empty string, so the
    new base goes in front.
    """
    old = "" if rebase.old_base == "/" else rebase.old_base
    if old == "":
        return rebase.new_base + name
    return name.replace(old, rebase.new_base, 1)


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveSource:
    """The daemon's ``TarResourceRebaseOpts`` for ``GET .../archive``.

    The tar walks ``source_base`` inside ``source_dir`` (``"."``: the
    directory itself) and renames ``source_base`` to ``rebase_name``.
    """

    source_dir: str
    source_base: str
    rebase_name: str


def archive_source(abs_path: str, *, is_dir: bool) -> ArchiveSource:
    """What ``containerArchivePath`` tars for ``abs_path`` (from :func:`container_abs_path`)."""
    if is_dir:
        return ArchiveSource(source_dir=abs_path, source_base=".", rebase_name=go_base(abs_path))
    directory, base = go_split(abs_path)
    return ArchiveSource(source_dir=directory, source_base=base, rebase_name=go_base(abs_path))


def tar_entry_name(rel_path: str, source: ArchiveSource, *, is_dir: bool) -> str:
    """The tar name ``TarWithOptions`` gives the entry at ``rel_path`` below ``source_dir``.

    ``rel_path`` is ``filepath.Rel(source_dir, entry)``: ``"."`` for the
    directory itself, ``"a/b"`` below it. Directories get a trailing ``/``.
    """
    name = rel_path
    if source.source_base == "." and name != ".":
        name = "./" + name
    replacement = "" if source.rebase_name == "/" else source.rebase_name
    if source.rebase_name:
        name = name.replace(source.source_base, replacement, 1)
    if is_dir and not name.endswith("/"):
        name += "/"
    return name
