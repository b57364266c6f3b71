"""The filesystem steps of a build: RUN, COPY/ADD and WORKDIR's directory.

Each computes its cache key first (RUN: argv and the build args it sees;
COPY/ADD: the hash of the sources' content, the destination and flags;
WORKDIR: the path), returns the cached image on a hit, and otherwise does
the work on a fresh snapshot (``build.steps``) and commits the next image
(``build.image_chain``). Split from ``executor`` only for size; the two are
one unit.

Errors: ``BuildError`` from ``executor`` (a failed RUN carries its exit code).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard import errors
from dockyard.build import cache as build_cache
from dockyard.build import copy as build_copy
from dockyard.build import instructions as ins
from dockyard.build.dispatch import (
    PREDEFINED_ARGS,
    DispatchError,
    nop_created_by,
    parse_chmod,
    resolve_dest,
    run_argv,
    run_created_by,
    stage_reference,
)
from dockyard.build.image_chain import ChainImage, write_image
from dockyard.build.mount import mounted
from dockyard.build.shellwords import ShellWordError, expand_word
from dockyard.build.steps import Layer, StepRunner, Workspace, build_env
from dockyard.containerd import Namespace
from dockyard.engine import container_fs
from dockyard.oci import resolve_user
from dockyard.oci.errors import OCIError

if TYPE_CHECKING:
    from dockyard.build.executor import _BuildRun, _Stage

__all__ = ["FilesystemSteps"]

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _error(message: str, code: int = 1) -> Exception:
    from dockyard.build.executor import BuildError

    return BuildError(message, code=code)


class FilesystemSteps:
    def __init__(self, *, run: _BuildRun, ns: Namespace, runner: StepRunner, context_dir: Path) -> None:
        self.run = run
        self.ns = ns
        self.runner = runner
        self.context_dir = context_dir

    # -- RUN ------------------------------------------------------------------------

    async def run_step(self, state: _Stage, instruction: ins.Run, cache: build_cache.BuildCache) -> None:
        parent = state.image
        argv = run_argv(instruction, parent.inner)
        declared = {k: v for k, v in state.args.items() if v is not None}
        env_keys = {e.partition("=")[0] for e in parent.inner.get("Env") or []}
        history_args = {k: v for k, v in declared.items() if k not in env_keys}
        run_args = dict(history_args)
        for key in PREDEFINED_ARGS:
            value = self.run.options.build_args.get(key)
            if value is not None and key not in run_args:
                run_args[key] = value
        network = instruction.network if instruction.network != "default" else self.run.options.network_mode
        created_by = run_created_by(argv, history_args)
        key = build_cache.step_key(parent_id=parent.id, kind="RUN", values=[*argv, created_by],
                                   build_args=history_args)
        hit = await self.run.cached(cache, key)
        if hit is not None:
            state.image = hit
            self.run.shown_id(hit)
            return
        workspace = await self.runner.prepare(parent.chain_id)
        try:
            cid = f"{os.urandom(6).hex()}"
            self.run.out(f" ---> Running in {cid}\n")
            try:
                code = await self.runner.run(
                    workspace, argv=argv, env=build_env(parent.inner.get("Env") or [], run_args),
                    user=parent.inner.get("User") or "", workdir=parent.inner.get("WorkingDir") or "/",
                    network=network if network in ("none", "host") else "default",
                    extra_hosts=self.run.options.extra_hosts, output=self.run.raw_output,
                    image=parent.id or "scratch")
            except (OCIError, errors.DockyardError) as exc:
                raise _error(exc.message) from exc
            if code != 0:
                raise _error(f"The command '{' '.join(argv)}' returned a non-zero code: {code}", code)
            layer = await self.runner.commit(workspace, media_type="")
        except BaseException:
            await asyncio.shield(self.runner.discard(workspace))
            raise
        image = await write_image(self.ns, parent, inner=parent.inner, layer=layer, created_by=created_by)
        await cache.record(key, image.manifest_digest)
        self.run.out(f"Removing intermediate container {cid}\n")
        state.image = image
        self.run.shown_id(image)

    # -- WORKDIR --------------------------------------------------------------------

    async def workdir_layer(self, parent: ChainImage, path: str) -> Layer | None:
        """The layer that makes WORKDIR ``path`` exist, as dockerd's WORKDIR does;
        None when the directory is there already."""
        if path == "/":
            return None
        workspace = await self.runner.prepare(parent.chain_id)
        try:
            upper, _ = container_fs.layer_dirs(workspace.mounts)
            await asyncio.to_thread(container_fs.create_workdir, workspace.mounts, path)
            if upper is not None and os.listdir(upper):
                return await self.runner.commit(workspace, media_type="")
        except BaseException:
            await asyncio.shield(self.runner.discard(workspace))
            raise
        await self.runner.discard(workspace)
        return None

    # -- COPY / ADD -----------------------------------------------------------------

    async def copy_step(self, state: _Stage, instruction: ins.Copy | ins.Add, env: Mapping[str, str],
                        escape: str, stages: Sequence[ins.Stage], done: Mapping[int, _Stage],
                        cache: build_cache.BuildCache) -> None:
        kind = "COPY" if isinstance(instruction, ins.Copy) else "ADD"
        try:
            await self._copy(state, instruction, kind, env, escape, stages, done, cache)
        except (build_copy.CopyError, DispatchError, OCIError) as exc:
            raise _error(f"{kind} failed: {exc.message}") from exc

    def _expand(self, word: str, env: Mapping[str, str], escape: str) -> str:
        try:
            return expand_word(word, env, escape=escape)
        except ShellWordError as exc:
            raise DispatchError(str(exc)) from exc

    async def _copy(self, state: _Stage, instruction: ins.Copy | ins.Add, kind: str, env: Mapping[str, str],
                    escape: str, stages: Sequence[ins.Stage], done: Mapping[int, _Stage],
                    cache: build_cache.BuildCache) -> None:
        parent = state.image
        sources = [self._expand(s, env, escape) for s in instruction.sources]
        if kind == "ADD" and any(s.startswith(("http://", "https://")) for s in sources):
            raise DispatchError("ADD from a URL is not supported by this builder; "
                                "download the file in a RUN step or add it to the context")
        dest = resolve_dest(self._expand(instruction.dest, env, escape), parent.inner.get("WorkingDir") or "/")
        chown = self._expand(instruction.chown, env, escape) if instruction.chown else None
        chmod = parse_chmod(self._expand(instruction.chmod, env, escape) if instruction.chmod else None)
        from_ = instruction.from_ if isinstance(instruction, ins.Copy) else None
        source_image: ChainImage | None = None
        if from_:
            name = self._expand(from_, env, escape)
            index = stage_reference(name, stages, state.index)
            if index is not None:
                source_image = done[index].image
            else:
                source_image = await self.run.base_image(self.ns, name)
        work = self.runner.work_dir
        inline_dir = None
        if instruction.contents:
            inline_dir = work / f"inline-{os.urandom(4).hex()}"
            inline_dir.mkdir()
            for content in instruction.contents:
                data = self._expand(content.data, env, escape) if content.expand else content.data
                (inline_dir / content.path).write_text(data)
        view: Workspace | None = None
        try:
            if source_image is not None:
                view = await self.runner.view(source_image.chain_id)
            with _source_root(view, self.context_dir, inline_dir, work) as src_root:
                src_fd = os.open(src_root, _DIR)
                try:
                    patterns = sources if not instruction.contents else [c.path for c in instruction.contents]
                    found = await asyncio.to_thread(build_copy.find_sources, src_fd, patterns,
                                                    context=source_image is None and not inline_dir)
                    digest = await asyncio.to_thread(build_copy.hash_sources, src_fd, found)
                    values = [digest, dest, chown or "", "" if chmod is None else oct(chmod),
                              source_image.id if source_image else ""]
                    key = build_cache.step_key(parent_id=parent.id, kind=kind, values=values)
                    hit = await self.run.cached(cache, key)
                    if hit is not None:
                        state.image = hit
                        self.run.shown_id(hit)
                        return
                    layer = await self._apply(parent, src_fd, found, dest, chown, chmod,
                                              unpack=kind == "ADD")
                finally:
                    os.close(src_fd)
        finally:
            if view is not None:
                await self.runner.discard(view)
            if inline_dir is not None:
                shutil.rmtree(inline_dir, ignore_errors=True)
        what = "dir" if len(found) == 1 and found[0].is_dir else ("file" if len(found) == 1 else "multi")
        created_by = nop_created_by(parent.inner, f"{kind} {what}:{digest.removeprefix('sha256:')} in {dest} ",
                                    joined=True)
        image = await write_image(self.ns, parent, inner=parent.inner, layer=layer, created_by=created_by)
        await cache.record(key, image.manifest_digest)
        state.image = image
        self.run.shown_id(image)

    async def _apply(self, parent: ChainImage, src_fd: int, found: Sequence[build_copy.SourceFile], dest: str,
                     chown: str | None, chmod: int | None, *, unpack: bool) -> Any:
        workspace = await self.runner.prepare(parent.chain_id)
        try:
            owner = build_copy.Owner(uid=0, gid=0)
            if chown:
                owner = await asyncio.to_thread(_owner, workspace, chown)

            def copy() -> None:
                with mounted(workspace.mounts, parent=self.runner.work_dir / "mnt") as root:
                    dst_fd = os.open(root, _DIR)
                    try:
                        build_copy.copy_sources(src_fd, found, dst_fd, dest, owner=owner, chmod=chmod,
                                                unpack_archives=unpack)
                    finally:
                        os.close(dst_fd)

            await asyncio.to_thread(copy)
            return await self.runner.commit(workspace, media_type="")
        except BaseException:
            await asyncio.shield(self.runner.discard(workspace))
            raise


def _owner(workspace: Workspace, chown: str) -> build_copy.Owner:
    """``--chown`` against the destination's /etc/passwd and /etc/group; a user
    alone takes its primary group (a bare number: the same number)."""
    mounts = list(workspace.mounts)
    passwd = container_fs.read_image_file(mounts, "/etc/passwd")
    group = container_fs.read_image_file(mounts, "/etc/group")
    user, sep, grp = chown.partition(":")
    if sep:
        resolved = resolve_user(f"{user}:{grp}", passwd, group, ())
        return build_copy.Owner(uid=resolved.uid, gid=resolved.gid)
    resolved = resolve_user(user, passwd, group, ())
    gid = int(user) if user.isdigit() else resolved.gid
    return build_copy.Owner(uid=resolved.uid, gid=gid)


class _source_root:
    """The directory COPY reads from: a mounted view, the inline dir or the context."""

    def __init__(self, view: Workspace | None, context_dir: Path, inline_dir: Path | None, work: Path) -> None:
        self._view = view
        self._context = context_dir
        self._inline = inline_dir
        self._work = work
        self._mount: Any = None

    def __enter__(self) -> str:
        if self._inline is not None:
            return str(self._inline)
        if self._view is None:
            return str(self._context)
        self._mount = mounted(self._view.mounts, parent=self._work / "mnt")
        return str(self._mount.__enter__())

    def __exit__(self, *exc: object) -> None:
        if self._mount is not None:
            self._mount.__exit__(None, None, None)

