"""An endpoint: one API socket bound to one containerd namespace.

Every engine call takes the endpoint it serves, so a request can never name an
object of another namespace. The default endpoint uses namespace ``dockyard``;
job endpoints (a later issue) get their own.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "dockyard"


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    name: str
    namespace: str


DEFAULT_ENDPOINT = Endpoint(name="default", namespace=DEFAULT_NAMESPACE)
