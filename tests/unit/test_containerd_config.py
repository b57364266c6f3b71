"""config.toml rendering for the embedded containerd: exact bytes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from dockyard.containerd.config import DISABLED_PLUGINS, ContainerdLayout, render_config

LAYOUT = ContainerdLayout.under(data_root=Path("/var/lib/dockyard"), exec_root=Path("/run/dockyard"))

EXPECTED = """\
version = 2
root = "/var/lib/dockyard/containerd"
state = "/run/dockyard/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", \
"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", \
"io.containerd.snapshotter.v1.zfs", "io.containerd.internal.v1.opt", \
"io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "/run/dockyard/containerd/containerd.sock"
  tcp_address = ""
  max_recv_message_size = 67108864
  max_send_message_size = 67108864

[ttrpc]
  address = ""

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""
"""


def test_layout_paths() -> None:
    assert LAYOUT == ContainerdLayout(
        root=Path("/var/lib/dockyard/containerd"),
        state=Path("/run/dockyard/containerd"),
        address=Path("/run/dockyard/containerd/containerd.sock"),
        config=Path("/run/dockyard/containerd/config.toml"),
        pid_file=Path("/run/dockyard/containerd/containerd.pid"),
        log_file=Path("/run/dockyard/containerd/containerd.log"),
    )


def test_render_exact() -> None:
    assert render_config(layout=LAYOUT, log_level="info") == EXPECTED


def test_render_is_valid_toml_with_the_right_values() -> None:
    parsed = tomllib.loads(render_config(layout=LAYOUT, log_level="debug"))
    assert parsed["version"] == 2
    assert parsed["disabled_plugins"] == list(DISABLED_PLUGINS)
    assert parsed["debug"] == {"address": "", "level": "debug"}
    assert parsed["grpc"]["address"] == "/run/dockyard/containerd/containerd.sock"


def test_paths_are_escaped() -> None:
    odd = ContainerdLayout.under(data_root=Path('/tmp/a "quoted" \\ dir'), exec_root=Path("/tmp/é"))
    parsed = tomllib.loads(render_config(layout=odd, log_level="warn"))
    assert parsed["root"] == '/tmp/a "quoted" \\ dir/containerd'
    assert parsed["state"] == "/tmp/é/containerd"


def test_bad_log_level() -> None:
    with pytest.raises(ValueError, match="log level"):
        render_config(layout=LAYOUT, log_level="verbose")
