"""testcontainers-python against dockyard (issue 9): random host ports, log waits, forced removal."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import pytest


HTTPD = "mkdir -p /www && echo hi > /www/index.html && echo {message} && exec httpd -f -p 8080 -h /www"


@pytest.fixture(scope="module")
def image(busybox_image: str) -> str:
    return busybox_image


@pytest.fixture
def tc_env(dockyard, monkeypatch) -> Iterator[None]:
    monkeypatch.setenv("DOCKER_HOST", dockyard.host)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    monkeypatch.delenv("TESTCONTAINERS_HOST_OVERRIDE", raising=False)
    yield


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_httpd_with_exposed_port_and_log_wait(docker, image, tc_env, stream):
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    message = f"ready-on-{stream}" + (" >&2" if stream == "stderr" else "")
    container = (DockerContainer(image)
                 .with_command(["sh", "-c", HTTPD.format(message=message)])
                 .with_exposed_ports(8080)
                 .waiting_for(LogMessageWaitStrategy(f"ready-on-{stream}").with_startup_timeout(60)))
    with container:
        cid = container.get_wrapped_container().id
        port = int(container.get_exposed_port(8080))
        assert port > 0
        host = container.get_container_host_ip()
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=10) as response:
            assert response.read() == b"hi\n"
        out, err = container.get_logs()
        assert (f"ready-on-{stream}\n".encode() in (out if stream == "stdout" else err))
        assert f"ready-on-{stream}".encode() not in (err if stream == "stdout" else out)
    # stop() removes the container with force and its anonymous volumes.
    assert docker.out("ps", "-aq", "--no-trunc", "--filter", f"id={cid}") == ""
    assert os.environ["TESTCONTAINERS_RYUK_DISABLED"] == "true"
