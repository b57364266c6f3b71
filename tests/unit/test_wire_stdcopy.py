import pytest

from dockyard.wire.stdcopy import (
    STDERR,
    STDIN,
    STDOUT,
    SYSTEMERR,
    Demuxer,
    Frame,
    FramingError,
    frame,
)


def test_constants() -> None:
    assert (STDIN, STDOUT, STDERR, SYSTEMERR) == (0, 1, 2, 3)


def test_frame_stdout() -> None:
    assert frame(STDOUT, b"hello\n") == b"\x01\x00\x00\x00\x00\x00\x00\x06hello\n"


def test_frame_stderr_and_systemerr() -> None:
    assert frame(STDERR, b"x") == b"\x02\x00\x00\x00\x00\x00\x00\x01x"
    assert frame(SYSTEMERR, b"boom") == b"\x03\x00\x00\x00\x00\x00\x00\x04boom"


def test_frame_size_is_big_endian() -> None:
    data = b"a" * 0x010203
    out = frame(STDOUT, data)
    assert out[:8] == b"\x01\x00\x00\x00\x00\x01\x02\x03"
    assert out[8:] == data


def test_large_write_is_one_frame() -> None:
    data = bytes(range(256)) * 1024  # 256 KiB
    out = frame(STDOUT, data)
    assert len(out) == 8 + len(data)
    assert out[4:8] == (len(data)).to_bytes(4, "big")


def test_empty_data_gives_no_frame() -> None:
    assert frame(STDOUT, b"") == b""


def test_unknown_stream_rejected() -> None:
    with pytest.raises(FramingError, match="unrecognized stream: 4"):
        frame(4, b"x")


def test_demux_round_trip() -> None:
    wire = frame(STDOUT, b"out1") + frame(STDERR, b"err") + frame(STDOUT, b"out2")
    assert Demuxer().feed(wire) == [
        Frame(stream=STDOUT, data=b"out1"),
        Frame(stream=STDERR, data=b"err"),
        Frame(stream=STDOUT, data=b"out2"),
    ]


def test_demux_byte_by_byte() -> None:
    wire = frame(STDOUT, b"hello") + frame(STDERR, b"world!")
    demuxer = Demuxer()
    events = []
    for i in range(len(wire)):
        got = demuxer.feed(wire[i : i + 1])
        # A frame completes exactly on its last byte.
        if i in (12, len(wire) - 1):
            assert len(got) == 1
        else:
            assert got == []
        events += got
    assert events == [Frame(stream=1, data=b"hello"), Frame(stream=2, data=b"world!")]
    assert demuxer.pending == 0
    demuxer.close()


def test_demux_split_header() -> None:
    wire = frame(STDERR, b"abc")
    demuxer = Demuxer()
    assert demuxer.feed(wire[:3]) == []
    assert demuxer.pending == 3
    assert demuxer.feed(wire[3:9]) == []
    assert demuxer.feed(wire[9:]) == [Frame(stream=2, data=b"abc")]


def test_demux_skips_zero_size_frames() -> None:
    wire = b"\x01\x00\x00\x00\x00\x00\x00\x00" + frame(STDOUT, b"x")
    assert Demuxer().feed(wire) == [Frame(stream=1, data=b"x")]


def test_demux_stdin_and_systemerr_are_reported() -> None:
    wire = frame(STDIN, b"in") + frame(SYSTEMERR, b"oops")
    assert Demuxer().feed(wire) == [Frame(stream=0, data=b"in"), Frame(stream=3, data=b"oops")]


def test_demux_unknown_stream_raises_and_stays_failed() -> None:
    demuxer = Demuxer()
    with pytest.raises(FramingError, match="unrecognized stream: 9"):
        demuxer.feed(b"\x09\x00\x00\x00\x00\x00\x00\x01x")
    with pytest.raises(FramingError):
        demuxer.feed(frame(STDOUT, b"x"))


def test_demux_close_reports_truncated_frame() -> None:
    demuxer = Demuxer()
    demuxer.feed(frame(STDOUT, b"hello")[:-1])
    with pytest.raises(FramingError, match="12 bytes pending"):
        demuxer.close()
