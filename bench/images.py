"""`docker load` of a multi-layer image and repeated `docker version`."""

from __future__ import annotations

import os

from bench.harness import Pair, Result, best_of, docker, timed
from dockyard.testing.fixtures import build_docker_archive

TAG = "dockyard-bench/load:latest"


def bench_load(pair: Pair, *, total_bytes: int, layers: int, repeats: int) -> Result:
    archive = pair.workdir / "load.tar"
    per_layer = max(total_bytes // layers, 1)
    build_docker_archive(
        archive,
        tags=[TAG],
        extra_layers=[{f"data/blob{i}": os.urandom(per_layer)} for i in range(layers)],
    )
    times = {}
    for name, daemon in pair.both():
        def remove(daemon=daemon) -> None:
            if docker(daemon, "images", "-q", TAG).strip():
                docker(daemon, "image", "rm", "-f", TAG)

        times[name] = best_of(repeats, lambda daemon=daemon: docker(daemon, "load", "-i", str(archive)),
                              before=remove)
    size_mb = archive.stat().st_size / 1e6
    return Result(name=f"docker load ({size_mb:.0f} MB, {layers + 1} layers)", unit="s",
                  dockyard=times["dockyard"], dockerd=times["dockerd"])


def bench_version(pair: Pair, *, count: int) -> Result:
    times = {}
    for name, daemon in pair.both():
        times[name] = timed(lambda daemon=daemon: [docker(daemon, "version") for _ in range(count)])
    return Result(name=f"{count}x docker version", unit="s",
                  dockyard=times["dockyard"], dockerd=times["dockerd"])
