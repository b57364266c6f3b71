"""Typed instructions and stages: values, flags, and BuildKit's messages."""

from __future__ import annotations

import pytest

from dockyard.build.dockerfile import parse_dockerfile
from dockyard.build.instruction_flags import parse_duration
from dockyard.build.instructions import (
    Add,
    Arg,
    ArgDefinition,
    Cmd,
    Copy,
    DockerfileError,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    InstructionError,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    StopSignal,
    UnknownInstructionError,
    User,
    Volume,
    Workdir,
)


def only(line: str) -> Instruction:
    stage = parse_dockerfile("FROM busybox\n" + line + "\n").stages[0]
    assert len(stage.instructions) == 1
    return stage.instructions[0]


def test_multi_stage_with_meta_args() -> None:
    df = parse_dockerfile(
        "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE} AS Builder\n"
        "RUN echo hi\nFROM --platform=linux/amd64 scratch\nCOPY --from=builder /a /b\n"
    )
    assert df.syntax == "docker/dockerfile:1"
    assert df.meta_args == (
        Arg(original="ARG BASE=busybox", start_line=2, end_line=2,
            args=(ArgDefinition(key="BASE", default="busybox"),)),
    )  # fmt: skip
    assert [(s.name, s.base, s.platform) for s in df.stages] == [
        ("builder", "${BASE}", None), (None, "scratch", "linux/amd64"),
    ]  # fmt: skip
    assert df.stages[0].from_ == From(
        original="FROM ${BASE} AS Builder", start_line=3, end_line=3, base="${BASE}",
        name="builder", platform=None,
    )  # fmt: skip
    assert [i.original for i in df.stages[1].instructions] == ["COPY --from=builder /a /b"]


def test_original_is_trimmed_and_joined() -> None:
    inst = only("  RUN echo a \\\n   b   ")
    assert inst.original == "RUN echo a    b"
    assert (inst.start_line, inst.end_line) == (2, 3)


def test_run_shell_and_exec_form_and_flags() -> None:
    assert only("RUN --network=none --mount=type=tmpfs,target=/t echo $HOME") == Run(
        original="RUN --network=none --mount=type=tmpfs,target=/t echo $HOME",
        start_line=2, end_line=2, command=("echo $HOME",), exec_form=False, heredocs=(),
        mounts=("type=tmpfs,target=/t",), network="none", security="sandbox", devices=(),
        flags_used=("network", "mount"),
    )  # fmt: skip
    run = only('RUN ["sh", "-c", "echo"]')
    assert isinstance(run, Run)
    assert (run.command, run.exec_form, run.network) == (("sh", "-c", "echo"), True, "default")


def test_run_heredoc() -> None:
    run = only("RUN <<EOF\necho hi\nEOF")
    assert isinstance(run, Run)
    assert run.command == ("<<EOF",)
    assert run.heredocs == (
        Heredoc(name="EOF", content="echo hi\n", expand=True, chomp=False, file_descriptor=0),
    )


def test_copy_and_add() -> None:
    assert only("COPY --from=b --chown=1:2 --chmod=0755 --link a b* /dst/") == Copy(
        original="COPY --from=b --chown=1:2 --chmod=0755 --link a b* /dst/",
        start_line=2, end_line=2, sources=("a", "b*"), contents=(), dest="/dst/", from_="b",
        chown="1:2", chmod="0755", link=True, parents=False, excludes=(),
    )  # fmt: skip
    add = only('ADD --keep-git-dir=false --checksum=sha256:00 ["u rl", "/d"]')
    assert isinstance(add, Add)
    assert (add.sources, add.dest, add.keep_git_dir, add.checksum, add.unpack, add.chown) == (
        ("u rl",), "/d", False, "sha256:00", None, None,
    )  # fmt: skip


def test_copy_heredoc_sources() -> None:
    copy = only('COPY a <<-EOF <<"RAW" /dest/\n\tx\n\t\ty\n\tEOF\n$Z\nRAW')
    assert isinstance(copy, Copy)
    assert copy.sources == ("a",)
    assert copy.contents == (
        SourceContent(path="EOF", data="x\ny\n", expand=True),
        SourceContent(path="RAW", data="$Z\n", expand=False),
    )


def test_env_label_arg() -> None:
    assert only('ENV A=1 B="two words"') == Env(
        original='ENV A=1 B="two words"', start_line=2, end_line=2,
        pairs=(KeyValue(key="A", value="1", legacy=False),
               KeyValue(key="B", value='"two words"', legacy=False)),
    )  # fmt: skip
    env = only("ENV PATH /usr/bin:$PATH")
    assert isinstance(env, Env)
    assert env.pairs == (KeyValue(key="PATH", value="/usr/bin:$PATH", legacy=True),)
    label = only('LABEL a=b "c d"=e')
    assert isinstance(label, Label)
    assert label.pairs == (
        KeyValue(key="a", value="b", legacy=False), KeyValue(key='"c d"', value="e", legacy=False),
    )  # fmt: skip
    arg = only("ARG A B= C=x")
    assert isinstance(arg, Arg)
    assert arg.args == (
        ArgDefinition(key="A", default=None), ArgDefinition(key="B", default=""),
        ArgDefinition(key="C", default="x"),
    )  # fmt: skip


def test_simple_instructions() -> None:
    assert isinstance(only("CMD echo"), Cmd)
    assert only('ENTRYPOINT ["a"]') == Entrypoint(
        original='ENTRYPOINT ["a"]', start_line=2, end_line=2, command=("a",), exec_form=True
    )
    assert only("ENTRYPOINT []") == Entrypoint(
        original="ENTRYPOINT []", start_line=2, end_line=2, command=(), exec_form=True
    )
    assert only('SHELL ["/bin/bash", "-c"]') == Shell(
        original='SHELL ["/bin/bash", "-c"]', start_line=2, end_line=2, shell=("/bin/bash", "-c")
    )
    assert only("WORKDIR /a b") == Workdir(original="WORKDIR /a b", start_line=2, end_line=2, path="/a b")
    assert only("USER 1:2") == User(original="USER 1:2", start_line=2, end_line=2, user="1:2")
    assert only("MAINTAINER Me <me@x>") == Maintainer(
        original="MAINTAINER Me <me@x>", start_line=2, end_line=2, maintainer="Me <me@x>"
    )
    assert only("STOPSIGNAL SIGKILL") == StopSignal(
        original="STOPSIGNAL SIGKILL", start_line=2, end_line=2, signal="SIGKILL"
    )
    assert only("EXPOSE 8080 80/udp 443") == Expose(
        original="EXPOSE 8080 80/udp 443", start_line=2, end_line=2, ports=("443", "80/udp", "8080")
    )
    assert only('VOLUME ["/a", "/b"]') == Volume(
        original='VOLUME ["/a", "/b"]', start_line=2, end_line=2, volumes=("/a", "/b")
    )


def test_healthcheck() -> None:
    hc = only("HEALTHCHECK --interval=1m30s --timeout=1.5s --start-period=2ms --retries=5 CMD curl x")
    assert isinstance(hc, Healthcheck)
    assert (hc.test, hc.interval, hc.timeout, hc.start_period, hc.start_interval, hc.retries) == (
        ("CMD-SHELL", "curl x"), 90_000_000_000, 1_500_000_000, 2_000_000, 0, 5,
    )  # fmt: skip
    hc = only('HEALTHCHECK cmd ["a", "b"]')
    assert isinstance(hc, Healthcheck)
    assert hc.test == ("CMD", "a", "b")
    hc = only("HEALTHCHECK none")
    assert isinstance(hc, Healthcheck)
    assert hc.test == ("NONE",)


def test_onbuild_expression() -> None:
    assert only("onbuild  RUN echo hi") == Onbuild(
        original="onbuild  RUN echo hi", start_line=2, end_line=2, expression="RUN echo hi"
    )
    ob = only("ONBUILD COPY <<EOF /x\nbody\nEOF")
    assert isinstance(ob, Onbuild)
    assert ob.expression == "COPY <<EOF /x\nbody\nEOF"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM a b\n", "dockerfile parse error on line 1: FROM requires either one or three arguments"),
        ("FROM a AS 1st\n", 'dockerfile parse error on line 1: invalid name for build stage: "1st", name can\'t start with a number or contain symbols'),
        ("FROM a\nFOO bar\n", "dockerfile parse error on line 2: unknown instruction: FOO (did you mean FROM?)"),
        ("FROM a\nXYZZY bar\n", "dockerfile parse error on line 2: unknown instruction: XYZZY"),
        ("FROM a\nRUNN x\n", "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM a\ncopyy x\n", "dockerfile parse error on line 2: unknown instruction: copyy (did you mean copy?)"),
        ("FROM a\nCOPY x\n", "dockerfile parse error on line 2: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM a\nCOPY --fro=b x y\n", "dockerfile parse error on line 2: unknown flag: --fro (did you mean from?)"),
        ("FROM a\nCOPY --bogus x y\n", "dockerfile parse error on line 2: unknown flag: --bogus"),
        ("FROM a\nCOPY --from x y\n", "dockerfile parse error on line 2: missing a value on flag: --from"),
        ("FROM a\nCOPY --link=maybe x y\n", "dockerfile parse error on line 2: expecting boolean value for flag --link, not: maybe"),
        ("FROM a\nCOPY --from=a --from=b x y\n", "dockerfile parse error on line 2: duplicate flag specified: --from"),
        ("FROM a\nCOPY x <<EOF\nEOF\n", "dockerfile parse error on line 2: COPY cannot accept a heredoc as a destination"),
        ("FROM a\nRUN --network=bridge x\n", 'dockerfile parse error on line 2: invalid network mode "bridge"'),
        ("FROM a\nWORKDIR\n", "dockerfile parse error on line 2: WORKDIR requires exactly one argument"),
        ("FROM a\nEXPOSE\n", "dockerfile parse error on line 2: EXPOSE requires at least one argument"),
        ("FROM a\nENV\n", "dockerfile parse error on line 2: ENV requires at least one argument"),
        ("FROM a\nENV =x\n", "dockerfile parse error on line 2: ENV names can not be blank"),
        ("FROM a\nARG =x\n", "dockerfile parse error on line 2: ARG names can not be blank"),
        ("FROM a\nSHELL sh -c\n", "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"),
        ("FROM a\nSHELL []\n", "dockerfile parse error on line 2: SHELL requires at least one argument"),
        ("FROM a\nHEALTHCHECK NONE x\n", "dockerfile parse error on line 2: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK FOO x\n", 'dockerfile parse error on line 2: Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("FROM a\nHEALTHCHECK CMD\n", "dockerfile parse error on line 2: Missing command after HEALTHCHECK CMD"),
        ("FROM a\nHEALTHCHECK --interval=1us CMD x\n", 'dockerfile parse error on line 2: Interval "interval" cannot be less than 1ms'),
        ("FROM a\nHEALTHCHECK --timeout=5 CMD x\n", 'dockerfile parse error on line 2: time: missing unit in duration "5"'),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "dockerfile parse error on line 2: --retries cannot be negative (-1)"),
        ("FROM a\nHEALTHCHECK --retries=x CMD y\n", 'dockerfile parse error on line 2: strconv.ParseInt: parsing "x": invalid syntax'),
        ("FROM a\nONBUILD ONBUILD RUN x\n", "dockerfile parse error on line 2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("FROM a\nONBUILD from x\n", "dockerfile parse error on line 2: FROM isn't allowed as an ONBUILD trigger"),
        ("FROM a\nVOLUME [\"\"]\n", "dockerfile parse error on line 2: VOLUME specified can not be an empty string"),
    ],
)  # fmt: skip
def test_instruction_errors(text: str, message: str) -> None:
    with pytest.raises(InstructionError) as caught:
        parse_dockerfile(text)
    assert str(caught.value) == message


def test_unknown_instruction_error_type() -> None:
    with pytest.raises(UnknownInstructionError) as caught:
        parse_dockerfile("FROM a\n\nBOGUS x\n")
    assert (caught.value.instruction, caught.value.start_line) == ("BOGUS", 3)


def test_instruction_before_from() -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_dockerfile("ARG A\nRUN x\nFROM a\n")
    assert str(caught.value) == "no build stage in current context"
    assert not isinstance(caught.value, InstructionError)
    assert caught.value.start_line == 2


def test_arg_and_stopsignal_ignore_flags_as_buildkit_does() -> None:
    arg = only("ARG --whatever A")
    assert isinstance(arg, Arg)
    assert arg.args == (ArgDefinition(key="A", default=None),)


@pytest.mark.parametrize(
    ("text", "nanos"),
    [("0", 0), ("1h2m3s", 3_723_000_000_000), ("-1.5ms", -1_500_000), ("2\u00b5s", 2_000),
     (".5s", 500_000_000), ("300ns", 300)],
)  # fmt: skip
def test_go_durations(text: str, nanos: int) -> None:
    assert parse_duration(text) == nanos


@pytest.mark.parametrize(
    ("text", "message"),
    [("", 'time: invalid duration ""'), ("1d", 'time: unknown unit "d" in duration "1d"'),
     ("s", 'time: invalid duration "s"'), (".s", 'time: invalid duration ".s"')],
)  # fmt: skip
def test_go_duration_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse_duration(text)
    assert str(caught.value) == message
