"""Domain errors shared by every layer above the containerd adapter.

    DockyardError                 base; never shown with a traceback
    ├── InvalidParameter          400: the request is malformed or refers to nothing sensible
    ├── Unauthorized              401
    ├── Forbidden                 403
    ├── NotFound                  404: an id, name or reference does not exist
    ├── NotModified               304: the request asks for the state the object is in already
    ├── Conflict                  409: the object exists, or is in a state that forbids the call
    ├── PayloadTooLarge           413
    ├── Unavailable               503: a dependency (containerd, a registry) is not answering
    └── SystemError               500: anything unexpected, with a message safe to show

``http/responses.py`` maps each class to its status code, once; services raise
these and nothing else reaches the HTTP layer.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base of every error dockyard means to show to a client."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(DockyardError):
    status = 400


class Unauthorized(DockyardError):
    status = 401


class Forbidden(DockyardError):
    status = 403


class NotFound(DockyardError):
    status = 404


class NotModified(DockyardError):
    status = 304


class Conflict(DockyardError):
    status = 409


class PayloadTooLarge(DockyardError):
    status = 413


class Unavailable(DockyardError):
    status = 503


class SystemError(DockyardError):  # noqa: A001 - shadows the builtin on purpose, inside this module only
    status = 500
