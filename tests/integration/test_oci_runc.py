"""Specs from dockyard.oci run under the real runc (Debian's 1.1) on a busybox-static rootfs."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import dockyard.oci as oci

BUSYBOX = "/bin/busybox"
PASSWD = "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000:bob:/home/bob:/bin/sh\n"
GROUP = "root:x:0:\nbob:x:1000:\nstaff:x:50:bob\n"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    for sub in ("bin", "etc", "proc", "sys", "dev", "tmp"):
        (rootfs / sub).mkdir(parents=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "id", "cat", "grep", "echo", "hostname"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(PASSWD)
    (rootfs / "etc" / "group").write_text(GROUP)
    files = tmp_path / "files"
    files.mkdir()
    (files / "hosts").write_text("127.0.0.1\tlocalhost\n")
    (files / "hostname").write_text("web\n")
    (files / "resolv.conf").write_text("nameserver 127.0.0.1\n")
    return tmp_path


def run(bundle: Path, spec: dict[str, object]) -> subprocess.CompletedProcess[str]:
    (bundle / "config.json").write_text(json.dumps(spec))
    name = "dockyard-oci-test-" + uuid.uuid4().hex[:12]
    try:
        return subprocess.run(
            ["runc", "run", name], cwd=bundle, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        subprocess.run(["runc", "delete", "--force", name], capture_output=True)
        for controller in Path("/sys/fs/cgroup").iterdir():
            parent = controller / "dockyard-oci-test"
            if parent.is_dir():
                for leaf in parent.iterdir():
                    if leaf.is_dir():
                        leaf.rmdir()
                parent.rmdir()


def own_capabilities() -> tuple[str, ...]:
    status = Path("/proc/self/status").read_text()
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    return oci.capabilities_from_mask(int(mask, 16))


def test_user_binds_tmpfs_readonly_rootfs(bundle: Path) -> None:
    request = {
        "Hostname": "web",
        "Domainname": "example.org",
        "User": "bob",
        "Env": ["A=1"],
        "Cmd": [
            "sh", "-c",
            "id; hostname; cat /proc/sys/kernel/domainname; echo $A $HOSTNAME;"
            " grep -c ' /run tmpfs ' /proc/mounts; echo x > /data/f || echo ro-ok;"
            " echo y > /run/f && echo run-rw; echo z > /f || echo rootfs-ro",
        ],
    }  # fmt: skip
    host_config = {
        "NetworkMode": "default",
        "Binds": [f"{bundle / 'files'}:/data:ro"],
        "Tmpfs": {"/run": "rw,size=64m"},
        "ReadonlyRootfs": True,
        "GroupAdd": ["99"],
    }
    oci.validate_config(request)
    oci.validate_host_config(host_config, request)
    config = oci.merge_config({"Env": ["PATH=/bin"]}, request)
    user = oci.resolve_user(config["User"], PASSWD, GROUP, host_config["GroupAdd"])
    spec = oci.build_spec(
        oci.ContainerSpecInput(
            config=config,
            host_config=host_config,
            user=user,
            cgroups_path=f"/dockyard-oci-test/{uuid.uuid4().hex}",
            hosts_path=str(bundle / "files" / "hosts"),
            hostname_path=str(bundle / "files" / "hostname"),
            resolv_path=str(bundle / "files" / "resolv.conf"),
            all_capabilities=own_capabilities(),
        )
    )
    result = run(bundle, spec)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "uid=1000(bob) gid=1000(bob) groups=50(staff),99,1000(bob)\n"
        "web\nexample.org\n1 web\n1\nro-ok\nrun-rw\nrootfs-ro\n"
    )


def test_privileged_host_network(bundle: Path) -> None:
    config = oci.merge_config(
        {"Env": ["PATH=/bin"]},
        {"Hostname": "h", "Cmd": ["sh", "-c", "grep ' /sys ' /proc/mounts; grep NoNewPrivs /proc/self/status"]},
    )
    host_config = {"NetworkMode": "host", "Privileged": True, "SecurityOpt": ["no-new-privileges"]}
    spec = oci.build_spec(
        oci.ContainerSpecInput(
            config=config,
            host_config=host_config,
            user=oci.resolve_user("", None, None),
            cgroups_path=f"/dockyard-oci-test/{uuid.uuid4().hex}",
            all_capabilities=own_capabilities(),
        )
    )
    result = run(bundle, spec)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sysfs /sys sysfs rw,")
    assert result.stdout.endswith("NoNewPrivs:\t1\n")
