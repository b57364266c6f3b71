"""A bridge of its own for a reference dockerd that compares networking (benchmarks).

dockerd normally makes ``docker0``; started with ``--bridge NAME`` it uses a bridge
that already exists, with the address it already has, and never touches
``docker0``. :func:`create` makes that bridge; :func:`remove` deletes it and the
iptables chains dockerd adds when it runs with ``--iptables=true`` (``DOCKER``,
``DOCKER-ISOLATION-STAGE-1/2``, ``DOCKER-USER``) together with the rules in the
built-in chains that jump to them or name the bridge, and nothing else.

Only one such dockerd can run on the machine at a time, since those chain names
are global: :func:`create` takes an exclusive ``flock`` that :func:`remove`
releases, and refuses to start when any of those chains already exists (it
would not be ours to delete).

Raises ``RefNetError`` (a ``RuntimeError``) when the bridge cannot be made.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
from pathlib import Path

__all__ = ["DOCKER_CHAINS", "RefNetError", "create", "remove"]

#: The chains dockerd 20.10 creates with --iptables=true, per table.
DOCKER_CHAINS: dict[str, tuple[str, ...]] = {
    "nat": ("DOCKER",),
    "filter": ("DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"),
}
_LOCK_PATH = Path("/run/lock/dockyard-refnet.lock")
_locks: dict[str, int] = {}


class RefNetError(RuntimeError):
    """The reference bridge could not be set up (busy, or the `ip` command failed)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RefNetError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def _save(table: str) -> list[str]:
    return subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def _existing_chains(table: str) -> set[str]:
    return {line[1:].split()[0] for line in _save(table) if line.startswith(":")}


def create(bridge: str, address: str) -> None:
    """Make ``bridge`` with ``address`` (CIDR, e.g. ``10.216.0.1/24``) and bring it up."""
    _LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(_LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RefNetError("another reference dockerd with networking is running on this machine") from None
    try:
        for table, chains in DOCKER_CHAINS.items():
            present = _existing_chains(table) & set(chains)
            if present:
                raise RefNetError(f"iptables chains {sorted(present)} ({table}) exist already: not ours to delete")
        if _ip("link", "show", bridge, check=False).returncode == 0:
            raise RefNetError(f"interface {bridge} exists already")
        _ip("link", "add", bridge, "type", "bridge")
        try:
            _ip("addr", "add", address, "dev", bridge)
            _ip("link", "set", bridge, "up")
        except RefNetError:
            _ip("link", "del", bridge, check=False)
            raise
    except BaseException:
        os.close(fd)
        raise
    _locks[bridge] = fd


def _rule_args(rule: str) -> list[str]:
    """``-A CHAIN spec…`` from iptables-save → the argv of ``iptables -D CHAIN spec…``."""
    return ["-D", *shlex.split(rule)[1:]]


def remove(bridge: str) -> None:
    """Delete ``bridge`` and dockerd's chains and the rules pointing at them or naming the bridge."""
    try:
        for table, chains in DOCKER_CHAINS.items():
            ours = set(chains) & _existing_chains(table)
            for rule in _save(table):
                if not rule.startswith("-A "):
                    continue
                chain = rule.split()[1]
                if chain in ours:
                    continue  # flushed below
                words = rule.split()
                target = words[words.index("-j") + 1] if "-j" in words else ""
                if target in ours or bridge in words:
                    subprocess.run(["iptables", "-t", table, *_rule_args(rule)], capture_output=True)
            for chain in ours:
                subprocess.run(["iptables", "-t", table, "-F", chain], capture_output=True)
            for chain in ours:
                subprocess.run(["iptables", "-t", table, "-X", chain], capture_output=True)
        _ip("link", "del", bridge, check=False)
    finally:
        fd = _locks.pop(bridge, None)
        if fd is not None:
            os.close(fd)
