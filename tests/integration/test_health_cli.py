"""Healthchecks run by the daemon (issue 9): State.Health, ps status, health_status events."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from dockyard.testing.probes import wait_until

FAST = ("--health-interval", "200ms", "--health-timeout", "2s", "--health-retries", "2")


@pytest.fixture(scope="module")
def image(busybox_image: str) -> str:
    return busybox_image


def health(docker, cid: str) -> dict[str, Any] | None:
    return json.loads(docker.out("inspect", "--format", "{{json .State.Health}}", cid))


def test_healthy_then_unhealthy_with_log_and_events(docker, image):
    cid = docker.out("run", "-d", *FAST, "--health-cmd", "cat /tmp/ok && echo fine", image,
                     "sh", "-c", "touch /tmp/ok; sleep 1000").strip()
    try:
        state = wait_until(lambda: (h := health(docker, cid)) and h["Status"] == "healthy" and h)
        assert state["FailingStreak"] == 0
        last = state["Log"][-1]
        assert (last["ExitCode"], last["Output"]) == (0, "fine\n")
        assert last["Start"] <= last["End"]
        assert "(healthy)" in docker.out("ps", "--filter", f"id={cid}", "--format", "{{.Status}}")

        docker.run("exec", cid, "rm", "/tmp/ok")
        state = wait_until(lambda: (h := health(docker, cid)) and h["Status"] == "unhealthy" and h)
        assert state["FailingStreak"] >= 2
        assert state["Log"][-1]["ExitCode"] == 1
        assert "No such file" in state["Log"][-1]["Output"]
        # Only the last five results are kept.
        wait_until(lambda: len(health(docker, cid)["Log"]) == 5)
        assert "(unhealthy)" in docker.out("ps", "--filter", f"id={cid}", "--format", "{{.Status}}")

        events = docker.out("events", "--since", "0", "--until", str(int(time.time()) + 1), "--filter",
                            f"container={cid}", "--format", "{{.Action}}").split("\n")
        assert "health_status: healthy" in events and "health_status: unhealthy" in events
        assert events.index("health_status: healthy") < events.index("health_status: unhealthy")
    finally:
        docker.run("rm", "-f", cid)


def test_starting_during_start_period_and_cmd_form(docker, image):
    # A failing probe inside the start period does not count: the status stays "starting".
    cid = docker.out("run", "-d", "--health-interval", "200ms", "--health-start-period", "1h",
                     "--health-start-interval", "200ms", "--health-retries", "1",
                     "--health-cmd", "exit 3", image, "sleep", "1000").strip()
    try:
        state = wait_until(lambda: (h := health(docker, cid)) and len(h["Log"]) >= 2 and h)
        assert (state["Status"], state["FailingStreak"]) == ("starting", 0)
        assert state["Log"][0]["ExitCode"] == 3
        assert "(health: starting)" in docker.out("ps", "--filter", f"id={cid}", "--format", "{{.Status}}")
    finally:
        docker.run("rm", "-f", cid)


def test_timeout_and_api_healthcheck_config(docker, image):
    cid = docker.out("create", "--health-cmd", "sleep 10", "--health-interval", "200ms",
                     "--health-timeout", "300ms", "--health-retries", "1", image, "sleep", "1000").strip()
    try:
        docker.run("start", cid)
        state = wait_until(lambda: (h := health(docker, cid)) and h["Status"] == "unhealthy" and h)
        assert state["Log"][0]["ExitCode"] == -1
        assert state["Log"][0]["Output"] == "Health check exceeded timeout (300ms)"
        config = json.loads(docker.out("inspect", "--format", "{{json .Config.Healthcheck}}", cid))
        assert config["Interval"] == 200_000_000 and config["Retries"] == 1
    finally:
        docker.run("rm", "-f", cid)


def test_no_health_without_a_check_and_none_disables(docker, image):
    cid = docker.out("run", "-d", "--no-healthcheck", image, "sleep", "1000").strip()
    try:
        assert health(docker, cid) is None
    finally:
        docker.run("rm", "-f", cid)


def test_bad_interval_is_refused(docker, image):
    result = docker.run("create", "--health-cmd", "true", "--health-interval", "100us", image, check=False)
    assert result.returncode != 0
    assert b"Interval in Healthcheck cannot be less than 1ms" in result.stderr
