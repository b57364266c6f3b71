"""Docker's multiplexed stream framing ("stdcopy"), both directions.

A non-TTY attach, exec or logs stream carries stdout and stderr over one
connection as frames::

    [stream, 0, 0, 0, size as big-endian uint32] + size bytes of payload

with ``stream`` one of :data:`STDIN` (0), :data:`STDOUT` (1), :data:`STDERR`
(2) or :data:`SYSTEMERR` (3, a daemon-side error that ends the stream; the
CLI prints it as ``error from daemon in stream: …``). dockerd writes one frame
per write of the container; so does :func:`frame`.

Pure: bytes in, bytes or events out. No sockets, no clocks.

Errors::

    FramingError (ValueError)   the peer sent a header no Docker client accepts
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "HEADER_SIZE",
    "MAX_FRAME_SIZE",
    "STDERR",
    "STDIN",
    "STDOUT",
    "SYSTEMERR",
    "Demuxer",
    "Frame",
    "FramingError",
    "frame",
]

STDIN = 0
STDOUT = 1
STDERR = 2
SYSTEMERR = 3

HEADER_SIZE = 8
# The size field is a uint32; a single write larger than this cannot be framed.
MAX_FRAME_SIZE = 0xFFFFFFFF

_STREAMS = frozenset((STDIN, STDOUT, STDERR, SYSTEMERR))


class FramingError(ValueError):
    """A header names a stream that is not 0-3, or a frame cannot be encoded."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Frame:
    """One decoded frame: the stream number and its payload (never empty)."""

    stream: int
    data: bytes


def frame(stream: int, data: bytes) -> bytes:
    """Return ``data`` as one frame on ``stream``, header included.

    Empty ``data`` gives ``b""``: an empty frame is legal on the wire but
    carries nothing, and old clients have treated a zero-size read as EOF.
    Raises :class:`FramingError` for an unknown stream or a payload over
    :data:`MAX_FRAME_SIZE`. Never splits: one call, one frame, as dockerd.
    """
    if stream not in _STREAMS:
        raise FramingError(f"unrecognized stream: {stream}")
    size = len(data)
    if size == 0:
        return b""
    if size > MAX_FRAME_SIZE:
        raise FramingError(f"frame too large: {size} bytes")
    return bytes((stream, 0, 0, 0)) + size.to_bytes(4, "big") + bytes(data)


class Demuxer:
    """Incremental decoder: :meth:`feed` bytes, get complete frames back.

    Headers and payloads may be split across feeds at any byte. Frames with a
    zero size are consumed silently (dockerd may write one for an empty
    write). Like the CLI's ``StdCopy``, an unknown stream number raises
    :class:`FramingError`; the demuxer is unusable afterwards.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._failed: FramingError | None = None

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data`` and return every frame it completes, in order."""
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        frames: list[Frame] = []
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= HEADER_SIZE:
            stream = buf[pos]
            if stream not in _STREAMS:
                self._failed = FramingError(f"unrecognized stream: {stream}")
                raise self._failed
            size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
            end = pos + HEADER_SIZE + size
            if end > len(buf):
                break
            if size:
                frames.append(Frame(stream=stream, data=bytes(buf[pos + HEADER_SIZE : end])))
            pos = end
        del buf[:pos]
        return frames

    def close(self) -> None:
        """Declare end of input; raises :class:`FramingError` on a cut frame.

        The CLI silently drops a truncated tail; callers that want that
        behaviour can check :attr:`pending` instead of calling this.
        """
        if self._buffer:
            raise FramingError(f"stream ended inside a frame ({len(self._buffer)} bytes pending)")
