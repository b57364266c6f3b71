"""`docker run` latency and output throughput, against both daemons."""

from __future__ import annotations

import subprocess
import time

from bench.harness import Pair, Result, docker
from dockyard.testing.fixtures import build_docker_archive

IMAGE = "dockyard-bench/busybox:latest"
LINE = "dockyard benchmark line of text, fifty-five bytes long"


def load_image(pair: Pair) -> None:
    archive = pair.workdir / "busybox.tar"
    build_docker_archive(archive, tags=[IMAGE])
    for _, daemon in pair.both():
        docker(daemon, "load", "-i", str(archive))


def bench_run_latency(pair: Pair, *, count: int) -> Result:
    """Median wall time of `docker run --rm IMG true` (network none on both: dockerd runs
    with --bridge none here, and dockyard's default network is loopback-only until the
    networking issue)."""
    medians = {}
    for name, daemon in pair.both():
        docker(daemon, "run", "--rm", "--network", "none", IMAGE, "true")  # warm caches
        times = []
        for _ in range(count):
            start = time.perf_counter()
            docker(daemon, "run", "--rm", "--network", "none", IMAGE, "true")
            times.append(time.perf_counter() - start)
        times.sort()
        medians[name] = times[len(times) // 2]
    return Result(name=f"docker run --rm true (median of {count})", unit="s",
                  dockyard=medians["dockyard"], dockerd=medians["dockerd"])


def bench_output_throughput(pair: Pair, *, size: int) -> Result:
    """MB/s of `docker run IMG sh -c 'yes LINE | head -c SIZE' | wc -c` (log written)."""
    rates = {}
    for name, daemon in pair.both():
        command = (f"docker run --rm --network none {IMAGE} sh -c \"yes '{LINE}' | head -c {size}\""
                   " | wc -c")
        start = time.perf_counter()
        result = subprocess.run(["sh", "-c", command], capture_output=True, env=daemon.env(),
                                timeout=900)
        elapsed = time.perf_counter() - start
        counted = int(result.stdout.strip() or 0)
        if result.returncode != 0 or counted != size:
            raise RuntimeError(f"{name}: got {counted} of {size} bytes, "
                               f"exit {result.returncode}: {result.stderr[-500:]!r}")
        rates[name] = size / elapsed / 1e6
    return Result(name=f"docker run output ({size >> 20} MiB of lines)", unit="MB/s",
                  dockyard=rates["dockyard"], dockerd=rates["dockerd"], lower_is_better=False)
