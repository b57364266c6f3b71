"""`docker build` (classic builder) cold and warm, against both daemons.

A 6-step Dockerfile: FROM the busybox fixture, two RUN steps writing
``megabytes`` MB between them, a COPY of a ``files``-file tree, a RUN over
the tree, CMD. Cold is ``--no-cache`` (every step runs, every layer is
made); warm is the same build again, all cache hits.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.harness import Pair, Result, best_of, docker

IMAGE = "dockyard-bench/busybox:latest"  # loaded by bench.containers.load_image


def _context(root: Path, *, megabytes: int, files: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    half = max(megabytes // 2, 1)
    (root / "Dockerfile").write_text(
        f"FROM {IMAGE}\n"
        f"RUN dd if=/dev/urandom of=/big1 bs=1048576 count={half} 2>/dev/null\n"
        f"RUN dd if=/dev/urandom of=/big2 bs=1048576 count={half} 2>/dev/null\n"
        "COPY tree/ /tree/\n"
        "RUN find /tree -type f | wc -l > /count\n"
        'CMD ["cat", "/count"]\n'
    )
    for i in range(files):
        path = root / "tree" / f"d{i % 40:02d}" / f"f{i:05d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(256))
    return root


def bench_build(pair: Pair, *, megabytes: int, files: int, repeats: int) -> list[Result]:
    context = _context(pair.workdir / "build-context", megabytes=megabytes, files=files)
    # The CLI has no buildx here: the classic builder, without its deprecation notice.
    os.environ["DOCKER_BUILDKIT"] = "0"
    cold: dict[str, float] = {}
    warm: dict[str, float] = {}
    for name, daemon in pair.both():
        args = ("build", "-q", "-t", "dockyard-bench/built:1", str(context))
        cold[name] = best_of(repeats, lambda: docker(daemon, *args[:2], "--no-cache", *args[2:]))  # noqa: B023
        warm[name] = best_of(repeats, lambda: docker(daemon, *args))  # noqa: B023
        count = docker(daemon, "run", "--rm", "--network", "none", "dockyard-bench/built:1").strip()
        if count != str(files).encode():
            raise RuntimeError(f"{name}: the built image counts {count!r} files, not {files}")
    label = f"6 steps, {megabytes} MB RUN, {files}-file COPY"
    return [
        Result(name=f"docker build cold ({label})", unit="s", dockyard=cold["dockyard"], dockerd=cold["dockerd"]),
        Result(name="docker build warm (all cached)", unit="s", dockyard=warm["dockyard"], dockerd=warm["dockerd"]),
    ]
