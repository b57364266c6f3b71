"""parse_ps_output: moby's parsePSOutput rules, byte for byte."""

from __future__ import annotations

import pytest

from dockyard import errors
from dockyard.engine.container_lifecycle import parse_ps_output

PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root        4242    4200  0 16:20 ?        00:00:00 sleep 300
root        4300       1  0 16:20 ?        00:00:00 /usr/bin/other --flag  x
"""


def test_keeps_only_the_container_pids_and_joins_the_command():
    assert parse_ps_output(PS, [4242]) == {
        "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "Processes": [["root", "4242", "4200", "0", "16:20", "?", "00:00:00", "sleep 300"]],
    }


def test_without_a_pid_column_is_invalid():
    with pytest.raises(errors.InvalidParameter, match="Couldn't find PID field in ps output"):
        parse_ps_output("USER COMMAND\nroot sh\n", [1])
