"""`docker push` and `docker pull` of a multi-layer image to and from a local docker-registry.

Both daemons get the same gzip docker-archive, push it to their own repository
of one registry on 127.0.0.1 (insecure by default for both: loopback), remove
the image entirely, and pull it back. A push is timed once (a second one would
find the blobs there); pulls are repeated in rounds, one pull of each daemon
per round in alternating order, so that a slow spell of this shared machine
hits both. The median of each is the result; the median of the rounds'
ratios is printed beside it.
"""

from __future__ import annotations

import os
import statistics

from bench.harness import Pair, Result, docker, timed
from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.registry import start_registry, stop_registry
from dockyard.wire.archive import Compression


def bench_push_pull(pair: Pair, *, total_bytes: int, layers: int, repeats: int) -> list[Result]:
    registry = start_registry(pair.workdir / "registry")
    try:
        archive = pair.workdir / "push.tar"
        per_layer = max(total_bytes // layers, 1)
        image = build_docker_archive(
            archive, tags=["dockyard-bench/push:latest"], compression=Compression.GZIP,
            extra_layers=[{f"data/blob{i}": os.urandom(per_layer)} for i in range(layers - 1)],
        )  # fmt: skip
        push: dict[str, float] = {}
        pulls: dict[str, list[float]] = {"dockyard": [], "dockerd": []}
        targets = {name: f"{registry.host}/{name}/bench:1" for name, _ in pair.both()}
        for name, daemon in pair.both():
            docker(daemon, "load", "-i", str(archive))
            docker(daemon, "tag", "dockyard-bench/push:latest", targets[name])
            push[name] = timed(lambda daemon=daemon, name=name: docker(daemon, "push", targets[name]))
            docker(daemon, "image", "rm", "-f", image.id)
        for round_ in range(repeats):
            # Who goes first alternates too: neither always follows the other's rmi.
            order = pair.both() if round_ % 2 == 0 else pair.both()[::-1]
            for name, daemon in order:
                pulls[name].append(timed(lambda daemon=daemon, name=name: docker(daemon, "pull", targets[name])))
                docker(daemon, "image", "rm", "-f", image.id)
        pull = {name: statistics.median(times) for name, times in pulls.items()}
        for name, times in pulls.items():  # the spread says how much to trust the median
            print(f"  docker pull runs, {name}: " + " ".join(f"{t:.2f}" for t in times) + " s", flush=True)
        # This machine's speed drifts within a run: each round's two pulls ran
        # back to back, so their ratio is the steadier figure.
        paired = [ours / theirs for ours, theirs in zip(pulls["dockyard"], pulls["dockerd"], strict=True)]
        print("  docker pull ratio per round: " + " ".join(f"{r:.2f}" for r in paired)
              + f"; median {statistics.median(paired):.2f}", flush=True)
        size_mb = archive.stat().st_size / 1e6
        label = f"({size_mb:.0f} MB, {layers} layers, local registry)"
        return [
            Result(name=f"docker push {label}", unit="s", dockyard=push["dockyard"], dockerd=push["dockerd"]),
            Result(name=f"docker pull {label}, median of {repeats}", unit="s", dockyard=pull["dockyard"], dockerd=pull["dockerd"]),
        ]
    finally:
        stop_registry(registry)
