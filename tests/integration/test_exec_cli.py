"""`docker exec` with the real `docker` CLI against dockyard (issue 4, "Must show", exec part)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.terminal import TerminalSession

IMG = "dockyard-test/exec:latest"


@pytest.fixture(scope="module")
def image(docker, tmp_path_factory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("exec-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    yield IMG
    leftover = docker.out("ps", "-aq", "--no-trunc", "--filter", f"ancestor={IMG}").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


@pytest.fixture
def ctr(docker, image) -> Iterator[str]:
    cid = docker.out("run", "-d", image, "sleep", "1000").strip()
    yield cid
    docker.run("rm", "-f", cid)


def test_streams_stay_separate_and_exit_code_is_the_commands(docker, ctr):
    result = docker.run("exec", ctr, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    shell = f"{docker.binary} exec {ctr} sh -c 'echo out; echo err >&2'"
    only_err = subprocess.run(["sh", "-c", shell + " >/dev/null"], capture_output=True, env=docker.daemon.env())
    assert (only_err.stdout, only_err.stderr) == (b"", b"err\n")


def test_stdin_is_copied_and_closed_at_eof(docker, ctr):
    assert docker.run("exec", "-i", ctr, "cat", input=b"hi\n").stdout == b"hi\n"
    # cat ends only if the half-close reached the process's stdin.
    data = os.urandom(8 << 20)
    out = docker.run("exec", "-i", ctr, "sh", "-c", "cat; echo end", input=data).stdout
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data + b"end\n").hexdigest()
    # Without -i the process's stdin is empty.
    assert docker.run("exec", ctr, "cat", input=b"ignored\n").stdout == b""


def test_user_workdir_env(docker, ctr):
    out = docker.out("exec", "-u", "nobody", "-w", "/tmp", "-e", "A=1", ctr, "sh", "-c", 'id; pwd; echo "A=$A"')
    assert out == "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n/tmp\nA=1\n"
    assert docker.out("exec", "-u", "1000:1000", ctr, "id", "-u") == "1000\n"
    # The container's own settings are the defaults; exec's Env overrides them.
    cid = docker.out("run", "-d", "-e", "A=container", "-e", "B=b", "-w", "/etc", "-u", "nobody",
                     IMG, "sleep", "1000").strip()
    try:
        assert docker.out("exec", cid, "sh", "-c", 'echo "$A $B"; pwd; id -u') == "container b\n/etc\n65534\n"
        assert docker.out("exec", "-e", "A=exec", cid, "sh", "-c", 'echo "$A $B"') == "exec b\n"
        assert docker.out("exec", "-u", "root", cid, "id", "-u") == "0\n"
    finally:
        docker.run("rm", "-f", cid)
    missing = docker.run("exec", "-u", "nosuchuser", ctr, "true", check=False)
    assert missing.returncode == 1
    assert b"unable to find user nosuchuser: no matching entries in passwd file" in missing.stderr


def test_privileged_gets_every_capability(docker, ctr):
    def cap_eff(*flags: str) -> int:
        line = [x for x in docker.out("exec", *flags, ctr, "cat", "/proc/self/status").splitlines()
                if x.startswith("CapEff:")][0]
        return int(line.split()[1], 16)

    plain, privileged = cap_eff(), cap_eff("--privileged")
    assert plain & privileged == plain and privileged != plain
    assert bin(privileged).count("1") > bin(plain).count("1") + 10


def test_command_not_found_and_not_executable(docker, ctr):
    missing = docker.run("exec", ctr, "nosuchcommand", check=False)
    assert missing.returncode == 127
    # dockerd writes the runtime's error on the exec's stdout, as the stream's only output.
    assert b'exec: "nosuchcommand": executable file not found in $PATH' in missing.stdout
    assert missing.stdout.endswith(b"\r\n")
    directory = docker.run("exec", ctr, "/etc", check=False)
    assert directory.returncode == 126
    assert b"permission denied" in directory.stdout
    not_executable = docker.run("exec", ctr, "/etc/passwd", check=False)
    assert not_executable.returncode == 126
    # The container is unharmed.
    assert docker.out("exec", ctr, "echo", "ok") == "ok\n"


def test_stopped_and_missing_containers(docker, image):
    cid = docker.out("create", image, "true").strip()
    try:
        result = docker.run("exec", cid, "true", check=False)
        assert result.returncode == 1
        assert f"container {cid} is not running".encode() in result.stderr
        docker.run("start", "-a", cid)
        result = docker.run("exec", cid, "true", check=False)
        assert f"container {cid} is not running".encode() in result.stderr
    finally:
        docker.run("rm", "-f", cid)
    result = docker.run("exec", "no-such-container-here", "true", check=False)
    assert b"No such container: no-such-container-here" in result.stderr


def test_detached_exec_runs_in_the_background(docker, ctr):
    started = time.monotonic()
    assert docker.run("exec", "-d", ctr, "sh", "-c", "sleep 0.5; echo done > /tmp/detached").stdout == b""
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if docker.run("exec", ctr, "cat", "/tmp/detached", check=False).stdout == b"done\n":
            break
        time.sleep(0.1)
    assert docker.out("exec", ctr, "cat", "/tmp/detached") == "done\n"


def test_exec_ends_with_its_container(docker, ctr):
    # The attached exec's stream ends, and the CLI reports the kill, when the container stops.
    exec_cli = subprocess.Popen([docker.binary, "exec", ctr, "sleep", "1000"], env=docker.daemon.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while docker.out("exec", ctr, "ps", "-o", "args").count("sleep 1000") < 2:  # the container's and ours
            assert time.monotonic() < deadline
            time.sleep(0.05)
        docker.run("kill", ctr)
        assert exec_cli.wait(timeout=30) == 137
    finally:
        if exec_cli.poll() is None:
            exec_cli.kill()
            exec_cli.wait()


def test_tty_gets_a_pts_and_resizes(docker, ctr):
    argv = [docker.binary, "exec", "-it", ctr, "sh", "-c",
            "tty; stty size; while read x; do stty size; done; exit 4"]
    with TerminalSession(argv, docker.daemon.env(), rows=27, cols=91) as term:
        # The CLI sends its size in the create and start bodies: the first stty sees it.
        term.read_until(b"27 91")
        assert b"/dev/pts/" in term.output and b"27 91" in term.output
        assert term.resize_until_seen(33, 120)
        term.write(b"\x04")
        term.read_until(b"\x00never", timeout=10)  # drain until the CLI closes the terminal
    assert term.exit_code == 4


def test_many_execs_at_once(docker, ctr):
    procs = [subprocess.Popen([docker.binary, "exec", ctr, "sh", "-c", f"echo {i}; exit {i % 7}"],
                              env=docker.daemon.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(20)]
    results = [(p.communicate(timeout=60)[0], p.returncode) for p in procs]
    assert results == [(f"{i}\n".encode(), i % 7) for i in range(20)]
