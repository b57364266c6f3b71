"""Resolve Docker's ``User`` and ``GroupAdd`` against an image's /etc/passwd and /etc/group.

Pure: the caller reads the two files out of the container's root filesystem
and passes their text (``None`` when a file is missing, which is not an
error: numeric ids still work). The rules and messages are those of moby's
``daemon/oci_linux.go:getUser`` on top of ``github.com/moby/sys/user``:

- ``""`` is uid 0; ``name`` / ``uid`` / ``name:group`` / ``uid:gid`` / ``name:gid`` / ``uid:group``;
- a numeric user or group is an id even when no entry names it (``1000`` →
  uid 1000, gid 0);
- a user matched in passwd takes its primary gid and home from there and, when
  no group is given explicitly, its supplementary groups from /etc/group
  membership;
- ``GroupAdd`` entries are group names or numbers; an unknown name is an error.

Raises ``UserLookupError`` (an ``InvalidParameter``) with moby's message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.oci.errors import UserLookupError

__all__ = ["ResolvedUser", "resolve_user"]

_MIN_ID = 0
_MAX_ID = (1 << 31) - 1  # moby/sys/user keeps ids in the 32-bit signed range
_RANGE_MESSAGE = f"uids and gids must be in range {_MIN_ID}-{_MAX_ID}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedUser:
    """The process identity for the OCI spec.

    ``additional_gids`` is exactly ``process.user.additionalGids``: the primary
    gid first (moby always repeats it), then /etc/group memberships, then the
    ``GroupAdd`` entries in request order.
    """

    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    home: str


@dataclass(frozen=True, slots=True)
class _PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True, slots=True)
class _GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def _atoi(text: str) -> int | None:
    """Go's ``strconv.Atoi``: optional sign, decimal digits, nothing else."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    return int(text)


def _lenient_int(text: str) -> int:
    # moby/sys/user ignores conversion errors in the files ("misbehaving configuration files").
    value = _atoi(text)
    return 0 if value is None else value


def _fields(line: str, count: int) -> list[str]:
    parts = line.split(":")[:count]
    return parts + [""] * (count - len(parts))


def _parse_passwd(text: str) -> list[_PasswdEntry]:
    entries = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:  # unlike /etc/group, passwd comments are not skipped (same as moby)
            continue
        name, _pw, uid, gid, _gecos, home = _fields(line, 6)
        entries.append(_PasswdEntry(name, _lenient_int(uid), _lenient_int(gid), home))
    return entries


def _parse_group(text: str) -> list[_GroupEntry]:
    entries = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _pw, gid, members = _fields(line, 4)
        entries.append(
            _GroupEntry(name, _lenient_int(gid), tuple(members.split(",")) if members else ())
        )
    return entries


def _check_range(value: int) -> int:
    if value < _MIN_ID or value > _MAX_ID:
        raise UserLookupError(_RANGE_MESSAGE)
    return value


def _exec_user(
    user_spec: str, passwd_text: str | None, group_text: str | None
) -> tuple[int, int, list[int], str]:
    user_arg, group_arg = _fields(user_spec, 2)
    uid_arg = _atoi(user_arg)
    gid_arg = _atoi(group_arg)
    uid, gid, sgids, home = 0, 0, [], ""

    users = []
    if passwd_text is not None:
        for entry in _parse_passwd(passwd_text):
            if user_arg == "":
                match = entry.uid == uid
            elif uid_arg is not None:
                match = entry.uid == uid_arg
            else:
                match = entry.name == user_arg
            if match:
                users.append(entry)

    matched_name = ""
    if users:
        first = users[0]  # first match wins, as in moby
        matched_name, uid, gid, home = first.name, first.uid, first.gid, first.home
    elif user_arg != "":
        if uid_arg is None:
            raise UserLookupError(
                f"unable to find user {user_arg}: no matching entries in passwd file"
            )
        uid = _check_range(uid_arg)

    if group_arg != "" or matched_name != "":
        groups = []
        if group_text is not None:
            for group in _parse_group(group_text):
                if group_arg == "":
                    match = matched_name in group.members
                elif gid_arg is not None:
                    match = group.gid == gid_arg
                else:
                    match = group.name == group_arg
                if match:
                    groups.append(group)
        if group_arg != "":
            if groups:
                gid = groups[0].gid
            else:
                if gid_arg is None:
                    raise UserLookupError(
                        f"unable to find group {group_arg}: no matching entries in group file"
                    )
                gid = _check_range(gid_arg)
        elif groups:
            # Supplementary groups only come with the implicit ("name") form.
            sgids = [group.gid for group in groups]
    return uid, gid, sgids, home


def _additional_groups(group_add: Sequence[str], group_text: str | None) -> list[int]:
    groups = []
    if group_text is not None:
        groups = [
            g for g in _parse_group(group_text) if any(g.name == a or str(g.gid) == a for a in group_add)
        ]
    seen: dict[int, None] = {}  # insertion-ordered set; moby's map order is random, ours is the request's
    for wanted in group_add:
        found = False
        for group in groups:
            if (group.name == wanted or str(group.gid) == wanted) and group.gid not in seen:
                seen[group.gid] = None
                found = True
                break
        if not found:
            gid = _atoi(wanted)
            if gid is None:
                raise UserLookupError(
                    f"Unable to find group {wanted}: no matching entries in group file"
                )
            seen[_check_range(gid)] = None
    return list(seen)


def resolve_user(
    user_spec: str,
    passwd_text: str | None,
    group_text: str | None,
    group_add: Sequence[str] = (),
) -> ResolvedUser:
    """Resolve ``Config.User`` plus ``HostConfig.GroupAdd`` the way dockerd does at start.

    ``passwd_text``/``group_text`` are the image's files, or ``None`` if absent.
    Never reads a file. Raises ``UserLookupError``.
    """
    uid, gid, sgids, home = _exec_user(user_spec, passwd_text, group_text)
    extra = _additional_groups(group_add, group_text) if group_add else []
    return ResolvedUser(uid=uid, gid=gid, additional_gids=(gid, *sgids, *extra), home=home)
