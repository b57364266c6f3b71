"""The one place where gRPC failures become dockyard domain errors.

    grpc.aio.AioRpcError status     →  dockyard.errors
    ─────────────────────────────────────────────────────
    NOT_FOUND                       →  NotFound
    ALREADY_EXISTS                  →  Conflict
    FAILED_PRECONDITION             →  Conflict
    INVALID_ARGUMENT                →  InvalidParameter
    UNAVAILABLE                     →  Unavailable
    anything else                   →  SystemError

The message is containerd's own details string (e.g. ``image "x": not found``),
and the gRPC error stays reachable as ``__cause__``. Every call into a stub goes
through :func:`translate_errors`, so no grpc exception escapes this package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from dockyard import errors

_BY_CODE: dict[grpc.StatusCode, type[errors.DockyardError]] = {
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.ALREADY_EXISTS: errors.Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: errors.Conflict,
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidParameter,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
}


def domain_error(exc: grpc.RpcError) -> errors.DockyardError:
    """Return the domain error for a failed call (not raised, so callers chain it)."""
    # Every error grpc.aio raises is an AioRpcError; any other RpcError is
    # treated as carrying no status.
    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
    details = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else None
    message = details or (f"containerd: {code.name.lower()}" if code else "containerd: call failed")
    if code is grpc.StatusCode.UNAVAILABLE:
        message = f"containerd is not available: {message}"
    return _BY_CODE.get(code, errors.SystemError)(message)  # type: ignore[arg-type]


def status_code(exc: BaseException) -> grpc.StatusCode | None:
    """The gRPC status behind a translated error, for callers inside this package
    that treat one status as success (e.g. ALREADY_EXISTS on a content commit)."""
    cause = exc.__cause__
    if isinstance(cause, grpc.aio.AioRpcError):
        return cause.code()
    return None


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Re-raise any gRPC error inside the block as its domain error, chained."""
    try:
        yield
    except grpc.RpcError as exc:
        raise domain_error(exc) from exc
