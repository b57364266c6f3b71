"""dockyard.http: our own HTTP/1.1 server on h11, built for Docker's hijacks.

    server.py       HttpServer: listeners, accept loops, connection tasks, shutdown
    connection.py   one connection: h11 <-> asyncio streams, keep-alive, bodies
    hijack.py       101 UPGRADED / legacy 200 raw streams with the leftover bytes
    router.py       Router, Request, /vX.Y prefixes (1.24..1.50)
    responses.py    Response values; DockyardError -> status + {"message": ...}
    listeners.py    unix:// and tcp:// listener addresses and sockets

Exceptions of this layer::

    HttpError               base
    └── ClientDisconnected  the client left mid-request or mid-response

Handlers raise ``dockyard.errors`` (domain) errors; ``responses.error_response``
is the one place they become HTTP.
"""

from dockyard.http.connection import ClientDisconnected, HttpError
from dockyard.http.listeners import (
    BoundListener,
    ListenerSpec,
    TcpListenerSpec,
    UnixListenerSpec,
    bind_listener,
    parse_listener,
)
from dockyard.http.responses import (
    CONTENT_TYPE_JSON,
    STANDARD_HEADERS,
    AnyResponse,
    Hijacked,
    JsonResponse,
    Response,
    StreamingResponse,
    error_response,
)
from dockyard.http.router import (
    API_VERSION,
    MAX_API_VERSION_TEXT,
    MIN_API_VERSION,
    MIN_API_VERSION_TEXT,
    Handler,
    Request,
    RequestBody,
    Router,
)
from dockyard.http.server import HttpServer, RunningServer

__all__ = [
    "API_VERSION",
    "CONTENT_TYPE_JSON",
    "MAX_API_VERSION_TEXT",
    "MIN_API_VERSION",
    "MIN_API_VERSION_TEXT",
    "STANDARD_HEADERS",
    "AnyResponse",
    "BoundListener",
    "ClientDisconnected",
    "Handler",
    "Hijacked",
    "HttpError",
    "HttpServer",
    "JsonResponse",
    "ListenerSpec",
    "Request",
    "RequestBody",
    "Response",
    "Router",
    "RunningServer",
    "StreamingResponse",
    "TcpListenerSpec",
    "UnixListenerSpec",
    "bind_listener",
    "error_response",
    "parse_listener",
]
