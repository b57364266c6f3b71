"""``docker import``: a root filesystem tarball into a one-layer image.

``apply_changes`` is the pure part: ``--change`` lines as Dockerfile
instructions (the subset moby's ``BuildFromConfig`` accepts) applied to an
image config. ``import_image`` spools the body, stores it as the layer (as
sent when gzip or zstd, else uncompressed), unpacks it and tags the result.

Raises InvalidParameter for an unknown or malformed change, ArchiveError for a
hostile or broken tarball; nothing is left behind on failure (one lease).
"""

from __future__ import annotations

import json
import posixpath
import shlex
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from dockyard import errors
from dockyard.containerd import Descriptor, Namespace
from dockyard.engine.image_layers import ingest_layer
from dockyard.engine.image_load import BodyReader, spool, store_image
from dockyard.engine.image_store import ImageStore
from dockyard.oci import image as oci
from dockyard.wire import reference

#: Instructions ``docker import --change`` / ``docker commit --change`` accept.
CHANGE_INSTRUCTIONS = frozenset(
    {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}
)


def _json_or_shell(rest: str) -> list[str]:
    """Exec form when ``rest`` is a JSON array of strings, else ``/bin/sh -c rest``."""
    stripped = rest.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", stripped]


def _key_values(instruction: str, rest: str) -> list[tuple[str, str]]:
    """``k=v k2="v 2"`` pairs, or the legacy ``key value with spaces`` form."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as exc:
        raise errors.InvalidParameter(f"{instruction}: {exc}") from exc
    if not words:
        raise errors.InvalidParameter(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = rest.strip().partition(" ")
        if not value.strip() and instruction == "ENV":
            raise errors.InvalidParameter("ENV must have two arguments")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise errors.InvalidParameter(f"{instruction} names can not be blank" if not key else f"Syntax error - can't find = in \"{word}\". Must be of the form: name=value")
        pairs.append((key, value))
    return pairs


def _port(text: str) -> str:
    port, _, proto = text.partition("/")
    proto = proto.lower() or "tcp"
    if not port or not all(p.isdigit() for p in port.split("-")) or proto not in ("tcp", "udp", "sctp"):
        raise errors.InvalidParameter(f"invalid containerPort: {port}")
    return f"{port}/{proto}"


def apply_changes(config: Mapping[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """Return ``config`` (the inner ``config`` object) with ``changes`` applied."""
    out: dict[str, Any] = {k: v for k, v in config.items()}
    for change in changes:
        text = change.strip()
        if not text:
            continue
        word, _, rest = text.partition(" ")
        instruction = word.upper()
        if instruction not in CHANGE_INSTRUCTIONS:
            raise errors.InvalidParameter(f"{word.lower()} is not a valid change command")
        if instruction == "CMD":
            out["Cmd"] = _json_or_shell(rest)
        elif instruction == "ENTRYPOINT":
            out["Entrypoint"] = _json_or_shell(rest)
        elif instruction == "ENV":
            env = list(out.get("Env") or [])
            for key, value in _key_values("ENV", rest):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            out["Env"] = env
        elif instruction == "LABEL":
            labels = dict(out.get("Labels") or {})
            labels.update(_key_values("LABEL", rest))
            out["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(out.get("ExposedPorts") or {})
            for item in rest.split():
                ports[_port(item)] = {}
            out["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            volumes = dict(out.get("Volumes") or {})
            paths = _json_or_shell(rest)
            if paths[:2] == ["/bin/sh", "-c"]:
                paths = rest.split()
            for path in paths:
                volumes[path] = {}
            out["Volumes"] = volumes
        elif instruction == "WORKDIR":
            path = rest.strip()
            if not path:
                raise errors.InvalidParameter("WORKDIR requires exactly one argument")
            out["WorkingDir"] = posixpath.join(out.get("WorkingDir") or "/", path)
        elif instruction == "USER":
            out["User"] = rest.strip()
        elif instruction == "STOPSIGNAL":
            out["StopSignal"] = rest.strip()
        elif instruction == "ONBUILD":
            out["OnBuild"] = list(out.get("OnBuild") or []) + [rest.strip()]
    return out


def import_config(diff_id: str, *, message: str, changes: Sequence[str], created: datetime) -> bytes:
    """The config moby's ``ImportImage`` writes, for one layer."""
    when = oci.format_rfc3339_nano(created)
    history: dict[str, Any] = {"created": when}
    if message:
        history["comment"] = message
    config: dict[str, Any] = {
        "architecture": "amd64",
        "comment": message,
        "config": apply_changes({}, changes),
        "created": when,
        "history": [history],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    if not message:
        del config["comment"]
    return oci.canonical_json(config)


def parse_changes(changes: Sequence[str]) -> None:
    """Validate ``changes`` before anything is read (errors become a 400)."""
    apply_changes({}, changes)


async def spool_body(body: BodyReader, *, tmp_dir: Path, limit: int) -> IO[bytes]:
    """The tarball, spooled as sent (compressed or not) to an unlinked temp file."""
    return await spool(body, tmp_dir, decompress=False, limit=limit)


async def import_file(
    ns: Namespace,
    store: ImageStore,
    file: IO[bytes],
    *,
    repo: reference.Reference | None,
    message: str,
    changes: Sequence[str],
) -> str:
    """Import the spooled tarball (and close it); return the new image Id. ``repo``
    (with its tag) names it. Raises InvalidParameter for a broken or hostile tarball."""
    try:
        async with ns.lease() as leased:
            layer = await ingest_layer(leased, file, ref_hint="import")
            config_bytes = import_config(
                layer.diff_id, message=message, changes=changes, created=datetime.now(timezone.utc)
            )
            config = oci.parse_config(config_bytes)
            target: Descriptor = await store_image(
                leased, config_bytes=config_bytes, config=config, layers=[layer]
            )
            if repo is not None:
                await store.tag(ns, str(repo), target)
            else:
                await store.keep_named(ns, target)
    finally:
        file.close()
    return oci.digest_of(config_bytes)
