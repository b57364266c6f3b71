"""Docker container configuration → OCI runtime spec (runtime-spec 1.0.2, as runc 1.1 reads it).

Pure: ``build_spec`` takes values and returns a JSON-able dict; it reads no
file and asks the host nothing. Whatever needs the host (the image's
/etc/passwd, the generated /etc/hosts, the cgroup version, the daemon's own
capabilities, host devices for ``--privileged``) arrives as an input.

The layout follows moby v28's ``daemon/oci_linux.go:createSpec`` over
``oci.DefaultLinuxSpec``, key for key in the runtime-spec Go structs' order,
with Go's ``omitempty`` honoured (empty lists and false flags are left out).
Left out on purpose, for now: seccomp (moby applies its default profile),
AppArmor, SELinux labels, and the ``resources`` sections other than devices.

Raises ``OCIError`` subclasses (see ``dockyard.oci.errors``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.oci import defaults
from dockyard.oci.errors import OCIError, UnsupportedField
from dockyard.oci.mounts import UserMount, build_mounts, request_mounts
from dockyard.oci.user import ResolvedUser

__all__ = [
    "ContainerSpecInput",
    "Ulimit",
    "build_rlimits",
    "build_spec",
    "capabilities_from_mask",
    "container_args",
    "container_env",
    "normalize_capabilities",
    "parse_security_opts",
    "SecurityOptions",
    "tweak_capabilities",
]

#: go-units' rlimit names (``docker run --ulimit``).
_ULIMIT_NAMES = frozenset(
    {
        "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
        "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
    }
)  # fmt: skip


@dataclass(frozen=True, kw_only=True, slots=True)
class Ulimit:
    """One ``HostConfig.Ulimits`` entry (or a daemon ``--default-ulimit``)."""

    name: str
    soft: int
    hard: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ContainerSpecInput:
    """Everything ``build_spec`` needs, already resolved by the engine.

    ``config`` is the merged Docker Config (``merge_config``) with ``Hostname``
    filled in (``default_hostname``); ``host_config`` the request's HostConfig,
    validated by ``validate_host_config``. The three paths are the host files
    the engine wrote for /etc/hosts, /etc/hostname and /etc/resolv.conf
    (``None``: not mounted). ``cgroups_path`` becomes ``linux.cgroupsPath``
    (cgroupfs style, e.g. ``/dockyard/<namespace>/<id>``). ``cgroup_v2`` picks
    Docker's default cgroup namespace mode (private on v2, host on v1).
    ``all_capabilities`` is what ``--privileged`` / ``--cap-add ALL`` grant;
    ``host_devices`` are OCI ``linux.devices`` entries for ``--privileged``.
    ``recursive_readonly``: the runtime supports ``rro`` (runc ≥ 1.1 on
    Linux ≥ 5.12), so read-only binds are read-only all the way down.
    """

    config: Mapping[str, Any]
    host_config: Mapping[str, Any]
    user: ResolvedUser
    cgroups_path: str
    hosts_path: str | None = None
    hostname_path: str | None = None
    resolv_path: str | None = None
    rootfs_path: str = defaults.DEFAULT_ROOTFS_PATH
    cgroup_v2: bool = False
    all_capabilities: tuple[str, ...] = defaults.KNOWN_CAPABILITIES
    masked_paths: tuple[str, ...] = defaults.DEFAULT_MASKED_PATHS
    readonly_paths: tuple[str, ...] = defaults.DEFAULT_READONLY_PATHS
    host_devices: tuple[Mapping[str, Any], ...] = ()
    default_ulimits: tuple[Ulimit, ...] = field(default=())
    recursive_readonly: bool = True
    #: A named network namespace (``<exec_root>/netns/<id>``) runc joins instead of
    #: making a new one; only for the bridge modes (``default``/``bridge``).
    netns_path: str | None = None
    #: The container's volumes (named, anonymous, ``VolumesFrom``) as ``bind``
    #: mounts of their host directories, resolved by the engine's volume service.
    volume_mounts: tuple[UserMount, ...] = ()


# --- process -----------------------------------------------------------------


def capabilities_from_mask(mask: int) -> tuple[str, ...]:
    """Capability names for a ``CapEff`` bit mask from /proc/<pid>/status, in number order.

    moby grants ``--privileged`` and ``--cap-add ALL`` only what the daemon
    holds itself (runc fails with EPERM otherwise); the engine reads its own
    CapEff and passes this as ``ContainerSpecInput.all_capabilities``.
    """
    return tuple(name for bit, name in enumerate(defaults.KNOWN_CAPABILITIES) if mask >> bit & 1)


def container_args(config: Mapping[str, Any]) -> list[str]:
    """``process.args``: Entrypoint + Cmd of the merged config (``[""]`` is no entrypoint)."""
    entrypoint = list(_str_list(config.get("Entrypoint")))
    if entrypoint == [""]:
        entrypoint = []
    args = entrypoint + list(_str_list(config.get("Cmd")))
    if not args:
        raise OCIError("no command specified")
    return args


def _str_list(value: Any) -> Sequence[str]:
    # The API accepts a bare string where a list is expected (Go's StrSlice).
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return list(value)


def replace_or_append_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """moby's ReplaceOrAppendEnvValues: override by key, ``KEY`` alone unsets it."""
    env: list[str | None] = list(base)
    index = {entry.split("=", 1)[0]: i for i, entry in enumerate(base)}
    for value in overrides:
        key, sep, _ = value.partition("=")
        if not sep:
            if value in index:
                env[index[value]] = None
            continue
        if key in index:
            env[index[key]] = value
        else:
            env.append(value)
    return [entry for entry in env if entry]


def container_env(config: Mapping[str, Any]) -> list[str]:
    """``process.env``: PATH, HOSTNAME, TERM (with a TTY), then the merged Config.Env over them."""
    base = [f"PATH={defaults.DEFAULT_PATH_ENV}", f"HOSTNAME={config.get('Hostname') or ''}"]
    if config.get("Tty"):
        base.append("TERM=xterm")
    return replace_or_append_env(base, config.get("Env") or ())


def normalize_capabilities(names: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    """Upper-case, add ``CAP_``, keep ``ALL``; raise ``unknown capability: "CAP_X"``."""
    normalized = []
    for name in names or ():
        name = name.upper()
        if name != "ALL":
            if not name.startswith("CAP_"):
                name = "CAP_" + name
            if name not in known:
                raise OCIError(f'unknown capability: "{name}"')
        normalized.append(name)
    return normalized


def tweak_capabilities(
    *,
    cap_add: Sequence[str] | None,
    cap_drop: Sequence[str] | None,
    privileged: bool,
    all_capabilities: Sequence[str] = defaults.KNOWN_CAPABILITIES,
) -> list[str]:
    """moby's TweakCapabilities over the default set; the result may repeat a name, as moby's does."""
    if privileged:
        return list(all_capabilities)
    if not cap_add and not cap_drop:
        return list(defaults.DEFAULT_CAPABILITIES)
    known = defaults.KNOWN_CAPABILITIES
    drops = normalize_capabilities(cap_drop, known)
    adds = normalize_capabilities(cap_add, known)
    if "ALL" in adds:
        return [c for c in all_capabilities if c not in drops]
    if "ALL" in drops:
        return adds
    return [c for c in defaults.DEFAULT_CAPABILITIES if c not in drops] + adds


@dataclass(frozen=True, kw_only=True, slots=True)
class SecurityOptions:
    no_new_privileges: bool = False
    writable_cgroups: bool | None = None


_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
#: Values that ask for what dockyard does anyway (no SELinux, AppArmor or seccomp yet).
_NO_OP_SECURITY = frozenset({("label", "disable"), ("apparmor", "unconfined"), ("seccomp", "unconfined")})


def parse_security_opts(options: Sequence[str] | None) -> SecurityOptions:
    """``HostConfig.SecurityOpt`` as moby's parseSecurityOpt reads it.

    Implemented: ``no-new-privileges[=|:bool]``, ``writable-cgroups[=|:bool]``;
    ``label=disable``, ``apparmor=unconfined``, ``seccomp=unconfined`` are
    accepted no-ops. Other labels/profiles raise ``UnsupportedField``;
    malformed options raise moby's ``invalid --security-opt N: "…"``.
    """
    nnp = False
    writable: bool | None = None
    for opt in options or ():
        if opt == "no-new-privileges":
            nnp = True
            continue
        if opt == "writable-cgroups":
            writable = True
            continue
        if opt == "disable":
            continue
        if "=" in opt:
            key, _, value = opt.partition("=")
        elif ":" in opt:
            key, _, value = opt.partition(":")
        else:
            raise OCIError(f'invalid --security-opt 1: "{opt}"')
        if key in ("no-new-privileges", "writable-cgroups"):
            if value not in _GO_TRUE and value not in _GO_FALSE:
                raise OCIError(f'invalid --security-opt 2: "{opt}"')
            if key == "no-new-privileges":
                nnp = value in _GO_TRUE
            else:
                writable = value in _GO_TRUE
        elif key in ("label", "apparmor", "seccomp"):
            if (key, value) not in _NO_OP_SECURITY:
                raise UnsupportedField(f"HostConfig.SecurityOpt {opt!r}")
        else:
            raise OCIError(f'invalid --security-opt 2: "{opt}"')
    return SecurityOptions(no_new_privileges=nnp, writable_cgroups=writable)


def build_rlimits(
    host_config: Mapping[str, Any], daemon_defaults: Sequence[Ulimit] = ()
) -> list[dict[str, Any]]:
    """``process.rlimits``: HostConfig.Ulimits, then daemon defaults for names not given.

    Empty when neither sets any: like moby, dockyard then leaves the limits the
    runtime inherits from containerd.
    """
    ulimits = [
        Ulimit(name=u.get("Name") or "", soft=u.get("Soft") or 0, hard=u.get("Hard") or 0)
        for u in host_config.get("Ulimits") or ()
    ]
    named = {u.name for u in ulimits}
    ulimits += [u for u in daemon_defaults if u.name not in named]
    rlimits = []
    for ulimit in ulimits:
        if ulimit.name not in _ULIMIT_NAMES:
            raise OCIError(f"invalid ulimit type: {ulimit.name}")
        if ulimit.soft > ulimit.hard:
            raise OCIError(
                "ulimit soft limit must be less than or equal to hard limit: "
                f"{ulimit.soft} > {ulimit.hard}"
            )
        rlimits.append({"type": "RLIMIT_" + ulimit.name.upper(), "hard": ulimit.hard, "soft": ulimit.soft})
    return rlimits


def _process(inp: ContainerSpecInput, security: SecurityOptions) -> dict[str, Any]:
    config, host_config = inp.config, inp.host_config
    process: dict[str, Any] = {}
    tty = bool(config.get("Tty"))
    if tty:
        process["terminal"] = True
        height, width = (list(host_config.get("ConsoleSize") or ()) + [0, 0])[:2]
        if height or width:
            process["consoleSize"] = {"height": height, "width": width}
    user: dict[str, Any] = {"uid": inp.user.uid, "gid": inp.user.gid}
    if inp.user.additional_gids:
        user["additionalGids"] = list(inp.user.additional_gids)
    process["user"] = user
    process["args"] = container_args(config)
    process["env"] = container_env(config)
    process["cwd"] = config.get("WorkingDir") or "/"
    caps = tweak_capabilities(
        cap_add=host_config.get("CapAdd"),
        cap_drop=host_config.get("CapDrop"),
        privileged=bool(host_config.get("Privileged")),
        all_capabilities=inp.all_capabilities,
    )
    process["capabilities"] = (
        {"bounding": caps, "effective": list(caps), "permitted": list(caps)} if caps else {}
    )
    rlimits = build_rlimits(host_config, inp.default_ulimits)
    if rlimits:
        process["rlimits"] = rlimits
    if security.no_new_privileges:
        process["noNewPrivileges"] = True
    process["oomScoreAdj"] = host_config.get("OomScoreAdj") or 0
    return process


# --- linux -------------------------------------------------------------------


def _network_mounts(inp: ContainerSpecInput, overrides: Mapping[str, UserMount]) -> list[UserMount]:
    readonly = bool(inp.host_config.get("ReadonlyRootfs"))
    mounts = []
    for destination, path in (
        (defaults.RESOLV_CONF, inp.resolv_path),
        (defaults.HOSTNAME_FILE, inp.hostname_path),
        (defaults.HOSTS_FILE, inp.hosts_path),
    ):
        override = overrides.get(destination)
        if override is not None:
            # The user's file replaces ours, with its own rw/ro, but moby keeps rprivate.
            source, writable = override.source, override.writable
        elif path is not None:
            source, writable = path, not readonly
        else:
            continue
        mounts.append(
            UserMount(
                kind="bind",
                destination=destination,
                source=source,
                writable=writable,
                propagation=defaults.DEFAULT_PROPAGATION,
            )
        )
    return mounts


def _network_mode(host_config: Mapping[str, Any]) -> str:
    mode = host_config.get("NetworkMode") or "default"
    # Any other name is a user network (or container:NAME): the engine gives its namespace path.
    return mode


def _namespaces(inp: ContainerSpecInput) -> list[dict[str, str]]:
    host_config = inp.host_config
    namespaces = ["mount"]
    if _network_mode(host_config) != "host":
        namespaces.append("network")
    if (host_config.get("UTSMode") or "") != "host":
        namespaces.append("uts")
    if (host_config.get("PidMode") or "") != "host":
        namespaces.append("pid")
    namespaces.append("ipc")
    cgroupns = host_config.get("CgroupnsMode") or ""
    if cgroupns == "private" or (cgroupns == "" and inp.cgroup_v2):
        namespaces.append("cgroup")
    entries = [{"type": ns} for ns in namespaces]
    if inp.netns_path and "network" in namespaces:
        entries[namespaces.index("network")]["path"] = inp.netns_path
    return entries


def _device_rules(privileged: bool) -> list[dict[str, Any]]:
    if privileged:
        return [{"allow": True, "access": "rwm"}]
    rules = []
    for allow, kind, major, minor, access in defaults.DEFAULT_DEVICE_RULES:
        rule: dict[str, Any] = {"allow": allow}
        if kind is not None:
            rule["type"] = kind
        if major is not None:
            rule["major"] = major
        if minor is not None:
            rule["minor"] = minor
        rule["access"] = access
        rules.append(rule)
    return rules


def _sysctls(inp: ContainerSpecInput) -> dict[str, str]:
    sysctls: dict[str, str] = {}
    if _network_mode(inp.host_config) != "host":
        sysctls.update(defaults.PRIVATE_NETWORK_SYSCTLS)
    domainname = inp.config.get("Domainname") or ""
    if domainname:
        # runtime-spec 1.0.2 has no domainname field; the sysctl does what setdomainname(2) does.
        sysctls["kernel.domainname"] = domainname
    return dict(sorted(sysctls.items()))  # Go marshals maps with sorted keys


def build_spec(inp: ContainerSpecInput) -> dict[str, Any]:
    """The OCI runtime spec for one container, as a fresh JSON-able dict.

    Raises ``OCIError`` for a malformed request value (moby's message) and
    ``UnsupportedField`` for something dockyard cannot run yet.
    """
    config, host_config = inp.config, inp.host_config
    privileged = bool(host_config.get("Privileged"))
    readonly_rootfs = bool(host_config.get("ReadonlyRootfs"))
    security = parse_security_opts(host_config.get("SecurityOpt"))
    ipc_mode = host_config.get("IpcMode") or ""
    if ipc_mode not in ("", "private"):
        raise UnsupportedField(f"HostConfig.IpcMode={ipc_mode}")

    user_mounts, network_overrides = request_mounts(host_config)
    user_mounts = [*user_mounts, *inp.volume_mounts]
    writable_cgroups = privileged if security.writable_cgroups is None else security.writable_cgroups
    layout = build_mounts(
        user_mounts=user_mounts,
        network_mounts=_network_mounts(inp, network_overrides),
        readonly_rootfs=readonly_rootfs,
        privileged=privileged,
        writable_cgroups=writable_cgroups,
        shm_size=host_config.get("ShmSize") or defaults.DEFAULT_SHM_SIZE,
        recursive_readonly=inp.recursive_readonly,
    )

    spec: dict[str, Any] = {"ociVersion": defaults.OCI_VERSION, "process": _process(inp, security)}
    root: dict[str, Any] = {"path": inp.rootfs_path}
    if readonly_rootfs:
        root["readonly"] = True
    spec["root"] = root
    hostname = config.get("Hostname") or ""
    if hostname and (host_config.get("UTSMode") or "") != "host":
        spec["hostname"] = hostname
    spec["mounts"] = layout.mounts
    annotations = host_config.get("Annotations") or {}
    if annotations:
        spec["annotations"] = dict(sorted(annotations.items()))

    linux: dict[str, Any] = {}
    sysctls = _sysctls(inp)
    if sysctls:
        linux["sysctl"] = sysctls
    linux["resources"] = {"devices": _device_rules(privileged)}
    linux["cgroupsPath"] = inp.cgroups_path
    linux["namespaces"] = _namespaces(inp)
    if privileged and inp.host_devices:
        linux["devices"] = [dict(device) for device in inp.host_devices]
    if layout.rootfs_propagation:
        linux["rootfsPropagation"] = layout.rootfs_propagation
    masked = host_config.get("MaskedPaths")
    readonly_paths = host_config.get("ReadonlyPaths")
    if masked is None:
        masked = () if privileged else inp.masked_paths
    if readonly_paths is None:
        readonly_paths = () if privileged else inp.readonly_paths
    if masked:
        linux["maskedPaths"] = list(masked)
    if readonly_paths:
        linux["readonlyPaths"] = list(readonly_paths)
    spec["linux"] = linux
    return spec
