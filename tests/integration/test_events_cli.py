"""`docker events` and docker-py's ``events()`` against dockyard (issue 7, "Events").

Deterministic by construction: every query is bounded with ``--since``/``--until``
taken around the actions, so the answer is the recorded history, not a race
with a live stream; the one live test starts from ``since`` so that events
published before its subscription are replayed, not missed.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator

import docker as dockerpy
import pytest

from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/events:latest"


def stamp() -> str:
    now = time.time_ns()
    return f"{now // 1_000_000_000}.{now % 1_000_000_000:09d}"


@pytest.fixture(scope="module")
def image(docker, tmp_path_factory) -> Iterator[str]:
    path = tmp_path_factory.mktemp("events-image") / "busybox.tar"
    build_docker_archive(path, tags=[IMG])
    docker.run("load", "-i", str(path))
    yield IMG
    leftover = docker.out("ps", "-aq", "--no-trunc", "--filter", "label=events-test").split()
    if leftover:
        docker.run("rm", "-f", *leftover)


@pytest.fixture(scope="module")
def client(dockyard) -> Iterator[dockerpy.DockerClient]:
    py = dockerpy.DockerClient(base_url=dockyard.host, version="1.50")
    yield py
    py.close()


def events(docker, since: str, until: str, *filters: str) -> list[dict]:
    args = ["events", "--since", since, "--until", until, "--format", "{{json .}}"]
    for f in filters:
        args += ["--filter", f]
    return [json.loads(line) for line in docker.out(*args, timeout=30).splitlines() if line]


def test_run_rm_lists_create_attach_start_die_destroy_in_order(docker, image):
    name = "ev-" + secrets.token_hex(4)
    since = stamp()
    docker.run("run", "--rm", "--name", name, "--label", "events-test=yes", "--label", "com.example.k=v",
               image, "sh", "-c", "exit 3", check=False)
    until = stamp()
    got = events(docker, since, until, f"container={name}")
    assert [e["Action"] for e in got] == ["create", "attach", "start", "die", "destroy"]
    container_id = got[0]["Actor"]["ID"]
    assert len(container_id) == 64
    for event in got:
        assert event["Type"] == "container"
        assert event["scope"] == "local"
        assert event["status"] == event["Action"]  # legacy fields, read by compose v1
        assert event["id"] == container_id
        assert event["from"] == image
        assert event["Actor"]["ID"] == container_id
        attributes = event["Actor"]["Attributes"]
        assert attributes["name"] == name
        assert attributes["image"] == image
        assert attributes["events-test"] == "yes"
        assert attributes["com.example.k"] == "v"
        assert event["time"] == event["timeNano"] // 1_000_000_000
    die = got[3]["Actor"]["Attributes"]
    assert die["exitCode"] == "3"
    assert "execDuration" in die
    times = [e["timeNano"] for e in got]
    assert times == sorted(times)


def test_filters_by_event_label_and_type(docker, image):
    name = "ev-" + secrets.token_hex(4)
    since = stamp()
    docker.run("run", "--rm", "--name", name, "--label", f"events-test={name}", image, "true")
    until = stamp()
    starts = events(docker, since, until, "event=start", f"label=events-test={name}")
    assert [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in starts] == [("start", name)]
    assert events(docker, since, until, "type=image", f"container={name}") == []
    by_image = events(docker, since, until, f"image={IMG.split(':')[0]}", f"container={name}")
    assert [e["Action"] for e in by_image] == ["create", "attach", "start", "die", "destroy"]


def test_stop_and_kill_events_carry_signals(docker, image):
    name = "ev-" + secrets.token_hex(4)
    since = stamp()
    # pid 1 ignores signals it has no handler for: trap USR1, leave TERM unhandled.
    script = 'trap "exit 7" USR1; while true; do sleep 0.1; done'
    docker.run("run", "-d", "--name", name, "--label", "events-test=yes", image, "sh", "-c", script)
    docker.run("kill", "-s", "USR1", name)
    assert docker.out("wait", name, timeout=30).strip() == "7"
    docker.run("start", name)
    docker.run("stop", "-t", "1", name)  # TERM is ignored: SIGKILL after 1 s
    docker.run("rm", name)
    until = stamp()
    got = [(e["Action"], e["Actor"]["Attributes"].get("signal"), e["Actor"]["Attributes"].get("exitCode"))
           for e in events(docker, since, until, f"container={name}")]
    assert got == [
        ("create", None, None), ("start", None, None),
        ("kill", "10", None), ("die", None, "7"),
        ("start", None, None), ("kill", "15", None), ("kill", "9", None), ("die", None, "137"),
        ("stop", None, None), ("destroy", None, None),
    ]


def test_image_events_tag_untag_delete_save_load(docker, image, tmp_path):
    extra = f"dockyard-test/events-tag:{secrets.token_hex(3)}"
    since = stamp()
    docker.run("tag", image, extra)
    docker.run("save", "-o", str(tmp_path / "saved.tar"), extra)
    docker.run("rmi", extra)
    docker.run("load", "-i", str(tmp_path / "saved.tar"))
    docker.run("rmi", extra)
    until = stamp()
    image_id = docker.out("image", "inspect", "--format", "{{.Id}}", image).strip()
    got = events(docker, since, until, "type=image")
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in got] == [
        ("tag", image_id, extra),
        ("save", image_id, image_id),
        ("untag", image_id, image_id),
        ("load", image_id, extra),
        ("untag", image_id, image_id),
    ]
    assert all(e["status"] == e["Action"] and e["id"] == image_id and "from" not in e for e in got)


def test_import_publishes_import(docker, tmp_path):
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    since = stamp()
    image_id = docker.out("import", "-", input=buffer.getvalue()).strip()
    until = stamp()
    got = events(docker, since, until, "type=image", "event=import")
    assert [(e["Actor"]["ID"], e["Actor"]["Attributes"]["name"]) for e in got] == [(image_id, image_id)]
    docker.run("rmi", image_id)


def test_bad_filter_and_bad_time_are_400(client):
    with pytest.raises(dockerpy.errors.APIError) as bad:
        client.api._result(client.api._get(client.api._url("/events"), params={
            "filters": json.dumps({"nosuch": {"x": True}}), "until": "1"}), json=True)
    assert bad.value.status_code == 400
    assert "invalid filter 'nosuch'" in bad.value.explanation
    with pytest.raises(dockerpy.errors.APIError) as bad_time:
        client.api._result(client.api._get(client.api._url("/events"), params={"until": "abc"}), json=True)
    assert bad_time.value.status_code == 400


def test_dockerpy_live_stream_sees_the_whole_run(client, image):
    name = "ev-" + secrets.token_hex(4)
    since = int(time.time()) - 1
    stream = client.events(decode=True, since=since, filters={"container": name})
    seen: list[dict] = []
    done = threading.Event()

    def read() -> None:
        for event in stream:
            seen.append(event)
            if event["Action"] == "destroy":
                break
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        client.containers.run(image, ["sh", "-c", "exit 0"], name=name, labels={"events-test": "yes"},
                              remove=True)
        assert done.wait(30), seen
    finally:
        stream.close()
    # docker-py's run() does not attach: it waits, then reads the logs.
    assert [e["Action"] for e in seen] == ["create", "start", "die", "destroy"]
    assert seen[0]["Actor"]["Attributes"]["events-test"] == "yes"
