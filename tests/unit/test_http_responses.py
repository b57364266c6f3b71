"""Response values, JSON encoding and the error mapping: pure."""

from __future__ import annotations

import pytest

from dockyard import __version__, errors
from dockyard.http import STANDARD_HEADERS, JsonResponse, Response
from dockyard.http.hijack import upgrade_head
from dockyard.http.responses import encode_json, error_response, internal_error_response


def test_standard_headers() -> None:
    assert STANDARD_HEADERS == (
        ("Api-Version", "1.50"),
        ("Docker-Experimental", "false"),
        ("Ostype", "linux"),
        ("Server", f"Docker/{__version__} (linux)"),
    )


def test_json_encoding_matches_go_encoder() -> None:
    assert encode_json({"a": [1, None, True], "b": "é<>&"}) == '{"a":[1,null,true],"b":"é<>&"}\n'.encode()
    assert encode_json("\u2028") == b'"\\u2028"\n'
    with pytest.raises(ValueError):
        encode_json(float("nan"))


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidParameter, 400),
        (errors.Unauthorized, 401),
        (errors.Forbidden, 403),
        (errors.NotFound, 404),
        (errors.Conflict, 409),
        (errors.PayloadTooLarge, 413),
        (errors.Unavailable, 503),
        (errors.SystemError, 500),
        (errors.DockyardError, 500),
    ],
)
def test_error_response(error: type[errors.DockyardError], status: int) -> None:
    assert error_response(error("No such container: x")) == JsonResponse(
        status=status, body={"message": "No such container: x"}
    )


def test_not_modified_has_no_body() -> None:
    assert error_response(errors.NotModified("already started")) == Response(status=304)


def test_internal_error_is_one_line() -> None:
    assert internal_error_response(RuntimeError("boom\n  at line 3")) == JsonResponse(
        status=500, body={"message": "internal server error: boom"}
    )
    assert internal_error_response(AssertionError()).body == {"message": "internal server error: AssertionError"}


def test_upgrade_heads() -> None:
    std = f"Api-Version: 1.50\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/{__version__} (linux)\r\n"
    assert upgrade_head(content_type="application/vnd.docker.raw-stream", upgrade=True) == (
        "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
        "Connection: Upgrade\r\nUpgrade: tcp\r\n" + std + "\r\n"
    ).encode()
    assert upgrade_head(content_type="application/vnd.docker.multiplexed-stream", upgrade=False) == (
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n" + std + "\r\n"
    ).encode()
