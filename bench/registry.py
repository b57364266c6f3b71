"""`docker push` and `docker pull` of a multi-layer image to and from a local docker-registry.

Both daemons get the same gzip docker-archive, push it to their own repository
of one registry on 127.0.0.1 (insecure by default for both: loopback), remove
the image entirely, and pull it back.
"""

from __future__ import annotations

import os

from bench.harness import Pair, Result, docker, timed
from dockyard.testing.fixtures import build_docker_archive
from dockyard.testing.registry import start_registry, stop_registry
from dockyard.wire.archive import Compression


def bench_push_pull(pair: Pair, *, total_bytes: int, layers: int) -> list[Result]:
    registry = start_registry(pair.workdir / "registry")
    try:
        archive = pair.workdir / "push.tar"
        per_layer = max(total_bytes // layers, 1)
        image = build_docker_archive(
            archive, tags=["dockyard-bench/push:latest"], compression=Compression.GZIP,
            extra_layers=[{f"data/blob{i}": os.urandom(per_layer)} for i in range(layers - 1)],
        )  # fmt: skip
        push: dict[str, float] = {}
        pull: dict[str, float] = {}
        for name, daemon in pair.both():
            target = f"{registry.host}/{name}/bench:1"
            docker(daemon, "load", "-i", str(archive))
            docker(daemon, "tag", "dockyard-bench/push:latest", target)
            push[name] = timed(lambda daemon=daemon, target=target: docker(daemon, "push", target))
            docker(daemon, "image", "rm", "-f", image.id)
            pull[name] = timed(lambda daemon=daemon, target=target: docker(daemon, "pull", target))
            docker(daemon, "image", "rm", "-f", image.id)
        size_mb = archive.stat().st_size / 1e6
        label = f"({size_mb:.0f} MB, {layers} layers, local registry)"
        return [
            Result(name=f"docker push {label}", unit="s", dockyard=push["dockyard"], dockerd=push["dockerd"]),
            Result(name=f"docker pull {label}", unit="s", dockyard=pull["dockyard"], dockerd=pull["dockerd"]),
        ]
    finally:
        stop_registry(registry)
