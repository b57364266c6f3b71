"""httpio.translate: socket failures worded as Go's net package words them (dockerd's messages)."""

from __future__ import annotations

import errno
import socket

import httpx
import pytest

from dockyard.registry.errors import Unreachable
from dockyard.registry.httpio import translate


def _raise_connect_error(cause: OSError) -> None:
    try:
        raise cause
    except OSError as exc:
        raise httpx.ConnectError("boom") from exc


def test_refused_connection() -> None:
    with pytest.raises(Unreachable) as info, translate("GET", "http://127.0.0.1:5000/v2/"):
        _raise_connect_error(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"))
    assert info.value.message == 'Get "http://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'


def test_name_that_does_not_resolve() -> None:
    url = "https://registry-1.docker.io/v2/library/alpine/manifests/3.20"
    with pytest.raises(Unreachable) as info, translate("GET", url):
        _raise_connect_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"))
    assert info.value.message == f'Get "{url}": dial tcp: lookup registry-1.docker.io: no such host'


def test_other_lookup_failures_keep_their_reason() -> None:
    with pytest.raises(Unreachable) as info, translate("HEAD", "https://example.invalid:443/v2/"):
        _raise_connect_error(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"))
    assert info.value.message == (
        'Head "https://example.invalid:443/v2/": dial tcp: lookup example.invalid: '
        "temporary failure in name resolution"
    )
