"""Loading a namespace's containers at daemon start, and reconciling each with its task.

Containers outlive the daemon: their records live in containerd, and a task
may still run (adopted: watched again, stdio reopened), may have exited
while nobody watched (its exit is recorded), or may be a pre-created task
for a start that never came (deleted, the next start makes a fresh one).

Raises what the containerd client raises (dockyard.errors) while listing;
records it cannot decode are skipped.
"""

from __future__ import annotations

import contextlib
import shutil

from dockyard import errors
from dockyard.engine.container_model import Container, ContainerTable
from dockyard.engine.container_store import CorruptRecord, from_extensions
from dockyard.engine.container_tasks import EXIT_UNKNOWN, TaskRunner

__all__ = ["adopt", "load_table"]


async def load_table(runner: TaskRunner, namespace: str) -> ContainerTable:
    """The containers of ``namespace`` as containerd holds them, each adopted."""
    table = ContainerTable()
    ns = runner.service.namespace_of(namespace)
    for record in await ns.list_containers():
        try:
            stored = from_extensions(record.extensions)
        except CorruptRecord:
            continue
        container = Container(stored.definition, stored.state, namespace)
        table.by_id[container.id] = container
        table.names[container.definition.name] = container.id
        await adopt(runner, container)
    return table


async def adopt(runner: TaskRunner, container: Container) -> None:
    """Reconcile a loaded container with its task: watch it, or record how it ended."""
    service = runner.service
    ns = service.namespace_of(container.namespace)
    task = await ns.get_task(container.id)
    if task is not None and task.status == "created":
        # Pre-created for a start that never came: the next start makes a fresh one.
        with contextlib.suppress(errors.DockyardError):
            await runner.kill_and_delete_task(container)
        await runner.detach_network(container)
        shutil.rmtree(runner.fifo_dir / container.id, ignore_errors=True)
        return
    if task is not None and task.status in ("running", "paused", "pausing"):
        hub = runner.hub_for(container, runner.fifo_set(container, existing=True))
        await hub.start()
        hub.process_started()
        container.hub, container.hub_used = hub, True
        # containerd knows a task paused before the restart: it stays paused.
        status = "paused" if task.status in ("paused", "pausing") else "running"
        container.state = container.state.evolve(status=status, pid=task.pid)
        runner.watch(container, hub)
        if runner.network is not None:
            await runner.network.restore_ports(container.id)
        runner.tell_started(container)
        return
    if task is not None:
        ended = await ns.delete_task(container.id)
        runner.record_exit(container, ended.code)
    elif container.state.running:
        runner.record_exit(container, container.state.exit_code or EXIT_UNKNOWN)
    else:
        return
    if container.definition.auto_remove:
        service.spawn(service.auto_remove(container), f"autoremove-{container.id[:12]}")
