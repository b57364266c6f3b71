"""engine/health.py's pure parts: config defaults, probe argv, moby's status rules."""

from __future__ import annotations

from dockyard.engine.health import (
    HEALTHY,
    STARTING,
    UNHEALTHY,
    Health,
    HealthResult,
    _go_duration,
    health_config,
    probe_command,
    status_suffix,
)


def result(code: int) -> HealthResult:
    return HealthResult(start="s", end="e", exit_code=code, output="")


def test_config_defaults_and_none():
    check = health_config({"Healthcheck": {"Test": ["CMD-SHELL", "true"]}})
    assert check is not None
    assert (check.interval_ns, check.timeout_ns, check.start_period_ns, check.start_interval_ns, check.retries) \
        == (30_000_000_000, 30_000_000_000, 0, 5_000_000_000, 3)
    assert health_config({"Healthcheck": {"Test": ["NONE"]}}) is None
    assert health_config({"Healthcheck": {"Test": []}}) is None
    assert health_config({}) is None


def test_probe_command():
    assert probe_command(["CMD", "wget", "-q", "x"], None) == ("wget", "-q", "x")
    assert probe_command(["CMD-SHELL", "a && b"], None) == ("/bin/sh", "-c", "a && b")
    assert probe_command(["CMD-SHELL", "a"], ["/bin/bash", "-c"]) == ("/bin/bash", "-c", "a")


def test_status_rules():
    health = Health()
    assert health.status == STARTING
    assert not health.record(result(1), retries=2, in_start_period=True)
    assert (health.status, health.failing_streak) == (STARTING, 0)
    assert not health.record(result(1), retries=2, in_start_period=False)
    assert health.record(result(1), retries=2, in_start_period=False)
    assert (health.status, health.failing_streak) == (UNHEALTHY, 2)
    assert health.record(result(0), retries=2, in_start_period=False)
    assert (health.status, health.failing_streak) == (HEALTHY, 0)
    for _ in range(6):
        health.record(result(0), retries=2, in_start_period=False)
    wire = health.to_wire()
    assert len(wire["Log"]) == 5
    assert wire["Log"][0] == {"Start": "s", "End": "e", "ExitCode": 0, "Output": ""}


def test_status_suffix_and_durations():
    assert status_suffix(STARTING) == " (health: starting)"
    assert status_suffix(HEALTHY) == " (healthy)"
    assert _go_duration(30_000_000_000) == "30s"
    assert _go_duration(300_000_000) == "300ms"
    assert _go_duration(90_000_000_000) == "1m30s"
