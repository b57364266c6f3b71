"""Shared pieces: both daemons side by side, a timer, the result table."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dockyard.testing.daemons import RunningDaemon, discard, start_dockerd, start_dockyard


@dataclass(frozen=True, kw_only=True)
class Pair:
    """dockyard and dockerd, each reached through its own `docker` environment."""

    dockyard: RunningDaemon
    dockerd: RunningDaemon
    workdir: Path

    def both(self) -> tuple[tuple[str, RunningDaemon], ...]:
        return (("dockyard", self.dockyard), ("dockerd", self.dockerd))


@dataclass(frozen=True, kw_only=True)
class Result:
    name: str
    unit: str
    dockyard: float
    dockerd: float
    lower_is_better: bool = True

    @property
    def ratio(self) -> float:
        """dockyard / dockerd."""
        return self.dockyard / self.dockerd if self.dockerd else float("inf")

    def line(self) -> str:
        better = "lower is better" if self.lower_is_better else "higher is better"
        return (f"{self.name:<40} dockyard {self.dockyard:10.3f} {self.unit:<5} "
                f"dockerd {self.dockerd:10.3f} {self.unit:<5} ratio {self.ratio:6.2f}  ({better})")


@contextmanager
def daemons() -> Iterator[Pair]:
    root = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    ours = theirs = None
    try:
        ours = start_dockyard(root / "dockyard")
        theirs = start_dockerd(root / "dockerd")
        yield Pair(dockyard=ours, dockerd=theirs, workdir=root)
    finally:
        for name, daemon in (("dockyard", ours), ("dockerd", theirs)):
            if daemon is not None:
                discard(daemon, root / name)
        shutil.rmtree(root, ignore_errors=True)


def docker(daemon: RunningDaemon, *args: str, input_path: Path | None = None) -> bytes:
    stdin = open(input_path, "rb") if input_path else subprocess.DEVNULL
    try:
        result = subprocess.run(["docker", *args], stdin=stdin, capture_output=True,
                                env=daemon.env(), timeout=900)
    finally:
        if input_path:
            stdin.close()
    if result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} against {daemon.name} failed: "
                           f"{result.stderr.decode(errors='replace')}")
    return result.stdout


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(repeats: int, fn: Callable[[], object], before: Callable[[], object] | None = None) -> float:
    """The fastest of ``repeats`` runs; ``before`` runs untimed before each."""
    times = []
    for _ in range(repeats):
        if before:
            before()
        times.append(timed(fn))
    return min(times)
