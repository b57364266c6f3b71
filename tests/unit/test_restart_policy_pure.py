from __future__ import annotations

from dockyard.engine.restart_policy import Backoff, Policy, policy_of, should_restart

S = 1_000_000_000


def test_backoff_doubles_from_100ms_caps_at_a_minute_and_resets_after_10s() -> None:
    b = Backoff()
    delays = []
    for _ in range(12):
        b = b.next(1 * S)
        delays.append(b.delay)
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0
    assert b.next(10 * S).delay == 0.1


def test_should_restart() -> None:
    always, unless = Policy(name="always"), Policy(name="unless-stopped")
    on_failure = Policy(name="on-failure", maximum_retry_count=2)
    assert should_restart(always, exit_code=0, restart_count=100, manually_stopped=False)
    assert not should_restart(always, exit_code=0, restart_count=0, manually_stopped=True)
    assert should_restart(unless, exit_code=0, restart_count=0, manually_stopped=False)
    assert should_restart(on_failure, exit_code=1, restart_count=1, manually_stopped=False)
    assert not should_restart(on_failure, exit_code=1, restart_count=2, manually_stopped=False)
    assert not should_restart(on_failure, exit_code=0, restart_count=0, manually_stopped=False)
    assert should_restart(Policy(name="on-failure"), exit_code=3, restart_count=999, manually_stopped=False)
    assert not should_restart(Policy(name="no"), exit_code=1, restart_count=0, manually_stopped=False)


def test_policy_of() -> None:
    assert policy_of({}) == Policy(name="no")
    assert policy_of({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}}) == Policy(
        name="on-failure", maximum_retry_count=3)
