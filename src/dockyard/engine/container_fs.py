"""A container's files outside its image: /etc/hosts, /etc/hostname, /etc/resolv.conf,
reading the image's /etc/passwd and /etc/group, and creating the working directory.

The text of each generated file is built by a pure function (``hosts_text``,
``resolv_conf_text``) so it has byte-exact unit tests; the writers here only
put that text into ``<data_root>/containers/<id>/``.

Reading from the image does not mount anything: an active overlayfs snapshot's
mount names its ``upperdir`` and ``lowerdir`` stack, and a file is found the
way overlayfs would find it (first layer that has it; a whiteout hides it).

Errors: ``OSError`` from the filesystem propagates (the engine turns it into a
``SystemError``); nothing here raises a domain error.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.containerd.types import Mount

__all__ = [
    "ContainerFiles",
    "DEFAULT_NAMESERVERS",
    "create_workdir",
    "hosts_text",
    "layer_dirs",
    "read_image_file",
    "resolv_conf_text",
    "write_container_files",
]

#: dockerd's fallback when the host lists only loopback resolvers (libnetwork resolvconf).
DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")

_DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerFiles:
    """Where one container's generated files are, on the host."""

    directory: Path
    hostname: Path
    hosts: Path
    resolv_conf: Path
    log: Path

    @classmethod
    def under(cls, containers_dir: Path, container_id: str) -> ContainerFiles:
        directory = containers_dir / container_id
        return cls(
            directory=directory,
            hostname=directory / "hostname",
            hosts=directory / "hosts",
            resolv_conf=directory / "resolv.conf",
            log=directory / f"{container_id}-json.log",
        )


def hosts_text(*, extra_hosts: Sequence[str], host_network: bool, host_hosts: str) -> str:
    """The container's /etc/hosts: the host's with ``--network host``, else
    Docker's default block; then ``ExtraHosts`` (``name:ip``) as ``ip\\tname``."""
    text = host_hosts if host_network else _DEFAULT_HOSTS
    if text and not text.endswith("\n"):
        text += "\n"
    for entry in extra_hosts:
        name, _, address = entry.partition(":")
        text += f"{address}\t{name}\n"
    return text


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_conf_text(
    host_resolv: str,
    *,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    host_network: bool = False,
) -> str:
    """The container's /etc/resolv.conf as dockerd builds it from the host's.

    Without ``--network host`` loopback nameservers are dropped (they would
    point into the container) and, if none remain, Google's are used. Each of
    ``dns``, ``dns_search`` and ``dns_options`` replaces the host's lines of
    that kind when given; other lines (comments included) are kept.
    """
    nameservers: list[str] = []
    search: list[str] | None = None
    options: list[str] | None = None
    others: list[str] = []
    for line in host_resolv.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            nameservers.append(fields[1])
        elif fields[0] in ("search", "domain") and len(fields) > 1:
            search = fields[1:]
        elif fields[0] == "options" and len(fields) > 1:
            options = (options or []) + fields[1:]
        else:
            others.append(line)
    if dns:
        nameservers = list(dns)
    elif not host_network:
        nameservers = [n for n in nameservers if not _is_loopback(n)] or list(DEFAULT_NAMESERVERS)
    if dns_search:
        search = [] if list(dns_search) == ["."] else list(dns_search)
    if dns_options:
        options = list(dns_options)
    lines = list(others)
    lines += [f"nameserver {n}" for n in nameservers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def write_container_files(
    files: ContainerFiles, *, hostname: str, config: Mapping[str, Any], host_config: Mapping[str, Any]
) -> None:
    """Create the container's directory and write hostname, hosts and resolv.conf (blocking)."""
    files.directory.mkdir(mode=0o710, parents=True, exist_ok=True)
    host_network = (host_config.get("NetworkMode") or "") == "host"
    contents = {
        files.hostname: hostname + "\n",
        files.hosts: hosts_text(
            extra_hosts=host_config.get("ExtraHosts") or (),
            host_network=host_network,
            host_hosts=_read_text("/etc/hosts") if host_network else "",
        ),
        files.resolv_conf: resolv_conf_text(
            _read_text("/etc/resolv.conf"),
            dns=host_config.get("Dns") or (),
            dns_search=host_config.get("DnsSearch") or (),
            dns_options=host_config.get("DnsOptions") or (),
            host_network=host_network,
        ),
    }
    for path, text in contents.items():
        path.write_text(text)


# --- reading the image -------------------------------------------------------------


def layer_dirs(mounts: Sequence[Mount]) -> tuple[str | None, list[str]]:
    """``(upperdir, lowerdirs top first)`` of a snapshot's mounts (overlay or bind)."""
    if len(mounts) != 1:
        return None, []
    mount = mounts[0]
    if mount.type == "bind":
        return (None, [mount.source]) if "ro" in mount.options else (mount.source, [])
    upper: str | None = None
    lower: list[str] = []
    for option in mount.options:
        key, _, value = option.partition("=")
        if key == "upperdir":
            upper = value
        elif key == "lowerdir":
            lower = value.split(":")
    return upper, lower


def _is_whiteout(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def read_image_file(mounts: Sequence[Mount], path: str, limit: int = 4 << 20) -> str | None:
    """Text of ``path`` (absolute, in the container) as overlayfs would show it; None if absent.

    Follows no symlinks inside the image (an /etc/passwd symlink counts as absent).
    """
    upper, lower = layer_dirs(mounts)
    relative = path.lstrip("/")
    for layer in ([upper] if upper else []) + lower:
        candidate = os.path.join(layer, relative)
        if _is_whiteout(candidate):
            return None
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(limit).decode("utf-8", errors="replace")
    return None


def create_workdir(mounts: Sequence[Mount], workdir: str) -> None:
    """Make ``workdir`` exist in the container's writable layer, as dockerd does at start.

    Missing components are made 0755 in the upper directory; a component the
    image has as a directory gets an upper twin (overlayfs merges the two); a
    symlink in the image stops the walk (the runtime resolves it, not us).
    """
    upper, _ = layer_dirs(mounts)
    if not workdir or workdir == "/" or upper is None:
        return
    current = ""
    for part in [p for p in workdir.split("/") if p]:
        current += "/" + part
        target = os.path.join(upper, current.lstrip("/"))
        if os.path.lexists(target):
            if os.path.isdir(target) and not os.path.islink(target):
                continue
            return
        below = _lower_path(mounts, current)
        if below is not None and (os.path.islink(below) or not os.path.isdir(below)):
            return
        os.mkdir(target, 0o755)


def _lower_path(mounts: Sequence[Mount], path: str) -> str | None:
    _, lower = layer_dirs(mounts)
    for layer in lower:
        candidate = os.path.join(layer, path.lstrip("/"))
        if _is_whiteout(candidate):
            return None
        if os.path.lexists(candidate):
            return candidate
    return None
