"""Volumes in the OCI spec: the engine's resolved volume binds join the request's mounts."""

from __future__ import annotations

from typing import Any

from dockyard.oci import ContainerSpecInput, ResolvedUser, build_spec
from dockyard.oci.mounts import UserMount

ROOT = ResolvedUser(uid=0, gid=0, additional_gids=(), home="/root")


def _user_mounts(host_config: dict[str, Any], volumes: tuple[UserMount, ...]) -> list[dict[str, Any]]:
    spec = build_spec(ContainerSpecInput(
        config={"Hostname": "h", "Cmd": ["sh"]}, host_config={"NetworkMode": "none", **host_config},
        user=ROOT, cgroups_path="/dockyard/ns/c", volume_mounts=volumes))
    defaults = {"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm"}
    return [m for m in spec["mounts"] if m["destination"] not in defaults]


def test_volume_binds_are_laid_out_with_the_request_mounts() -> None:
    volumes = (
        UserMount(kind="bind", destination="/data/deep", source="/v/b/_data", writable=False, propagation="rprivate"),
        UserMount(kind="bind", destination="/data", source="/v/a/_data", propagation="rprivate"),
    )
    mounts = _user_mounts({"Binds": ["named:/data", "/srv:/srv:ro", "/data/deep"], "Tmpfs": {"/run": ""}},
                          volumes)
    assert mounts == [
        {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
         "options": ["noexec", "nosuid", "nodev", "rprivate"]},
        {"destination": "/srv", "type": "bind", "source": "/srv", "options": ["rbind", "rro", "rprivate"]},
        {"destination": "/data", "type": "bind", "source": "/v/a/_data", "options": ["rbind", "rprivate"]},
        {"destination": "/data/deep", "type": "bind", "source": "/v/b/_data",
         "options": ["rbind", "rro", "rprivate"]},
    ]


def test_volume_requests_alone_add_no_mount() -> None:
    # Without the engine's resolution a volume request is not mounted from a
    # host path named like the volume.
    assert _user_mounts({"Binds": ["named:/data"], "Mounts": [{"Type": "volume", "Target": "/x"}]}, ()) == []
