"""Listener address parsing (pure) and unix socket creation."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from dockyard.errors import InvalidParameter
from dockyard.http import TcpListenerSpec, UnixListenerSpec, bind_listener, parse_listener


@pytest.mark.parametrize(
    ("address", "spec"),
    [
        ("unix:///run/dockyard/api.sock", UnixListenerSpec(path="/run/dockyard/api.sock")),
        ("unix://", UnixListenerSpec(path="/var/run/docker.sock")),
        ("tcp://127.0.0.1:2375", TcpListenerSpec(host="127.0.0.1", port=2375)),
        ("tcp://localhost:1234", TcpListenerSpec(host="localhost", port=1234)),
        ("tcp://[::1]:2375", TcpListenerSpec(host="::1", port=2375)),
        ("tcp://:4000", TcpListenerSpec(host="127.0.0.1", port=4000)),
        ("tcp://127.0.0.2", TcpListenerSpec(host="127.0.0.2", port=2375)),
    ],
)
def test_parse(address: str, spec: object) -> None:
    assert parse_listener(address) == spec


def test_str_round_trips() -> None:
    for address in ("unix:///a/b.sock", "tcp://127.0.0.1:2375", "tcp://[::1]:80"):
        assert str(parse_listener(address)) == address


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("fd://", "not supported"),
        ("npipe:////./pipe/docker_engine", "unsupported protocol"),
        ("/var/run/docker.sock", "expected unix:///path"),
        ("unix://relative.sock", "must be absolute"),
        ("tcp://0.0.0.0:2375", "TLS is not implemented"),
        ("tcp://10.1.2.3:2375", "TLS is not implemented"),
        ("tcp://example.com:2375", "TLS is not implemented"),
        ("tcp://127.0.0.1:99999", "invalid listener address"),
    ],
)
def test_refused(address: str, fragment: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_listener(address)
    assert fragment in info.value.message


def test_non_loopback_is_allowed_with_tls() -> None:
    assert parse_listener("tcp://0.0.0.0:2376", tls=True) == TcpListenerSpec(host="0.0.0.0", port=2376)


def test_unix_listener_replaces_stale_socket_and_refuses_live_or_regular(tmp_path: Path) -> None:
    path = tmp_path / "new" / "dir" / "api.sock"
    listener = bind_listener(UnixListenerSpec(path=str(path)))
    try:
        assert os.stat(path).st_mode & 0o777 == 0o660
        with pytest.raises(InvalidParameter, match="another daemon"):
            bind_listener(UnixListenerSpec(path=str(path)))
    finally:
        listener.close()
    assert not path.exists()

    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    listener = bind_listener(UnixListenerSpec(path=str(path)))
    client = socket.socket(socket.AF_UNIX)
    client.connect(str(path))  # the new listener owns the path now
    client.close()
    listener.close()
    listener.close()  # idempotent

    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(InvalidParameter, match="not a socket"):
        bind_listener(UnixListenerSpec(path=str(regular)))
    assert regular.read_text() == "keep me"


def test_close_leaves_a_replaced_socket_file_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "api.sock")
    first = bind_listener(UnixListenerSpec(path=path))
    os.unlink(path)
    second = bind_listener(UnixListenerSpec(path=path))
    first.close()
    assert os.path.exists(path)
    second.close()
    assert not os.path.exists(path)
