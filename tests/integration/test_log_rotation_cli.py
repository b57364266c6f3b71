"""json-file rotation (max-size/max-file), per container and as the daemon default, through the CLI."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from conftest import DockerCLI

from dockyard.testing.daemons import discard, start_dockyard
from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/logrotate:latest"
LINES = "i=0; while [ $i -lt 400 ]; do echo line $i; i=$((i+1)); done"


def _files(log_path: str) -> list[Path]:
    live = Path(log_path)
    return sorted(live.parent.glob(live.name + "*"))


def test_rotation_per_container_and_daemon_default():
    root = Path(tempfile.mkdtemp(prefix="dockyard-logrot-"))
    config = root / "daemon.json"
    root.mkdir(exist_ok=True)
    config.write_text(json.dumps({"log-opts": {"max-size": "2k", "max-file": "2"}}))
    daemon = start_dockyard(root, extra_args=("--config-file", str(config)))
    try:
        docker = DockerCLI(daemon)
        build_docker_archive(root / "img.tar", tags=[IMG])
        docker.run("load", "-i", str(root / "img.tar"))

        own = docker.out("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=3",
                         IMG, "sh", "-c", LINES).strip()
        assert docker.out("wait", own) == "0\n"
        info = json.loads(docker.out("inspect", own))[0]
        assert info["HostConfig"]["LogConfig"] == {
            "Type": "json-file", "Config": {"max-size": "1k", "max-file": "3"}}
        files = _files(info["LogPath"])
        assert len(files) == 3
        assert all(f.stat().st_size <= 1000 for f in files)
        shown = docker.out("logs", own).splitlines()
        assert shown[-1] == "line 399"
        first = int(shown[0].split()[1])
        assert first > 0 and shown == [f"line {i}" for i in range(first, 400)]
        assert docker.out("logs", "--tail", "5", own).splitlines() == [f"line {i}" for i in range(395, 400)]

        default = docker.out("run", "-d", IMG, "sh", "-c", LINES).strip()
        assert docker.out("wait", default) == "0\n"
        info = json.loads(docker.out("inspect", default))[0]
        assert info["HostConfig"]["LogConfig"]["Config"] == {"max-size": "2k", "max-file": "2"}
        files = _files(info["LogPath"])
        assert len(files) == 2 and all(f.stat().st_size <= 2000 for f in files)
        assert docker.out("logs", "--tail", "1", default) == "line 399\n"

        refused = docker.run("run", "-d", "--log-opt", "max-size=nope", IMG, "true", check=False)
        assert refused.returncode != 0 and b"invalid size" in refused.stderr
        refused = docker.run("run", "-d", "--log-driver", "syslog", IMG, "true", check=False)
        assert refused.returncode != 0 and b"syslog" in refused.stderr
    finally:
        discard(daemon, root)


def test_follow_reads_on_across_rotations(docker: DockerCLI):
    build = Path(tempfile.mkdtemp(prefix="dockyard-logrot-img-"))
    try:
        build_docker_archive(build / "img.tar", tags=[IMG])
        docker.run("load", "-i", str(build / "img.tar"))
    finally:
        shutil.rmtree(build, ignore_errors=True)
    cid = docker.out("run", "-d", "--log-opt", "max-size=1k", "--log-opt", "max-file=5", IMG, "sh", "-c",
                     "sleep 1; i=0; while [ $i -lt 60 ]; do echo tick $i; i=$((i+1)); sleep 0.01; done").strip()
    try:
        followed = docker.out("logs", "-f", cid, timeout=120).splitlines()
        assert followed == [f"tick {i}" for i in range(60)]
    finally:
        docker.run("rm", "-f", cid)
