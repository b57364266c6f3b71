"""resolve_user: moby/sys/user semantics and messages, byte for byte."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidParameter
from dockyard.oci import ResolvedUser, UserLookupError, resolve_user

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bob:x:1000:1000:Bob:/home/bob:/bin/sh
bob:x:1001:1001:second bob loses:/nowhere:/bin/sh
"""
GROUP = """root:x:0:root
# a comment line
daemon:x:1:
bob:x:1000:
staff:x:50:bob,alice
wheel:x:10:root,bob
"""


def test_empty_spec_is_root_with_root_memberships() -> None:
    assert resolve_user("", PASSWD, GROUP) == ResolvedUser(
        uid=0, gid=0, additional_gids=(0, 0, 10), home="/root"
    )


def test_name_takes_gid_home_and_memberships_first_match_wins() -> None:
    assert resolve_user("bob", PASSWD, GROUP) == ResolvedUser(
        uid=1000, gid=1000, additional_gids=(1000, 50, 10), home="/home/bob"
    )


def test_uid_in_passwd_is_that_user() -> None:
    assert resolve_user("1", PASSWD, GROUP) == ResolvedUser(
        uid=1, gid=1, additional_gids=(1,), home="/usr/sbin"
    )


def test_uid_not_in_passwd_is_uid_with_gid_0() -> None:
    assert resolve_user("4242", PASSWD, GROUP) == ResolvedUser(
        uid=4242, gid=0, additional_gids=(0,), home=""
    )


def test_uid_gid_numeric() -> None:
    assert resolve_user("4242:4343", PASSWD, GROUP) == ResolvedUser(
        uid=4242, gid=4343, additional_gids=(4343,), home=""
    )


def test_name_group_explicit_group_drops_memberships() -> None:
    assert resolve_user("bob:staff", PASSWD, GROUP) == ResolvedUser(
        uid=1000, gid=50, additional_gids=(50,), home="/home/bob"
    )


def test_missing_files_allow_numeric_ids() -> None:
    assert resolve_user("", None, None) == ResolvedUser(uid=0, gid=0, additional_gids=(0,), home="")
    assert resolve_user("7:8", None, None) == ResolvedUser(
        uid=7, gid=8, additional_gids=(8,), home=""
    )


def test_unknown_user() -> None:
    with pytest.raises(UserLookupError) as info:
        resolve_user("nobody", PASSWD, GROUP)
    assert info.value.message == "unable to find user nobody: no matching entries in passwd file"
    assert isinstance(info.value, InvalidParameter)


def test_unknown_user_without_passwd_file() -> None:
    with pytest.raises(UserLookupError, match="^unable to find user bob: no matching entries in passwd file$"):
        resolve_user("bob", None, GROUP)


def test_unknown_group() -> None:
    with pytest.raises(UserLookupError) as info:
        resolve_user("bob:nogroup", PASSWD, GROUP)
    assert info.value.message == "unable to find group nogroup: no matching entries in group file"


def test_out_of_range_uid() -> None:
    with pytest.raises(UserLookupError) as info:
        resolve_user("-1", PASSWD, GROUP)
    assert info.value.message == "uids and gids must be in range 0-2147483647"


def test_group_add_by_name_and_number_in_request_order() -> None:
    user = resolve_user("bob", PASSWD, GROUP, ["staff", "999", "10", "10"])
    # primary, memberships (staff, wheel), then GroupAdd deduplicated (moby keeps a set)
    assert user.additional_gids == (1000, 50, 10, 50, 999, 10)


def test_group_add_same_group_by_number_then_name_is_moby_error() -> None:
    # moby/sys/user only counts a name as found when its gid is new to the set
    with pytest.raises(UserLookupError, match="^Unable to find group wheel: no matching entries in group file$"):
        resolve_user("", PASSWD, GROUP, ["10", "wheel"])


def test_group_add_unknown_name() -> None:
    with pytest.raises(UserLookupError) as info:
        resolve_user("", PASSWD, GROUP, ["nosuch"])
    assert info.value.message == "Unable to find group nosuch: no matching entries in group file"


def test_group_add_without_group_file_takes_numbers() -> None:
    assert resolve_user("", None, None, ["5", "6"]).additional_gids == (0, 5, 6)


def test_short_and_odd_lines_are_tolerated() -> None:
    passwd = "\n  \nweird:x:notanumber\nshort\n"
    assert resolve_user("weird", passwd, None) == ResolvedUser(
        uid=0, gid=0, additional_gids=(0,), home=""
    )
