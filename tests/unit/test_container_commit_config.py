"""Pure parts of docker commit and of the rootfs view: config merge, config bytes, mountinfo lookup."""

from __future__ import annotations

from datetime import datetime, timezone

from dockyard.engine.container_commit import EMPTY_LAYER_DIFF_ID, commit_config, merge_config
from dockyard.engine.container_rootfs import find_overlay_mount
from dockyard.oci import image as oci

PARENT = oci.parse_config(
    b'{"architecture":"amd64","os":"linux","config":{"Cmd":["sh"]},'
    b'"rootfs":{"type":"layers","diff_ids":["sha256:' + b"a" * 64 + b'"]},'
    b'"history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD"}]}'
)
WHEN = datetime(2025, 1, 2, 3, 4, 5, 600_000, tzinfo=timezone.utc)


def test_merge_fills_what_the_user_left_empty():
    container = {"User": "nobody", "Env": ["A=1", "B=2"], "Cmd": ["sh"], "WorkingDir": "/w",
                 "Labels": {"l": "c"}, "ExposedPorts": {"80/tcp": {}}, "Hostname": "abc"}
    merged = merge_config({"Env": ["B=3"], "Cmd": ["echo", "hi"], "Labels": {"l": "u"}}, container)
    assert merged["User"] == "nobody"
    assert merged["Env"] == ["B=3", "A=1"]
    assert merged["Cmd"] == ["echo", "hi"]
    assert merged["Labels"] == {"l": "u"}
    assert merged["WorkingDir"] == "/w"
    assert merged["ExposedPorts"] == {"80/tcp": {}}


def test_commit_config_bytes():
    raw = commit_config(PARENT, diff_id="sha256:" + "b" * 64, config={"Cmd": ["echo", "hi"], "Hostname": "x"},
                        author="me", comment="msg", created_by="sh -c true", created=WHEN)
    assert raw == (
        b'{"architecture":"amd64","author":"me","comment":"msg","config":{"Cmd":["echo","hi"]},'
        b'"created":"2025-01-02T03:04:05.6Z","history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD"},'
        b'{"created":"2025-01-02T03:04:05.6Z","created_by":"sh -c true","author":"me","comment":"msg"}],'
        b'"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:' + b"a" * 64 + b'","sha256:' + b"b" * 64 + b'"]}}'
    )


def test_an_empty_diff_adds_no_layer():
    raw = commit_config(PARENT, diff_id=EMPTY_LAYER_DIFF_ID, config={}, author="", comment="",
                        created_by="", created=WHEN)
    parsed = oci.parse_config(raw)
    assert parsed.diff_ids == PARENT.diff_ids
    assert parsed.history[-1].empty_layer


def test_find_overlay_mount_by_upperdir():
    mountinfo = (
        "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "93 27 0:61 / /run/with\\040space/rootfs rw,relatime - overlay overlay "
        "rw,lowerdir=/s/1/fs,upperdir=/s/2/fs,workdir=/s/2/work\n"
        "94 27 0:61 /sub /elsewhere rw,relatime - overlay overlay rw,lowerdir=/s/1/fs,upperdir=/s/2/fs,workdir=/s/2/work\n"
    )
    assert find_overlay_mount("/s/2/fs", mountinfo) == "/run/with space/rootfs"
    assert find_overlay_mount("/s/3/fs", mountinfo) is None
    assert find_overlay_mount("/s/2", mountinfo) is None
