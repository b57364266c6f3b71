"""``docker exec``: extra processes in a running container (API 1.50, moby v28).

An exec instance is created (``POST /containers/{id}/exec``), started once
(``POST /exec/{id}/start``), and can be inspected until its container is
gone. Instances live in memory, one table per endpoint, as dockerd keeps
them: they do not survive a daemon restart, and a container's instances are
dropped once the container has been removed.

Start follows STYLE rule 6: every check (the instance exists, its container
runs, it was never started) comes before the caller's ``upgrade``; the
process is created only after the hijack, so an error from the runtime (a
missing command, a directory as the command...) reaches the client the way
dockerd sends it: one ``<message>\\r\\n`` on stdout, while the instance
records moby's exit code for it (127 not found, 126 cannot be executed, 128
otherwise). A detached start (no hijack) answers such errors as HTTP errors.

The process is the container's own OCI ``process`` with args, env, cwd,
terminal, console size, user and (``Privileged``) capabilities replaced, as
moby's ``ContainerExecStart`` builds it. Its stdio goes through FIFOs in the
container's FIFO directory and a ``StdioHub`` without a log; stdout and
stderr stay separate frames unless the start asked for a TTY. The client's
half-close closes the process's stdin (``CloseIO`` with the exec id).

An instance's exit code comes from containerd's ``Wait`` on the exec. When
the container's task exits first and the shim goes with it, the wait fails;
the process was killed with its pid namespace, and the instance records 137.

Raises only dockyard.errors: NotFound (``No such exec instance: x``,
``No such container: x``), Conflict (container not running or paused, exec
already started), InvalidParameter (bad request, unknown user), SystemError.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import signal as signals
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard import errors
from dockyard.containerd import Containerd, Namespace
from dockyard.engine import container_fs
from dockyard.engine.container_model import Container
from dockyard.engine.containers import ContainerService
from dockyard.engine.endpoint import Endpoint
from dockyard.engine.fifo import create_fifos, remove_fifos
from dockyard.engine.stdio import StdinClaim, StdioHub, Subscription, write_output
from dockyard.oci import ResolvedUser, resolve_user
from dockyard.oci.spec import container_env, replace_or_append_env
from dockyard.streams import ByteStream
from dockyard.wire.stdcopy import STDOUT, frame

__all__ = [
    "Exec",
    "ExecOptions",
    "ExecService",
    "ExecStartOptions",
    "container_conflict",
    "detach_key_bytes",
    "exec_process",
    "inspect_body",
    "parse_exec_options",
    "parse_start_options",
    "start_error_exit",
]

log = logging.getLogger(__name__)

#: moby's exit codes for an exec that failed to start (daemon/errors.go).
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127
EXIT_UNKNOWN = 128
#: What an exec killed along with its container's pid namespace reports (SIGKILL).
EXIT_KILLED = 128 + signals.SIGKILL
#: dockerd waits this long for an exec's output after the process is gone.
OUTPUT_DRAIN_SECONDS = 2.0
#: dockerd's bound on a resize waiting for the process to start.
RESIZE_START_TIMEOUT = 10.0

# moby/term's ASCII table: "ctrl-@" is 0 ... "ctrl-_" is 31.
_CTRL_KEYS = ["ctrl-@", *(f"ctrl-{c}" for c in "abcdefghijklmnopqrstuvwxyz"), "ctrl-[", "ctrl-\\",
              "ctrl-]", "ctrl-^", "ctrl-_"]

Upgrade = Callable[[], Awaitable[ByteStream]]


# --- values and pure rules ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecOptions:
    """The body of ``POST /containers/{id}/exec``, checked."""

    cmd: tuple[str, ...]
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    detach_keys: bytes = b""
    privileged: bool = False
    console_size: tuple[int, int] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecStartOptions:
    """The body of ``POST /exec/{id}/start``: ``tty`` decides the framing, as in dockerd."""

    detach: bool = False
    tty: bool = False
    console_size: tuple[int, int] | None = None


def _bool(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise errors.InvalidParameter(f"invalid JSON: {key} must be a boolean")
    return value


def _str(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.InvalidParameter(f"invalid JSON: {key} must be a string")
    return value


def _strings(body: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = body.get(key)
    if value is None:
        return ()
    if isinstance(value, str) and key == "Cmd":
        return (value,)  # strslice.StrSlice takes a lone string too
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.InvalidParameter(f"invalid JSON: {key} must be an array of strings")
    return tuple(value)


def _console_size(body: Mapping[str, Any], api_version: tuple[int, int]) -> tuple[int, int] | None:
    value = body.get("ConsoleSize")
    if value is None or api_version < (1, 42):  # not part of the API before 1.42
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise errors.InvalidParameter("invalid JSON: ConsoleSize must be two unsigned integers")
    return value[0], value[1]


def detach_key_bytes(text: str) -> bytes:
    """moby/term's ToBytes: ``ctrl-p,ctrl-q`` → ``b"\\x10\\x11"``; SystemError as dockerd's 500."""
    if not text:
        return b""
    codes = bytearray()
    for key in text.split(","):
        if len(key) == 1:
            codes += key.encode("latin-1", errors="replace")[:1]
        elif key in _CTRL_KEYS:
            codes.append(_CTRL_KEYS.index(key))
        elif key == "DEL":
            codes.append(127)
        else:
            raise errors.SystemError(f"Invalid escape keys ({text}) provided")
    return bytes(codes)


def parse_exec_options(body: Mapping[str, Any] | None, *, api_version: tuple[int, int]) -> ExecOptions:
    """Check an exec create body; InvalidParameter (``No exec command specified``...)."""
    body = body or {}
    if not isinstance(body, Mapping):
        raise errors.InvalidParameter("invalid JSON: the body must be an object")
    cmd = _strings(body, "Cmd")
    if not cmd:
        raise errors.InvalidParameter("No exec command specified")
    return ExecOptions(
        cmd=cmd, env=_strings(body, "Env"), working_dir=_str(body, "WorkingDir"), user=_str(body, "User"),
        tty=_bool(body, "Tty"), attach_stdin=_bool(body, "AttachStdin"),
        attach_stdout=_bool(body, "AttachStdout"), attach_stderr=_bool(body, "AttachStderr"),
        detach_keys=detach_key_bytes(_str(body, "DetachKeys")), privileged=_bool(body, "Privileged"),
        console_size=_console_size(body, api_version))


def parse_start_options(body: Mapping[str, Any] | None, *, api_version: tuple[int, int]) -> ExecStartOptions:
    """Check an exec start body (empty is fine); a console size needs ``Tty``."""
    body = body or {}
    if not isinstance(body, Mapping):
        raise errors.InvalidParameter("invalid JSON: the body must be an object")
    tty = _bool(body, "Tty")
    size = _console_size(body, api_version)
    return ExecStartOptions(detach=_bool(body, "Detach"), tty=tty, console_size=size if tty else None)


def start_error_exit(message: str) -> tuple[int, str, bool]:
    """moby's setExitCodeFromError for a runtime error: ``(exit code, message, invalid)``.

    ``invalid`` marks the errors dockerd answers as 400 (the command's
    fault) rather than 500. The checks run in moby's order; EISDIR and
    ENOTDIR get moby's suffixes (the CLI looks for "permission denied").
    """
    text = message.lower()
    if "permission denied" in text:
        return EXIT_CANNOT_INVOKE, message, True
    if "is a directory" in text:
        return EXIT_CANNOT_INVOKE, message + ": permission denied", True
    if "not a directory" in text:
        return EXIT_NOT_FOUND, message + (": Are you trying to mount a directory onto a file (or vice-versa)? "
                                          "Check if the specified host path exists and is the expected type"), True
    if any(s in text for s in ("executable file not found", "no such file or directory",
                               "system cannot find the file specified", "failed to run runc create/exec call")):
        return EXIT_NOT_FOUND, message, True
    return EXIT_UNKNOWN, message, False


def exec_process(base: Mapping[str, Any], *, options: ExecOptions, container_config: Mapping[str, Any],
                 user: ResolvedUser | None, console_size: tuple[int, int] | None,
                 all_capabilities: Sequence[str]) -> dict[str, Any]:
    """The OCI process of an exec: the container's ``base`` process with the exec's overrides.

    Env is dockerd's CreateDaemonEnvironment for the exec's TTY (PATH,
    HOSTNAME, TERM) under the container's Env, then the exec's Env over it.
    ``user`` None keeps the container's user. Privileged grants
    ``all_capabilities`` (bounding, effective, permitted), as moby does.
    """
    process = dict(base)
    process["args"] = list(options.cmd)
    process["env"] = replace_or_append_env(container_env({**container_config, "Tty": options.tty}), options.env)
    process["cwd"] = options.working_dir or container_config.get("WorkingDir") or "/"
    process["terminal"] = options.tty
    process.pop("consoleSize", None)
    if options.tty and console_size is not None:
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    if user is not None:
        identity: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            identity["additionalGids"] = list(user.additional_gids)
        process["user"] = identity
    if options.privileged:
        caps = list(all_capabilities)
        process["capabilities"] = {**(process.get("capabilities") or {}), "bounding": caps,
                                   "effective": list(caps), "permitted": list(caps)}
    return process


class Exec:
    """One exec instance; mutated only by :class:`ExecService`."""

    def __init__(self, *, id: str, container: Container, options: ExecOptions, user: str,
                 resolved_user: ResolvedUser | None, base_process: dict[str, Any]) -> None:
        self.id = id
        self.container = container
        self.options = options
        self.user = user  # as inspect shows it: the exec's, or else the container's
        self.resolved_user = resolved_user  # None: the container's own
        self.base_process = base_process
        self.running = False
        self.exit_code: int | None = None
        self.ended_at = 0.0  # loop time of the exit, for the clean-up sweep
        self.pid = 0
        self.can_remove = False
        self.started = asyncio.Event()  # the start attempt is over (pid set, or it failed)
        self.exited = asyncio.Event()  # exit_code is set
        self.hub: StdioHub | None = None
        self.waiter: asyncio.Task[None] | None = None

    @property
    def unstarted(self) -> bool:
        return not self.running and self.exit_code is None


def inspect_body(ex: Exec) -> dict[str, Any]:
    """``GET /exec/{id}/json``, field for field as moby's ExecInspect."""
    process_config: dict[str, Any] = {
        "tty": ex.options.tty, "entrypoint": ex.options.cmd[0], "arguments": list(ex.options.cmd[1:]),
        "privileged": ex.options.privileged}
    if ex.user:
        process_config["user"] = ex.user
    return {
        "ID": ex.id,
        "Running": ex.running,
        "ExitCode": ex.exit_code,
        "ProcessConfig": process_config,
        "OpenStdin": ex.options.attach_stdin,
        "OpenStderr": ex.options.attach_stderr,
        "OpenStdout": ex.options.attach_stdout,
        "CanRemove": ex.can_remove,
        "ContainerID": ex.container.id,
        "DetachKeys": base64.b64encode(ex.options.detach_keys).decode(),
        "Pid": ex.pid,
    }


def container_conflict(container: Container, shown: str) -> errors.Conflict | None:
    """Why an exec cannot run in ``container`` now (moby's messages), or None.

    ``shown`` is how a paused container is named: the reference the client
    gave at create, the full id at start, as dockerd does.
    """
    status = container.state.status
    if not container.running:
        return errors.Conflict(f"container {container.id} is not running")
    if status == "paused":
        return errors.Conflict(f"Container {shown} is paused, unpause the container before exec")
    if status == "restarting":
        return errors.Conflict(f"Container {container.id} is restarting, wait until the container is running")
    return None


# --- the service ------------------------------------------------------------------------


#: dockerd forgets an exited exec at the second tick of a 5-minute GC after its exit.
RETENTION_SECONDS = 300.0


class ExecService:
    """Exec instances of every endpoint; processes run in ``containers``' tasks."""

    def __init__(self, *, containers: ContainerService, containerd: Containerd) -> None:
        self._containers = containers
        self._containerd = containerd
        self._tables: dict[str, dict[str, Exec]] = {}
        # The container's OCI process by container id: a containerd round trip
        # saved per exec; dropped when the container stops.
        self._processes: dict[str, dict[str, Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        containers.add_exit_listener(self._container_exited)

    async def close(self) -> None:
        """Stop watching; exec processes go on with their containers."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        for table in self._tables.values():
            for ex in table.values():
                if ex.hub is not None:
                    await ex.hub.aclose()

    async def __aenter__(self) -> ExecService:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _ns(self, ex: Exec) -> Namespace:
        return self._containerd.namespace(ex.container.namespace)

    def _table(self, endpoint: Endpoint) -> dict[str, Exec]:
        return self._tables.setdefault(endpoint.namespace, {})

    def _sweep(self, table: dict[str, Exec]) -> None:
        """Forget the instances of removed containers, and exits older than the retention."""
        horizon = asyncio.get_running_loop().time() - RETENTION_SECONDS
        for exec_id in [i for i, ex in table.items()
                        if ex.container.gone or (ex.exited.is_set() and ex.ended_at < horizon)]:
            del table[exec_id]

    def _container_exited(self, container: Container) -> None:
        # dockerd unregisters the execs that never started when their container
        # stops; running ones end with the container (see _wait).
        self._processes.pop(container.id, None)
        table = self._tables.get(container.namespace, {})
        for exec_id in [i for i, ex in table.items() if ex.container is container and ex.unstarted]:
            del table[exec_id]

    def _find(self, endpoint: Endpoint, exec_id: str) -> Exec:
        """An instance whose container still exists; NotFound otherwise."""
        ex = self._table(endpoint).get(exec_id)
        if ex is None or ex.container.gone:
            raise errors.NotFound(f"No such exec instance: {exec_id}")
        return ex

    def _active(self, endpoint: Endpoint, exec_id: str) -> Exec:
        """moby's getExecConfig: the instance, if its container runs unpaused."""
        ex = self._table(endpoint).get(exec_id)
        if ex is None:
            raise errors.NotFound(f"No such exec instance: {exec_id}")
        if ex.container.gone:
            raise errors.NotFound(f"No such container: {exec_id}")
        conflict = container_conflict(ex.container, ex.container.id)
        if conflict is not None:
            raise conflict
        return ex

    # --- create / inspect ------------------------------------------------------------------

    async def create(self, endpoint: Endpoint, ref: str, options: ExecOptions) -> str:
        """``POST /containers/{id}/exec``: the new instance's id (64 hex digits)."""
        container = await self._containers.get(endpoint, ref)
        conflict = container_conflict(container, ref)
        if conflict is not None:
            raise conflict
        resolved: ResolvedUser | None = None
        if options.user:
            # Checked now so that a bad user fails the create, as in dockerd.
            mounts = container.mounts
            if mounts is None:
                mounts = await self._containerd.namespace(container.namespace).snapshot_mounts(container.id)
            resolved = resolve_user(options.user, container_fs.read_image_file(mounts, "/etc/passwd"),
                                    container_fs.read_image_file(mounts, "/etc/group"),
                                    container.definition.host_config.get("GroupAdd") or ())
        base = self._processes.get(container.id)
        if base is None:
            base = self._processes[container.id] = await self._containers.process_spec(container)
        table = self._table(endpoint)
        self._sweep(table)
        ex = Exec(id=secrets.token_hex(32), container=container, options=options,
                  user=options.user or container.definition.config.get("User") or "",
                  resolved_user=resolved, base_process=base)
        table[ex.id] = ex
        return ex.id

    def inspect(self, endpoint: Endpoint, exec_id: str) -> dict[str, Any]:
        """``GET /exec/{id}/json``."""
        return inspect_body(self._find(endpoint, exec_id))

    # --- start -------------------------------------------------------------------------

    async def start(self, endpoint: Endpoint, exec_id: str, options: ExecStartOptions,
                    *, upgrade: Upgrade | None) -> None:
        """``POST /exec/{id}/start``: run the process; with ``upgrade``, serve its stdio until it ends.

        ``upgrade`` (None: detached) takes the connection over; it is called
        after every check and before the process is created. Detached, a
        runtime error is raised (InvalidParameter for the command's fault,
        SystemError otherwise); attached, it is written to the client.
        """
        ex = self._active(endpoint, exec_id)
        if ex.exit_code is not None:
            raise errors.Conflict(f"exec command {ex.id} has already run")
        if ex.running:
            raise errors.Conflict(f"exec command {ex.id} is already running")
        ex.running = True
        container = ex.container
        ns = self._ns(ex)
        attached = upgrade is not None
        try:
            fifos = create_fifos(self._containers.fifo_directory(container), ex.id,
                                 stdin=attached and ex.options.attach_stdin, stderr=not ex.options.tty)
        except OSError as err:
            self._record_exit(ex, EXIT_CANNOT_INVOKE)
            ex.started.set()
            raise errors.SystemError(f"cannot create the exec's stdio: {err}") from err
        hub = StdioHub(fifos, log_path=None,
                       on_stdin_eof=lambda: ns.close_io(container.id, exec_id=ex.id))
        ex.hub = hub
        claim: StdinClaim | None = None
        subscription: Subscription | None = None
        conn: ByteStream | None = None
        try:
            await hub.start()
            if upgrade is not None:
                if hub.has_stdin:
                    claim = hub.claim_stdin(close_on_eof=True)
                if ex.options.attach_stdout or ex.options.attach_stderr:
                    subscription = hub.subscribe(stdout=ex.options.attach_stdout, stderr=ex.options.attach_stderr)
                conn = await upgrade()
        except BaseException:
            # moby's exit code for a start that failed before the runtime said why.
            await self._start_failed(ex, hub, EXIT_CANNOT_INVOKE)
            raise
        try:
            pid = await self._run(ns, ex, hub, options)
        except errors.DockyardError as err:
            code, message, invalid = start_error_exit(err.message)
            await self._start_failed(ex, hub, code)
            if conn is None:
                raise (errors.InvalidParameter if invalid else errors.SystemError)(message) from err
            text = (message + "\r\n").encode()
            with contextlib.suppress(BrokenPipeError, ConnectionError):
                await conn.write(text if options.tty else frame(STDOUT, text))
            await conn.aclose()
            return
        except BaseException:
            await self._start_failed(ex, hub, EXIT_CANNOT_INVOKE)
            if conn is not None:
                await conn.aclose()
            raise
        hub.process_started()
        ex.pid = pid
        ex.started.set()
        ex.waiter = self._spawn(self._wait(ex, hub, ns), f"exec-wait-{ex.id[:12]}")
        if conn is not None:
            await self._serve(ex, hub, conn, claim, subscription, tty=options.tty)

    async def _run(self, ns: Namespace, ex: Exec, hub: StdioHub, options: ExecStartOptions) -> int:
        """Create and start the exec process; the pid. On a failed start the process is deleted."""
        container = ex.container
        process = exec_process(ex.base_process, options=ex.options, container_config=container.definition.config,
                               user=ex.resolved_user, console_size=options.console_size or ex.options.console_size,
                               all_capabilities=self._containers.all_capabilities)
        stdin, stdout, stderr = hub.fifos.as_strings()
        await ns.exec_process(container.id, ex.id, process=process, stdin=stdin, stdout=stdout, stderr=stderr,
                              terminal=ex.options.tty)
        try:
            return await ns.start_task(container.id, exec_id=ex.id)
        except BaseException:
            with contextlib.suppress(errors.DockyardError):
                await ns.delete_process(container.id, ex.id)
            raise

    async def _start_failed(self, ex: Exec, hub: StdioHub, code: int) -> None:
        await hub.aclose()
        remove_fifos(hub.fifos)
        ex.hub = None
        ex.running = False
        self._record_exit(ex, code)
        ex.started.set()

    def _record_exit(self, ex: Exec, code: int) -> None:
        ex.exit_code = code
        ex.running = False
        ex.ended_at = asyncio.get_running_loop().time()
        ex.exited.set()

    async def _serve(self, ex: Exec, hub: StdioHub, conn: ByteStream, claim: StdinClaim | None,
                     subscription: Subscription | None, *, tty: bool) -> None:
        """Copy stdin in and output out until the output has ended and the exit is recorded
        (dockerd ends the stream only then, so the client's inspect sees the exit code)."""
        stdin_task = asyncio.ensure_future(claim.copy_from(conn)) if claim is not None else None
        try:
            if subscription is not None:
                await write_output(subscription, conn, tty=tty)
            await ex.exited.wait()
        except (BrokenPipeError, ConnectionError):
            pass  # the client left; the process goes on
        finally:
            if stdin_task is not None:
                stdin_task.cancel()
                with contextlib.suppress(BaseException):
                    await stdin_task
            if claim is not None:
                claim.release()
            if subscription is not None:
                hub.unsubscribe(subscription)
            await conn.aclose()

    async def _wait(self, ex: Exec, hub: StdioHub, ns: Namespace) -> None:
        """The exit path of a started exec: record the code, drain the output, delete the process."""
        container = ex.container
        waiting = asyncio.ensure_future(ns.wait_task(container.id, exec_id=ex.id))
        ended = asyncio.ensure_future(container.exited.wait())
        code = EXIT_KILLED
        try:
            await asyncio.wait((waiting, ended), return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                # The container is gone: its shim reports the exec's end now, or never will.
                await asyncio.wait((waiting,), timeout=OUTPUT_DRAIN_SECONDS)
            if waiting.done() and not waiting.cancelled():
                if waiting.exception() is None:
                    code = waiting.result().code
                elif not container.exited.is_set():
                    log.warning("waiting for exec %s failed: %s", ex.id, waiting.exception())
        finally:
            for future in (waiting, ended):
                future.cancel()
        self._record_exit(ex, code)
        await hub.finish(grace=OUTPUT_DRAIN_SECONDS)
        remove_fifos(hub.fifos)
        ex.hub = None
        with contextlib.suppress(errors.DockyardError):
            await ns.delete_process(container.id, ex.id)

    # --- resize ------------------------------------------------------------------------

    async def resize(self, endpoint: Endpoint, exec_id: str, *, height: int, width: int) -> None:
        """``POST /exec/{id}/resize``: waits (10 s at most) for the process to start."""
        ex = self._active(endpoint, exec_id)
        try:
            await asyncio.wait_for(ex.started.wait(), RESIZE_START_TIMEOUT)
        except TimeoutError:
            raise errors.SystemError("timeout waiting for exec session ready") from None
        if ex.pid == 0:
            raise errors.InvalidParameter("exec process is not started")
        if ex.exit_code is not None:
            return  # too late to matter; the process may be deleted already
        with contextlib.suppress(errors.NotFound):
            await self._ns(ex).resize_pty(ex.container.id, width, height, exec_id=ex.id)
