"""Attach and logs: a container's output to clients, a client's bytes to its stdin.

``attach`` follows STYLE rule 6: every check (container exists, stdin free)
happens before the caller's ``upgrade`` callback is called; from then on the
connection is ours and ends when the container's output ends (or the client
goes away). Framing: stdcopy frames without a TTY on API ≥ 1.42
(``application/vnd.docker.multiplexed-stream``), raw bytes otherwise.

Raises before the upgrade only: NotFound, Conflict (``StdinBusy``),
InvalidParameter. After it, client errors end the attach quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard import errors
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.logs import LogsOptions, read_logs
from dockyard.engine.stdio import StdinClaim, Subscription, write_output
from dockyard.streams import ByteStream
from dockyard.wire.stdcopy import frame

__all__ = ["AttachOptions", "MEDIA_MULTIPLEXED", "MEDIA_RAW", "attach", "logs", "stream_media_type"]

log = logging.getLogger(__name__)

MEDIA_RAW = "application/vnd.docker.raw-stream"
MEDIA_MULTIPLEXED = "application/vnd.docker.multiplexed-stream"

Upgrade = Callable[[str], Awaitable[ByteStream]]


@dataclass(frozen=True, kw_only=True, slots=True)
class AttachOptions:
    stream: bool = False
    logs: bool = False
    stdin: bool = False
    stdout: bool = False
    stderr: bool = False
    detach_keys: str = ""


def stream_media_type(*, tty: bool, api_version: tuple[int, int]) -> str:
    """The Content-Type of an attach or logs stream."""
    return MEDIA_MULTIPLEXED if not tty and api_version >= (1, 42) else MEDIA_RAW


async def attach(service: ContainerService, endpoint: Endpoint, ref: str, options: AttachOptions,
                 *, api_version: tuple[int, int], upgrade: Upgrade) -> None:
    """``POST /containers/{id}/attach``: validate, ``upgrade``, then copy until the output ends."""
    container = await service.get(endpoint, ref)
    tty = container.definition.tty
    hub = await service.pending_hub(container) if options.stream else None
    claim: StdinClaim | None = None
    subscription: Subscription | None = None
    if hub is not None and options.stdin and container.definition.config.get("OpenStdin"):
        claim = hub.claim_stdin(close_on_eof=bool(container.definition.config.get("StdinOnce")))
    try:
        if hub is not None and (options.stdout or options.stderr):
            subscription = hub.subscribe(stdout=options.stdout, stderr=options.stderr)
        conn = await upgrade(stream_media_type(tty=tty, api_version=api_version))
    except BaseException:
        if claim is not None:
            claim.release()
        if subscription is not None and hub is not None:
            hub.unsubscribe(subscription)
        raise
    stdin_task: asyncio.Task[bool] | None = None
    try:
        if options.logs:
            selection = LogsOptions(stdout=options.stdout, stderr=options.stderr)
            async for number, data in read_logs(Path(container.definition.log_path), selection):
                await conn.write(data if tty else frame(number, data))
        service.publish_event(container, "attach")
        if hub is None:
            return
        if claim is not None:
            stdin_task = asyncio.ensure_future(claim.copy_from(conn))
        if subscription is not None:
            await write_output(subscription, conn, tty=tty)
        elif stdin_task is not None:
            closed = asyncio.ensure_future(hub.wait_closed())
            try:
                await asyncio.wait((stdin_task, closed), return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
        else:
            await hub.wait_closed()
    except (BrokenPipeError, ConnectionError):
        pass  # the client left; the container goes on
    finally:
        if stdin_task is not None:
            if not stdin_task.done():
                stdin_task.cancel()
            with contextlib.suppress(BaseException):
                await stdin_task
        if claim is not None:
            claim.release()
        if subscription is not None and hub is not None:
            hub.unsubscribe(subscription)
        await conn.aclose()


async def logs(service: ContainerService, endpoint: Endpoint, ref: str,
               options: LogsOptions) -> tuple[bool, AsyncIterator[bytes]]:
    """``GET /containers/{id}/logs``: ``(tty, chunks)``; chunks are framed unless tty."""
    if not options.stdout and not options.stderr:
        raise errors.InvalidParameter("Bad parameters: you must choose at least one stream")
    container = await service.get(endpoint, ref)
    tty = container.definition.tty
    hub = container.hub
    live = hub.log_signal if hub is not None and container.hub_used and not hub.output_ended else None

    async def chunks() -> AsyncIterator[bytes]:
        async for number, data in read_logs(Path(container.definition.log_path), options, live=live):
            yield data if tty else frame(number, data)

    return tty, chunks()
