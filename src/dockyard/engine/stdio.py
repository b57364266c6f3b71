"""One container process's stdio: the FIFOs, the json-file log, attached clients.

A :class:`StdioHub` owns the FIFO ends of one process (a task or an exec).
It is started before containerd creates the process, because the shim opens
its ends of stdout/stderr blocking and waits for ours. From then on it pumps
each output FIFO in large chunks; every chunk is first appended to the
json-file log (a direct ``os.write`` through
:class:`~dockyard.engine.log_file.RotatingLogWriter`: page-cache speed, no user-space buffer
left to flush) and then handed to every subscription in turn. Subscriptions
are bounded; a full one makes the pump wait, which fills the pipe and stalls
the container's writes -- dockerd does the same, and nothing is ever
dropped. stdout and stderr are separate FIFOs, pumps and events throughout.

stdin has at most one writer at a time (:meth:`StdioHub.claim_stdin`). When
that client half-closes and the container was created with ``StdinOnce``,
the hub closes its end of the stdin FIFO and calls ``on_stdin_eof``, where
the engine calls containerd's ``CloseIO`` (the shim holds a stdin writer of
its own, so the process sees EOF only after both). That close waits for
:meth:`StdioHub.process_started`: closed earlier, the last fd on the FIFO
would go and take the bytes already buffered for the process with it.

Errors (domain errors, so the HTTP layer maps them without translation)::

    StdioError (dockyard.errors.DockyardError)
    ├── StdinBusy (Conflict)       another client is writing this process's stdin
    └── NoStdin (Conflict)         the process was created without stdin
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType

from dockyard.engine.fifo import ClosedFifoError, FifoReader, FifoSet, FifoWriter
from dockyard.engine.log_file import LogFileOptions, RotatingLogWriter
from dockyard.engine.logs import JsonLogEncoder, LogSignal
from dockyard.errors import Conflict, DockyardError
from dockyard.streams import ByteStream
from dockyard.wire.stdcopy import STDERR, STDOUT, frame

__all__ = [
    "NoStdin",
    "StdinBusy",
    "StdinClaim",
    "StdioError",
    "StdioHub",
    "Subscription",
    "write_output",
]

log = logging.getLogger(__name__)

# A subscription holds at most this many bytes before the pump waits for it.
SUBSCRIBER_LIMIT = 1 << 20
# Client reads for stdin: the size dockerd's io.Copy uses is 32 KiB; larger
# reads only help when the client writes faster than the process reads.
STDIN_READ = 1 << 16


class StdioError(DockyardError):
    """Base of the errors of this module."""


class StdinBusy(StdioError, Conflict):
    """A second client tried to write stdin while one is attached to it."""


class NoStdin(StdioError, Conflict):
    """The process has no stdin FIFO (created without ``OpenStdin``)."""


class Subscription:
    """An attached client's view of the output: ``async for stream, data in sub``.

    Yields ``(1, bytes)`` for stdout and ``(2, bytes)`` for stderr, in the
    order each stream produced them, and ends when the process's output has
    ended (or the hub was closed, or :meth:`close` was called). Holds up to
    a limit of bytes; beyond that the hub's pump waits for this reader.
    """

    def __init__(self, *, stdout: bool, stderr: bool, limit: int) -> None:
        self._streams = frozenset(s for s, on in ((STDOUT, stdout), (STDERR, stderr)) if on)
        self._limit = limit
        self._items: deque[tuple[int, bytes]] = deque()
        self._size = 0
        self._ended = False
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    async def _deliver(self, stream: int, data: bytes) -> None:
        if stream not in self._streams:
            return
        while self._size >= self._limit and not self._closed:
            self._writable.clear()
            await self._writable.wait()
        if self._closed:
            return
        self._items.append((stream, data))
        self._size += len(data)
        self._readable.set()

    def _end(self) -> None:
        self._ended = True
        self._readable.set()

    def close(self) -> None:
        """Stop receiving; drops what is queued and never blocks the hub again."""
        self._closed = True
        self._items.clear()
        self._size = 0
        self._writable.set()
        self._readable.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        while not self._items:
            if self._ended or self._closed:
                raise StopAsyncIteration
            self._readable.clear()
            await self._readable.wait()
        item = self._items.popleft()
        self._size -= len(item[1])
        if self._size < self._limit:
            self._writable.set()
        return item


class StdinClaim:
    """The right to write one process's stdin, held by one client at a time."""

    def __init__(self, hub: StdioHub, *, close_on_eof: bool) -> None:
        self._hub = hub
        self._close_on_eof = close_on_eof
        self._released = False

    async def copy_from(self, stream: ByteStream) -> bool:
        """Copy the client's bytes into stdin until it half-closes; True if it did.

        On the client's EOF, with ``close_on_eof``, closes the container's
        stdin (see :meth:`StdioHub.close_stdin`). Returns False, leaving stdin
        open, if the stdin FIFO was closed under it (the process ended or the
        hub closed). Client errors propagate; the caller cancels this when the
        process's output has ended.
        """
        if self._released:
            raise RuntimeError("stdin claim already released")
        writer = self._hub._stdin
        assert writer is not None
        try:
            while True:
                data = await stream.read(STDIN_READ)
                if not data:
                    break
                await writer.write(data)
        except ClosedFifoError:
            return False
        if self._close_on_eof:
            await self._hub.close_stdin()
        return True

    def release(self) -> None:
        """Let another client claim stdin; idempotent."""
        if not self._released:
            self._released = True
            self._hub._stdin_claim = None


class StdioHub:
    """The stdio of one container process (see the module docstring).

    ``fifos`` are made by :func:`dockyard.engine.fifo.create_fifos`; the hub
    does not remove them. ``log_path`` is the container's json-file log,
    appended to (None: no log, as for exec processes). ``on_stdin_eof`` is
    called (and awaited, if it returns an awaitable) once the container's
    stdin has been closed because of a client's EOF.

    Lifetime: ``await hub.start()`` (or ``async with hub``) before the
    process is created; :meth:`wait_closed` returns when the output has
    ended, every byte is in the log and every subscription has been told;
    :meth:`aclose` stops everything at once (daemon shutdown, removal).
    """

    def __init__(self, fifos: FifoSet, *, log_path: Path | None,
                 on_stdin_eof: Callable[[], Awaitable[None] | None] | None = None,
                 subscriber_limit: int = SUBSCRIBER_LIMIT,
                 log_options: LogFileOptions = LogFileOptions()) -> None:
        self.fifos = fifos
        self.log_path = log_path
        self._log_options = log_options
        self._on_stdin_eof = on_stdin_eof
        self._limit = subscriber_limit
        self._subscriptions: list[Subscription] = []
        self._stdin: FifoWriter | None = None
        self._stdin_claim: StdinClaim | None = None
        self._stdin_closed = False
        self._started_process = asyncio.Event()
        self._readers: list[FifoReader] = []
        self._pumps: list[asyncio.Task[None]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._log: RotatingLogWriter | None = None
        self._log_signal = LogSignal()
        self._closed = asyncio.Event()
        self._started = False
        self._draining = False

    # --- lifetime ------------------------------------------------------------

    async def start(self) -> None:
        """Open our FIFO ends and the log, and start pumping; call once."""
        if self._started:
            raise RuntimeError("StdioHub started twice")
        self._started = True
        try:
            if self.log_path is not None:
                self._log = RotatingLogWriter(self.log_path, self._log_options)
            if self.fifos.stdin is not None:
                self._stdin = FifoWriter.open(self.fifos.stdin)
            for stream, path in ((STDOUT, self.fifos.stdout), (STDERR, self.fifos.stderr)):
                if path is not None:
                    reader = FifoReader.open(path)
                    self._readers.append(reader)
                    self._pumps.append(asyncio.create_task(
                        self._pump(stream, reader), name=f"stdio-pump-{path.name}"))
        except BaseException:
            await self.aclose()
            raise
        if not self._pumps:
            self._finish()
        else:
            self._watcher = asyncio.create_task(self._watch_pumps(), name="stdio-hub-finish")

    async def __aenter__(self) -> StdioHub:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def wait_closed(self) -> None:
        """Wait until the output has ended and the log is complete."""
        await self._closed.wait()

    @property
    def output_ended(self) -> bool:
        return self._closed.is_set()

    @property
    def log_signal(self) -> LogSignal:
        """For ``docker logs --follow``: notified on each append, ended with the output."""
        return self._log_signal

    async def finish(self, *, grace: float = 2.0) -> None:
        """The process has exited: let its output end, then close the hub.

        Waits up to ``grace`` seconds for EOF on every stream (dockerd waits
        2 s too), then takes what the pipes still hold without waiting and
        closes. EOF may never come on its own: a descendant of the process can
        keep a write end open, and a stream reopened after the process died
        (a daemon restart) never sees a writer connect.
        """
        try:
            await asyncio.wait_for(self._closed.wait(), grace)
        except TimeoutError:
            self._draining = True
            await self.aclose()

    async def aclose(self) -> None:
        """Stop at once: pumps cancelled, fds closed, subscriptions ended. Idempotent.

        Output still in the pipes is not read (see :meth:`finish` for that);
        the last unterminated line is logged as a partial entry.
        """
        for task in self._pumps:
            task.cancel()
        for task in (*self._pumps, *((self._watcher,) if self._watcher else ())):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._finish()

    # --- output --------------------------------------------------------------

    async def _pump(self, stream: int, reader: FifoReader) -> None:
        encoder = JsonLogEncoder(stream) if self._log is not None else None
        try:
            while data := await reader.read():
                await self._dispatch(stream, data, encoder)
        except asyncio.CancelledError:
            if not self._draining:
                raise
            # The process has exited but EOF did not come: take what the pipe holds.
            while data := reader.read_nowait():
                await self._dispatch(stream, data, encoder)
        finally:
            if encoder is not None:
                self._append_log(encoder.flush(time.time_ns()))
            reader.close()

    async def _dispatch(self, stream: int, data: bytes, encoder: JsonLogEncoder | None) -> None:
        if encoder is not None:
            self._append_log(encoder.feed(data, time.time_ns()))
        for subscription in tuple(self._subscriptions):
            await subscription._deliver(stream, data)

    async def _watch_pumps(self) -> None:
        results = await asyncio.gather(*self._pumps, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("stdio pump of %s failed", self.fifos.directory, exc_info=result)
        self._finish()

    def _append_log(self, data: bytes) -> None:
        # Synchronous on purpose: a page-cache write of one chunk's lines is
        # cheaper than a thread hop, and it keeps the log in stream order.
        if not data or self._log is None:
            return
        try:
            self._log.append(data)
        except OSError:
            # dockerd keeps the container running and its clients served when
            # the log cannot be written; so do we, and say so once a chunk.
            log.exception("cannot append to %s", self.log_path)
            return
        self._log_signal.notify()

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        for reader in self._readers:
            reader.close()
        if self._stdin is not None:
            self._stdin.close()
        if self._log is not None:
            self._log.close()
        for subscription in self._subscriptions:
            subscription._end()
        self._subscriptions.clear()
        self._log_signal.end()
        self._closed.set()

    def subscribe(self, *, stdout: bool = True, stderr: bool = True) -> Subscription:
        """A new subscription to output produced from now on (ended at once if output has ended)."""
        subscription = Subscription(stdout=stdout, stderr=stderr, limit=self._limit)
        if self._closed.is_set():
            subscription._end()
        else:
            self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Detach a client; idempotent. Its queued output is dropped, the pump never waits for it again."""
        subscription.close()
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    # --- stdin ---------------------------------------------------------------

    @property
    def has_stdin(self) -> bool:
        return self.fifos.stdin is not None

    def claim_stdin(self, *, close_on_eof: bool) -> StdinClaim:
        """Reserve stdin for one client; check this before hijacking the connection.

        ``close_on_eof`` is the container's ``StdinOnce``. Raises
        :class:`NoStdin` or :class:`StdinBusy`.
        """
        if self._stdin is None or self._stdin.closed or self._stdin_closed:
            raise NoStdin("container stdin is not open")
        if self._stdin_claim is not None:
            raise StdinBusy("another client is attached to this container's stdin")
        self._stdin_claim = StdinClaim(self, close_on_eof=close_on_eof)
        return self._stdin_claim

    async def attach_stdin(self, stream: ByteStream, *, close_on_eof: bool = True) -> bool:
        """Claim stdin, copy ``stream`` into it, release: see :meth:`StdinClaim.copy_from`."""
        claim = self.claim_stdin(close_on_eof=close_on_eof)
        try:
            return await claim.copy_from(stream)
        finally:
            claim.release()

    def process_started(self) -> None:
        """The engine says the shim has the FIFOs open (task or exec started)."""
        self._started_process.set()

    async def close_stdin(self) -> None:
        """Close the container's stdin: our FIFO end, then ``on_stdin_eof``. Once only.

        Waits for :meth:`process_started` first; returns without calling the
        hook if the hub closes meanwhile.
        """
        if self._stdin_closed or self._stdin is None:
            return
        self._stdin_closed = True
        if not self._started_process.is_set():
            started = asyncio.ensure_future(self._started_process.wait())
            closed = asyncio.ensure_future(self._closed.wait())
            try:
                await asyncio.wait((started, closed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                started.cancel()
                closed.cancel()
            if not self._started_process.is_set():
                return
        self._stdin.close()
        if self._on_stdin_eof is not None:
            result = self._on_stdin_eof()
            if inspect.isawaitable(result):
                await result


async def write_output(subscription: Subscription, stream: ByteStream, *, tty: bool) -> None:
    """Send a subscription's events to an attached client until the output ends.

    Without a TTY each event is one stdcopy frame (stdout 1, stderr 2), as
    dockerd writes one frame per container write; with a TTY the bytes go raw.
    Client errors (``BrokenPipeError``…) propagate; the caller unsubscribes.
    """
    async for number, data in subscription:
        await stream.write(data if tty else frame(number, data))
