"""Start dockyard and a reference dockerd for tests and benchmarks.

Both run as child processes in a temporary directory of their own: their own
socket, data root and exec root, never the machine's defaults. Each is stopped
by the PID it was started with.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dockyard.testing import refnet

REPO_ROOT = Path(__file__).resolve().parents[3]


class DaemonFailed(RuntimeError):
    """A daemon exited or did not answer in time; the message carries its log tail."""


@dataclass(frozen=True, kw_only=True)
class RunningDaemon:
    name: str
    root: Path
    socket_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    #: A reference dockerd's own bridge (``start_dockerd(bridge=…)``), removed by ``discard``.
    bridge: str | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def env(self) -> dict[str, str]:
        """An environment for the `docker` CLI pointed at this daemon only."""
        env = dict(os.environ)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        env["DOCKER_CONFIG"] = str(self.root / "client-config")
        return env

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _ping(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _wait_ready(daemon: RunningDaemon, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.process.poll() is not None:
            raise DaemonFailed(f"{daemon.name} exited ({daemon.process.returncode}):\n{daemon.log_tail()}")
        if _ping(daemon.socket_path):
            return
        time.sleep(0.05)
    stop(daemon)
    raise DaemonFailed(f"{daemon.name} did not answer within {timeout}s:\n{daemon.log_tail()}")


def start_dockyard(root: Path, *, extra_args: tuple[str, ...] = (), timeout: float = 60) -> RunningDaemon:
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    log_path = root / "dockyard.log"
    log = open(log_path, "ab")
    args = [
        sys.executable, "-m", "dockyard.cli", "serve",
        "-H", f"unix://{sock}",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--log-level", "debug",
        *extra_args,
    ]
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    daemon = RunningDaemon(name="dockyard", root=root, socket_path=sock, process=process, log_path=log_path)
    _wait_ready(daemon, timeout)
    return daemon


def start_dockerd(root: Path, *, timeout: float = 60, bridge: str | None = None,
                  bridge_address: str = "10.216.0.1/24") -> RunningDaemon:
    """Debian's dockerd on its own socket and data root, touching no host networking.

    With ``bridge`` it networks as dockerd does by default (iptables, NAT, userland
    proxy) on that bridge, made here with ``bridge_address`` (never ``docker0``);
    ``discard`` removes the bridge and dockerd's iptables chains. One at a time per machine."""
    binary = shutil.which("dockerd") or "/usr/sbin/dockerd"
    root.mkdir(parents=True, exist_ok=True)
    sock = root / "docker.sock"
    log_path = root / "dockerd.log"
    args = [
        binary,
        "--host", f"unix://{sock}",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "dockerd.pid"),
    ]
    if bridge is None:
        args += ["--bridge", "none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"]
    else:
        # --ip-forward=false: with it on, dockerd would also set the host's FORWARD policy to DROP.
        args += ["--bridge", bridge, "--iptables=true", "--ip-masq=true", "--userland-proxy=true",
                 "--ip-forward=false"]
        refnet.create(bridge, bridge_address)
    try:
        with open(log_path, "ab") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except BaseException:
        if bridge is not None:
            refnet.remove(bridge)
        raise
    daemon = RunningDaemon(name="dockerd", root=root, socket_path=sock, process=process, log_path=log_path,
                           bridge=bridge)
    try:
        _wait_ready(daemon, timeout)
    except BaseException:
        stop(daemon)
        if bridge is not None:
            refnet.remove(bridge)
        raise
    return daemon


def stop(daemon: RunningDaemon, timeout: float = 30) -> None:
    """SIGTERM the daemon we started, then SIGKILL if it does not exit."""
    if daemon.process.poll() is not None:
        return
    daemon.process.send_signal(signal.SIGTERM)
    try:
        daemon.process.wait(timeout)
    except subprocess.TimeoutExpired:
        daemon.process.kill()
        daemon.process.wait()


def remove_all_containers(daemon: RunningDaemon) -> None:
    """`docker rm -f` every container of a running daemon and prune its networks,
    so neither a container nor a bridge outlives it."""
    if daemon.process.poll() is not None:
        return
    env = daemon.env()
    listed = subprocess.run(["docker", "ps", "-aq", "--no-trunc"], capture_output=True,
                            env=env, timeout=60)
    ids = listed.stdout.decode().split()
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, env=env, timeout=120)
    # User networks own host bridges, which outlive the daemon's root: remove them too.
    subprocess.run(["docker", "network", "prune", "-f"], capture_output=True, env=env, timeout=60)


def discard(daemon: RunningDaemon, root: Path) -> None:
    """Tear a test daemon down and leave nothing: its containers, its process,
    the mounts under ``root`` (overlays, namespaces), then ``root`` itself."""
    from dockyard.testing.containerd_fixture import unmount_under

    try:
        remove_all_containers(daemon)
    finally:
        stop(daemon)
        if daemon.bridge is not None:
            refnet.remove(daemon.bridge)
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
