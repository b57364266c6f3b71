"""restart, pause/unpause, rename and top: the lifecycle verbs beyond start/stop (API 1.50).

A companion of :class:`~dockyard.engine.containers.ContainerService`: it
works on the service's containers under their lock and uses the service's
state writer and event hook, so that the service module stays the one owner
of the run/exit path. Messages and statuses are moby's.

``parse_ps_output`` is pure (moby's ``parsePSOutput``); ``top`` runs the
host's ``ps`` for the task's pids, as dockerd does.

Raises only dockyard.errors: NotFound (``No such container: x``), Conflict
(not running, already paused, name in use), InvalidParameter (bad name,
``ps`` arguments or output), SystemError (``ps`` missing).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

from dockyard import errors
from dockyard.engine.container_model import Container
from dockyard.engine.container_store import EXT_DEFINITION, LABEL_NAME, encode_definition
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint

__all__ = ["ContainerLifecycle", "parse_ps_output"]

DEFAULT_PS_ARGS = "-ef"


def parse_ps_output(output: str, pids: Sequence[int]) -> dict[str, Any]:
    """moby's ``parsePSOutput``: titles from the header, the rows of ``pids`` only.

    The last column (the command) keeps its spaces. InvalidParameter when the
    output has no ``PID`` column or a row's pid is not a number.
    """
    lines = output.splitlines()
    titles = lines[0].split() if lines else []
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise errors.InvalidParameter("Couldn't find PID field in ps output") from None
    wanted = set(pids)
    processes: list[list[str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        fields = line.split()
        try:
            pid = int(fields[pid_index])
        except (ValueError, IndexError):
            raise errors.InvalidParameter(f"Unexpected pid '{fields[pid_index] if fields else ''}'") from None
        if pid in wanted:
            head = fields[:len(titles) - 1]
            processes.append([*head, " ".join(fields[len(titles) - 1:])])
    return {"Titles": titles, "Processes": processes}


class ContainerLifecycle:
    """restart, pause, unpause, rename, top for the containers of ``service``."""

    def __init__(self, service: ContainerService) -> None:
        self._service = service

    def _ns(self, container: Container) -> Any:
        return self._service.namespace_of(container.namespace)  # the service's containerd namespace

    async def restart(self, endpoint: Endpoint, ref: str, *, timeout: int | None = None,
                      signal: str | None = None) -> None:
        """``POST /containers/{id}/restart``: stop if running (events kill/die/stop), start, ``restart``."""
        container = await self._service.get(endpoint, ref)
        with contextlib.suppress(errors.NotModified):
            await self._service.stop(endpoint, container.id, timeout=timeout, signal=signal)
        with contextlib.suppress(errors.NotModified):
            await self._service.start_container(endpoint, container.id)
        self._service.publish_event(container, "restart")

    async def pause(self, endpoint: Endpoint, ref: str) -> None:
        """``POST /containers/{id}/pause``: freeze the task's cgroup."""
        container = await self._service.get(endpoint, ref)
        async with container.lock:
            if not container.running:
                raise errors.Conflict(f"Container {container.id} is not running")
            if container.state.status == "paused":
                raise errors.Conflict(f"Container {container.id} is already paused")
            try:
                await self._ns(container).pause_task(container.id)
            except errors.NotFound:
                raise errors.Conflict(f"Container {container.id} is not running") from None
            if container.state.status != "running":
                return  # it exited meanwhile: the exit path owns the state
            container.state = container.state.evolve(status="paused")
            self._service.persist(container)
            self._service.publish_event(container, "pause")

    async def unpause(self, endpoint: Endpoint, ref: str) -> None:
        """``POST /containers/{id}/unpause``: thaw it."""
        container = await self._service.get(endpoint, ref)
        async with container.lock:
            if container.state.status != "paused":
                raise errors.Conflict(f"Container {container.id} is not paused")
            try:
                await self._ns(container).resume_task(container.id)
            except errors.NotFound:
                raise errors.Conflict(f"Container {container.id} is not paused") from None
            if container.state.status != "paused":
                return
            container.state = container.state.evolve(status="running")
            self._service.persist(container)
            self._service.publish_event(container, "unpause")

    async def rename(self, endpoint: Endpoint, ref: str, new_name: str) -> None:
        """``POST /containers/{id}/rename?name=``; Conflict when the name is taken."""
        if not new_name:
            raise errors.InvalidParameter("Neither old nor new names may be empty")
        container = await self._service.get(endpoint, ref)
        old = container.definition.name
        wanted = new_name if new_name.startswith("/") else "/" + new_name
        if wanted == old:
            raise errors.InvalidParameter("Renaming a container with the same name as its current name")
        table = await self._service.table(endpoint)
        try:
            full = self._service.reserve_name(table, new_name, container.id)
        except errors.Conflict as err:
            raise errors.Conflict(f"Error when allocating new name: {err.message}") from None
        definition = dataclasses.replace(container.definition, name=full)
        try:
            await self._ns(container).update_container(
                container.id, labels={LABEL_NAME: full}, extensions={EXT_DEFINITION: encode_definition(definition)})
        except BaseException:
            table.names.pop(full, None)
            raise
        container.definition = definition
        if table.names.get(old) == container.id:
            del table.names[old]
        self._service.publish_event(container, "rename", {"oldName": old})

    async def top(self, endpoint: Endpoint, ref: str, ps_args: str = "") -> dict[str, Any]:
        """``GET /containers/{id}/top``: the host's ``ps`` over the container's pids."""
        container = await self._service.get(endpoint, ref)
        if not container.running:
            raise errors.Conflict(f"container {container.id} is not running")
        args = (ps_args or DEFAULT_PS_ARGS).split(" ")
        try:
            pids = await self._ns(container).task_pids(container.id)
        except errors.NotFound:
            raise errors.Conflict(f"container {container.id} is not running") from None
        code, output, stderr = await _run_ps([*args, "-q", ",".join(str(p) for p in pids)])
        if code != 0:
            # Some options (``f``) cannot be combined with -q: ask again for everything.
            code, output, stderr = await _run_ps(args)
        if code != 0:
            raise errors.InvalidParameter(f"ps: {stderr.strip()}")
        return parse_ps_output(output, pids)


async def _run_ps(args: Sequence[str]) -> tuple[int, str, str]:
    try:
        process = await asyncio.create_subprocess_exec(
            "ps", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL)
    except FileNotFoundError:
        raise errors.SystemError("ps: executable file not found in $PATH") from None
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")
