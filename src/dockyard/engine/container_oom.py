"""OOM kills: containerd's ``/tasks/oom`` events → ``State.OOMKilled`` and an ``oom`` container event.

The kernel's OOM killer sends SIGKILL, so the exit code (137) comes from the
normal exit path; this watcher only marks the container, persists the mark
and publishes moby's ``oom`` event. ``spec_hook`` is the engine's hook that
adds resources, ``--init`` and sysctls to a new container's spec, with the
host facts (tini-static, this process's hard rlimits) looked up here.

Raises nothing: a lost subscription is renewed while the daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import shutil
from collections.abc import Mapping
from typing import Any

from dockyard import errors
from dockyard.engine.containers import ContainerService
from dockyard.oci.resources import apply_host_extras, check_ulimits

__all__ = ["OomWatcher", "spec_hook"]

log = logging.getLogger(__name__)

#: Debian's ``tini`` package; the static build runs in images without libc.
TINI_CANDIDATES = ("/usr/bin/tini-static", "/usr/sbin/docker-init", "/usr/bin/docker-init")
_RLIMITS = {name: getattr(resource, "RLIMIT_" + name.upper()) for name in (
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
    "rss", "rtprio", "rttime", "sigpending", "stack") if hasattr(resource, "RLIMIT_" + name.upper())}


def _init_binary() -> str | None:
    for candidate in TINI_CANDIDATES:
        if shutil.which(candidate):
            return candidate
    return shutil.which("tini-static")


def _host_hard_limits() -> dict[str, int]:
    return {name: resource.getrlimit(number)[1] for name, number in _RLIMITS.items()}


def spec_hook(spec: dict[str, Any], host_config: Mapping[str, Any]) -> None:
    """For ``ContainerService.spec_hook``: ulimit check, resources, sysctls, ``--init``."""
    check_ulimits(host_config, _host_hard_limits())
    apply_host_extras(spec, host_config, init_binary=_init_binary() if host_config.get("Init") else None)


class OomWatcher:
    """Listens to containerd's OOM events of the namespaces ``service`` has loaded."""

    def __init__(self, service: ContainerService, namespaces: tuple[str, ...]) -> None:
        self._service = service
        self._namespaces = namespaces
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> OomWatcher:
        self._tasks = [asyncio.create_task(self._watch(ns), name=f"oom-{ns}") for ns in self._namespaces]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _watch(self, namespace: str) -> None:
        ns = self._service.namespace_of(namespace)
        while True:
            try:
                async for event in ns.subscribe('topic=="/tasks/oom"'):
                    self._oom(namespace, str(event.payload.get("container_id") or ""))
            except errors.DockyardError:
                log.debug("oom subscription of %s lost; renewing", namespace)
            await asyncio.sleep(1.0)

    def _oom(self, namespace: str, container_id: str) -> None:
        container = self._service.loaded(namespace, container_id)
        if container is None or container.gone:
            return
        container.state = container.state.evolve(oom_killed=True)
        self._service.persist(container)
        self._service.publish_event(container, "oom")
