"""Benchmarks: the same work against dockyard and a real dockerd, as ratios."""
