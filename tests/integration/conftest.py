"""One dockyard (with its own containerd) shared by the integration tests.

Tests that need isolation from it (restarts, pid-file locks) start their own.
The reference dockerd is started only by the tests that compare against it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.daemons import RunningDaemon, discard, start_dockerd, start_dockyard


class DockerCLI:
    """Runs the real `docker` CLI (first on PATH) against one daemon."""

    def __init__(self, daemon: RunningDaemon) -> None:
        self.daemon = daemon
        self.binary = shutil.which("docker") or "docker"

    def run(self, *args: str, input: bytes | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [self.binary, *args], input=input, capture_output=True,
            env=self.daemon.env(), timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout.decode(errors='replace')}\n"
                f"stderr: {result.stderr.decode(errors='replace')}\n"
                f"daemon log:\n{self.daemon.log_tail()}"
            )
        return result

    def out(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout.decode()


@pytest.fixture(scope="session")
def dockyard() -> Iterator[RunningDaemon]:
    root = Path(tempfile.mkdtemp(prefix="dockyard-test-"))
    daemon = start_dockyard(root)
    try:
        yield daemon
    finally:
        discard(daemon, root)


@pytest.fixture(scope="session")
def docker(dockyard: RunningDaemon) -> DockerCLI:
    return DockerCLI(dockyard)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[RunningDaemon]:
    root = Path(tempfile.mkdtemp(prefix="dockerd-ref-"))
    daemon = start_dockerd(root)
    try:
        yield daemon
    finally:
        discard(daemon, root)


@pytest.fixture(scope="session")
def ref_docker(dockerd: RunningDaemon) -> DockerCLI:
    return DockerCLI(dockerd)
