"""Errors raised by ``dockyard.oci`` (pure: spec building, user lookup, config checks).

    dockyard.errors.InvalidParameter           400
    └── OCIError                               base of everything this package raises
        ├── UnsupportedField                   a Config/HostConfig field dockyard does not implement
        │                                      yet was given a real value ("HostConfig.Devices is
        │                                      not supported")
        ├── UserLookupError                    a user, group or --group-add entry cannot be resolved
        │                                      in the image's /etc/passwd and /etc/group (moby's
        │                                      ``moby/sys/user`` messages, byte for byte)
        └── (plain OCIError)                   any other malformed value, with moby's message:
                                               binds, mounts, tmpfs options, capabilities,
                                               security options, "no command specified", …

Every message is the one dockerd v28 gives for the same input, so the CLI prints
the same line. Note that dockerd reports user lookup failures from ``start``
(as a 500, it builds the spec there); the engine decides which status to use and
may re-raise with ``raise SystemError(err.message) from err``.
"""

from __future__ import annotations

from dockyard.errors import InvalidParameter


class OCIError(InvalidParameter):
    """Base of every error raised by ``dockyard.oci``."""


class UnsupportedField(OCIError):
    """A request field dockyard accepts only when empty was given a value.

    ``field`` is the dotted API name (``HostConfig.Devices``), optionally with a
    qualifier (``HostConfig.Mounts[0].Type=volume``); the message is
    ``f"{field} is not supported"``.
    """

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} is not supported")
        self.field = field


class UserLookupError(OCIError):
    """A user or group specification that the image's passwd/group data cannot satisfy."""
