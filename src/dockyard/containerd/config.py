"""containerd's config.toml for the containerd dockyard starts itself (pure, no I/O).

The embedded containerd gets its own root, state and socket, so it never meets a
system containerd, and runs only the plugins dockyard uses: content, metadata,
images, leases, the overlayfs snapshotter, the diff service, the runc v2 runtime
and the event/task/container services. Everything that would open a listener or
touch a shared path (CRI, debug and metrics endpoints, /opt/containerd) is off.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: Plugins the embedded containerd never loads. CRI would start its own
#: streaming server and CNI setup; the other snapshotters probe filesystems we
#: do not use (and log errors when absent); `opt` installs into /opt/containerd;
#: tracing exports to collectors. The v1 linux runtime stays: containerd 1.6's
#: tasks service refuses to load without it.
DISABLED_PLUGINS: tuple[str, ...] = (
    "io.containerd.grpc.v1.cri",
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.internal.v1.opt",
    "io.containerd.internal.v1.tracing",
    "io.containerd.tracing.processor.v1.otlp",
)

#: containerd's own default is 16 MiB each way; manifests and configs are small,
#: but listings of many images or snapshots grow, so both sides allow more.
MAX_MESSAGE_SIZE = 64 * 1024 * 1024

LOG_LEVELS = frozenset({"trace", "debug", "info", "warn", "error", "fatal", "panic"})


@dataclass(frozen=True, kw_only=True)
class ContainerdLayout:
    """Where an embedded containerd keeps its files, derived from dockyard's roots."""

    root: Path
    state: Path
    address: Path
    config: Path
    pid_file: Path
    log_file: Path

    @classmethod
    def under(cls, *, data_root: Path, exec_root: Path) -> ContainerdLayout:
        state = exec_root / "containerd"
        return cls(
            root=data_root / "containerd",
            state=state,
            address=state / "containerd.sock",
            config=state / "config.toml",
            pid_file=state / "containerd.pid",
            log_file=state / "containerd.log",
        )


def _toml_str(value: str) -> str:
    # A JSON string with ASCII escapes is a valid TOML basic string.
    return json.dumps(value, ensure_ascii=True)


def render_config(
    *,
    layout: ContainerdLayout,
    log_level: str,
    disabled_plugins: tuple[str, ...] = DISABLED_PLUGINS,
) -> str:
    """Return config.toml (version 2) for an embedded containerd.

    Raises ValueError for a log level containerd would refuse to start with.
    """
    if log_level not in LOG_LEVELS:
        raise ValueError(f"invalid containerd log level {log_level!r}")
    disabled = ", ".join(_toml_str(p) for p in disabled_plugins)
    return "\n".join(
        [
            "version = 2",
            f"root = {_toml_str(str(layout.root))}",
            f"state = {_toml_str(str(layout.state))}",
            f"disabled_plugins = [{disabled}]",
            "",
            "[grpc]",
            f"  address = {_toml_str(str(layout.address))}",
            '  tcp_address = ""',
            f"  max_recv_message_size = {MAX_MESSAGE_SIZE}",
            f"  max_send_message_size = {MAX_MESSAGE_SIZE}",
            "",
            "[ttrpc]",
            '  address = ""',
            "",
            "[debug]",
            '  address = ""',
            f"  level = {_toml_str(log_level)}",
            "",
            "[metrics]",
            '  address = ""',
            "",
        ]
    )
