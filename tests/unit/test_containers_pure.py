"""Pure parts of the container engine: generated files, records, views, error mapping."""

from __future__ import annotations

import signal

import pytest

from dockyard import errors
from dockyard.containerd.types import Mount
from dockyard.engine.container_fs import hosts_text, layer_dirs, read_image_file, resolv_conf_text
from dockyard.engine.container_store import (
    EXT_DEFINITION,
    EXT_STATE,
    ContainerDefinition,
    ContainerState,
    CorruptRecord,
    encode_definition,
    encode_state,
    from_extensions,
)
from dockyard.engine.container_view import command_text, inspect_body, ps_row, status_text
from dockyard.engine.containers import exit_code_for_start_error, parse_signal

S = 1_000_000_000


def definition(**changes) -> ContainerDefinition:
    values = dict(
        id="a" * 64, name="/web", created="2024-01-02T03:04:05.5Z", created_ns=1704164645 * S + S // 2,
        config={"Image": "busybox", "Cmd": ["sh", "-c", "echo hi"], "Labels": {"a": "b"}, "Tty": False},
        host_config={"NetworkMode": "default", "Binds": ["/src:/dst:ro"]}, image="busybox",
        image_id="sha256:" + "b" * 64, chain_id="sha256:" + "c" * 64, path="sh", args=("-c", "echo hi"),
        log_path="/l", hostname_path="/h", hosts_path="/hs", resolv_conf_path="/r",
    )
    values.update(changes)
    return ContainerDefinition(**values)


def test_hosts_default_and_extra():
    assert hosts_text(extra_hosts=["db:10.0.0.2", "v6:::1"], host_network=False, host_hosts="") == (
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        "10.0.0.2\tdb\n::1\tv6\n"
    )
    assert hosts_text(extra_hosts=[], host_network=True, host_hosts="1.2.3.4 me") == "1.2.3.4 me\n"


def test_resolv_conf_filters_loopback_and_overrides():
    host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nsearch corp\noptions ndots:2\n"
    assert resolv_conf_text(host) == "# generated\nnameserver 10.0.0.1\nsearch corp\noptions ndots:2\n"
    assert resolv_conf_text("nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert resolv_conf_text("nameserver 127.0.0.1\n", host_network=True) == "nameserver 127.0.0.1\n"
    assert resolv_conf_text(host, dns=["9.9.9.9"], dns_search=["x.y"], dns_options=["rotate"]) == (
        "# generated\nnameserver 9.9.9.9\nsearch x.y\noptions rotate\n"
    )


def test_image_files_read_like_overlayfs(tmp_path):
    upper, top, base = tmp_path / "u", tmp_path / "l1", tmp_path / "l0"
    for d in (upper / "etc", top / "etc", base / "etc"):
        d.mkdir(parents=True)
    (base / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (base / "etc" / "group").write_text("root:x:0:\n")
    (top / "etc" / "passwd").write_text("app:x:1000:1000::/app:/bin/sh\n")
    mounts = [Mount(type="overlay", source="overlay",
                    options=(f"workdir={tmp_path}/w", f"upperdir={upper}", f"lowerdir={top}:{base}"))]
    assert layer_dirs(mounts) == (str(upper), [str(top), str(base)])
    assert read_image_file(mounts, "/etc/passwd") == "app:x:1000:1000::/app:/bin/sh\n"
    assert read_image_file(mounts, "/etc/group") == "root:x:0:\n"
    assert read_image_file(mounts, "/etc/shadow") is None
    bind = [Mount(type="bind", source=str(base), options=("ro", "rbind"))]
    assert read_image_file(bind, "/etc/passwd") == "root:x:0:0::/root:/bin/sh\n"


def test_records_round_trip():
    d = definition()
    state = ContainerState(status="exited", exit_code=3, started_before=True)
    stored = from_extensions({EXT_DEFINITION: encode_definition(d), EXT_STATE: encode_state(state)})
    assert stored.definition == d and stored.state == state
    assert from_extensions({EXT_DEFINITION: encode_definition(d)}).state == ContainerState()
    with pytest.raises(CorruptRecord):
        from_extensions({})
    with pytest.raises(CorruptRecord):
        from_extensions({EXT_DEFINITION: b"{nope"})


def test_status_text():
    now = 1000 * S
    assert status_text(ContainerState(), now) == "Created"
    running = ContainerState(status="running", started_at="x", started_ns=now - 3 * S)
    assert status_text(running, now) == "Up 3 seconds"
    exited = ContainerState(status="exited", exit_code=2, started_at="x", finished_at="y", finished_ns=now - 120 * S)
    assert status_text(exited, now) == "Exited (2) 2 minutes ago"
    assert status_text(ContainerState(status="exited", started_at="x", finished_at="y", finished_ns=now), now) == (
        "Exited (0) Less than a second ago")


def test_ps_row_and_inspect_shapes():
    d = definition()
    row = ps_row(d, ContainerState(), 0)
    assert list(row) == ["Id", "Names", "Image", "ImageID", "Command", "Created", "Ports", "Labels", "State",
                         "Status", "HostConfig", "NetworkSettings", "Mounts"]
    assert (row["Names"], row["Command"], row["Created"], row["State"]) == (["/web"], "sh -c echo hi", 1704164645, "created")
    assert row["HostConfig"] == {"NetworkMode": "default"}
    assert list(row["NetworkSettings"]["Networks"]) == ["bridge"]
    assert row["Mounts"] == [{"Type": "bind", "Source": "/src", "Destination": "/dst", "Mode": "ro",
                              "RW": False, "Propagation": "rprivate"}]
    body = inspect_body(d, ContainerState())
    assert body["State"] == {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                             "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                             "StartedAt": "0001-01-01T00:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}
    assert body["Image"] == d.image_id and body["Name"] == "/web"
    assert body["HostConfig"]["NetworkMode"] == "default"
    assert body["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert "StopSignal" not in body["Config"] and body["Config"]["Labels"] == {"a": "b"}
    assert command_text(definition(args=())) == "sh"


def test_start_error_exit_codes():
    assert exit_code_for_start_error(
        'OCI runtime create failed: exec: "x": executable file not found in $PATH: unknown') == 127
    assert exit_code_for_start_error("exec: /etc: is a directory") == 126
    assert exit_code_for_start_error("exec: /bin/x: permission denied") == 126
    assert exit_code_for_start_error("cgroup trouble") is None


def test_parse_signal():
    assert parse_signal(None) == signal.SIGKILL
    assert parse_signal("TERM") == parse_signal("SIGTERM") == parse_signal("15") == signal.SIGTERM
    with pytest.raises(errors.InvalidParameter):
        parse_signal("NOPE")
