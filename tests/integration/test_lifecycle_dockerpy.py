"""docker-py over the whole lifecycle, as issue 7's "Must show" lists it:
``containers.run(..., detach=True)`` then ``.pause()``, ``.top()``,
``.stats(stream=False)``, ``.kill()``, ``.stop()``, all seen live by
``client.events(decode=True)``.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator

import docker as dockerpy
import pytest

from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/lifecycle-py:latest"
#: pid 1 ignores TERM (no handler), so only the stop's SIGKILL ends it; USR1 is trapped (exit 7).
TRAP_USR1 = 'trap "exit 7" USR1; while true; do sleep 0.1; done'


@pytest.fixture(scope="module")
def client(dockyard, docker, tmp_path_factory) -> Iterator[dockerpy.DockerClient]:
    path = tmp_path_factory.mktemp("lifecycle-py") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    yield py
    py.close()


def _is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    rest = iter(seen)
    return all(action in rest for action in wanted)


def test_run_pause_top_stats_kill_stop_with_live_events(client):
    name = "lcpy-" + secrets.token_hex(4)
    stream = client.events(decode=True, since=int(time.time()) - 1, filters={"container": name})
    seen: list[dict] = []
    stopped = threading.Event()

    def read() -> None:
        for event in stream:
            seen.append(event)
            if event["Action"] == "stop":
                stopped.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    container = client.containers.run(IMG, ["sh", "-c", TRAP_USR1], name=name, detach=True,
                                      labels={"lifecycle-py": name})
    try:
        container.pause()
        container.reload()
        assert container.status == "paused"
        container.unpause()
        container.reload()
        assert container.status == "running"

        top = container.top()
        assert "PID" in top["Titles"]
        assert any("sh -c" in process[-1] for process in top["Processes"]), top

        stats = container.stats(stream=False)
        memory = stats["memory_stats"]
        assert memory["usage"] > 0 and memory["limit"] > 0
        assert stats["pids_stats"]["current"] >= 1

        container.kill(signal="USR1")  # reaches the trap
        assert container.wait(timeout=30)["StatusCode"] == 7
        container.start()
        container.kill()
        assert container.wait(timeout=30)["StatusCode"] == 137

        container.start()
        container.stop(timeout=2)  # TERM is ignored: SIGKILL after 2 s
        container.reload()
        assert (container.status, container.attrs["State"]["ExitCode"]) == ("exited", 137)

        assert stopped.wait(30), [e["Action"] for e in seen]
    finally:
        stream.close()
        container.remove(force=True)
    actions = [e["Action"] for e in seen]
    assert _is_subsequence(["create", "start", "pause", "unpause", "kill", "die", "start", "kill", "die",
                            "start", "kill", "kill", "die", "stop"], actions), actions
    kills = [e["Actor"]["Attributes"]["signal"] for e in seen if e["Action"] == "kill"]
    assert kills == ["10", "9", "15", "9"], kills
    assert all(e["Actor"]["Attributes"]["lifecycle-py"] == name for e in seen)
    assert all(e["Actor"]["Attributes"]["name"] == name for e in seen)
