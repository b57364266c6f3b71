"""The HTTP server: listeners, an accept loop each, a task per connection.

Every task belongs to the TaskGroup that ``HttpServer.serve`` holds for its
``async with`` lifetime (the shape of trio's ``serve_listeners``)::

    server = HttpServer(router, max_body_bytes=None)
    async with server.serve([parse_listener("unix:///run/dockyard.sock")]) as running:
        await running.ready.wait()        # set once every listener accepts
        ...                               # serve until the daemon stops

Leaving the block shuts down: listeners close (unix socket files removed),
idle keep-alive connections, streaming responses and hijacked streams are
cancelled at once (producers see ``aclose``), requests in a handler get
``shutdown_grace`` seconds to finish and answer with ``Connection: close``,
then whatever is left is cancelled.

Binding errors (``OSError``, ``InvalidParameter`` from ``listeners``) are
raised by ``serve`` before anything runs. Connection errors never escape.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from collections.abc import AsyncIterator, Sequence

from dockyard.http.connection import READ_SIZE, Connection, ConnectionLimits
from dockyard.http.listeners import BoundListener, ListenerSpec, bind_listener
from dockyard.http.router import Router

log = logging.getLogger("dockyard.http")

# Go's http.Server default; X-Registry-Config (build credentials) can be large.
DEFAULT_MAX_HEADER_BYTES = 1024 * 1024
DEFAULT_SHUTDOWN_GRACE = 5.0
# Out of file descriptors or memory: the condition may pass, keep accepting.
_TRANSIENT_ACCEPT_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class RunningServer:
    """What ``serve`` yields: bound addresses, readiness, live connection count."""

    def __init__(self, listeners: list[BoundListener]) -> None:
        self.listeners = tuple(listeners)
        self.ready = asyncio.Event()
        self.closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: dict[asyncio.Task[None], Connection] = {}

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(listener.address for listener in self.listeners)

    @property
    def connection_count(self) -> int:
        return len(self._tasks)


class HttpServer:
    def __init__(
        self,
        router: Router,
        *,
        max_body_bytes: int | None,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
    ) -> None:
        self._router = router
        self._limits = ConnectionLimits(max_body_bytes=max_body_bytes, max_header_bytes=max_header_bytes)
        self._shutdown_grace = shutdown_grace

    @contextlib.asynccontextmanager
    async def serve(self, specs: Sequence[ListenerSpec]) -> AsyncIterator[RunningServer]:
        listeners: list[BoundListener] = []
        try:
            for spec in specs:
                listeners.append(bind_listener(spec))
        except BaseException:
            for listener in listeners:
                listener.close()
            raise
        running = RunningServer(listeners)
        body_error: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as tasks:
                accepting = [tasks.create_task(self._accept_loop(listener, tasks, running)) for listener in listeners]
                running.ready.set()
                try:
                    yield running
                except Exception as exc:
                    # Re-raised below, outside the group, so callers see their
                    # own exception rather than an ExceptionGroup around it.
                    # Cancellation goes through the group, which accounts for it.
                    body_error = exc
                finally:
                    await self._shutdown(running, accepting)
        finally:
            for listener in listeners:
                listener.close()
        if body_error is not None:
            raise body_error

    async def _accept_loop(self, listener: BoundListener, tasks: asyncio.TaskGroup, running: RunningServer) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, _ = await loop.sock_accept(listener.socket)
            except OSError as exc:
                if exc.errno == errno.ECONNABORTED:
                    continue
                if exc.errno in _TRANSIENT_ACCEPT_ERRORS:
                    log.warning("accept on %s failed: %s; retrying", listener.address, exc)
                    await asyncio.sleep(0.1)
                    continue
                raise
            task = tasks.create_task(self._serve_connection(client, running))
            running._tasks.add(task)
            task.add_done_callback(running._tasks.discard)

    async def _serve_connection(self, client: socket.socket, running: RunningServer) -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            reader, writer = await asyncio.open_connection(sock=client, limit=READ_SIZE)
        except OSError as exc:
            client.close()
            log.debug("could not set up an accepted connection: %s", exc)
            return
        connection = Connection(reader, writer, router=self._router, limits=self._limits)
        running._connections[task] = connection
        try:
            if running.closing:
                connection.begin_shutdown()
            await connection.run()
        finally:
            del running._connections[task]

    async def _shutdown(self, running: RunningServer, accepting: list[asyncio.Task[None]]) -> None:
        running.closing = True
        for task in accepting:
            task.cancel()
        # Let the cancelled accepts unregister their sockets before closing them.
        await asyncio.gather(*accepting, return_exceptions=True)
        for listener in running.listeners:
            listener.close()
        for task in list(running._tasks):
            connection = running._connections.get(task)
            if connection is None:
                task.cancel()
            else:
                connection.begin_shutdown()
        if running._tasks:
            _, pending = await asyncio.wait(set(running._tasks), timeout=self._shutdown_grace)
            for task in pending:
                task.cancel()
