"""Live restore after SIGKILL (issue 7, "Must show": Restart).

dockyard is killed outright, so nothing stops its containerd: the shims keep
the containers running and containerd keeps the task of one that exits
meanwhile, STOPPED with its exit status. The next dockyard adopts that
containerd by pid file (no second one), records the real exit code, publishes
the ``die`` it missed, and reattaches the ticker's output.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from conftest import DockerCLI

from dockyard.testing.daemons import RunningDaemon, discard, start_dockyard
from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.probes import wait_until

IMG = "dockyard-test/sigkill:latest"
TICK = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"
# Exits only once the test, with dockyard killed, creates /ctl/go (a bind mount).
EXITS_5 = "while [ ! -e /ctl/go ]; do sleep 0.05; done; exit 5"


def _ticks(docker: DockerCLI, cid: str) -> list[int]:
    lines = docker.out("logs", cid).splitlines()
    assert all(line.startswith("tick ") for line in lines), lines[:5]
    return [int(line.split()[1]) for line in lines]


def _containerds_under(root: Path) -> list[int]:
    """Pids of the containerd processes whose command line names a file under ``root``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{entry}/exe")
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(exe) == "containerd" and any(a.startswith(os.fsencode(root)) for a in argv):
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _ps(docker: DockerCLI, *args: str) -> dict[str, str]:
    out = docker.out("ps", "--no-trunc", *args, "--format", "{{.ID}}\t{{.Status}}")
    return dict(line.split("\t", 1) for line in out.splitlines())


def test_containers_and_exit_codes_survive_sigkill_of_dockyard():
    root = Path(tempfile.mkdtemp(prefix="dockyard-sigkill-"))
    daemon: RunningDaemon = start_dockyard(root)
    try:
        docker = DockerCLI(daemon)
        build_docker_archive(root / "img.tar", tags=[IMG])
        docker.run("load", "-i", str(root / "img.tar"))
        ticker = docker.out("run", "-d", IMG, "sh", "-c", TICK).strip()
        (root / "ctl").mkdir()
        exiting = docker.out("run", "-d", "-v", f"{root / 'ctl'}:/ctl", IMG, "sh", "-c", EXITS_5).strip()
        sleeper = docker.out("run", "-d", IMG, "sleep", "300").strip()
        wait_until(lambda: len(_ticks(docker, ticker)) >= 3, timeout=60, what="ticks before the kill")
        exiting_pid = json.loads(docker.out("inspect", exiting))[0]["State"]["Pid"]
        assert exiting_pid > 0
        since = str(int(time.time()) - 1)
        containerds = _containerds_under(root)
        assert len(containerds) == 1

        daemon.process.kill()
        daemon.process.wait()
        (root / "ctl" / "go").touch()
        wait_until(lambda: not _alive(exiting_pid), timeout=60, what="the exiting container's end")
        assert _containerds_under(root) == containerds  # left running by the killed dockyard

        daemon = start_dockyard(root)
        docker = DockerCLI(daemon)
        assert _containerds_under(root) == containerds  # adopted, not a second one

        running = _ps(docker)
        assert set(running) == {ticker, sleeper}
        assert all(status.startswith("Up") for status in running.values()), running
        everything = _ps(docker, "-a")
        assert set(everything) == {ticker, sleeper, exiting}
        assert everything[exiting].startswith("Exited (5)"), everything
        state = json.loads(docker.out("inspect", exiting))[0]["State"]
        assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 5)
        assert docker.out("wait", exiting).strip() == "5"

        # The die dockyard missed while down is published once it is back.
        dies = docker.out("events", "--since", since, "--until", str(int(time.time()) + 1),
                          "--filter", f"container={exiting}", "--filter", "event=die",
                          "--format", "{{json .}}", timeout=30).splitlines()
        assert [json.loads(d)["Actor"]["Attributes"]["exitCode"] for d in dies] == ["5"]

        # Ticks from before the kill, while down and after the restart: in order, none lost.
        before = len(_ticks(docker, ticker))
        wait_until(lambda: len(_ticks(docker, ticker)) >= before + 3, timeout=60, what="ticks after the restart")
        seen = _ticks(docker, ticker)
        assert seen == list(range(seen[0], seen[-1] + 1))
        assert seen[0] == 0

        docker.run("rm", "-f", ticker, sleeper, exiting)
    finally:
        if daemon.process.poll() is not None:
            # Killed and not yet restarted: a new dockyard adopts what is left, so discard finds it.
            daemon = start_dockyard(root)
        discard(daemon, root)
