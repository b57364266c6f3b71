"""Composition root: containerd, services, listeners, and the shutdown order.

Start-up: pid-file lock → containerd (embedded or external) → client and
namespace → services → HTTP listeners (readiness: the sockets accept).
Shutdown (SIGTERM/SIGINT) runs in reverse: listeners close and open streams
end, services stop, containerd is stopped if we started it, the lock is
released. Nothing here knows HTTP or gRPC details.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.build.executor import Builder
from dockyard.config import Config
from dockyard.containerd.client import Containerd
from dockyard.containerd.supervisor import EmbeddedContainerd, ExternalContainerd
from dockyard.engine.container_archive import ArchiveService
from dockyard.engine.container_commit import CommitService
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import DEFAULT_ENDPOINT, Endpoint
from dockyard.engine.events import EventBus
from dockyard.engine.exec import ExecService
from dockyard.engine.host import load_engine_id, probe_host
from dockyard.engine.image_pull import ImagePuller
from dockyard.engine.image_push import ImagePusher
from dockyard.engine.images import ImageService
from dockyard.engine.system import ContainerCounts, ContainerdFacts, SystemService
from dockyard.engine.volumes import VolumeService
from dockyard.http.listeners import parse_listener
from dockyard.http.router import Router
from dockyard.http.server import HttpServer
from dockyard.network.service import NetworkService
from dockyard.pidfile import PidFile
from dockyard.registry import RegistryClient
from dockyard.wire.filters import Filters

log = logging.getLogger("dockyard")


@dataclass(frozen=True, kw_only=True)
class Services:
    """Everything the API layer calls, for one daemon."""

    containerd: Containerd
    system: SystemService
    images: ImageService
    containers: ContainerService
    network: NetworkService | None = None
    registry: RegistryClient | None = None
    puller: ImagePuller | None = None
    pusher: ImagePusher | None = None
    execs: ExecService | None = None
    builder: Builder | None = None
    events: EventBus | None = None
    archive: ArchiveService | None = None
    commit: CommitService | None = None


@contextlib.asynccontextmanager
async def containerd_for(config: Config) -> AsyncIterator[EmbeddedContainerd | ExternalContainerd]:
    if config.containerd:
        supervisor: EmbeddedContainerd | ExternalContainerd = ExternalContainerd(config.containerd)
    else:
        supervisor = EmbeddedContainerd(
            data_root=config.data_root, exec_root=config.exec_root, log_level=config.log_level
        )
    async with supervisor:
        yield supervisor


def build_router(services: Services, endpoint: Endpoint) -> Router:
    """The routes one endpoint serves; every handler is bound to that endpoint."""
    from dockyard.api import auth as auth_api
    from dockyard.api import containers as containers_api
    from dockyard.api import images as images_api
    from dockyard.api import system as system_api

    router = Router()
    system_api.register(router, services.system, endpoint)
    images_api.register(router, services.images, endpoint, puller=services.puller, pusher=services.pusher)
    if services.registry is not None:
        auth_api.register(router, services.registry, endpoint)
    containers_api.register(router, services.containers, endpoint)
    from dockyard.api import container_lifecycle as lifecycle_api
    from dockyard.engine.container_lifecycle import ContainerLifecycle

    lifecycle_api.register(router, ContainerLifecycle(services.containers), endpoint)
    from dockyard.api import container_stats as stats_api
    from dockyard.engine.container_stats import ContainerStats
    from dockyard.engine.container_update import ContainerUpdater

    stats_api.register(router, ContainerStats(services.containers), ContainerUpdater(services.containers), endpoint)
    if services.network is not None:
        from dockyard.api import networks as networks_api

        networks_api.register(router, services.network, services.containers, endpoint)
    if services.execs is not None:
        from dockyard.api import exec as exec_api

        exec_api.register(router, services.execs, endpoint)
    if services.events is not None:
        from dockyard.api import events as events_api

        events_api.register(router, services.events, endpoint)
    if services.builder is not None:
        from dockyard.api import build as build_api

        build_api.register(router, services.builder, endpoint)
    if services.archive is not None and services.commit is not None:
        from dockyard.api import archive as archive_api

        archive_api.register(router, containers=services.containers, archive=services.archive,
                             commit=services.commit, containerd=services.containerd, endpoint=endpoint)
    if services.containers.volumes is not None:
        from dockyard.api import volumes as volumes_api

        volumes_api.register(router, services.containers.volumes, endpoint)
    return router


async def serve(config: Config) -> None:
    """Run the daemon until SIGTERM or SIGINT."""
    listeners = [parse_listener(host) for host in config.hosts]  # refuse bad hosts before anything starts
    config.data_root.mkdir(parents=True, exist_ok=True)
    config.exec_root.mkdir(parents=True, exist_ok=True)
    # The lock guards the data root: two daemons on one root would corrupt it.
    pidfile = PidFile(config.data_root / "dockyard.pid")
    pidfile.acquire()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with contextlib.AsyncExitStack() as stack:
            supervisor = await stack.enter_async_context(containerd_for(config))
            client = await stack.enter_async_context(
                Containerd(supervisor.address, content_root=supervisor.content_root)
            )
            await client.wait_ready(30)
            info = await client.version_info()
            await client.create_namespace(DEFAULT_ENDPOINT.namespace)
            services = await _build_services(
                stack, config, client, ContainerdFacts(version=info.version, revision=info.revision)
            )
            router = build_router(services, DEFAULT_ENDPOINT)
            server = HttpServer(router, max_body_bytes=config.max_body_bytes)
            async with server.serve(listeners):
                for host in config.hosts:
                    log.info("API listen on %s", host)
                await stop.wait()
                log.info("shutting down")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        pidfile.release()


async def _build_services(
    stack: contextlib.AsyncExitStack, config: Config, client: Containerd, containerd: ContainerdFacts
) -> Services:
    """Build the services; the stack closes them, in reverse, at shutdown."""
    host = await probe_host()
    tmp_dir = config.data_root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    # Layers unpack while they stream in (pulls, loads) when containerd's files
    # are on this machine (the embedded one): staged beside them, then moved in.
    on_this_machine = client.content_root is not None
    images = ImageService(
        containerd=client, tmp_dir=tmp_dir, max_body_bytes=config.max_body_bytes,
        staging_root=config.data_root / "unpack-load" if on_this_machine else None,
    )  # fmt: skip
    events = EventBus()
    images.set_events(events)

    network = await stack.enter_async_context(
        NetworkService(data_root=config.data_root, exec_root=config.exec_root))

    # Closing stops watching; running containers keep running and are adopted at next start.
    containers = ContainerService(
        containerd=client, images=images, data_root=config.data_root, exec_root=config.exec_root,
        network=network,
    )
    # The bus before entering: loading adopts the containers, and a task that
    # ended while dockyard was down publishes its "die" then.
    containers.set_events(events)
    await stack.enter_async_context(containers)
    volumes = VolumeService(data_root=config.data_root, exec_root=config.exec_root)
    volumes.set_events(events)
    containers.set_volumes(volumes)
    containers.log_defaults = dict(config.log_opts)
    from dockyard.engine import container_oom
    from dockyard.engine.restart_policy import RestartManager

    containers.spec_hook = container_oom.spec_hook
    await stack.enter_async_context(container_oom.OomWatcher(containers, (DEFAULT_ENDPOINT.namespace,)))
    RestartManager(containers).resume()  # dockerd's start-up pass over restart policies

    # Closed before the containers: exec waiters watch the containers' tasks.
    execs = await stack.enter_async_context(ExecService(containers=containers, containerd=client))
    from dockyard.engine.health import HealthMonitor

    # Closed before the execs: a probe in flight is an exec.
    health = await stack.enter_async_context(HealthMonitor(containers=containers, execs=execs, containerd=client))
    containers.add_start_listener(health.container_started)
    containers.add_exit_listener(health.container_exited)
    containers.add_action_listener(lambda c, action: health.forget(c.id) if action == "remove" else None)
    containers.health_state = health.wire_state

    async def count_containers(endpoint: Endpoint) -> ContainerCounts:
        return await containers.count(endpoint)

    async def count_images(endpoint: Endpoint) -> int:
        return len(await images.list_images(endpoint, filters=Filters()))

    system = SystemService(
        config=config,
        host=host,
        containerd=containerd,
        engine_id=load_engine_id(config.data_root),
        count_containers=count_containers,
        count_images=count_images,
    )
    # Registries as daemon.json configures them; certs.d sits beside the config file.
    registry = await stack.enter_async_context(RegistryClient(
        insecure_registries=config.insecure_registries,
        mirrors=config.registry_mirrors,
        certs_dir=config.config_file.parent / "certs.d" if config.config_file else None,
    ))  # fmt: skip
    staging = config.data_root / "unpack" if on_this_machine else None
    puller = ImagePuller(containerd=client, store=images.store, registry=registry, staging_root=staging)
    pusher = ImagePusher(containerd=client, store=images.store, registry=registry)
    puller.on_pulled = lambda ns, ref, name: events.publish_image(ns, image_id=ref, name=name, action="pull")
    pusher.on_pushed = lambda ns, ref, name: events.publish_image(ns, image_id=ref, name=name, action="push")
    builder = Builder(containerd=client, images=images, puller=puller, data_root=config.data_root,
                      max_body_bytes=config.max_body_bytes)
    return Services(
        containerd=client, system=system, images=images, containers=containers, registry=registry, execs=execs,
        network=network,
        puller=puller,
        pusher=pusher,
        events=events,
        builder=builder,
        archive=ArchiveService(containers=containers, containerd=client, exec_root=config.exec_root),
        commit=CommitService(containers=containers, images=images, containerd=client),
    )  # fmt: skip
