"""Docker's defaults for the OCI runtime spec, as moby v28 (``oci/defaults.go``,
``oci/caps``, ``daemon/oci_linux.go``) sets them.

Constants only. Each is an immutable value; ``spec.py`` copies what it puts
into a spec, so callers can never alias one spec's lists into another.
Seccomp is left out for now (moby applies its default profile; dockyard does
not carry one yet) and no AppArmor profile is set.
"""

from __future__ import annotations

from typing import Final

#: The runtime-spec version runc 1.1 reports in ``runc features`` (ociVersionMax).
OCI_VERSION: Final = "1.0.2-dev"

#: Bundle-relative root; containerd's shim mounts the snapshot there.
DEFAULT_ROOTFS_PATH: Final = "rootfs"

DEFAULT_PATH_ENV: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: dockerd's ``--default-shm-size`` (64 MiB), written in bytes as moby writes it.
DEFAULT_SHM_SIZE: Final = 64 * 1024 * 1024

#: moby ``oci/caps.DefaultCapabilities``; order matters (it is the spec's order).
DEFAULT_CAPABILITIES: Final[tuple[str, ...]] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

#: Every capability the kernel defines, in capability-number order (0..40), as
#: containerd's ``pkg/cap.Known`` lists them. moby gives privileged containers
#: (and ``--cap-add ALL``) the subset the daemon itself holds; the engine may
#: pass that subset as ``ContainerSpecInput.all_capabilities``.
KNOWN_CAPABILITIES: Final[tuple[str, ...]] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

#: moby v28 ``defaultLinuxMaskedPaths`` without the per-CPU
#: ``/sys/devices/system/cpu/cpuN/thermal_throttle`` entries, which moby adds
#: only where they exist on the host (an I/O question: the engine appends them
#: through ``ContainerSpecInput.masked_paths``).
DEFAULT_MASKED_PATHS: Final[tuple[str, ...]] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)

DEFAULT_READONLY_PATHS: Final[tuple[str, ...]] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)

#: (destination, type, source, options) of moby's default mounts, in order.
#: ``/dev/shm`` gets ``size=<ShmSize>`` appended when the spec is built.
DEFAULT_MOUNTS: Final[tuple[tuple[str, str, str, tuple[str, ...]], ...]] = (
    ("/proc", "proc", "proc", ("nosuid", "noexec", "nodev")),
    ("/dev", "tmpfs", "tmpfs", ("nosuid", "strictatime", "mode=755", "size=65536k")),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        ("nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"),
    ),
    ("/sys", "sysfs", "sysfs", ("nosuid", "noexec", "nodev", "ro")),
    ("/sys/fs/cgroup", "cgroup", "cgroup", ("ro", "nosuid", "noexec", "nodev")),
    ("/dev/mqueue", "mqueue", "mqueue", ("nosuid", "noexec", "nodev")),
    ("/dev/shm", "tmpfs", "shm", ("nosuid", "noexec", "nodev", "mode=1777")),
)

#: Device cgroup rules (allow, type, major, minor, access) of moby v28's default
#: spec: deny everything, then allow zero, null, urandom, random, tty, console,
#: and deny tun explicitly. runc adds its own defaults (full, ptmx, pts, mknod
#: of any c/b device) on top, which is why moby no longer lists them.
DEFAULT_DEVICE_RULES: Final[tuple[tuple[bool, str | None, int | None, int | None, str], ...]] = (
    (False, None, None, None, "rwm"),
    (True, "c", 1, 5, "rwm"),
    (True, "c", 1, 3, "rwm"),
    (True, "c", 1, 9, "rwm"),
    (True, "c", 1, 8, "rwm"),
    (True, "c", 5, 0, "rwm"),
    (True, "c", 5, 1, "rwm"),
    (False, "c", 10, 229, "rwm"),
)

#: Sysctls moby sets when the container gets its own network namespace: ping
#: without CAP_NET_RAW and binding ports below 1024 without
#: CAP_NET_BIND_SERVICE. (moby skips one that the host kernel lacks; every
#: kernel runc 1.1 supports has both.)
PRIVATE_NETWORK_SYSCTLS: Final[tuple[tuple[str, str], ...]] = (
    ("net.ipv4.ip_unprivileged_port_start", "0"),
    ("net.ipv4.ping_group_range", "0 2147483647"),
)

#: Destinations of the per-container files the engine writes and bind-mounts.
RESOLV_CONF: Final = "/etc/resolv.conf"
HOSTNAME_FILE: Final = "/etc/hostname"
HOSTS_FILE: Final = "/etc/hosts"

#: Propagation moby gives a bind mount that names none.
DEFAULT_PROPAGATION: Final = "rprivate"
