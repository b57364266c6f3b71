"""Running containerd for dockyard: started and watched, or someone else's.

    async with EmbeddedContainerd(data_root=..., exec_root=..., log_level="info") as ctrd:
        client = Containerd(ctrd.address)

:class:`EmbeddedContainerd` renders config.toml (see ``config.py``), starts
``containerd --config …`` as a child in its own session (stdout/stderr to
``exec_root/containerd/containerd.log``), records its PID in
``exec_root/containerd/containerd.pid``, waits until it answers, restarts it
with a back-off whenever it dies, and on exit stops it: SIGTERM, a grace
period, then SIGKILL. Signals go through a pidfd, so only the process it
started (or adopted) is ever signalled, never a recycled PID.

If the pid file names a live containerd that runs our config and answers on
our socket (dockyard was killed and restarted), that process is adopted
instead of starting a second containerd on the same root.

:class:`ExternalContainerd` has the same interface for ``--containerd ADDRESS``:
it only checks that containerd answers.

Errors: ``dockyard.errors.Unavailable`` when the binary is missing, when
containerd exits during start-up or does not answer in time (the message
carries the end of its log), or when another process serves our socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from types import TracebackType

from dockyard import errors
from dockyard.containerd.client import Containerd
from dockyard.containerd.config import ContainerdLayout, render_config
from dockyard.containerd.ingest import content_root

log = logging.getLogger(__name__)

START_TIMEOUT = 20.0
STOP_GRACE = 10.0
#: Restart back-off: doubles from the first value up to the second, and starts
#: over once containerd stayed up for STABLE_AFTER seconds.
BACKOFF_INITIAL = 0.2
BACKOFF_MAX = 10.0
STABLE_AFTER = 30.0
_LOG_TAIL = 2000


class _Process:
    """A containerd process we own: our child, or one adopted from a pid file.

    The pidfd pins the process: it stays valid after exit, so a signal can
    never reach a later process that reused the PID.
    """

    def __init__(self, pid: int, child: asyncio.subprocess.Process | None) -> None:
        self.pid = pid
        self.child = child
        self.pidfd: int | None
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            if child is None:
                raise
            # Our child already exited and was reaped; asyncio's Process knows
            # that and will not signal a recycled PID.
            self.pidfd = None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signum)
            elif self.child is not None and self.child.returncode is None:
                self.child.send_signal(signum)

    async def wait(self) -> None:
        """Until the process has exited (and, for a child, been reaped)."""
        if self.child is not None:
            await self.child.wait()
            return
        assert self.pidfd is not None
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        # A pidfd polls readable once the process has exited.
        def exited() -> None:
            if not done.done():
                done.set_result(None)

        loop.add_reader(self.pidfd, exited)
        try:
            await done
        finally:
            loop.remove_reader(self.pidfd)

    def close(self) -> None:
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None


def _is_our_containerd(pid: int, config: Path) -> bool:
    """True if ``pid`` is a containerd started with our config file."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.path.basename(exe) == "containerd" and os.fsencode(config) in argv


class EmbeddedContainerd:
    """A containerd that dockyard starts, supervises and stops (see module doc)."""

    def __init__(
        self,
        *,
        data_root: Path,
        exec_root: Path,
        log_level: str = "info",
        binary: str = "containerd",
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.layout = ContainerdLayout.under(data_root=data_root, exec_root=exec_root)
        self._log_level = log_level
        self._binary = binary
        self._start_timeout = start_timeout
        self._process: _Process | None = None
        self._monitor: asyncio.Task[None] | None = None
        self._client: Containerd | None = None
        self._stopping = False
        #: Set whenever containerd answers; cleared while it is being restarted.
        self.ready = asyncio.Event()
        #: How many times containerd was restarted after dying.
        self.restarts = 0
        self.adopted = False

    @property
    def address(self) -> str:
        """The unix socket path containerd listens on."""
        return str(self.layout.address)

    @property
    def content_root(self) -> Path | None:
        """Its local content store: dockyard writes big blobs into its ingests."""
        return content_root(self.layout.root)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def __aenter__(self) -> EmbeddedContainerd:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Adopt or start containerd and wait until it answers; Unavailable if it won't."""
        layout = self.layout
        layout.root.mkdir(parents=True, exist_ok=True, mode=0o711)
        layout.state.mkdir(parents=True, exist_ok=True, mode=0o711)
        self._client = Containerd(self.address)
        try:
            config = render_config(layout=layout, log_level=self._log_level)
            if not await self._adopt():
                _write_atomic(layout.config, config)
                await self._spawn()
        except BaseException:
            await self._client.close()
            self._client = None
            raise
        self._monitor = asyncio.create_task(self._watch(), name="containerd-supervisor")

    async def stop(self) -> None:
        """Stop containerd (SIGTERM, then SIGKILL after a grace period)."""
        self._stopping = True
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        if self._process is not None:
            await self._terminate(self._process)
            self._process = None
            with contextlib.suppress(FileNotFoundError):
                self.layout.pid_file.unlink()
        if self._client is not None:
            await self._client.close()
            self._client = None
        self.ready.clear()

    async def _adopt(self) -> bool:
        """Take over a containerd left running by an earlier dockyard, if any."""
        try:
            pid = int(self.layout.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        if not _is_our_containerd(pid, self.layout.config):
            log.info("containerd pid file names no live containerd (pid %d); starting one", pid)
            self.layout.pid_file.unlink(missing_ok=True)
            return False
        try:
            process = _Process(pid, child=None)
        except ProcessLookupError:
            return False
        assert self._client is not None
        try:
            await self._client.wait_ready(min(self._start_timeout, 5.0))
        except errors.Unavailable:
            # A containerd of ours that no longer answers is of no use, and a
            # second one may not run on the same root: stop it, start afresh.
            log.warning("containerd pid %d does not answer; stopping it", pid)
            await self._terminate(process)
            return False
        log.info("adopted running containerd pid %d at %s", pid, self.address)
        self._process = process
        self.adopted = True
        self.ready.set()
        return True

    async def _spawn(self) -> None:
        layout = self.layout
        binary = shutil.which(self._binary)
        if binary is None:
            raise errors.Unavailable(
                f"containerd binary {self._binary!r} not found on PATH "
                "(install the Debian containerd package, or pass --containerd ADDRESS)"
            )
        assert self._client is not None
        with open(layout.log_file, "ab") as log_file:
            child = await asyncio.create_subprocess_exec(
                binary,
                "--config",
                str(layout.config),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                # Its own session: a Ctrl-C meant for dockyard must not kill
                # containerd before dockyard stops containers in order.
                start_new_session=True,
            )
        process = _Process(child.pid, child)
        self._process = process
        _write_atomic(layout.pid_file, f"{child.pid}\n")
        exited = asyncio.create_task(process.wait())
        ready = asyncio.create_task(self._client.wait_ready(self._start_timeout))
        try:
            await asyncio.wait({exited, ready}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            if not ready.done():
                ready.cancel()
        if ready.done() and ready.exception() is None:
            log.info("containerd %s running, pid %d, at %s", ready.result(), child.pid, self.address)
            self.ready.set()
            return
        exited_first = child.returncode is not None
        with contextlib.suppress(asyncio.CancelledError, errors.Unavailable):
            await ready
        await self._terminate(process)
        self._process = None
        layout.pid_file.unlink(missing_ok=True)
        how = (
            f"exited with status {child.returncode}"
            if exited_first
            else f"did not answer within {self._start_timeout:g}s"
        )
        raise errors.Unavailable(
            f"containerd {how} (log {layout.log_file}): {_tail(layout.log_file)}"
        )

    async def _watch(self) -> None:
        """Restart containerd whenever it dies (or a restart failed), until stop()."""
        backoff = BACKOFF_INITIAL
        while not self._stopping:
            process = self._process
            if process is not None:
                started = time.monotonic()
                await process.wait()
                if self._stopping:
                    return
                self.ready.clear()
                process.close()
                self._process = None
                if time.monotonic() - started >= STABLE_AFTER:
                    backoff = BACKOFF_INITIAL
                log.warning("containerd pid %d died; restarting in %.1fs", process.pid, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            try:
                await self._spawn()
                self.restarts += 1
            except errors.Unavailable as exc:
                log.error("containerd restart failed, will retry: %s", exc.message)

    async def _terminate(self, process: _Process) -> None:
        process.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            log.warning("containerd pid %d ignored SIGTERM; killing it", process.pid)
            process.signal(signal.SIGKILL)
            await process.wait()
        process.close()


class ExternalContainerd:
    """A containerd dockyard does not own (``--containerd ADDRESS``): never started
    or stopped, only checked to answer on entry (Unavailable if it does not)."""

    def __init__(self, address: str, *, start_timeout: float = START_TIMEOUT) -> None:
        self._address = address
        self._start_timeout = start_timeout
        self.ready = asyncio.Event()

    @property
    def address(self) -> str:
        return self._address

    @property
    def content_root(self) -> Path | None:
        """Unknown (maybe not even on this machine): blobs go over gRPC."""
        return None

    @property
    def pid(self) -> int | None:
        return None

    async def __aenter__(self) -> ExternalContainerd:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        async with Containerd(self._address) as client:
            await client.wait_ready(self._start_timeout)
        self.ready.set()

    async def stop(self) -> None:
        self.ready.clear()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(f.tell() - _LOG_TAIL, 0))
            return f.read().decode(errors="replace").strip() or "(log empty)"
    except OSError:
        return "(no log)"
