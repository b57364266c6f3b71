"""Binds, Mounts and Tmpfs → OCI mounts, with moby's parsing rules and messages."""

from __future__ import annotations

from typing import Any

import pytest

from dockyard.oci import ContainerSpecInput, OCIError, ResolvedUser, UnsupportedField, build_spec
from dockyard.oci.mounts import (
    UserMount,
    merge_tmpfs_options,
    parse_bind,
    parse_mount,
    request_mounts,
    tmpfs_data,
)

ROOT = ResolvedUser(uid=0, gid=0, additional_gids=(0,), home="/root")


def test_parse_bind_ro() -> None:
    assert parse_bind("/a:/b:ro") == UserMount(
        kind="bind", destination="/b", source="/a", writable=False, propagation="rprivate"
    )


def test_parse_bind_modes_and_cleaning() -> None:
    assert parse_bind("/a/./x/:/b//c/:rw,z,rshared,cached") == UserMount(
        kind="bind", destination="/b/c", source="/a/x", writable=True, propagation="rshared"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (":/b", "invalid volume specification: ':/b'"),
        ("/a:rw", "invalid volume specification: '/a:rw'"),
        ("/a:/b:ro:extra", "invalid volume specification: '/a:/b:ro:extra'"),
        ("/a:/b:bogus", "invalid mode: bogus"),
        ("/a:/b:ro,rw", "invalid mode: ro,rw"),
        ("/a:/", "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"),
        ("/a:b", "invalid volume specification: '/a:b': invalid mount config for type \"bind\": invalid mount path: 'b' mount path must be absolute"),
        ("/a:/b:nocopy", "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": field VolumeOptions must not be specified"),
    ],
)
def test_bad_binds(raw: str, message: str) -> None:
    with pytest.raises(OCIError) as info:
        parse_bind(raw)
    assert info.value.message == message


def test_volume_binds() -> None:
    assert parse_bind("data:/data/:ro,nocopy", 2) == UserMount(
        kind="volume", destination="/data", source="data", writable=False, nocopy=True)
    assert parse_bind("/data/") == UserMount(kind="volume", destination="/data")
    with pytest.raises(OCIError) as info:
        parse_bind("data")
    assert info.value.message == (
        "invalid volume specification: 'data': invalid mount config for type \"volume\": "
        "invalid mount path: 'data' mount path must be absolute")
    with pytest.raises(OCIError, match="destination can't be '/'"):
        parse_bind("data:/")


def test_volume_mounts() -> None:
    mount = parse_mount({"Type": "volume", "Source": "v", "Target": "/d", "ReadOnly": True,
                         "VolumeOptions": {"NoCopy": True}})
    assert mount == UserMount(kind="volume", destination="/d", source="v", writable=False, nocopy=True)
    assert parse_mount({"Type": "volume", "Target": "/d"}) == UserMount(kind="volume", destination="/d")
    with pytest.raises(OCIError) as info:
        parse_mount({"Type": "volume", "Target": "/d", "BindOptions": {}})
    assert info.value.message == 'invalid mount config for type "volume": field BindOptions must not be specified'


def test_request_mounts_leave_volumes_to_the_engine() -> None:
    user, network = request_mounts({"Binds": ["v:/a", "/b", "/host:/c"],
                                    "Mounts": [{"Type": "volume", "Target": "/d"}]})
    assert [m.destination for m in user] == ["/c"] and network == {}
    with pytest.raises(OCIError, match="^Duplicate mount point: /a$"):
        request_mounts({"Binds": ["v:/a", "/host:/a"]})


def test_tmpfs_data_from_mount_options() -> None:
    assert tmpfs_data({"SizeBytes": 1048576, "Mode": 0o1770}, False) == "mode=1770,size=1m"
    assert tmpfs_data({"SizeBytes": 3 << 30, "Options": [["exec"]]}, True) == "ro,size=3g,exec"
    assert tmpfs_data({"SizeBytes": 1000}, False) == "size=1000"
    assert tmpfs_data({"SizeBytes": 2048}, False) == "size=2k"
    assert tmpfs_data(None, False) == ""
    with pytest.raises(OCIError, match="^invalid option: nosuid$"):
        tmpfs_data({"Options": [["nosuid"]]}, False)


def test_merge_tmpfs_options_last_wins_order_kept() -> None:
    base = ["noexec", "nosuid", "nodev", "rprivate"]
    assert merge_tmpfs_options(base + ["rw", "size=64m"]) == ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=64m"]
    assert merge_tmpfs_options(base + ["exec", "size=1m", "size=2m", "rshared"]) == ["nosuid", "nodev", "exec", "size=2m", "rshared"]
    with pytest.raises(OCIError) as info:
        merge_tmpfs_options(base + ["bogus"])
    assert info.value.message == 'invalid tmpfs option ["bogus"]'
    with pytest.raises(OCIError) as info:
        merge_tmpfs_options(["uid=1", "foo=bar"])
    assert info.value.message == 'invalid tmpfs option ["foo" "bar"]'


def test_parse_mount_bind_and_tmpfs() -> None:
    bind = {"Type": "bind", "Source": "/tmp", "Target": "/y", "ReadOnly": True, "BindOptions": {"Propagation": "rslave"}}
    assert parse_mount(bind) == UserMount(kind="bind", destination="/y", source="/tmp", writable=False, propagation="rslave")
    tmpfs = {"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1016}}
    assert parse_mount(tmpfs) == UserMount(kind="tmpfs", destination="/x", source="tmpfs", data="mode=1770,size=1m")


@pytest.mark.parametrize(
    ("mount", "message"),
    [
        ({"Type": "bind", "Source": "/a"}, 'invalid mount config for type "bind": field Target must not be empty'),
        ({"Type": "bind", "Target": "/b"}, 'invalid mount config for type "bind": field Source must not be empty'),
        ({"Type": "bind", "Source": "a", "Target": "/b"}, "invalid mount config for type \"bind\": invalid mount path: 'a' mount path must be absolute"),
        ({"Type": "bind", "Source": "/a", "Target": "/b", "BindOptions": {"Propagation": "weird"}}, 'invalid mount config for type "bind": invalid propagation mode: weird'),
        ({"Type": "bind", "Source": "/a", "Target": "/b", "BindOptions": {"ReadOnlyNonRecursive": True}}, 'invalid mount config for type "bind": mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive'),
        ({"Type": "tmpfs", "Source": "/a", "Target": "/b"}, 'invalid mount config for type "tmpfs": field Source must not be specified'),
        ({"Type": "tmpfs", "Target": "/b", "BindOptions": {}}, 'invalid mount config for type "tmpfs": field BindOptions must not be specified'),
        ({"Type": "npipe", "Target": "/b"}, 'invalid mount config for type "npipe": mount type unknown'),
    ],
)
def test_bad_mounts(mount: dict[str, Any], message: str) -> None:
    with pytest.raises(OCIError) as info:
        parse_mount(mount)
    assert info.value.message == message


def test_mount_layout_order_and_options() -> None:
    host_config = {
        "Binds": ["/srv/data:/data:ro", "/srv/deep:/data/deep/er", "/srv/etc:/etc/app:rslave"],
        "Tmpfs": {"/run": "rw,size=64m"},
        "Mounts": [
            {"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 1016}},
            {"Type": "bind", "Source": "/tmp", "Target": "/y", "ReadOnly": True, "BindOptions": {"NonRecursive": True, "ReadOnlyNonRecursive": True}},
        ],
    }
    spec = build_spec(
        ContainerSpecInput(
            config={"Hostname": "h", "Cmd": ["true"]},
            host_config=host_config,
            user=ROOT,
            cgroups_path="/dockyard/t/c",
            hosts_path="/f/hosts",
        )
    )
    assert spec["mounts"][7:] == [
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=64m"]},
        {"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["noexec", "nosuid", "nodev", "rprivate", "mode=1770", "size=1m"]},
        {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "rro", "rprivate"]},
        {"destination": "/y", "type": "bind", "source": "/tmp", "options": ["bind", "ro", "rprivate"]},
        {"destination": "/etc/app", "type": "bind", "source": "/srv/etc", "options": ["rbind", "rslave"]},
        {"destination": "/etc/hosts", "type": "bind", "source": "/f/hosts", "options": ["rbind", "rprivate"]},
        {"destination": "/data/deep/er", "type": "bind", "source": "/srv/deep", "options": ["rbind", "rprivate"]},
    ]
    assert spec["linux"]["rootfsPropagation"] == "rslave"


def test_user_mount_replaces_default_and_dev_hides_dev_children() -> None:
    spec = build_spec(
        ContainerSpecInput(
            config={"Hostname": "h", "Cmd": ["true"]},
            host_config={"Binds": ["/host/dev:/dev"], "Tmpfs": {"/dev/shm": "size=1m"}},
            user=ROOT,
            cgroups_path="/c",
        )
    )
    assert [m["destination"] for m in spec["mounts"]] == ["/proc", "/sys", "/sys/fs/cgroup", "/dev", "/dev/shm"]


def test_user_bind_over_engine_file_replaces_it() -> None:
    spec = build_spec(
        ContainerSpecInput(
            config={"Hostname": "h", "Cmd": ["true"]},
            host_config={"Binds": ["/mine/hosts:/etc/hosts:ro"], "ReadonlyRootfs": False},
            user=ROOT,
            cgroups_path="/c",
            hosts_path="/engine/hosts",
            resolv_path="/engine/resolv.conf",
        )
    )
    assert spec["mounts"][7:] == [
        {"destination": "/etc/resolv.conf", "type": "bind", "source": "/engine/resolv.conf", "options": ["rbind", "rprivate"]},
        {"destination": "/etc/hosts", "type": "bind", "source": "/mine/hosts", "options": ["rbind", "rro", "rprivate"]},
    ]


def test_duplicate_mount_points() -> None:
    with pytest.raises(OCIError, match="^Duplicate mount point: /b$"):
        build_spec(ContainerSpecInput(config={"Cmd": ["true"]}, host_config={"Binds": ["/a:/b", "/c:/b/"]}, user=ROOT, cgroups_path="/c"))
    with pytest.raises(OCIError, match="^Duplicate mount point: /run$"):
        build_spec(ContainerSpecInput(config={"Cmd": ["true"]}, host_config={"Binds": ["/a:/run"], "Tmpfs": {"/run": ""}}, user=ROOT, cgroups_path="/c"))
    with pytest.raises(OCIError, match="^Duplicate mount point: /b/$"):
        build_spec(ContainerSpecInput(config={"Cmd": ["true"]}, host_config={"Binds": ["/a:/b"], "Mounts": [{"Type": "tmpfs", "Target": "/b/"}]}, user=ROOT, cgroups_path="/c"))


def test_force_recursive_readonly_without_rro_support() -> None:
    mount = {"Type": "bind", "Source": "/a", "Target": "/b", "ReadOnly": True, "BindOptions": {"ReadOnlyForceRecursive": True}}
    with pytest.raises(OCIError, match='^rro is not supported by runtime "runc"$'):
        build_spec(ContainerSpecInput(config={"Cmd": ["true"]}, host_config={"Mounts": [mount]}, user=ROOT, cgroups_path="/c", recursive_readonly=False))
