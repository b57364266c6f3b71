"""The classic ``docker build`` executor, on containerd.

One :class:`Builder` serves every endpoint. ``build`` unpacks the context,
parses the Dockerfile, and runs the needed stages step by step, each step
producing an image (config + manifest in the content store) whose id the
next step builds on, exactly as dockerd's legacy builder chains images.
Before doing a step's work it asks the cache (``build.cache``) for an image
made earlier from the same parent and inputs; a hit prints ``Using cache``
and runs nothing. The final image gets the requested tags (or a dangling
record) in the endpoint's namespace: a normal image for run, push and save.

Output is dockerd's JSON message stream (``Step N/M : …``, `` ---> …``,
the RUN output, ``{"aux":{"ID":…}}``, ``Successfully built``/``tagged``).
A failure ends the stream with ``{"errorDetail":{"code":N,…},"error":…}``,
N being a failed RUN's exit code (1 otherwise), which the CLI exits with.

Everything a build writes to containerd is under one lease until the final
image record and the cache entries reference it; its files live under
``<data_root>/build/<id>/`` and are removed at the end. Concurrent builds
share nothing but the cache, whose entries are immutable.

Errors: ``BuildError`` (InvalidParameter) carries the message and the code
of a failed build; everything else raised inside a build is reported the
same way. Only option validation raises before the stream starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import shutil
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dockyard import errors
from dockyard.build import cache as build_cache
from dockyard.build import context as build_context
from dockyard.build import instructions as ins
from dockyard.build.dockerfile import parse_dockerfile
from dockyard.build.executor_steps import FilesystemSteps
from dockyard.build.image_chain import ChainImage, scratch_image, write_image
from dockyard.build.steps import StepRunner
from dockyard.build.dispatch import (
    PREDEFINED_ARGS,
    DispatchError,
    apply_config,
    expansion_env,
    nop_created_by,
    stage_reference,
    stages_needed,
    step_text,
)
from dockyard.build.shellwords import ShellWordError, expand_word
from dockyard.containerd import Containerd, Descriptor, Namespace
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.image_layers import unpack
from dockyard.engine.image_load import BodyReader
from dockyard.engine.image_pull import ImagePuller
from dockyard.engine.images import ImageService
from dockyard.oci import capabilities_from_mask
from dockyard.oci import image as oci
from dockyard.registry import AuthConfig
from dockyard.wire import jsonmessage, reference

__all__ = ["BuildError", "BuildOptions", "Builder"]

log = logging.getLogger("dockyard.build")

#: The build's lease outlives a very slow build only if dockyard keeps running.
LEASE_SECONDS = 24 * 3600

AuthFor = Callable[[reference.Reference], AuthConfig | None]


class BuildError(errors.InvalidParameter):
    """A build that failed; ``code`` is what the CLI exits with."""

    def __init__(self, message: str, *, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """The query of ``POST /build`` that the executor uses."""

    dockerfile: str = ""
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    quiet: bool = False
    network_mode: str = ""
    extra_hosts: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = ()

    def references(self) -> list[reference.Reference]:
        """The tags, parsed (``latest`` implied); InvalidParameter for a bad one."""
        refs = []
        for tag in self.tags:
            ref = reference.parse(tag)
            if ref.digest is not None:
                raise errors.InvalidParameter(f"invalid reference format: {tag} has a digest")
            refs.append(ref.with_default_tag())
        return refs


def _own_capabilities() -> tuple[str, ...]:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return capabilities_from_mask(int(line.split()[1], 16))
    return ()


class Builder:
    """``POST /build`` and ``POST /build/prune`` for every endpoint."""

    def __init__(self, *, containerd: Containerd, images: ImageService, puller: ImagePuller | None,
                 data_root: Path, max_body_bytes: int = 64 << 30) -> None:
        self._containerd = containerd
        self._images = images
        self._puller = puller
        self._work_root = data_root / "build"
        self._max_body = max_body_bytes
        self._capabilities = _own_capabilities()
        self._cgroup_v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()

    async def build(self, endpoint: Endpoint, body: BodyReader, options: BuildOptions, *,
                    auth_for: AuthFor | None = None) -> AsyncIterator[bytes]:
        """Validate ``options`` (errors here are HTTP errors), then return the
        message stream that receives the context and runs the build."""
        tags = options.references()
        if options.network_mode not in ("", "default", "bridge", "none", "host"):
            raise errors.InvalidParameter(f"network mode {options.network_mode!r} is not supported by builds")
        run = _BuildRun(self, endpoint, options, tags, auth_for or (lambda ref: None))
        return run.stream(body)

    async def prune(self, endpoint: Endpoint) -> dict[str, Any]:
        """``POST /build/prune``: forget every cache entry of the endpoint."""
        ns = self._containerd.namespace(endpoint.namespace)
        deleted, reclaimed = await build_cache.BuildCache(ns).prune()
        return {"CachesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


@dataclass
class _Stage:
    """A stage as it runs: its current image and what the instructions set."""

    index: int
    name: str | None
    image: ChainImage
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False


class _BuildRun:
    """One build: owns its work directory, lease and message queue."""

    def __init__(self, builder: Builder, endpoint: Endpoint, options: BuildOptions,
                 tags: Sequence[reference.Reference], auth_for: AuthFor) -> None:
        self.b = builder
        self.endpoint = endpoint
        self.options = options
        self.tags = tags
        self.auth_for = auth_for
        self.ns = builder._containerd.namespace(endpoint.namespace)
        self.work = builder._work_root / secrets.token_hex(8)
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.quiet_buffer: list[bytes] = []
        self.used_args: set[str] = set()
        self.meta_args: dict[str, str | None] = {}
        self.step = 0
        self.total = 0

    # -- output ---------------------------------------------------------------------

    def out(self, text: str) -> None:
        message = jsonmessage.stream(text)
        if self.options.quiet:
            self.quiet_buffer.append(message)
        else:
            self.queue.put_nowait(message)

    async def raw_output(self, data: bytes) -> None:
        self.out(data.decode("utf-8", errors="replace"))

    async def stream(self, body: BodyReader) -> AsyncIterator[bytes]:
        task = asyncio.create_task(self.run(body))
        try:
            while (item := await self.queue.get()) is not None:
                yield item
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def run(self, body: BodyReader) -> None:
        try:
            image_id = await self.run_build(body)
            if self.options.quiet:
                self.queue.put_nowait(jsonmessage.stream(image_id + "\n"))
        except Exception as exc:  # every failure ends the stream as an error message
            code = exc.code if isinstance(exc, BuildError) else 1
            if isinstance(exc, (errors.DockyardError, ins.DockerfileError)):
                message = exc.message if isinstance(exc, errors.DockyardError) else str(exc)
            else:
                log.exception("build failed")
                message = str(exc) or type(exc).__name__
            for buffered in self.quiet_buffer:
                self.queue.put_nowait(buffered)
            self.queue.put_nowait(jsonmessage.error(message, code=code))
        finally:
            await asyncio.to_thread(shutil.rmtree, self.work, True)
            self.queue.put_nowait(None)

    # -- the build ------------------------------------------------------------------

    async def run_build(self, body: BodyReader) -> str:
        context_dir = self.work / "context"
        context_dir.mkdir(parents=True)
        spooled = await build_context.receive_context(body, spool_dir=self.work, limit=self.b._max_body)
        try:
            await asyncio.to_thread(build_context.unpack_context, spooled, context_dir)
        finally:
            spooled.close()
        name, text = await asyncio.to_thread(build_context.read_dockerfile, context_dir, self.options.dockerfile)
        await asyncio.to_thread(build_context.apply_dockerignore, context_dir, keep=(name,))
        try:
            dockerfile = parse_dockerfile(text)
        except ins.DockerfileSyntaxError as exc:
            raise BuildError(f"failed to parse {name}: {exc}") from exc
        except ins.DockerfileError as exc:
            raise BuildError(str(exc)) from exc
        if dockerfile.syntax:
            self.out(f"[WARNING]: the syntax directive ({dockerfile.syntax}) is ignored by the classic builder\n")
        stages = list(dockerfile.stages)
        if not stages:
            raise BuildError("no build stage in current context")
        target = len(stages) - 1
        if self.options.target:
            found = [i for i, s in enumerate(stages) if s.name == self.options.target.lower()]
            if not found:
                raise BuildError(f"failed to reach build target {self.options.target} in Dockerfile")
            target = found[0]
        needed = stages_needed(stages, target)
        label_step = bool(self.options.labels)
        self.total = (sum(len(a.args) and 1 for a in dockerfile.meta_args)
                      + sum(1 + len(stages[i].instructions) for i in needed) + int(label_step))

        async with self.ns.lease(expire_seconds=LEASE_SECONDS) as leased:
            runner = StepRunner(leased, work_dir=self.work, capabilities=self.b._capabilities,
                                cgroup_v2=self.b._cgroup_v2)
            fs = FilesystemSteps(run=self, ns=leased, runner=runner, context_dir=context_dir)
            cache = build_cache.BuildCache(leased)
            for meta in dockerfile.meta_args:
                self.begin(meta.original)
                env = {k: v for k, v in self.meta_args.items() if v is not None}
                for definition in meta.args:
                    self.meta_args[definition.key] = self.arg_value(definition, env, dockerfile.escape)
                    if self.meta_args[definition.key] is not None:
                        env[definition.key] = self.meta_args[definition.key]  # type: ignore[assignment]
            done: dict[int, _Stage] = {}
            for index in needed:
                stage = stages[index]
                state = await self.from_step(leased, stage, index, stages, done, dockerfile.escape, fs, cache)
                instructions: list[ins.Instruction] = list(stage.instructions)
                if label_step and index == target:
                    instructions.append(self.label_instruction())
                for instruction in instructions:
                    self.begin(instruction.original)
                    await self.dispatch(leased, state, instruction, dockerfile.escape, stages, done, fs, cache)
                done[index] = state
            final = done[target].image
            await self.finish(final)
        unused = sorted(k for k in self.options.build_args if k not in self.used_args
                        and k not in PREDEFINED_ARGS)
        if unused:
            self.out(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        self.queue.put_nowait(jsonmessage.aux({"ID": final.id}))
        self.out(f"Successfully built {final.id.removeprefix('sha256:')[:12]}\n")
        for tag in self.tags:
            self.out(f"Successfully tagged {tag.familiar()}\n")
        return final.id

    def begin(self, original: str) -> None:
        self.step += 1
        self.out(f"Step {self.step}/{self.total} : {step_text(original)}\n")

    def label_instruction(self) -> ins.Label:
        pairs = tuple(ins.KeyValue(key=_quote(k), value=_quote(v), legacy=False)
                      for k, v in sorted(self.options.labels.items()))
        text = "LABEL " + " ".join(f"{p.key}={p.value}" for p in pairs)
        return ins.Label(original=text, start_line=0, end_line=0, pairs=pairs)

    def arg_value(self, definition: ins.ArgDefinition, env: Mapping[str, str], escape: str) -> str | None:
        """An ARG's value: ``--build-arg`` first, else its default (expanded)."""
        self.used_args.add(definition.key)
        given = self.options.build_args.get(definition.key)
        if given is not None:
            return given
        if definition.default is None:
            return None
        try:
            return expand_word(definition.default, env, escape=escape)
        except ShellWordError as exc:
            raise BuildError(str(exc)) from exc

    def shown_id(self, image: ChainImage) -> None:
        self.out(f" ---> {image.short_id}\n")

    async def finish(self, image: ChainImage) -> None:
        target = image.descriptor
        if self.tags:
            for tag in self.tags:
                await self.b._images.store.tag(self.ns, str(tag), target)
        else:
            await self.b._images.store.keep_named(self.ns, target)

    # -- FROM -----------------------------------------------------------------------

    async def from_step(self, ns: Namespace, stage: ins.Stage, index: int, stages: Sequence[ins.Stage],
                        done: Mapping[int, _Stage], escape: str, fs: FilesystemSteps,
                        cache: build_cache.BuildCache) -> _Stage:
        self.begin(stage.from_.original)
        meta_env = {k: v for k, v in self.meta_args.items() if v is not None}
        try:
            base = expand_word(stage.base, meta_env, escape=escape)
        except ShellWordError as exc:
            raise BuildError(str(exc)) from exc
        if not base:
            raise BuildError("base name (" + stage.base + ") should not be blank")
        ref_index = stage_reference(base, stages, index)
        if ref_index is not None and ref_index in done:
            image = done[ref_index].image
        elif base.lower() == "scratch":
            image = scratch_image()
        else:
            image = await self.base_image(ns, base)
        self.shown_id(image) if image.id else None
        state = _Stage(index=index, name=stage.name, image=image)
        triggers = list(image.inner.get("OnBuild") or [])
        if triggers:
            self.out(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            inner = dict(image.inner)
            inner["OnBuild"] = None
            state.image = replace(image, config={**image.config, "config": inner})
            for trigger in triggers:
                try:
                    parsed = parse_dockerfile(f"FROM scratch\n{trigger}\n").stages[0].instructions
                except ins.DockerfileError as exc:
                    raise BuildError(str(exc)) from exc
                for instruction in parsed:
                    await self.dispatch(ns, state, instruction, escape, stages, done, fs, cache)
        return state

    async def base_image(self, ns: Namespace, name: str) -> ChainImage:
        """The image ``name`` of the endpoint, pulled when missing or with ``pull``."""
        store = self.b._images.store
        try:
            ref = reference.parse(name)
        except errors.InvalidParameter as exc:
            raise BuildError(f"invalid reference format: {exc.message}") from exc
        found = None
        if not self.options.pull:
            with contextlib.suppress(errors.NotFound):
                found = await store.lookup(self.ns, name)
        if found is None:
            await self.pull(ref if ref.digest else ref.with_default_tag())
            found = await store.lookup(self.ns, name)
        resolved = found.resolved
        config_raw = dict(resolved.config.raw)
        image = ChainImage(
            id=found.id, config=config_raw, layers=resolved.manifest.layers,
            manifest_digest=resolved.manifest_digest,
            oci_types=resolved.manifest.media_type == oci.OCI_MANIFEST,
            manifest_size=0,
        )
        chain = image.chain_id
        if chain and await ns.stat_snapshot(chain) is None:
            layers = [Descriptor(media_type=d.media_type, digest=d.digest, size=d.size) for d in image.layers]
            await unpack(ns, layers, image.diff_ids)
        return image

    async def pull(self, ref: reference.Reference) -> None:
        if self.b._puller is None:
            raise BuildError(f"No such image: {ref.familiar()}")
        try:
            messages = await self.b._puller.pull(self.endpoint, ref=ref, auth=self.auth_for(ref))
        except errors.DockyardError as exc:
            raise BuildError(exc.message) from exc
        async for message in messages:
            for decoded in jsonmessage.iter_messages(message):
                if "error" in decoded or "errorDetail" in decoded:
                    raise BuildError(str(decoded.get("error") or decoded["errorDetail"].get("message")))
            if not self.options.quiet:
                self.queue.put_nowait(message)

    # -- instructions ---------------------------------------------------------------

    async def dispatch(self, ns: Namespace, state: _Stage, instruction: ins.Instruction, escape: str,
                       stages: Sequence[ins.Stage], done: Mapping[int, _Stage], fs: FilesystemSteps,
                       cache: build_cache.BuildCache) -> None:
        image = state.image
        env = expansion_env(image.inner.get("Env") or [], state.args)
        try:
            if isinstance(instruction, ins.Arg):
                for definition in instruction.args:
                    value = self.arg_value(definition, env, escape)
                    if value is None and definition.default is None:
                        value = self.meta_args.get(definition.key)
                    state.args[definition.key] = value
                    if value is not None:
                        env = expansion_env(image.inner.get("Env") or [], state.args)
                await self.config_step(state, dict(image.inner), instruction.original, cache,
                                       comment=_arg_comment(instruction))
                return
            if isinstance(instruction, ins.Run):
                await fs.run_step(state, instruction, cache)
                return
            if isinstance(instruction, (ins.Copy, ins.Add)):
                await fs.copy_step(state, instruction, env, escape, stages, done, cache)
                return
            change = apply_config(instruction, image.inner, env, escape=escape, cmd_set=state.cmd_set)
        except DispatchError as exc:
            raise BuildError(exc.message) from exc
        if isinstance(instruction, ins.Cmd):
            state.cmd_set = True
        await self.config_step(state, change.config, instruction.original, cache, comment=change.comment,
                               author=change.author,
                               fs=fs if isinstance(instruction, ins.Workdir) else None)

    async def config_step(self, state: _Stage, inner: dict[str, Any], original: str,
                          cache: build_cache.BuildCache, *, comment: str, author: str | None = None,
                          fs: FilesystemSteps | None = None) -> None:
        """Commit a config change as a new image: an empty layer in history, but
        for a WORKDIR (``fs`` given) whose directory had to be made."""
        parent = state.image
        created_by = nop_created_by(parent.inner, comment, joined=fs is not None)
        key = build_cache.step_key(parent_id=parent.id, kind="config",
                                   values=[json.dumps(inner, sort_keys=True), created_by, author or ""])
        hit = await self.cached(cache, key)
        if hit is not None:
            state.image = hit
            self.shown_id(hit)
            return
        layer = await fs.workdir_layer(parent, inner.get("WorkingDir") or "/") if fs is not None else None
        image = await write_image(cache.ns, parent, inner=inner, layer=layer,
                                  created_by=created_by, author=author)
        await cache.record(key, image.manifest_digest)
        state.image = image
        self.shown_id(image)

    async def cached(self, cache: build_cache.BuildCache, key: str, *, quiet: bool = False) -> ChainImage | None:
        """The image cached under ``key`` (printing ``Using cache``), or None."""
        if self.options.no_cache:
            return None
        manifest_digest = await cache.lookup(key)
        if manifest_digest is None:
            return None
        try:
            image = await ChainImage.load(cache.ns, self.b._images.store, manifest_digest)
        except errors.DockyardError:
            return None
        if image.chain_id and await cache.ns.stat_snapshot(image.chain_id) is None:
            return None
        if not quiet:
            self.out(" ---> Using cache\n")
        return image


def _quote(text: str) -> str:
    return json.dumps(text)


def _arg_comment(arg: ins.Arg) -> str:
    parts = [d.key if d.default is None else f"{d.key}={d.default}" for d in arg.args]
    return "ARG " + " ".join(parts)

