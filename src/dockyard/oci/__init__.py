"""dockyard.oci: Docker container configuration → OCI runtime spec, with no I/O.

    config.py    merge_config, validate_config, validate_host_config, default_hostname (create time)
    user.py      resolve_user: Config.User + GroupAdd against the image's passwd/group text
    mounts.py    Binds / Mounts / Tmpfs parsing and the spec's mount list
    spec.py      ContainerSpecInput → build_spec() → JSON-able runtime spec (start time)
    image.py     (image JSON values; owned by the images work)
    defaults.py  Docker's defaults (capabilities, masked paths, mounts, device rules)
    errors.py    OCIError ⊂ InvalidParameter, UnsupportedField, UserLookupError

Typical use by the engine::

    validate_config(request_config); validate_host_config(host_config, request_config)
    config = merge_config(image_config, request_config)
    config["Hostname"] = default_hostname(config=config, host_config=host_config, ...)
    user = resolve_user(config["User"], passwd_text, group_text, host_config.get("GroupAdd") or ())
    spec = build_spec(ContainerSpecInput(config=config, host_config=host_config, user=user, ...))
"""

from dockyard.oci.config import (
    UNSUPPORTED_CONFIG_FIELDS,
    UNSUPPORTED_HOST_CONFIG_FIELDS,
    default_hostname,
    merge_config,
    validate_config,
    validate_host_config,
)
from dockyard.oci.errors import OCIError, UnsupportedField, UserLookupError
from dockyard.oci.spec import ContainerSpecInput, Ulimit, build_spec, capabilities_from_mask
from dockyard.oci.user import ResolvedUser, resolve_user

__all__ = [
    "UNSUPPORTED_CONFIG_FIELDS",
    "UNSUPPORTED_HOST_CONFIG_FIELDS",
    "ContainerSpecInput",
    "OCIError",
    "ResolvedUser",
    "Ulimit",
    "UnsupportedField",
    "UserLookupError",
    "build_spec",
    "capabilities_from_mask",
    "default_hostname",
    "merge_config",
    "resolve_user",
    "validate_config",
    "validate_host_config",
]
