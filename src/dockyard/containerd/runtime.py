"""Containers, tasks and events: the ``Namespace`` methods for running things.

A mixin of :class:`dockyard.containerd.client.Namespace`. A container is
containerd's record (spec, snapshot, labels, extensions); a task is its running
init process, created from FIFO paths the caller made; an exec is an extra
process in a task, named by ``exec_id``. Raises only dockyard.errors: NotFound
for a missing container/task/process, Conflict for a state that forbids the
call (e.g. deleting a running task).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from dockyard import errors
from dockyard.containerd import _proto as pb
from dockyard.containerd.errors import translate_errors

#: type_url containerd's typeurl registry gives the runtime-spec LinuxResources.
OCI_RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
from dockyard.containerd.types import (
    OCI_PROCESS_TYPE_URL,
    RUNC_RUNTIME,
    SNAPSHOTTER,
    ContainerRecord,
    Event,
    ExitStatus,
    Mount,
    TaskInfo,
)

if TYPE_CHECKING:
    from dockyard.containerd.client import _Stubs


class RuntimeCalls:
    _stubs: _Stubs
    _metadata: tuple[tuple[str, str], ...]
    name: str

    if TYPE_CHECKING:
        # Provided by SnapshotCalls in the Namespace this mixes into.
        async def snapshot_mounts(self, key: str) -> list[Mount]: ...

    # -- containers -----------------------------------------------------------------

    async def create_container(
        self,
        id: str,
        *,
        image: str,
        spec: Mapping[str, Any],
        snapshot_key: str,
        snapshotter: str = SNAPSHOTTER,
        runtime: str = RUNC_RUNTIME,
        labels: Mapping[str, str] | None = None,
        extensions: Mapping[str, bytes] | None = None,
    ) -> ContainerRecord:
        """Create a container record; Conflict if ``id`` exists.

        ``spec`` is the OCI runtime spec as JSON data; ``extensions`` are opaque
        bytes stored with the container (each in an Any whose type_url is its key).
        """
        record = ContainerRecord(
            id=id,
            image=image,
            runtime=runtime,
            spec=spec,
            snapshotter=snapshotter,
            snapshot_key=snapshot_key,
            labels=dict(labels or {}),
            extensions=dict(extensions or {}),
        )
        with translate_errors():
            response = await self._stubs.containers.Create(
                pb.containers_pb2.CreateContainerRequest(container=pb.to_container_pb(record)),
                metadata=self._metadata,
            )
        return pb.from_container_pb(response.container)

    async def get_container(self, id: str) -> ContainerRecord:
        """The container record; NotFound if missing."""
        with translate_errors():
            response = await self._stubs.containers.Get(
                pb.containers_pb2.GetContainerRequest(id=id), metadata=self._metadata
            )
        return pb.from_container_pb(response.container)

    async def list_containers(self, *filters: str) -> list[ContainerRecord]:
        """Container records matching any of containerd's filters (none: all)."""
        with translate_errors():
            response = await self._stubs.containers.List(
                pb.containers_pb2.ListContainersRequest(filters=list(filters)),
                metadata=self._metadata,
            )
        return [pb.from_container_pb(c) for c in response.containers]

    async def update_container(
        self,
        id: str,
        *,
        labels: Mapping[str, str] | None = None,
        extensions: Mapping[str, bytes] | None = None,
        spec: Mapping[str, Any] | None = None,
    ) -> ContainerRecord:
        """Set the given labels ("" removes one) and extensions, leaving the
        others alone, and replace the spec if given. NotFound if missing."""
        current = await self.get_container(id)
        paths = [f"labels.{key}" for key in labels or {}]
        paths += [f"extensions.{key}" for key in extensions or {}]
        if spec is not None:
            paths.append("spec")
        if not paths:
            return current
        record = ContainerRecord(
            id=id,
            image=current.image,
            runtime=current.runtime,
            spec=spec if spec is not None else current.spec,
            snapshotter=current.snapshotter,
            snapshot_key=current.snapshot_key,
            labels=dict(labels or {}),
            extensions=dict(extensions or {}),
        )
        with translate_errors():
            response = await self._stubs.containers.Update(
                pb.containers_pb2.UpdateContainerRequest(
                    container=pb.to_container_pb(record), update_mask=pb.field_mask(paths)
                ),
                metadata=self._metadata,
            )
        return pb.from_container_pb(response.container)

    async def update_container_labels(self, id: str, labels: Mapping[str, str]) -> ContainerRecord:
        """Set the given labels ("" removes one), leaving the others alone."""
        return await self.update_container(id, labels=labels)

    async def delete_container(self, id: str) -> None:
        """Delete the record (not its snapshot); NotFound if missing, Conflict
        while it has a task."""
        with translate_errors():
            await self._stubs.containers.Delete(
                pb.containers_pb2.DeleteContainerRequest(id=id), metadata=self._metadata
            )

    # -- tasks ----------------------------------------------------------------------

    async def create_task(
        self,
        container_id: str,
        *,
        rootfs: Sequence[Mount] | None = None,
        stdin: str = "",
        stdout: str = "",
        stderr: str = "",
        terminal: bool = False,
    ) -> int:
        """Create the container's task (not yet started) and return its pid.

        ``stdin``/``stdout``/``stderr`` are FIFO paths the caller created ("" for
        none). Without a terminal give stdout and stderr both or neither: the
        runc shim fails on one empty path. With ``terminal`` stdout carries the
        pty and stderr may be "".
        ``rootfs`` None mounts the container's own snapshot, as containerd's Go
        client does. Conflict if the container has a task already.
        """
        if rootfs is None:
            container = await self.get_container(container_id)
            key = container.snapshot_key
            rootfs = await self.snapshot_mounts(key) if key else []
        with translate_errors():
            response = await self._stubs.tasks.Create(
                pb.tasks_pb2.CreateTaskRequest(
                    container_id=container_id,
                    rootfs=[pb.to_mount_pb(m) for m in rootfs],
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                    terminal=terminal,
                ),
                metadata=self._metadata,
            )
        return response.pid

    async def start_task(self, container_id: str, exec_id: str = "") -> int:
        """Start the task (or exec ``exec_id``); return the pid."""
        with translate_errors():
            response = await self._stubs.tasks.Start(
                pb.tasks_pb2.StartRequest(container_id=container_id, exec_id=exec_id),
                metadata=self._metadata,
            )
        return response.pid

    async def kill_task(
        self, container_id: str, signal: int, *, all: bool = False, exec_id: str = ""
    ) -> None:
        """Send ``signal`` to the task's init (or exec), or with ``all`` to every
        process in the container. NotFound if there is no such process."""
        with translate_errors():
            await self._stubs.tasks.Kill(
                pb.tasks_pb2.KillRequest(
                    container_id=container_id, exec_id=exec_id, signal=signal, all=all
                ),
                metadata=self._metadata,
            )

    async def delete_task(self, container_id: str) -> ExitStatus:
        """Delete a stopped (or never started) task and return how it exited.
        Conflict while it runs, NotFound if there is no task."""
        # The shim reports a running process with an UNKNOWN status, which
        # would become a SystemError: check the state first.
        task = await self.get_task(container_id)
        if task is None:
            raise errors.NotFound(f"container {container_id} has no task")
        if task.status in {"running", "paused", "pausing"}:
            raise errors.Conflict(f"task {container_id} is {task.status}; stop it first")
        with translate_errors():
            response = await self._stubs.tasks.Delete(
                pb.tasks_pb2.DeleteTaskRequest(container_id=container_id), metadata=self._metadata
            )
        return ExitStatus(
            code=response.exit_status,
            exited_at=pb.from_timestamp(response.exited_at, response.HasField("exited_at")),
        )

    async def delete_process(self, container_id: str, exec_id: str) -> ExitStatus:
        """Delete an exited exec process and return how it exited."""
        with translate_errors():
            response = await self._stubs.tasks.DeleteProcess(
                pb.tasks_pb2.DeleteProcessRequest(container_id=container_id, exec_id=exec_id),
                metadata=self._metadata,
            )
        return ExitStatus(
            code=response.exit_status,
            exited_at=pb.from_timestamp(response.exited_at, response.HasField("exited_at")),
        )

    async def wait_task(self, container_id: str, exec_id: str = "") -> ExitStatus:
        """Until the task (or exec) exits; returns at once if it has exited already."""
        with translate_errors():
            response = await self._stubs.tasks.Wait(
                pb.tasks_pb2.WaitRequest(container_id=container_id, exec_id=exec_id),
                metadata=self._metadata,
            )
        return ExitStatus(
            code=response.exit_status,
            exited_at=pb.from_timestamp(response.exited_at, response.HasField("exited_at")),
        )

    async def get_task(self, container_id: str, exec_id: str = "") -> TaskInfo | None:
        """The task's (or exec's) state; None if there is none."""
        try:
            with translate_errors():
                response = await self._stubs.tasks.Get(
                    pb.tasks_pb2.GetRequest(container_id=container_id, exec_id=exec_id),
                    metadata=self._metadata,
                )
        except errors.NotFound:
            return None
        return pb.from_process_pb(response.process)

    async def list_tasks(self) -> list[TaskInfo]:
        """Every task in the namespace (init processes only)."""
        with translate_errors():
            response = await self._stubs.tasks.List(
                pb.tasks_pb2.ListTasksRequest(), metadata=self._metadata
            )
        return [pb.from_process_pb(p) for p in response.tasks]

    async def task_pids(self, container_id: str) -> list[int]:
        """Host pids of every process in the container."""
        with translate_errors():
            response = await self._stubs.tasks.ListPids(
                pb.tasks_pb2.ListPidsRequest(container_id=container_id), metadata=self._metadata
            )
        return [p.pid for p in response.processes]

    async def resize_pty(self, container_id: str, width: int, height: int, exec_id: str = "") -> None:
        with translate_errors():
            await self._stubs.tasks.ResizePty(
                pb.tasks_pb2.ResizePtyRequest(
                    container_id=container_id, exec_id=exec_id, width=width, height=height
                ),
                metadata=self._metadata,
            )

    async def close_io(self, container_id: str, *, stdin: bool = True, exec_id: str = "") -> None:
        """Close the process's stdin (the shim closes its end of the FIFO)."""
        with translate_errors():
            await self._stubs.tasks.CloseIO(
                pb.tasks_pb2.CloseIORequest(container_id=container_id, exec_id=exec_id, stdin=stdin),
                metadata=self._metadata,
            )

    async def pause_task(self, container_id: str) -> None:
        with translate_errors():
            await self._stubs.tasks.Pause(
                pb.tasks_pb2.PauseTaskRequest(container_id=container_id), metadata=self._metadata
            )

    async def resume_task(self, container_id: str) -> None:
        with translate_errors():
            await self._stubs.tasks.Resume(
                pb.tasks_pb2.ResumeTaskRequest(container_id=container_id), metadata=self._metadata
            )

    async def exec_process(
        self,
        container_id: str,
        exec_id: str,
        *,
        process: Mapping[str, Any],
        stdin: str = "",
        stdout: str = "",
        stderr: str = "",
        terminal: bool = False,
    ) -> None:
        """Add process ``exec_id`` (not yet started; see start_task) to a running
        task. ``process`` is an OCI runtime-spec Process object as JSON data;
        stdio FIFOs as for create_task."""
        with translate_errors():
            await self._stubs.tasks.Exec(
                pb.tasks_pb2.ExecProcessRequest(
                    container_id=container_id,
                    exec_id=exec_id,
                    spec=pb.pack_json(process, OCI_PROCESS_TYPE_URL),
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                    terminal=terminal,
                ),
                metadata=self._metadata,
            )

    async def update_task(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Change a running task's cgroup limits; ``resources`` is an OCI
        ``LinuxResources`` object as JSON data. NotFound without a task."""
        with translate_errors():
            await self._stubs.tasks.Update(
                pb.tasks_pb2.UpdateTaskRequest(
                    container_id=container_id,
                    resources=pb.pack_json(resources, OCI_RESOURCES_TYPE_URL),
                ),
                metadata=self._metadata,
            )

    # -- events ---------------------------------------------------------------------

    async def subscribe(self, *filters: str) -> AsyncIterator[Event]:
        """Events of this namespace from now on, matching any of ``filters``
        (containerd filter syntax, e.g. ``topic=="/tasks/exit"``; none: all).

        The stream ends with Unavailable when containerd goes away; subscribe
        again once it is back. Stopping iteration cancels the subscription.
        """
        scope = f'namespace=="{self.name}"'
        combined = [f"{scope},{f}" for f in filters] if filters else [scope]
        call = self._stubs.events.Subscribe(
            pb.events_pb2.SubscribeRequest(filters=combined), metadata=self._metadata
        )
        try:
            with translate_errors():
                async for envelope in call:
                    yield Event(
                        topic=envelope.topic,
                        namespace=envelope.namespace,
                        timestamp=pb.from_timestamp(
                            envelope.timestamp, envelope.HasField("timestamp")
                        ),
                        payload=pb.decode_event(envelope.event),
                    )
        finally:
            call.cancel()
