"""`docker build` (the classic builder, as the CLI 28 without buildx uses it)
against dockyard, compared with Debian's dockerd 20.10 where both share the
behaviour (issue 6, "Must show")."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.testing.fixtures import build_docker_archive

IMG = "dockyard-test/build-base:latest"

MULTI_STAGE = f"""\
ARG BASE={IMG}
FROM $BASE AS builder
ARG GREETING=hello
RUN mkdir -p /out && echo "$GREETING from the builder" > /out/greeting.txt && echo built; echo to-stderr >&2
FROM $BASE AS unused
RUN echo unused-stage-ran
FROM {IMG}
ARG VERSION=1.0
ENV APP_HOME=/app MODE="two words"
WORKDIR $APP_HOME
COPY --from=builder /out/greeting.txt ./
COPY files/ ./files/
COPY top.txt link-to-top ./
USER tester
LABEL org.example.version=$VERSION maintainer="someone"
EXPOSE 8080 9000/udp
ENTRYPOINT ["cat"]
CMD ["/app/greeting.txt"]
"""


@pytest.fixture(autouse=True)
def classic_builder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="dockyard-build-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def base(docker, workdir: Path) -> str:
    archive = workdir / "base.tar"
    build_docker_archive(archive, tags=[IMG])
    docker.run("load", "-i", str(archive))
    return IMG


def write_context(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def multi_stage_context(root: Path) -> Path:
    write_context(root, {
        "Dockerfile": MULTI_STAGE,
        ".dockerignore": "files/ignored*\n**/*.tmp\n!files/keep.tmp\n",
        "files/a.txt": "a\n",
        "files/sub/b.txt": "b\n",
        "files/ignored.txt": "must not be copied\n",
        "files/sub/scratch.tmp": "must not be copied\n",
        "files/keep.tmp": "kept by an exception\n",
        "top.txt": "top\n",
    })  # fmt: skip
    os.chmod(root / "files/a.txt", 0o640)
    os.symlink("top.txt", root / "link-to-top")
    return root


def build(cli, context: Path, *args: str, check: bool = True):
    return cli.run("build", *args, str(context), check=check, timeout=300)


def listing(cli, image: str) -> str:
    script = "cd /app && find . | sort | while read f; do stat -c '%n %A %u:%g %s' \"$f\"; done"
    return cli.out("run", "--rm", "--entrypoint", "sh", image, "-c", script)


def config_of(cli, image: str) -> dict:
    config = json.loads(cli.out("image", "inspect", "--format", "{{json .Config}}", image))
    keys = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels", "ExposedPorts")
    return {key: config.get(key) or None for key in keys}


def test_multi_stage_build_matches_dockerd(docker, ref_docker, base, workdir):
    context = multi_stage_context(workdir / "multi")
    result = build(docker, context, "-t", "built/multi:1")
    out = result.stdout.decode()
    assert "Step 1/16 : ARG BASE=" in out  # the unused stage is not counted
    assert "unused-stage-ran" not in out
    # Both streams reach the log. Their relative order is not kept (the shim,
    # like dockerd's attach, copies the two pipes independently).
    run_step = out.split("Step 4/16 : RUN ", 1)[1].split("Step 5/16", 1)[0]
    assert sorted(line for line in run_step.splitlines() if line in ("built", "to-stderr")) == ["built", "to-stderr"]
    assert "Successfully tagged built/multi:1\n" in out
    assert docker.out("run", "--rm", "built/multi:1") == "hello from the builder\n"
    assert docker.out("run", "--rm", "--entrypoint", "id", "built/multi:1") == (
        "uid=1000(tester) gid=1000(testers) groups=50(staff),1000(testers)\n")
    env = docker.out("run", "--rm", "--entrypoint", "env", "built/multi:1")
    assert "MODE=two words\n" in env and "APP_HOME=/app\n" in env and "VERSION" not in env

    archive = workdir / "base-ref.tar"
    build_docker_archive(archive, tags=[IMG])
    ref_docker.run("load", "-i", str(archive))
    build(ref_docker, context, "-t", "built/multi:1")
    assert config_of(docker, "built/multi:1") == config_of(ref_docker, "built/multi:1")
    ours = listing(docker, "built/multi:1")
    assert "ignored" not in ours and "scratch.tmp" not in ours and "./files/keep.tmp" in ours
    assert ours == listing(ref_docker, "built/multi:1")


def test_rebuild_is_all_cache_and_a_change_reruns_from_its_copy(docker, base, workdir):
    context = write_context(workdir / "cache", {
        "Dockerfile": f"FROM {IMG}\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\n"
                      "ENV X=1\nCMD [\"cat\", \"/copy\"]\n",
        "a.txt": "first\n",
    })  # fmt: skip
    first = build(docker, context, "-t", "built/cache:1").stdout.decode()
    assert first.count(" ---> Running in ") == 2
    second = build(docker, context, "-t", "built/cache:1").stdout.decode()
    assert " ---> Running in " not in second
    assert second.count(" ---> Using cache\n") == 5
    last_id = lambda text: text.split("Successfully built ")[1][:12]  # noqa: E731
    assert last_id(first) == last_id(second)
    (context / "a.txt").write_text("second\n")
    third = build(docker, context, "-t", "built/cache:1").stdout.decode()
    steps = third.split("Step ")[1:]
    assert [" ---> Using cache" in step for step in steps] == [False, True, False, False, False, False]
    assert third.count(" ---> Running in ") == 1
    assert docker.out("run", "--rm", "built/cache:1") == "second\n"
    no_cache = build(docker, context, "--no-cache").stdout.decode()
    assert "Using cache" not in no_cache and no_cache.count(" ---> Running in ") == 2


def test_failing_run_prints_output_and_exits_with_its_code(docker, base, workdir):
    context = write_context(workdir / "fail", {"Dockerfile": f"FROM {IMG}\nRUN echo failing; exit 3\n"})
    result = build(docker, context, check=False)
    assert result.returncode == 3
    assert b"failing\n" in result.stdout
    assert b"The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3" in result.stderr
    assert docker.out("ps", "-aq") == ""  # no Docker-visible container, kept or not


def test_heredocs_chmod_chown_add_and_build_args(docker, base, workdir):
    context = write_context(workdir / "heredoc", {
        "Dockerfile": (
            f"FROM {IMG}\n"
            "ARG WHO=nobody\n"
            "RUN <<EOF\necho \"run by $WHO\" > /who\nEOF\n"
            "COPY --chmod=751 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello from a heredoc\nEOF\n"
            "COPY --chown=tester:staff --chmod=600 a.txt /owned/\n"
            "ADD archive.tar /unpacked/\n"
            "CMD cat /who && hello && stat -c '%a %U:%G' /usr/local/bin/hello /owned/a.txt "
            "&& cat /unpacked/d/x\n"
        ),
        "a.txt": "a\n",
    })  # fmt: skip
    shutil.make_archive(str(context / "archive"), "tar", root_dir=write_context(workdir / "arch", {"d/x": "x\n"}))
    build(docker, context, "-t", "built/heredoc:1", "--build-arg", "WHO=ci", "--build-arg", "UNUSED=1")
    assert docker.out("run", "--rm", "built/heredoc:1") == (
        "run by ci\nhello from a heredoc\n751 root:root\n600 tester:staff\nx\n")
    history = docker.out("history", "--no-trunc", "--format", "{{.CreatedBy}}", "built/heredoc:1")
    assert "|1 WHO=ci /bin/sh -c" in history


def test_quiet_iidfile_labels_target_and_network(docker, base, workdir):
    context = write_context(workdir / "options", {
        "Dockerfile": f"FROM {IMG} AS first\nRUN echo first > /f\nFROM {IMG}\nRUN exit 9\n",
    })  # fmt: skip
    iid = workdir / "iid"
    quiet = build(docker, context, "-q", "--target", "first", "--iidfile", str(iid),
                  "--label", "a.b=c d", "--network", "none")
    image_id = iid.read_text().strip()  # with -q the CLI takes the id from the stream, newline kept
    assert quiet.stdout.decode() == image_id + "\n"
    labels = json.loads(docker.out("image", "inspect", "--format", "{{json .Config.Labels}}", image_id))
    assert labels["a.b"] == "c d"
    assert docker.out("run", "--rm", image_id, "cat", "/f") == "first\n"
    net = write_context(workdir / "net", {"Dockerfile": f"FROM {IMG}\nRUN ip -o link | cut -d: -f2 | tr -d ' '\n"})
    assert "\nlo\nRemoving" in build(docker, net, "--no-cache").stdout.decode()


def test_hostile_context_never_copies_host_files(docker, base, workdir):
    context = write_context(workdir / "hostile", {
        "Dockerfile": f"FROM {IMG}\nCOPY etc-link/passwd /stolen\n",
    })  # fmt: skip
    os.symlink("/etc", context / "etc-link")
    result = build(docker, context, check=False)
    assert result.returncode == 1
    assert b"COPY failed: file not found in build context" in result.stderr
    # Through a relative link that climbs out: resolved in the context, not the host.
    (context / "etc-link").unlink()
    os.symlink("../../../../../../../etc", context / "etc-link")
    assert build(docker, context, check=False).returncode == 1


def test_dockerfile_outside_context_and_from_stdin(docker, base, workdir):
    context = write_context(workdir / "outside/ctx", {"data.txt": "data\n"})
    dockerfile = workdir / "outside/Build.dockerfile"
    dockerfile.write_text(f"FROM {IMG}\nCOPY data.txt /\nCMD [\"cat\", \"/data.txt\"]\n")
    build(docker, context, "-f", str(dockerfile), "-t", "built/outside:1")
    assert docker.out("run", "--rm", "built/outside:1") == "data\n"
    piped = docker.run("build", "-t", "built/stdin:1", "-", input=f"FROM {IMG}\nCMD [\"echo\", \"piped\"]\n".encode())
    assert b"Successfully tagged built/stdin:1" in piped.stdout
    assert docker.out("run", "--rm", "built/stdin:1") == "piped\n"


def test_concurrent_builds_do_not_mix(docker, base, workdir):
    contexts = []
    for n in range(3):
        contexts.append(write_context(workdir / f"concurrent{n}", {
            "Dockerfile": f"FROM {IMG}\nRUN for i in 1 2 3; do echo build{n}-$i; sleep 0.2; done\n"
                          f"CMD [\"echo\", \"image{n}\"]\n",
        }))  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(lambda c: build(docker, c[1], "--no-cache", "-t", f"built/c{c[0]}:1").stdout.decode(),
                             enumerate(contexts)))
    for n, out in enumerate(outs):
        assert f"build{n}-1\nbuild{n}-2\nbuild{n}-3\n" in out
        assert all(f"build{m}-" not in out for m in range(3) if m != n)
        assert docker.out("run", "--rm", f"built/c{n}:1") == f"image{n}\n"


def test_builder_prune_drops_the_cache(docker, base, workdir):
    context = write_context(workdir / "prune", {"Dockerfile": f"FROM {IMG}\nRUN echo pruned > /p\n"})
    build(docker, context)
    assert "Using cache" in build(docker, context).stdout.decode()
    out = docker.out("builder", "prune", "-f")
    assert "Total reclaimed space:" in out
    assert "Using cache" not in build(docker, context).stdout.decode()


def test_without_docker_buildkit_the_cli_falls_back(docker, base, workdir, monkeypatch):
    monkeypatch.delenv("DOCKER_BUILDKIT")
    context = write_context(workdir / "fallback", {"Dockerfile": f"FROM {IMG}\nCMD [\"true\"]\n"})
    result = build(docker, context, "-q")
    assert result.stdout.decode().startswith("sha256:")


def test_config_instructions_onbuild_scratch_and_shell(docker, base, workdir):
    parent = write_context(workdir / "onbuild-parent", {
        "Dockerfile": (
            f"FROM {IMG}\n"
            "ONBUILD COPY marker.txt /from-trigger.txt\n"
            "ONBUILD RUN echo triggered > /triggered\n"
            'SHELL ["/bin/sh", "-ec"]\n'
            "RUN echo shell-form > /s\n"
            'RUN ["sh", "-c", "echo exec-form > /e"]\n'
            "VOLUME /data\n"
            "STOPSIGNAL SIGINT\n"
            "HEALTHCHECK --interval=30s --retries=2 CMD true\n"
            "MAINTAINER someone@example.com\n"
        ),
    })  # fmt: skip
    build(docker, parent, "-t", "built/onbuild-parent:1")
    inspect = json.loads(docker.out("image", "inspect", "built/onbuild-parent:1"))[0]
    config = inspect["Config"]
    assert config["OnBuild"] == ["COPY marker.txt /from-trigger.txt", "RUN echo triggered > /triggered"]
    assert config["Shell"] == ["/bin/sh", "-ec"]
    assert config["Volumes"] == {"/data": {}}
    assert config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000, "Retries": 2}
    assert inspect["Author"] == "someone@example.com"
    child = write_context(workdir / "onbuild-child", {
        "Dockerfile": "FROM built/onbuild-parent:1\nCMD cat /from-trigger.txt /triggered /s /e\n",
        "marker.txt": "marker\n",
    })  # fmt: skip
    out = build(docker, child, "-t", "built/onbuild-child:1").stdout.decode()
    assert "# Executing 2 build triggers\n" in out
    assert docker.out("run", "--rm", "built/onbuild-child:1") == "marker\ntriggered\nshell-form\nexec-form\n"
    child_config = json.loads(docker.out("image", "inspect", "--format", "{{json .Config}}", "built/onbuild-child:1"))
    assert child_config.get("OnBuild") in (None, [])
    assert child_config["Cmd"] == ["/bin/sh", "-ec", "cat /from-trigger.txt /triggered /s /e"]

    scratch = write_context(workdir / "scratch", {
        "Dockerfile": f"FROM {IMG} AS tools\nFROM scratch\nCOPY --from=tools /bin/busybox /bin/busybox\n"
                      'COPY hello.txt /\nENTRYPOINT ["/bin/busybox", "cat", "/hello.txt"]\n',
        "hello.txt": "from scratch\n",
    })  # fmt: skip
    build(docker, scratch, "-t", "built/scratch:1")
    assert docker.out("run", "--rm", "built/scratch:1") == "from scratch\n"
    layers = json.loads(docker.out("image", "inspect", "--format", "{{json .RootFS.Layers}}", "built/scratch:1"))
    assert len(layers) == 2


def test_from_by_id_and_digest_reference_and_arg_before_from(docker, base, workdir):
    image_id = docker.out("image", "inspect", "--format", "{{.Id}}", IMG).strip()
    context = write_context(workdir / "by-id", {
        "Dockerfile": "ARG BASE\nFROM ${BASE}\nARG BASE\nRUN echo \"base was $BASE\" > /b\nCMD [\"cat\", \"/b\"]\n",
    })  # fmt: skip
    build(docker, context, "--build-arg", f"BASE={image_id}", "-t", "built/by-id:1")
    assert docker.out("run", "--rm", "built/by-id:1") == f"base was {image_id}\n"
    missing = build(docker, context, "--build-arg", "BASE=127.0.0.1:1/nothing:here", check=False)
    assert missing.returncode == 1
    assert b'Get "http://127.0.0.1:1/v2/nothing/manifests/here"' in missing.stderr  # the pull's own error
