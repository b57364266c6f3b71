"""Listener addresses (dockerd's ``-H`` values) and the sockets behind them.

``parse_listener`` is pure and follows moby's ``opts/hosts.go``: ``unix:///path``
(``unix://`` alone is ``/var/run/docker.sock``), ``tcp://HOST:PORT`` (empty host
is localhost, missing port 2375). ``fd://`` and other schemes are refused, as
is plain TCP on a non-loopback address: TLS is not implemented yet, and an
unauthenticated Docker API on the network is root for anyone who reaches it.

``bind_listener`` does the I/O: a listening, non-blocking socket. For unix
sockets it creates the parent directory, replaces a stale socket file (never a
live one, never a non-socket file), and sets mode 0660 and group ``docker``
when that group exists, as dockerd does.

Errors: ``dockyard.errors.InvalidParameter`` for addresses we refuse;
``OSError`` from the kernel when binding fails.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import ipaddress
import os
import socket
import stat
from dataclasses import dataclass
from urllib.parse import urlsplit

from dockyard.errors import InvalidParameter

DEFAULT_UNIX_SOCKET = "/var/run/docker.sock"
DEFAULT_TCP_HOST = "127.0.0.1"
DEFAULT_TCP_PORT = 2375
SOCKET_GROUP = "docker"
SOCKET_MODE = 0o660
BACKLOG = 1024


@dataclass(frozen=True, kw_only=True)
class UnixListenerSpec:
    path: str

    def __str__(self) -> str:
        return f"unix://{self.path}"


@dataclass(frozen=True, kw_only=True)
class TcpListenerSpec:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


ListenerSpec = UnixListenerSpec | TcpListenerSpec


def parse_listener(address: str, *, tls: bool = False) -> ListenerSpec:
    """Parse one ``-H`` value; raises ``InvalidParameter`` for what we cannot or will not serve."""
    address = address.strip()
    scheme, sep, rest = address.partition("://")
    if not sep:
        raise InvalidParameter(f"invalid listener address {address!r}: expected unix:///path or tcp://host:port")
    if scheme == "unix":
        path = rest or DEFAULT_UNIX_SOCKET
        if "://" in path or not path.startswith("/"):
            raise InvalidParameter(f"invalid listener address {address!r}: unix socket path must be absolute")
        return UnixListenerSpec(path=path)
    if scheme == "tcp":
        return _parse_tcp(address, rest, tls=tls)
    if scheme == "fd":
        raise InvalidParameter(f"listener {address!r}: fd:// (systemd socket activation) is not supported")
    raise InvalidParameter(f"listener {address!r}: unsupported protocol {scheme!r}")


def _parse_tcp(address: str, rest: str, *, tls: bool) -> TcpListenerSpec:
    if "://" in rest:
        raise InvalidParameter(f"invalid listener address {address!r}")
    try:
        parts = urlsplit(f"tcp://{rest}")
        host = parts.hostname or DEFAULT_TCP_HOST
        port = parts.port if parts.port is not None else DEFAULT_TCP_PORT
    except ValueError as exc:
        raise InvalidParameter(f"invalid listener address {address!r}: {exc}") from None
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise InvalidParameter(f"invalid listener address {address!r}: expected tcp://host:port")
    if not tls and not _is_loopback(host):
        raise InvalidParameter(
            f"refusing to listen on {address}: plain TCP on a non-loopback address would give "
            "root on this host to anyone who can reach it, and TLS is not implemented yet; "
            "listen on 127.0.0.1 or a unix socket"
        )
    return TcpListenerSpec(host=host, port=port)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name could resolve anywhere


class BoundListener:
    """A listening socket and, for unix sockets, the file it owns.

    ``close`` is idempotent and removes the socket file if it is still ours
    (Go's UnixListener.Close does the same); the inode check keeps us from
    removing the socket of a daemon that has replaced ours meanwhile.
    """

    def __init__(self, spec: ListenerSpec, sock: socket.socket, file_id: tuple[int, int] | None) -> None:
        self.spec = spec
        self.socket = sock
        self._file_id = file_id

    @property
    def address(self) -> str:
        """The bound address as a ``-H`` value (a TCP port 0 is resolved)."""
        if isinstance(self.spec, UnixListenerSpec):
            return str(self.spec)
        host, port = self.socket.getsockname()[:2]
        return str(TcpListenerSpec(host=host, port=port))

    def close(self) -> None:
        if self.socket.fileno() < 0:
            return
        self.socket.close()
        if isinstance(self.spec, UnixListenerSpec) and self._file_id is not None:
            with contextlib.suppress(OSError):
                info = os.lstat(self.spec.path)
                if (info.st_dev, info.st_ino) == self._file_id:
                    os.unlink(self.spec.path)


def bind_listener(spec: ListenerSpec) -> BoundListener:
    """A listening, non-blocking socket for ``spec``; the caller owns and closes it."""
    if isinstance(spec, UnixListenerSpec):
        return _bind_unix(spec)
    family = socket.AF_INET6 if ":" in spec.host else socket.AF_INET
    host = "127.0.0.1" if spec.host == "localhost" else spec.host
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, spec.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return BoundListener(spec, sock, None)


def _bind_unix(spec: UnixListenerSpec) -> BoundListener:
    path = spec.path
    os.makedirs(os.path.dirname(path) or "/", mode=0o755, exist_ok=True)
    _remove_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        info = os.lstat(path)
        os.chmod(path, SOCKET_MODE)
        with contextlib.suppress(KeyError):
            os.chown(path, -1, grp.getgrnam(SOCKET_GROUP).gr_gid)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return BoundListener(spec, sock, (info.st_dev, info.st_ino))


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InvalidParameter(f"cannot listen on {path}: it exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
    else:
        raise InvalidParameter(f"cannot listen on {path}: another daemon is serving it")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
