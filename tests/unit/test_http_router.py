"""Routing, version prefixes and Request helpers: pure, no sockets."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from dockyard.errors import InvalidParameter, PayloadTooLarge
from dockyard.http import Request, Response, Router
from dockyard.http.router import split_version, strip_version


async def handler_a(request: Request) -> Response:
    return Response(status=200)


async def handler_b(request: Request) -> Response:
    return Response(status=200)


def test_segment_and_path_parameters() -> None:
    router = Router()
    router.add("GET", "/images/json", handler_a)
    router.add("GET", "/images/{name:path}/json", handler_b)
    router.add("GET", "/containers/{id}/json", handler_a)
    router.add("DELETE", "/images/{name:path}", handler_a)

    match = router.match("GET", "/images/docker.io/library/busybox:latest/json")
    assert match is not None and match.handler is handler_b
    assert dict(match.path_params) == {"name": "docker.io/library/busybox:latest"}

    match = router.match("GET", "/images/json")
    assert match is not None and match.handler is handler_a and dict(match.path_params) == {}

    # an image whose own name ends in /json still gets the inspect suffix right
    match = router.match("GET", "/images/foo/json/json")
    assert match is not None and dict(match.path_params) == {"name": "foo/json"}

    match = router.match("DELETE", "/images/localhost:5000/a/b:1")
    assert match is not None and dict(match.path_params) == {"name": "localhost:5000/a/b:1"}

    assert router.match("GET", "/containers/a/b/json") is None  # {id} is one segment
    assert router.match("GET", "/containers//json") is None
    assert router.match("POST", "/images/json") is None  # wrong method: no match (404)


def test_first_route_wins_and_head_falls_back_to_get() -> None:
    router = Router()
    router.add("GET", "/containers/json", handler_a)
    router.add("GET", "/containers/{id}", handler_b)
    assert router.match("GET", "/containers/json").handler is handler_a  # type: ignore[union-attr]
    assert router.match("HEAD", "/containers/json").handler is handler_a  # type: ignore[union-attr]
    router.add("HEAD", "/_ping", handler_b)
    router.add("GET", "/_ping", handler_a)
    assert router.match("HEAD", "/_ping").handler is handler_b  # type: ignore[union-attr]


def test_route_pattern_is_literal_outside_parameters() -> None:
    router = Router()
    router.add("GET", "/a.b/{x}", handler_a)
    assert router.match("GET", "/a.b/1") is not None
    assert router.match("GET", "/aXb/1") is None
    with pytest.raises(ValueError):
        router.add("GET", "no-slash", handler_a)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/_ping", ((1, 50), "/_ping")),
        ("/v1.24/info", ((1, 24), "/info")),
        ("/v1.50/info", ((1, 50), "/info")),
        ("/v1.50.0/info", ((1, 50), "/info")),
        ("/v1.41", ((1, 41), "/")),
        ("/version", ((1, 50), "/version")),
    ],
)
def test_split_version(path: str, expected: tuple[tuple[int, int], str]) -> None:
    assert split_version(path) == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "/v1.23/info",
            "client version 1.23 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version",
        ),
        (
            "/v1/info",
            "client version 1 is too old. Minimum supported API version is 1.24, "
            "please upgrade your client to a newer version",
        ),
        ("/v1.51/info", "client version 1.51 is too new. Maximum supported API version is 1.50"),
        ("/v2.0/info", "client version 2.0 is too new. Maximum supported API version is 1.50"),
    ],
)
def test_unsupported_versions(path: str, message: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        split_version(path)
    assert info.value.message == message
    assert strip_version(path) == "/info"


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self, max_bytes: int = 65536) -> bytes:
        chunk, self._data = self._data[:max_bytes], self._data[max_bytes:]
        return chunk


def make_request(query: dict[str, tuple[str, ...]] | None = None, body: bytes = b"") -> Request:
    return Request(
        method="POST",
        path="/x",
        api_version=(1, 50),
        query=MappingProxyType(query or {}),
        headers=MappingProxyType({}),
        body=_Body(body),
    )


def test_query_helpers_follow_dockerd() -> None:
    request = make_request(
        {
            "all": ("1",),
            "empty": ("",),
            "no": (" No ",),
            "none": ("none",),
            "false": ("False",),
            "zero": ("0",),
            "yes": ("yes",),
            "tail": ("100",),
            "bad": ("ten",),
            "blank": ("",),
            "multi": ("a", "b"),
        }
    )
    assert request.query_bool("all") is True
    assert request.query_bool("yes") is True
    for name in ("empty", "no", "none", "false", "zero"):
        assert request.query_bool(name, default=True) is False
    assert request.query_bool("absent") is False
    assert request.query_bool("absent", default=True) is True
    assert request.query_int("tail", 7) == 100
    assert request.query_int("blank", 7) == 7
    assert request.query_int("absent", -1) == -1
    with pytest.raises(InvalidParameter):
        request.query_int("bad", 0)
    assert request.query_str("multi") == "a"
    assert request.query_str("absent") is None
    assert request.query_str("absent", "d") == "d"


async def test_body_helpers() -> None:
    assert await make_request(body=b'{"a": [1]}').json() == {"a": [1]}
    assert await make_request(body=b"").json() is None
    assert await make_request(body=b" \n").json() is None
    assert await make_request(body=b"abc").read_all(3) == b"abc"
    with pytest.raises(PayloadTooLarge):
        await make_request(body=b"abcd").read_all(3)
    with pytest.raises(PayloadTooLarge):
        await make_request(body=b"[1, 2, 3]").json(limit=4)
    with pytest.raises(InvalidParameter) as info:
        await make_request(body=b"xyz").json()
    assert info.value.message == "invalid character 'x' looking for beginning of value"
    with pytest.raises(InvalidParameter) as info:
        await make_request(body=b'{"a": 1').json()
    assert info.value.message.startswith("invalid JSON: ")
    with pytest.raises(InvalidParameter):
        await make_request(body=b'"\xff"').json()
    with pytest.raises(RuntimeError):
        await make_request().upgrade("application/vnd.docker.raw-stream")
