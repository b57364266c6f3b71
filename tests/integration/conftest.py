"""One dockyard (with its own containerd) shared by the integration tests.

Tests that need isolation from it (restarts, pid-file locks) start their own.
The reference dockerd is started only by the tests that compare against it.
``busybox_image`` is the fixture busybox image, loaded once into that dockyard.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.daemons import RunningDaemon, discard, start_dockerd, start_dockyard
from dockyard.testing.fixtures import build_docker_archive

#: The tag of the shared busybox image. Not ``fixtures.DEFAULT_TAG``: test_cli_images
#: re-tags and removes that one (with an image of its own, extra layers and all).
SHARED_BUSYBOX_TAG = "dockyard-test/shared:latest"


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

    def remove_labelled(self, label: str) -> None:
        """Remove every container carrying ``label`` (``key=value``): a module's leftovers."""
        leftover = self.out("ps", "-aq", "--no-trunc", "--filter", f"label={label}").split()
        if leftover:
            self.run("rm", "-f", *leftover)


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
def busybox_image(docker: DockerCLI, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tag of the fixture busybox image, loaded into the shared dockyard once."""
    path = tmp_path_factory.mktemp("busybox-image") / "busybox.tar"
    build_docker_archive(path, tags=[SHARED_BUSYBOX_TAG])
    docker.run("load", "-i", str(path))
    return SHARED_BUSYBOX_TAG


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
