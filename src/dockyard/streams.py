"""The byte-stream interface every stdio path programs against.

A hijacked HTTP connection, a FIFO pair and the in-memory twin in
``dockyard.testing.memstream`` all satisfy ``ByteStream``. End of input is a
half-close (``send_eof``), not a close: the peer may still be writing.
"""

from __future__ import annotations

from typing import Protocol


class ByteStream(Protocol):
    async def read(self, max_bytes: int = 65536) -> bytes:
        """Return up to ``max_bytes``; ``b""`` only at end of input."""

    async def write(self, data: bytes) -> None:
        """Write all of ``data``; raises ``BrokenPipeError`` once the peer is gone."""

    async def send_eof(self) -> None:
        """Half-close: no more writes, reads continue."""

    async def aclose(self) -> None:
        """Close both directions; idempotent."""
