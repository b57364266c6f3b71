"""Expected bytes are dockerd's (moby v28 streamformatter / jsonmessage)."""

import pytest

from dockyard.wire.jsonmessage import (
    MessageError,
    ProgressDetail,
    aux,
    encode,
    error,
    human_size,
    iter_messages,
    progress,
    progress_bar,
    status,
    stream,
)

SPACES50 = " " * 50


def test_status_with_id() -> None:
    assert (
        status("Pulling from library/alpine", id="latest")
        == b'{"status":"Pulling from library/alpine","id":"latest"}\r\n'
    )


def test_status_without_id() -> None:
    assert (
        status("Status: Downloaded newer image for alpine:latest")
        == b'{"status":"Status: Downloaded newer image for alpine:latest"}\r\n'
    )


def test_status_empty_is_empty_object() -> None:
    # FormatStatus("", "") is what dockerd writes after a last progress update.
    assert status("") == b"{}\r\n"


def test_status_with_explicit_progress_fields() -> None:
    out = status(
        "Downloading",
        id="abc",
        progress="[>  ]",
        progress_detail=ProgressDetail(current=1, total=2),
    )
    assert out == (
        b'{"status":"Downloading","progressDetail":{"current":1,"total":2},'
        b'"progress":"[\\u003e  ]","id":"abc"}\r\n'
    )


def test_progress_without_counts_has_empty_detail() -> None:
    assert (
        progress("Pulling fs layer", id="c6a83fedfae6")
        == b'{"status":"Pulling fs layer","progressDetail":{},"id":"c6a83fedfae6"}\r\n'
    )


def test_progress_downloading_matches_dockerd() -> None:
    out = progress(
        "Downloading", id="c6a83fedfae6", detail=ProgressDetail(current=48936, total=3623807)
    )
    assert out == (
        b'{"status":"Downloading","progressDetail":{"current":48936,"total":3623807},'
        b'"progress":"[\\u003e' + SPACES50.encode() + b']  48.94kB/3.624MB",'
        b'"id":"c6a83fedfae6"}\r\n'
    )


def test_progress_with_aux() -> None:
    out = progress("Pushing", id="x", aux={"Digest": "sha256:ab"})
    assert out == b'{"status":"Pushing","progressDetail":{},"id":"x","aux":{"Digest":"sha256:ab"}}\r\n'


def test_progress_detail_fields_and_omitempty() -> None:
    detail = ProgressDetail(current=3, total=10, start=5, hide_counts=True, units="layers")
    assert detail.to_json() == {
        "current": 3,
        "total": 10,
        "start": 5,
        "hidecounts": True,
        "units": "layers",
    }
    assert ProgressDetail().to_json() == {}


@pytest.mark.parametrize(
    ("current", "total", "expected"),
    [
        (0, 0, ""),
        (0, 3408729, "[>" + SPACES50 + "]       0B/3.409MB"),
        (48936, 3623807, "[>" + SPACES50 + "]  48.94kB/3.624MB"),
        (1703936, 3408729, "[" + "=" * 24 + ">" + " " * 26 + "]  1.704MB/3.409MB"),
        (3408729, 3408729, "[" + "=" * 50 + ">]  3.409MB/3.409MB"),
        # current past total: the bar is capped and the total dropped
        (5000000, 3408729, "[" + "=" * 50 + ">]      5MB"),
        (512, 0, "    512B"),
        (123456789, 0, " 123.5MB"),
        (999, 1000, "[" + "=" * 49 + ">" + " " + "]     999B/1kB"),
    ],
)
def test_progress_bar(current: int, total: int, expected: str) -> None:
    assert progress_bar(current, total) == expected


def test_progress_bar_units_and_hidden_counts() -> None:
    assert progress_bar(3, 10, units="layers") == "[" + "=" * 15 + ">" + " " * 35 + "] 3/10 layers"
    assert progress_bar(12, 10, units="layers") == "[" + "=" * 50 + ">] 12 layers"
    assert progress_bar(4, 0, units="layers") == "4 layers"
    assert progress_bar(5, 10, hide_counts=True) == "[" + "=" * 25 + ">" + " " * 25 + "] "


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (999, "999B"),
        (1000, "1kB"),
        (1024, "1.024kB"),
        (32768, "32.77kB"),
        (3408729, "3.409MB"),
        (7_000_000_000, "7GB"),
        (999_950, "1000kB"),
        (10**24, "1YB"),
        (10**28, "1e+04YB"),
    ],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(float(size)) == text


def test_stream() -> None:
    assert stream("Step 1/2 : FROM busybox\n") == b'{"stream":"Step 1/2 : FROM busybox\\n"}\r\n'
    assert stream(" ---> 6d5fcfe5ff17\n") == b'{"stream":" ---\\u003e 6d5fcfe5ff17\\n"}\r\n'
    assert stream("") == b"{}\r\n"


def test_stream_escapes_like_go() -> None:
    text = "\x1b[91mred\x1b[0m <a & b> \u2028\u2029 caf\u00e9 \"q\" \\ \t\x7f\x08\x0c"
    assert stream(text) == (
        b'{"stream":"\\u001b[91mred\\u001b[0m \\u003ca \\u0026 b\\u003e \\u2028\\u2029 '
        + "café".encode()
        + b' \\"q\\" \\\\ \\t\x7f\\b\\f"}\r\n'
    )


def test_lone_surrogate_becomes_replacement_char() -> None:
    raw = b"ok \xff".decode("utf-8", "surrogateescape")
    assert stream(raw) == b'{"stream":"ok \xef\xbf\xbd"}\r\n'


def test_aux() -> None:
    assert aux({"ID": "sha256:abc"}) == b'{"aux":{"ID":"sha256:abc"}}\r\n'
    assert (
        aux({"Tag": "1", "Digest": "sha256:d", "Size": 528}, id="1")
        == b'{"id":"1","aux":{"Tag":"1","Digest":"sha256:d","Size":528}}\r\n'
    )


def test_error() -> None:
    msg = "manifest for alpine:nope not found: manifest unknown: manifest unknown"
    assert error(msg) == (
        b'{"errorDetail":{"message":"' + msg.encode() + b'"},"error":"' + msg.encode() + b'"}\r\n'
    )


def test_error_with_code() -> None:
    assert error("boom", code=1) == b'{"errorDetail":{"code":1,"message":"boom"},"error":"boom"}\r\n'
    assert error("") == b'{"errorDetail":{}}\r\n'


def test_encode_keeps_key_order() -> None:
    assert encode({"b": 1, "a": [True, None]}) == b'{"b":1,"a":[true,null]}\r\n'


def test_iter_messages_round_trip() -> None:
    data = (
        status("Pulling from library/alpine", id="latest")
        + progress("Downloading", id="x", detail=ProgressDetail(current=1, total=2))
        + error("bad")
        + b'{"stream":"a"}\n{"stream":"b"}{"stream":"c"}'
    )
    messages = list(iter_messages(data))
    assert messages[0] == {"status": "Pulling from library/alpine", "id": "latest"}
    assert messages[1]["progressDetail"] == {"current": 1, "total": 2}
    assert messages[2] == {"errorDetail": {"message": "bad"}, "error": "bad"}
    assert [m["stream"] for m in messages[3:]] == ["a", "b", "c"]
    assert list(iter_messages(b"")) == []


def test_iter_messages_rejects_garbage() -> None:
    with pytest.raises(MessageError):
        list(iter_messages(b'{"status":"x"}\r\nnot json'))
    with pytest.raises(MessageError):
        list(iter_messages(b"[1,2]\r\n"))
