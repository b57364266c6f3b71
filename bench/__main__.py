"""`make bench`: every benchmark against dockyard and dockerd in one run.

`python -m bench --tiny` runs each once at a tiny size (the smoke test
`make test` runs); the figures it prints mean nothing.
"""

from __future__ import annotations

import argparse
import sys

from bench import build, containers, images, memory, network, registry
from bench.harness import daemons


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes")
    args = parser.parse_args(argv)
    tiny = args.tiny
    with daemons() as pair:
        containers.load_image(pair)
        steps = [
            lambda: memory.bench_memory(pair, count=2 if tiny else 50),
            lambda: [images.bench_load(pair, total_bytes=(1 << 20) if tiny else (200 << 20),
                                       layers=2 if tiny else 8, repeats=1 if tiny else 3)],
            lambda: [images.bench_version(pair, count=2 if tiny else 200)],
            lambda: [containers.bench_run_latency(pair, count=2 if tiny else 30)],
            lambda: [containers.bench_output_throughput(pair, size=(1 << 20) if tiny else (1 << 30))],
            lambda: network.bench_network(pair, count=2 if tiny else 30, size=(1 << 20) if tiny else (1 << 30),
                                          repeats=1 if tiny else 3),
            lambda: build.bench_build(pair, megabytes=2 if tiny else 50, files=20 if tiny else 2000,
                                      repeats=1 if tiny else 3),
            lambda: registry.bench_push_pull(pair, total_bytes=(1 << 20) if tiny else (300 << 20),
                                             layers=5, repeats=1 if tiny else 7),
        ]
        # Each result is printed as soon as it is measured: a long run shows progress.
        for step in steps:
            for result in step():
                print(result.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
