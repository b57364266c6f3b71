"""Docker mount requests (``Binds``, ``Mounts``, ``Tmpfs``) → OCI ``mounts``.

Pure: parses the request values and lays out the spec's mount list as moby
v28 does (``volume/mounts/linux_parser.go``, ``daemon/volumes*.go``,
``daemon/oci_linux.go:withMounts``, ``moby/sys/mount.MergeTmpfsOptions``).
It never looks at the host: checks that need the file system (a ``Mounts``
bind source exists, a shared/slave propagation source is a shared mount) are
the engine's, before the spec is built.

Volume requests (named ``name:/dst`` and anonymous ``/dst`` binds, ``Mounts``
of type ``volume``) parse to ``UserMount(kind="volume")`` whose ``source`` is
the volume name (``""``: anonymous); ``request_mounts`` checks their
destinations for duplicates but leaves them out of its result: the engine's
volume service resolves them to host directories (``volume_mounts``).

Raises ``OCIError`` with moby's message for malformed values and
``UnsupportedField`` for image mounts, which come in a later issue.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from dockyard.oci import defaults
from dockyard.oci.errors import OCIError, UnsupportedField

__all__ = [
    "UserMount",
    "build_mounts",
    "go_clean",
    "merge_tmpfs_options",
    "parse_bind",
    "parse_mount",
    "request_mounts",
    "tmpfs_data",
]

_PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
_CONSISTENCIES = frozenset({"consistent", "cached", "delegated"})
_NETWORK_FILES = (defaults.RESOLV_CONF, defaults.HOSTNAME_FILE, defaults.HOSTS_FILE)


@dataclass(frozen=True, kw_only=True, slots=True)
class UserMount:
    """One requested mount, normalised; becomes one OCI mount.

    ``kind`` is ``bind`` (``source`` a host path), ``tmpfs`` (``data`` its
    comma-separated options, as ``HostConfig.Tmpfs`` values are written) or
    ``volume`` (``source`` the volume name, ``""`` for an anonymous one;
    ``nocopy``: do not copy the image's files into an empty volume).
    """

    kind: Literal["bind", "tmpfs", "volume"]
    destination: str
    source: str = ""
    writable: bool = True
    propagation: str = ""
    non_recursive: bool = False
    readonly_non_recursive: bool = False
    readonly_force_recursive: bool = False
    data: str = ""
    nocopy: bool = False


def go_clean(path: str) -> str:
    """Go's ``path.Clean`` (``posixpath.normpath`` keeps a leading ``//``)."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def _check_target(target: str) -> None:
    if go_clean(target.replace("\\", "/")) == "/":
        raise OCIError("invalid specification: destination can't be '/'")
    _check_absolute(target)


def _check_absolute(path: str) -> None:
    path = path.replace("\\", "/")
    if not path.startswith("/"):
        raise OCIError(f"invalid mount path: '{path}' mount path must be absolute")


def _valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = {"rw": 0, "label": 0, "propagation": 0, "copy": 0, "consistency": 0}
    for option in mode.split(","):
        if option in ("rw", "ro"):
            counts["rw"] += 1
        elif option in ("z", "Z"):
            counts["label"] += 1  # SELinux relabelling: accepted, nothing to do without SELinux
        elif option in _PROPAGATIONS:
            counts["propagation"] += 1
        elif option == "nocopy":
            counts["copy"] += 1
        elif option in _CONSISTENCIES:
            counts["consistency"] += 1
        else:
            return False
    return all(count <= 1 for count in counts.values())


def parse_bind(raw: str, index: int = 0) -> UserMount:
    """Parse one ``HostConfig.Binds`` entry (``/host:/ctr[:mode]``) like moby's ParseMountRaw."""
    invalid_spec = f"invalid volume specification: '{raw}'"
    parts = raw.split(":", 3)
    if parts[0] == "" or len(parts) == 4:
        raise OCIError(invalid_spec)
    mode = ""
    if len(parts) == 1:
        try:
            _check_target(parts[0])
        except OCIError as err:
            raise OCIError(f'{invalid_spec}: invalid mount config for type "volume": {err.message}') from None
        return UserMount(kind="volume", destination=go_clean(parts[0]))
    if len(parts) == 2:
        if _valid_mode(parts[1]):
            raise OCIError(invalid_spec)  # "/foo:rw": a destination with a mode, no source
        source, target = parts
    else:
        source, target, mode = parts
    if not _valid_mode(mode):
        raise OCIError(f"invalid mode: {mode}")
    options = mode.split(",")
    if not source.startswith("/"):
        try:
            _check_target(target)
        except OCIError as err:
            raise OCIError(f'{invalid_spec}: invalid mount config for type "volume": {err.message}') from None
        return UserMount(kind="volume", destination=go_clean(target), source=source,
                         writable="ro" not in options, nocopy="nocopy" in options)
    try:
        if "nocopy" in options:
            raise OCIError("field VolumeOptions must not be specified")
        _check_target(target)
        _check_absolute(source)
    except OCIError as err:
        raise OCIError(f'{invalid_spec}: invalid mount config for type "bind": {err.message}') from None
    propagation = next((o for o in options if o in _PROPAGATIONS), defaults.DEFAULT_PROPAGATION)
    return UserMount(
        kind="bind",
        destination=go_clean(target),
        source=go_clean(source),
        writable="ro" not in options,
        propagation=propagation,
    )


def _go_quote_list(items: Sequence[str]) -> str:
    # Go's %q of a []string: ["a" "b"]
    return "[" + " ".join(json.dumps(item) for item in items) + "]"


def tmpfs_data(tmpfs_options: Mapping[str, Any] | None, read_only: bool) -> str:
    """moby's ConvertTmpfsOptions: ``Mounts[].TmpfsOptions`` → ``HostConfig.Tmpfs``-style data."""
    raw: list[str] = ["ro"] if read_only else []
    opts = tmpfs_options or {}
    mode = opts.get("Mode") or 0
    if mode:
        raw.append(f"mode={mode:o}")
    size = opts.get("SizeBytes") or 0
    if size:
        suffix = ""
        for unit, divisor in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % divisor == 0:
                size, suffix = size // divisor, unit
                break
        raw.append(f"size={size}{suffix}")
    for option in opts.get("Options") or ():
        if len(option) < 1 or len(option) > 2:
            raise OCIError("invalid option array length")
        if option[0] not in ("exec", "noexec"):
            raise OCIError("invalid option: " + option[0])
        raw.append(option[0] if len(option) == 1 else f"{option[0]}={option[1]}")
    return ",".join(raw)


def parse_mount(mount: Mapping[str, Any], index: int = 0) -> UserMount:
    """Parse one ``HostConfig.Mounts`` entry of type ``bind``, ``tmpfs`` or ``volume``."""
    kind = mount.get("Type") or ""
    if kind == "image":
        raise UnsupportedField(f"HostConfig.Mounts[{index}].Type={kind}")
    try:
        return _parse_mount(kind, mount)
    except OCIError as err:
        raise OCIError(f"invalid mount config for type {json.dumps(kind)}: {err.message}") from None


def _parse_mount(kind: str, mount: Mapping[str, Any]) -> UserMount:
    target = mount.get("Target") or ""
    if target == "":
        raise OCIError("field Target must not be empty")
    _check_target(target)
    read_only = bool(mount.get("ReadOnly"))
    if kind == "bind":
        source = mount.get("Source") or ""
        if source == "":
            raise OCIError("field Source must not be empty")
        bind = mount.get("BindOptions") or {}
        propagation = bind.get("Propagation") or ""
        if propagation and propagation not in _PROPAGATIONS:
            raise OCIError(f"invalid propagation mode: {propagation}")
        for extra in ("VolumeOptions", "ImageOptions"):
            if mount.get(extra) is not None:
                raise OCIError(f"field {extra} must not be specified")
        _check_absolute(source)
        non_rec = bool(bind.get("ReadOnlyNonRecursive"))
        force_rec = bool(bind.get("ReadOnlyForceRecursive"))
        if not read_only and non_rec:
            raise OCIError("mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive")
        if not read_only and force_rec:
            raise OCIError("mount options conflict: !ReadOnly && BindOptions.ReadOnlyForceRecursive")
        if non_rec and force_rec:
            raise OCIError(
                "mount options conflict: ReadOnlyNonRecursive && BindOptions.ReadOnlyForceRecursive"
            )
        return UserMount(
            kind="bind",
            destination=go_clean(target),
            source=go_clean(source),
            writable=not read_only,
            propagation=propagation or defaults.DEFAULT_PROPAGATION,
            non_recursive=bool(bind.get("NonRecursive")),
            readonly_non_recursive=non_rec,
            readonly_force_recursive=force_rec,
        )
    if kind == "tmpfs":
        for extra in ("BindOptions", "ImageOptions"):
            if mount.get(extra) is not None:
                raise OCIError(f"field {extra} must not be specified")
        if mount.get("Source"):
            raise OCIError("field Source must not be specified")
        data = tmpfs_data(mount.get("TmpfsOptions"), read_only)
        return UserMount(kind="tmpfs", destination=go_clean(target), source="tmpfs", data=data)
    if kind == "volume":
        for extra in ("BindOptions", "TmpfsOptions", "ImageOptions"):
            if mount.get(extra) is not None:
                raise OCIError(f"field {extra} must not be specified")
        source = mount.get("Source") or ""
        volume = mount.get("VolumeOptions") or {}
        if source == "" and (volume.get("Subpath") or ""):
            raise OCIError("field Subpath must not be set for anonymous volumes")
        if volume.get("Subpath"):
            raise UnsupportedField("HostConfig.Mounts[].VolumeOptions.Subpath")
        return UserMount(kind="volume", destination=go_clean(target), source=source,
                         writable=not read_only, nocopy=bool(volume.get("NoCopy")))
    raise OCIError("mount type unknown")


def request_mounts(host_config: Mapping[str, Any]) -> tuple[list[UserMount], dict[str, UserMount]]:
    """The request's mounts in moby's order, and its binds over /etc/{resolv.conf,hostname,hosts}.

    Order (before the final sort): ``Tmpfs`` entries, tmpfs ``Mounts``, then the
    binds. A bind onto one of the three network files is returned separately,
    keyed by destination: it replaces the engine's file (moby's
    TrySetNetworkMount). Raises ``OCIError`` on a duplicate destination.
    """
    tmpfs_map: Mapping[str, str] = host_config.get("Tmpfs") or {}
    for destination in tmpfs_map:
        _check_target(destination)
    binds: list[UserMount] = []
    tmpfs: list[UserMount] = [
        UserMount(kind="tmpfs", destination=dest, source="tmpfs", data=data or "")
        for dest, data in tmpfs_map.items()
    ]
    taken: set[str] = set()
    for index, raw in enumerate(host_config.get("Binds") or ()):
        bind = parse_bind(raw, index)
        if bind.destination in taken or bind.destination in tmpfs_map:
            raise OCIError(f"Duplicate mount point: {bind.destination}")
        taken.add(bind.destination)
        binds.append(bind)
    for index, spec in enumerate(host_config.get("Mounts") or ()):
        mount = parse_mount(spec, index)
        if mount.destination in taken:
            raise OCIError(f"Duplicate mount point: {spec.get('Target')}")
        taken.add(mount.destination)
        (tmpfs if mount.kind == "tmpfs" else binds).append(mount)
    tmpfs_destinations = {m.destination for m in tmpfs}
    network: dict[str, UserMount] = {}
    regular: list[UserMount] = []
    for bind in binds:
        if bind.kind == "volume":
            continue  # resolved to a host directory by the engine's volume service
        if bind.destination in tmpfs_destinations:
            continue  # moby skips a mount point that a tmpfs covers
        if bind.destination in _NETWORK_FILES:
            network[bind.destination] = bind
        else:
            regular.append(bind)
    return tmpfs + _sorted(regular), network


def _depth(mount_destination: str) -> int:
    return go_clean(mount_destination).count("/")


def _sorted(mounts: Iterable[UserMount]) -> list[UserMount]:
    # moby sorts by path depth so /etc is mounted before /etc/resolv.conf; its
    # sort is an insertion sort (stable) for the handful of mounts a container has.
    return sorted(mounts, key=lambda m: _depth(m.destination))


_FLAG_KEYS: dict[str, str] = {
    "ro": "rdonly", "rw": "rdonly", "suid": "nosuid", "nosuid": "nosuid",
    "dev": "nodev", "nodev": "nodev", "exec": "noexec", "noexec": "noexec",
    "sync": "sync", "async": "sync", "dirsync": "dirsync", "remount": "remount",
    "mand": "mand", "nomand": "mand", "atime": "noatime", "noatime": "noatime",
    "diratime": "nodiratime", "nodiratime": "nodiratime",
    "relatime": "relatime", "norelatime": "relatime",
    "strictatime": "strictatime", "nostrictatime": "strictatime",
    # one propagation (and bind) mode at most
    "bind": "propagation", "rbind": "propagation", "unbindable": "propagation",
    "runbindable": "propagation", "private": "propagation", "rprivate": "propagation",
    "shared": "propagation", "rshared": "propagation", "slave": "propagation",
    "rslave": "propagation",
}  # fmt: skip
_TMPFS_DATA_KEYS = frozenset({"", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})


def merge_tmpfs_options(options: Sequence[str]) -> list[str]:
    """moby/sys/mount.MergeTmpfsOptions: the last of each conflicting option wins, order kept."""
    seen_flags: set[str] = set()
    seen_data: set[str] = set()
    merged: list[str] = []
    for option in reversed(options):
        if option == "defaults":
            continue
        key = _FLAG_KEYS.get(option)
        if key is not None:
            if key not in seen_flags:
                merged.insert(0, option)
                seen_flags.add(key)
            continue
        parts = option.split("=", 1)
        if len(parts) != 2 or parts[0] not in _TMPFS_DATA_KEYS:
            raise OCIError(f"invalid tmpfs option {_go_quote_list(parts)}")
        if parts[0] not in seen_data:
            merged.insert(0, option)
            seen_data.add(parts[0])
    return merged


def _bind_options(mount: UserMount, recursive_readonly: bool) -> list[str]:
    options = ["bind" if mount.non_recursive else "rbind"]
    if not mount.writable:
        rro = not mount.readonly_non_recursive
        if not recursive_readonly:
            rro = False
            if mount.readonly_force_recursive:
                raise OCIError('rro is not supported by runtime "runc"')
        options.append("rro" if rro else "ro")
    if mount.propagation in _PROPAGATIONS:
        options.append(mount.propagation)
    return options


def _oci_mount(destination: str, kind: str, source: str, options: Sequence[str]) -> dict[str, Any]:
    return {"destination": destination, "type": kind, "source": source, "options": list(options)}


@dataclass(frozen=True, kw_only=True, slots=True)
class MountLayout:
    mounts: list[dict[str, Any]]
    rootfs_propagation: str  # "" when the spec should leave it out


def build_mounts(
    *,
    user_mounts: Sequence[UserMount],
    network_mounts: Sequence[UserMount],
    readonly_rootfs: bool,
    privileged: bool,
    writable_cgroups: bool,
    shm_size: int,
    recursive_readonly: bool,
) -> MountLayout:
    """Docker's default mounts with the request's mounts laid over them (moby's withMounts)."""
    requested = _sorted([*user_mounts, *network_mounts])
    requested_destinations = {m.destination for m in requested}
    dev_mounted = "/dev" in requested_destinations
    mounts: list[dict[str, Any]] = []
    for destination, kind, source, default_options in defaults.DEFAULT_MOUNTS:
        if destination in requested_destinations:
            continue
        if dev_mounted and destination.startswith("/dev/"):
            continue
        opts = list(default_options)
        if destination == "/dev/shm":
            opts.append(f"size={shm_size}")
        mounts.append(_oci_mount(destination, kind, source, opts))

    rootfs_propagation = ""
    for request in requested:
        if request.kind == "tmpfs":
            base = ["noexec", "nosuid", "nodev", defaults.DEFAULT_PROPAGATION]
            data = request.data.split(",") if request.data else []
            tmpfs_options = merge_tmpfs_options(base + data)
            mounts.append(_oci_mount(request.destination, "tmpfs", "tmpfs", tmpfs_options))
            continue
        if request.propagation in ("shared", "rshared"):
            if rootfs_propagation not in ("shared", "rshared"):
                rootfs_propagation = "shared"
        elif request.propagation in ("slave", "rslave"):
            if rootfs_propagation not in ("shared", "rshared", "slave", "rslave"):
                rootfs_propagation = "rslave"
        bind_options = _bind_options(request, recursive_readonly)
        mounts.append(_oci_mount(request.destination, "bind", request.source, bind_options))

    if readonly_rootfs:
        for mount in mounts:
            if mount["destination"] in ("/proc", "/dev/pts", "/dev/shm", "/dev/mqueue", "/dev"):
                continue
            if mount["destination"] not in requested_destinations and "ro" not in mount["options"]:
                mount["options"].append("ro")
    for mount in mounts:
        if (privileged and mount["destination"] == "/sys") or (
            writable_cgroups and mount["type"] == "cgroup"
        ):
            mount["options"] = [o for o in mount["options"] if o != "ro"]
    return MountLayout(mounts=mounts, rootfs_propagation=rootfs_propagation)
