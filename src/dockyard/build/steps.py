"""What one build step does on containerd: snapshots, RUN containers, layers.

A filesystem step prepares an active snapshot on the parent's top chain id
(:meth:`StepRunner.prepare`), changes it (a RUN process, or files written
through :func:`build.mount.mounted`), then :meth:`StepRunner.commit` diffs it
against the parent into a layer blob and commits the snapshot under the new
chain id, so the result is unpacked already; an empty diff gives no layer.

A RUN step runs a short-lived containerd container of its own (label
``dockyard.build``), never a Docker-visible one: the spec is what ``docker
run`` would build from the stage's Env/User/WorkingDir (``oci.build_spec``),
with generated /etc/hosts, /etc/hostname and /etc/resolv.conf, in a fresh
network namespace with only loopback (``none``/default) or the host's
(``host``). stdout and stderr go, in arrival order, to the step's output.

Errors: what containerd raises (dockyard.errors); ``StepError`` (SystemError)
when the process cannot start.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.containerd import Descriptor, Mount, Namespace
from dockyard.engine import container_fs
from dockyard.engine.fifo import FifoReader, create_fifos, remove_fifos
from dockyard.oci import ContainerSpecInput, build_spec, resolve_user
from dockyard.oci import image as oci

__all__ = ["LABEL_BUILD", "Layer", "Output", "StepError", "StepRunner"]

LABEL_BUILD = "dockyard.build"
GC_ROOT_LABEL = "containerd.io/gc.root"
#: The diff id of a tar with no entries: such a diff adds no layer (moby's layer.IsEmpty).
EMPTY_TAR_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
#: How long output may trail the process exit (a daemonized child may hold the pipe).
OUTPUT_DRAIN_SECONDS = 2.0

Output = Callable[[bytes], Awaitable[None]]


class StepError(errors.SystemError):
    """A RUN process could not be started."""


@dataclass(frozen=True, kw_only=True)
class Layer:
    """A layer a step committed: its blob and the new top snapshot."""

    descriptor: Descriptor
    diff_id: str
    chain_id: str


@dataclass(frozen=True, kw_only=True)
class Workspace:
    """An active snapshot a step changes."""

    key: str
    parent_chain: str
    mounts: tuple[Mount, ...]


class StepRunner:
    """Step operations in one namespace, under the build's lease."""

    def __init__(self, ns: Namespace, *, work_dir: Path, capabilities: tuple[str, ...],
                 cgroup_v2: bool) -> None:
        self._ns = ns
        self._work_dir = work_dir
        self._capabilities = capabilities
        self._cgroup_v2 = cgroup_v2

    @property
    def work_dir(self) -> Path:
        return self._work_dir

    async def prepare(self, parent_chain: str) -> Workspace:
        key = f"dockyard-build-{secrets.token_hex(8)}"
        mounts = await self._ns.prepare_snapshot(key, parent_chain)
        return Workspace(key=key, parent_chain=parent_chain, mounts=tuple(mounts))

    async def view(self, chain: str) -> Workspace:
        """A read-only view of ``chain`` ("" gives no mounts: the empty root)."""
        key = f"dockyard-build-view-{secrets.token_hex(8)}"
        mounts = await self._ns.view_snapshot(key, chain) if chain else []
        return Workspace(key=key if chain else "", parent_chain=chain, mounts=tuple(mounts))

    async def discard(self, workspace: Workspace) -> None:
        if workspace.key:
            with contextlib.suppress(errors.NotFound):
                await self._ns.remove_snapshot(workspace.key)

    async def commit(self, workspace: Workspace, *, media_type: str) -> Layer | None:
        """Diff the workspace against its parent into a layer blob, commit it as
        the new chain id (the workspace is consumed). None when nothing changed."""
        lower: Sequence[Mount] = ()
        view = None
        if workspace.parent_chain:
            view = await self.view(workspace.parent_chain)
            lower = view.mounts
        try:
            desc = await self._ns.diff_mounts(
                lower, workspace.mounts, media_type=oci.OCI_LAYER,
                ref=f"dockyard-build-diff-{secrets.token_hex(8)}")
        finally:
            if view is not None:
                await self.discard(view)
        diff_id = desc.digest  # an uncompressed layer is its own diff
        if diff_id == EMPTY_TAR_DIFF_ID:
            await self.discard(workspace)
            return None
        chain_id = oci.chain_ids([workspace.parent_chain, diff_id])[1] if workspace.parent_chain else diff_id
        await self._ns.update_blob_labels(desc.digest, {oci.LABEL_UNCOMPRESSED: diff_id})
        existing = await self._ns.stat_snapshot(chain_id)
        if existing is not None and existing.kind == "committed":
            await self.discard(workspace)
        else:
            try:
                await self._ns.commit_snapshot(chain_id, workspace.key)
            except errors.Conflict:
                await self.discard(workspace)
        return Layer(descriptor=Descriptor(media_type=media_type, digest=desc.digest, size=desc.size),
                     diff_id=diff_id, chain_id=chain_id)

    async def run(
        self,
        workspace: Workspace,
        *,
        argv: Sequence[str],
        env: Sequence[str],
        user: str,
        workdir: str,
        network: str,
        extra_hosts: Sequence[str],
        output: Output,
        image: str,
    ) -> int:
        """Run ``argv`` on the workspace and return its exit code."""
        ns = self._ns
        cid = f"build-{secrets.token_hex(16)}"
        files = container_fs.ContainerFiles.under(self._work_dir / "containers", cid)
        mounts = list(workspace.mounts)
        config: dict[str, Any] = {
            "Hostname": cid[6:18], "Env": list(env), "User": user, "WorkingDir": workdir,
            "Cmd": list(argv), "Entrypoint": None,
        }
        host_config: dict[str, Any] = {"NetworkMode": network or "default",
                                       "ExtraHosts": list(extra_hosts)}

        def setup() -> dict[str, Any]:
            container_fs.write_container_files(files, hostname=config["Hostname"], config=config,
                                               host_config=host_config)
            passwd = container_fs.read_image_file(mounts, "/etc/passwd")
            group = container_fs.read_image_file(mounts, "/etc/group")
            resolved = resolve_user(user, passwd, group, ())
            container_fs.create_workdir(mounts, workdir)
            return build_spec(ContainerSpecInput(
                config=config, host_config=host_config, user=resolved,
                cgroups_path=f"/dockyard/{ns.name}/{cid}", hosts_path=str(files.hosts),
                hostname_path=str(files.hostname), resolv_path=str(files.resolv_conf),
                cgroup_v2=self._cgroup_v2, all_capabilities=self._capabilities))

        fifos = None
        readers: list[FifoReader] = []
        pumps: list[asyncio.Future[None]] = []
        created = task = False
        try:
            spec = await asyncio.to_thread(setup)
            await ns.create_container(cid, image=image, spec=spec, snapshot_key=workspace.key,
                                      labels={LABEL_BUILD: "1"})
            created = True
            # One FIFO for both streams, so there is one reader to drain. The
            # shim still gives the process two pipes and copies each into the
            # FIFO as it comes: lines of one stream keep their order, but a
            # line on stdout and one on stderr may swap, as with dockerd.
            fifos = create_fifos(self._work_dir / "fifo" / cid, "init", stdin=False, stderr=False)
            assert fifos.stdout is not None
            readers = [FifoReader.open(fifos.stdout)]
            _, stdout, _ = fifos.as_strings()
            pumps = [asyncio.ensure_future(_pump(r, output)) for r in readers]
            try:
                await ns.create_task(cid, rootfs=mounts, stdout=stdout, stderr=stdout)
                task = True
                await ns.start_task(cid)
            except errors.DockyardError as exc:
                raise StepError(f"failed to create task for container: {exc.message}") from exc
            status = await ns.wait_task(cid)
            await asyncio.wait(pumps, timeout=OUTPUT_DRAIN_SECONDS)
            return status.code
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            await asyncio.shield(self._cleanup(cid, created=created, task=task))
            for reader in readers:
                reader.close()
            if fifos is not None:
                remove_fifos(fifos)
                shutil.rmtree(fifos.directory, ignore_errors=True)
            shutil.rmtree(files.directory, ignore_errors=True)

    async def _cleanup(self, cid: str, *, created: bool, task: bool) -> None:
        ns = self._ns
        if task:
            with contextlib.suppress(errors.DockyardError):
                await ns.kill_task(cid, signal.SIGKILL, all=True)
            with contextlib.suppress(errors.DockyardError):
                await ns.delete_task(cid)
        if created:
            with contextlib.suppress(errors.DockyardError):
                await ns.delete_container(cid)


async def _pump(reader: FifoReader, output: Output) -> None:
    while data := await reader.read():
        await output(data)


def build_env(config_env: Sequence[str], build_args: Mapping[str, str]) -> list[str]:
    """The RUN environment: the stage's Env, then the build args it does not override."""
    keys = {e.partition("=")[0] for e in config_env}
    return [*config_env, *(f"{k}={v}" for k, v in build_args.items() if k not in keys)]
