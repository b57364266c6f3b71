"""The pure rules of docker exec: request parsing, the exec's OCI process, moby's errors and codes."""

from __future__ import annotations

import asyncio

import pytest

from dockyard import errors
from dockyard.engine.container_model import Container
from dockyard.engine.container_store import ContainerDefinition, ContainerState
from dockyard.engine.exec import (
    Exec,
    ExecOptions,
    ExecStartOptions,
    container_conflict,
    detach_key_bytes,
    exec_process,
    inspect_body,
    parse_exec_options,
    parse_start_options,
    start_error_exit,
)
from dockyard.oci import ResolvedUser

CID = "a" * 64


def container(status: str = "running", **config) -> Container:
    definition = ContainerDefinition(
        id=CID, name="/web", created="2024-01-02T03:04:05Z", created_ns=0,
        config={"Image": "busybox", "Hostname": "aaaaaaaaaaaa", **config}, host_config={}, image="busybox",
        image_id="sha256:" + "b" * 64, chain_id="", path="sh", args=(), log_path="/l", hostname_path="/h",
        hosts_path="/hs", resolv_conf_path="/r")
    return Container(definition, ContainerState(status=status), "dockyard")


def test_parse_exec_options():
    body = {"Cmd": ["sh", "-c", "x"], "Env": ["A=1"], "WorkingDir": "/tmp", "User": "nobody", "Tty": True,
            "AttachStdin": True, "AttachStdout": True, "AttachStderr": False, "DetachKeys": "ctrl-p,ctrl-q",
            "Privileged": True, "ConsoleSize": [24, 80], "Unknown": 1}
    assert parse_exec_options(body, api_version=(1, 50)) == ExecOptions(
        cmd=("sh", "-c", "x"), env=("A=1",), working_dir="/tmp", user="nobody", tty=True, attach_stdin=True,
        attach_stdout=True, attach_stderr=False, detach_keys=b"\x10\x11", privileged=True, console_size=(24, 80))
    # A lone string is a one-element Cmd (strslice); ConsoleSize is ignored before API 1.42.
    assert parse_exec_options({"Cmd": "ls", "ConsoleSize": [1, 2]}, api_version=(1, 41)) == ExecOptions(cmd=("ls",))
    for bad in (None, {}, {"Cmd": []}, {"Cmd": None}):
        with pytest.raises(errors.InvalidParameter, match="^No exec command specified$"):
            parse_exec_options(bad, api_version=(1, 50))
    for bad in ({"Cmd": [1]}, {"Cmd": ["x"], "Tty": "yes"}, {"Cmd": ["x"], "ConsoleSize": [1]},
                {"Cmd": ["x"], "ConsoleSize": [-1, 2]}, {"Cmd": ["x"], "Env": "A=1"}):
        with pytest.raises(errors.InvalidParameter):
            parse_exec_options(bad, api_version=(1, 50))


def test_parse_start_options():
    assert parse_start_options(None, api_version=(1, 50)) == ExecStartOptions()
    assert parse_start_options({"Detach": True}, api_version=(1, 50)) == ExecStartOptions(detach=True)
    # No console without a TTY.
    assert parse_start_options({"ConsoleSize": [3, 4]}, api_version=(1, 50)) == ExecStartOptions()
    assert parse_start_options({"Tty": True, "ConsoleSize": [3, 4]}, api_version=(1, 50)) == ExecStartOptions(
        tty=True, console_size=(3, 4))


def test_detach_keys_like_moby_term():
    assert detach_key_bytes("") == b""
    assert detach_key_bytes("ctrl-@,ctrl-a,ctrl-z,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_") == bytes(
        [0, 1, 26, 27, 28, 29, 30, 31])
    assert detach_key_bytes("a,DEL,ctrl-x") == b"a\x7f\x18"
    with pytest.raises(errors.SystemError, match=r"^Invalid escape keys \(ctrl-A\) provided$"):
        detach_key_bytes("ctrl-A")


def test_start_errors_get_mobys_exit_codes():
    runc = "OCI runtime exec failed: exec failed: unable to start container process: "
    assert start_error_exit(runc + 'exec: "x": executable file not found in $PATH: unknown') == (
        127, runc + 'exec: "x": executable file not found in $PATH: unknown', True)
    assert start_error_exit(runc + 'exec: "/etc": permission denied: unknown')[:2] == (
        126, runc + 'exec: "/etc": permission denied: unknown')
    assert start_error_exit("exec: /etc: is a directory") == (126, "exec: /etc: is a directory: permission denied",
                                                              True)
    code, message, invalid = start_error_exit("open /x: not a directory")
    assert (code, invalid) == (127, True) and message.startswith("open /x: not a directory: Are you trying to mount")
    assert start_error_exit('chdir to cwd ("/n") set in config.json failed: no such file or directory')[0] == 127
    assert start_error_exit("task abc not found: not found") == (128, "task abc not found: not found", False)


def test_exec_process_overrides_the_containers():
    base = {"terminal": True, "consoleSize": {"height": 1, "width": 2}, "user": {"uid": 5, "gid": 5},
            "args": ["sleep", "1000"], "env": ["PATH=/bin", "HOSTNAME=x", "TERM=xterm", "A=c"], "cwd": "/srv",
            "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]},
            "noNewPrivileges": True, "oomScoreAdj": 0}
    config = {"Hostname": "aaaaaaaaaaaa", "Env": ["PATH=/usr/bin:/bin", "A=c", "B=d"], "WorkingDir": "/srv",
              "Tty": True}
    options = ExecOptions(cmd=("sh", "-c", "env"), env=("A=e", "C=f", "B"), tty=False)
    assert exec_process(base, options=options, container_config=config, user=None, console_size=None,
                        all_capabilities=("CAP_CHOWN", "CAP_SYS_ADMIN")) == {
        "terminal": False, "user": {"uid": 5, "gid": 5}, "args": ["sh", "-c", "env"],
        "env": ["PATH=/usr/bin:/bin", "HOSTNAME=aaaaaaaaaaaa", "A=e", "C=f"], "cwd": "/srv",
        "capabilities": {"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]},
        "noNewPrivileges": True, "oomScoreAdj": 0}
    tty = ExecOptions(cmd=("sh",), tty=True, working_dir="/tmp", privileged=True)
    user = ResolvedUser(uid=65534, gid=65534, additional_gids=(65534,), home="/nonexistent")
    process = exec_process(base, options=tty, container_config={"Hostname": "h"}, user=user, console_size=(24, 80),
                           all_capabilities=("CAP_CHOWN", "CAP_SYS_ADMIN"))
    assert process["terminal"] is True and process["consoleSize"] == {"height": 24, "width": 80}
    assert process["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=h",
                              "TERM=xterm"]
    assert process["cwd"] == "/tmp"
    assert process["user"] == {"uid": 65534, "gid": 65534, "additionalGids": [65534]}
    assert process["capabilities"] == {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
                                       "effective": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
                                       "permitted": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}
    assert base["args"] == ["sleep", "1000"]  # the container's process is left alone
    assert exec_process({}, options=ExecOptions(cmd=("x",)), container_config={}, user=None, console_size=None,
                        all_capabilities=())["cwd"] == "/"


def test_container_conflicts_use_mobys_messages():
    assert container_conflict(container("running"), "web") is None
    for status in ("created", "exited"):
        conflict = container_conflict(container(status), "web")
        assert isinstance(conflict, errors.Conflict) and conflict.message == f"container {CID} is not running"
    paused = container_conflict(container("paused"), "web")
    assert isinstance(paused, errors.Conflict)
    assert paused.message == "Container web is paused, unpause the container before exec"
    restarting = container_conflict(container("restarting"), "web")
    assert restarting is not None
    assert restarting.message == f"Container {CID} is restarting, wait until the container is running"


def test_inspect_body_field_order_and_values():
    async def build() -> Exec:
        return Exec(id="e" * 64, container=container(), options=ExecOptions(cmd=("ls", "-l"), attach_stdout=True,
                                                                            detach_keys=b"\x10\x11"),
                    user="", resolved_user=None, base_process={})

    ex = asyncio.run(build())
    body = inspect_body(ex)
    assert list(body) == ["ID", "Running", "ExitCode", "ProcessConfig", "OpenStdin", "OpenStderr", "OpenStdout",
                          "CanRemove", "ContainerID", "DetachKeys", "Pid"]
    assert body["ProcessConfig"] == {"tty": False, "entrypoint": "ls", "arguments": ["-l"], "privileged": False}
    assert (body["ExitCode"], body["DetachKeys"], body["ContainerID"]) == (None, "EBE=", CID)
