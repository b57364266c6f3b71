"""Real registries for tests: Debian's ``docker-registry`` (CNCF distribution 2.8).

:func:`start_registry` runs the binary on 127.0.0.1 with a free port and its
own storage directory, optionally behind htpasswd Basic auth, token (Bearer)
auth, TLS, or as a pull-through proxy of another registry. It is stopped by
the PID it was started with (:func:`stop_registry`).

:class:`TokenServer` is a small token service in the shape of the distribution
token spec (``GET`` with Basic credentials, ``POST`` with a refresh token), run
in a thread of the test process on 127.0.0.1. Its JWTs are RS256-signed with
a key made by ``openssl``; the signature itself is computed here
(``pow(m, d, n)``) because the venv has no crypto library, and the registry
trusts the certificate through its ``rootcertbundle`` and the ``x5c`` header.

Nothing here reaches beyond the loopback interface.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dockyard.oci.image import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    encode_manifest,
)
from dockyard.registry import AuthConfig, RegistryClient
from dockyard.testing.fixtures import compress, files_layer, image_config, sha256
from dockyard.wire.archive import Compression

REGISTRY_BINARY = "/usr/bin/docker-registry"
TOKEN_SERVICE = "dockyard-test-registry"
TOKEN_ISSUER = "dockyard-test-issuer"


class RegistryFailed(RuntimeError):
    """The registry exited or did not answer in time; the message has its log tail."""


def free_port() -> int:
    """A port free on 127.0.0.1 right now (another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def htpasswd_line(username: str, password: str) -> str:
    """A bcrypt htpasswd line, the only scheme distribution's htpasswd accepts.

    The stdlib ``crypt`` module (glibc's libxcrypt) makes ``$2b$`` hashes, so
    no bcrypt package is needed; it is deprecated but present in Python 3.11.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        # Cost 4 (16 rounds), the minimum: these hashes guard throwaway test users.
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("libcrypt cannot make bcrypt hashes")
    return f"{username}:{hashed}"


@dataclass(frozen=True, kw_only=True)
class TLSFiles:
    """A server certificate and key for the registry; the CA is the caller's to trust."""

    certificate: Path
    key: Path


@dataclass(frozen=True, kw_only=True)
class RunningRegistry:
    host: str  # "127.0.0.1:PORT", what a reference names
    scheme: str
    root: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def _config_yaml(
    *,
    storage: Path,
    port: int,
    htpasswd: Path | None,
    token: TokenServer | None,
    tls: TLSFiles | None,
    proxy_remote: str | None,
) -> str:
    # JSON is YAML: quoting every path through json.dumps keeps odd characters safe.
    q = json.dumps
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: false",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {q(str(storage))}",
        "  delete:",
        "    enabled: true",
        "http:",
        f"  addr: {q(f'127.0.0.1:{port}')}",
        f"  secret: {q(secrets.token_hex(16))}",
    ]
    if tls is not None:
        lines += ["  tls:", f"    certificate: {q(str(tls.certificate))}", f"    key: {q(str(tls.key))}"]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: dockyard-test", f"    path: {q(str(htpasswd))}"]
    elif token is not None:
        lines += [
            "auth:",
            "  token:",
            f"    realm: {q(token.realm)}",
            f"    service: {q(TOKEN_SERVICE)}",
            f"    issuer: {q(TOKEN_ISSUER)}",
            f"    rootcertbundle: {q(str(token.certificate))}",
        ]
    if proxy_remote is not None:
        lines += ["proxy:", f"  remoteurl: {q(proxy_remote)}"]
    return "\n".join(lines) + "\n"


def start_registry(
    root: Path,
    *,
    users: Mapping[str, str] | None = None,
    token: TokenServer | None = None,
    tls: TLSFiles | None = None,
    proxy_remote: str | None = None,
    timeout: float = 20,
) -> RunningRegistry:
    """Start ``docker-registry`` with its storage, config and log under ``root``.

    ``users`` turns on htpasswd Basic auth; ``token`` turns on Bearer auth
    against that token server (one or the other). Returns once ``/v2/``
    answers; raises :class:`RegistryFailed` otherwise.
    """
    if users is not None and token is not None:
        raise ValueError("htpasswd and token auth are exclusive")
    root.mkdir(parents=True, exist_ok=True)
    htpasswd = None
    if users is not None:
        htpasswd = root / "htpasswd"
        htpasswd.write_text("".join(htpasswd_line(u, p) + "\n" for u, p in users.items()))
    storage = root / "storage"
    storage.mkdir(exist_ok=True)
    config = root / "config.yml"
    log_path = root / "registry.log"
    last_error = ""
    for _attempt in range(3):  # the free port can be taken between probe and bind
        port = free_port()
        config.write_text(
            _config_yaml(
                storage=storage, port=port, htpasswd=htpasswd, token=token, tls=tls,
                proxy_remote=proxy_remote,
            )
        )
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        registry = RunningRegistry(
            host=f"127.0.0.1:{port}", scheme="https" if tls else "http", root=root,
            process=process, log_path=log_path,
        )
        if _wait_listening(registry, timeout):
            return registry
        stop_registry(registry)
        last_error = registry.log()[-3000:]
    raise RegistryFailed(f"docker-registry did not start:\n{last_error}")


def _wait_listening(registry: RunningRegistry, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", registry.port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_registry(registry: RunningRegistry, timeout: float = 10) -> None:
    """SIGTERM by PID, SIGKILL after ``timeout``; idempotent."""
    if registry.process.poll() is not None:
        return
    registry.process.send_signal(signal.SIGTERM)
    try:
        registry.process.wait(timeout)
    except subprocess.TimeoutExpired:
        registry.process.kill()
        registry.process.wait()


# Certificates ------------------------------------------------------------------


def make_ca(directory: Path, name: str = "dockyard-test-ca") -> TLSFiles:
    """A self-signed CA (RSA 2048, one day) made with ``openssl``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert),
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"],
        check=True, capture_output=True,
    )  # fmt: skip
    return TLSFiles(certificate=cert, key=key)


def make_server_cert(directory: Path, ca: TLSFiles, ip: str = "127.0.0.1") -> TLSFiles:
    """A server certificate for ``ip`` signed by ``ca``."""
    directory.mkdir(parents=True, exist_ok=True)
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName=IP:{ip},DNS:localhost\nextendedKeyUsage=serverAuth\n")
    subprocess.run(
        ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={ip}",
         "-keyout", str(key), "-out", str(csr)],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca.certificate),
         "-CAkey", str(ca.key), "-CAcreateserial", "-days", "1", "-extfile", str(ext),
         "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return TLSFiles(certificate=cert, key=key)


# Token server ------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


@dataclass(frozen=True, kw_only=True)
class _RSAKey:
    n: int
    d: int

    def sign_pkcs1v15_sha256(self, message: bytes) -> bytes:
        size = (self.n.bit_length() + 7) // 8
        t = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
        encoded = b"\x00\x01" + b"\xff" * (size - len(t) - 3) + b"\x00" + t
        return pow(int.from_bytes(encoded, "big"), self.d, self.n).to_bytes(size, "big")


def _read_rsa_key(key: Path) -> _RSAKey:
    text = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-noout", "-text"],
        check=True, capture_output=True, text=True,
    ).stdout

    def number(label: str) -> int:
        m = re.search(rf"^{label}:\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)
        if m is None:
            raise RuntimeError(f"openssl printed no {label}")
        return int(re.sub(r"[\s:]", "", m.group(1)), 16)

    return _RSAKey(n=number("modulus"), d=number("privateExponent"))


@dataclass(frozen=True, kw_only=True)
class TokenRequest:
    """What the token server saw: for asserting which flow a client used."""

    method: str
    username: str  # "" for anonymous
    grant_type: str  # "" for GET, else the POST form's grant_type
    scopes: tuple[str, ...]
    service: str
    offline_token: bool


@dataclass(kw_only=True)
class TokenServer:
    """Distribution-style token service in a thread; use as a context manager.

    Grants every requested action to an authenticated user (password or a
    refresh token it issued) and none to anonymous callers, so the registry
    answers those with 401. ``expires_in`` is what it reports to clients.
    """

    directory: Path
    users: Mapping[str, str]
    expires_in: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    _refresh_tokens: dict[str, str] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _key: _RSAKey | None = None
    _cert_der: bytes = b""

    @property
    def certificate(self) -> Path:
        return self.directory / "token.crt"

    @property
    def realm(self) -> str:
        assert self._server is not None, "token server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def __enter__(self) -> TokenServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        key_path = self.directory / "token.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=dockyard-test-token", "-keyout", str(key_path),
             "-out", str(self.certificate)],
            check=True, capture_output=True,
        )  # fmt: skip
        self._key = _read_rsa_key(key_path)
        self._cert_der = subprocess.run(
            ["openssl", "x509", "-in", str(self.certificate), "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="token-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    # Called from the handler threads.

    def issue(self, *, username: str, scopes: list[str], service: str) -> str:
        assert self._key is not None
        now = int(time.time())
        access = []
        if username:
            for scope in scopes:
                parts = scope.split(":")
                if len(parts) >= 3:
                    access.append(
                        {"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")}
                    )
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        claims = {
            "iss": TOKEN_ISSUER, "sub": username, "aud": service, "exp": now + self.expires_in,
            "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access,
        }  # fmt: skip
        signing_input = (
            _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
        ).encode()
        return signing_input.decode() + "." + _b64url(self._key.sign_pkcs1v15_sha256(signing_input))

    def new_refresh_token(self, username: str) -> str:
        token = secrets.token_urlsafe(24)
        self._refresh_tokens[token] = username
        return token

    def user_for_refresh_token(self, token: str) -> str | None:
        return self._refresh_tokens.get(token)


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: tests read `server.requests` instead

        def _reply(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _unauthorized(self, message: str) -> None:
            self._reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": message, "detail": None}]})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/token":
                self._reply(404, {"errors": [{"code": "NOT_FOUND", "message": "not found"}]})
                return
            query = urllib.parse.parse_qs(url.query)
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            service = query.get("service", [""])[0]
            offline = query.get("offline_token", [""])[0] == "true"
            username = ""
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                try:
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                except ValueError:
                    self._unauthorized("malformed basic credentials")
                    return
                if server.users.get(user) != password:
                    server.requests.append(
                        TokenRequest(method="GET", username=user, grant_type="", scopes=tuple(scopes),
                                     service=service, offline_token=offline)
                    )  # fmt: skip
                    self._unauthorized("incorrect username or password")
                    return
                username = user
            server.requests.append(
                TokenRequest(method="GET", username=username, grant_type="", scopes=tuple(scopes),
                             service=service, offline_token=offline)
            )  # fmt: skip
            body: dict[str, object] = {
                "token": server.issue(username=username, scopes=scopes, service=service),
                "expires_in": server.expires_in,
            }
            if offline and username:
                body["refresh_token"] = server.new_refresh_token(username)
            self._reply(200, body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            grant = form.get("grant_type", [""])[0]
            scopes = [s for value in form.get("scope", []) for s in value.split(" ") if s]
            service = form.get("service", [""])[0]
            username = ""
            if grant == "refresh_token":
                username = server.user_for_refresh_token(form.get("refresh_token", [""])[0]) or ""
            elif grant == "password":
                user = form.get("username", [""])[0]
                if server.users.get(user) == form.get("password", [""])[0]:
                    username = user
            server.requests.append(
                TokenRequest(method="POST", username=username, grant_type=grant, scopes=tuple(scopes),
                             service=service, offline_token=False)
            )  # fmt: skip
            if not username:
                self._unauthorized("invalid grant")
                return
            self._reply(
                200,
                {
                    "access_token": server.issue(username=username, scopes=scopes, service=service),
                    "expires_in": server.expires_in,
                    "refresh_token": form.get("refresh_token", [""])[0] or server.new_refresh_token(username),
                },
            )

    return Handler


# Images to push -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SmallImage:
    config: bytes
    layers: tuple[bytes, ...]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def small_image(marker: str, *, oci: bool = False) -> SmallImage:
    """A two-layer gzip image, distinct per ``marker``; Docker schema 2 or OCI."""
    tars = [files_layer({"etc/marker": marker.encode()}), files_layer({f"data/{marker}": b"x" * 3000})]
    layers = tuple(compress(t, Compression.GZIP) for t in tars)
    config = image_config([sha256(t) for t in tars])
    manifest = Manifest(
        media_type=OCI_MANIFEST if oci else DOCKER_MANIFEST,
        config=Descriptor(
            media_type=OCI_CONFIG if oci else DOCKER_CONFIG,
            digest=sha256(config), size=len(config),
        ),
        layers=tuple(
            Descriptor(
                media_type=OCI_LAYER_GZIP if oci else DOCKER_LAYER_GZIP,
                digest=sha256(b), size=len(b),
            )
            for b in layers
        ),
    )  # fmt: skip
    return SmallImage(config=config, layers=layers, manifest=encode_manifest(manifest))


async def chunks_of(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def push_image(
    client: RegistryClient, registry: str, path: str, tag: str, image: SmallImage,
    auth: AuthConfig | None = None,
) -> str:
    """Push with the client under test; blobs alternate between bytes and streamed bodies."""
    repo = client.repository(registry, path, auth=auth, push=True)
    for i, blob in enumerate((image.config, *image.layers)):
        if not await repo.blob_exists(sha256(blob)):
            content = blob if i % 2 == 0 else chunks_of(blob)  # both body kinds
            assert await repo.upload_blob(sha256(blob), len(blob), content) == "uploaded"
    media_type = json.loads(image.manifest)["mediaType"]
    return await repo.put_manifest(tag, media_type, image.manifest)
