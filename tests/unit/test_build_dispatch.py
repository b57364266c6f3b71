"""The pure parts of the build executor: config changes, RUN argv and history
text, destinations, stage selection, cache keys, POST /build options."""

from __future__ import annotations

import base64
import json

import pytest

from dockyard.api.build import auth_lookup, decode_registry_config
from dockyard.build import dispatch
from dockyard.build.cache import entry_blob, step_key
from dockyard.build.dockerfile import parse_dockerfile
from dockyard.wire import reference


def instructions(text: str):
    return parse_dockerfile("FROM scratch\n" + text).stages[0].instructions


def apply(text: str, config=None, env=None, **kwargs):
    (instruction,) = instructions(text)
    return dispatch.apply_config(instruction, config or {}, env or {}, **kwargs)


def test_env_expands_every_pair_against_the_environment_before_it():
    change = apply('ENV abc=bye def=$abc ghi="${abc} x"', {"Env": ["abc=hello", "PATH=/bin"]},
                   {"abc": "hello"})
    assert change.config["Env"] == ["PATH=/bin", "abc=bye", "def=hello", "ghi=hello x"]
    assert change.comment == "ENV abc=bye def=hello ghi=hello x"
    assert apply("ENV LEGACY a b  c").config["Env"] == ["LEGACY=a b  c"]


def test_label_expose_volume_user_stopsignal():
    assert apply('LABEL "a b"=c d=$X', env={"X": "y"}).config["Labels"] == {"a b": "c", "d": "y"}
    change = apply("EXPOSE 80 9000-9001/UDP $P", env={"P": "53/sctp"})
    assert change.config["ExposedPorts"] == {"80/tcp": {}, "9000/udp": {}, "9001/udp": {}, "53/sctp": {}}
    assert change.comment == "EXPOSE 53/sctp 80 9000-9001/UDP"  # the parser sorts the words
    with pytest.raises(dispatch.DispatchError, match="invalid containerPort: x"):
        apply("EXPOSE x")
    assert apply('VOLUME ["/a", "/b"]').config["Volumes"] == {"/a": {}, "/b": {}}
    assert apply("USER ${U:-nobody}:0").config["User"] == "nobody:0"
    assert apply("STOPSIGNAL SIGKILL").config["StopSignal"] == "SIGKILL"
    with pytest.raises(dispatch.DispatchError, match="Invalid signal: SIGNOPE"):
        apply("STOPSIGNAL SIGNOPE")


def test_workdir_joins_and_cleans():
    assert apply("WORKDIR /a").config["WorkingDir"] == "/a"
    assert apply("WORKDIR b/../c", {"WorkingDir": "/a"}).config["WorkingDir"] == "/a/c"
    assert apply("WORKDIR $H/x", env={"H": "/home"}).comment == "WORKDIR /home/x"


def test_cmd_entrypoint_shell_and_healthcheck():
    assert apply("CMD echo hi").config["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert apply("CMD echo hi", {"Shell": ["/bin/bash", "-xc"]}).config["Cmd"] == ["/bin/bash", "-xc", "echo hi"]
    change = apply('ENTRYPOINT ["run"]', {"Cmd": ["inherited"]})
    assert change.config == {"Entrypoint": ["run"], "Cmd": None}
    assert change.comment == 'ENTRYPOINT ["run"]'
    assert apply('ENTRYPOINT ["run"]', {"Cmd": ["mine"]}, cmd_set=True).config["Cmd"] == ["mine"]
    assert apply('SHELL ["/bin/ash", "-c"]').config["Shell"] == ["/bin/ash", "-c"]
    check = apply("HEALTHCHECK --interval=5s --retries=3 CMD true").config["Healthcheck"]
    assert check == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 3}
    assert apply("HEALTHCHECK NONE").config["Healthcheck"] == {"Test": ["NONE"]}
    assert apply("ONBUILD RUN x", {"OnBuild": ["COPY a b"]}).config["OnBuild"] == ["COPY a b", "RUN x"]


def test_run_argv_shell_exec_and_heredocs():
    run = lambda text, config=None: dispatch.run_argv(instructions(text)[0], config or {})  # noqa: E731
    assert run("RUN echo $HOME") == ["/bin/sh", "-c", "echo $HOME"]
    assert run('RUN ["echo", "$HOME"]') == ["echo", "$HOME"]
    assert run("RUN <<EOF\necho one\necho two\nEOF") == ["/bin/sh", "-c", "echo one\necho two\n"]
    assert run("RUN <<-EOF\n\techo tab\nEOF") == ["/bin/sh", "-c", "echo tab\n"]
    assert run("RUN cat <<EOT > /x\nhello\nEOT") == ["/bin/sh", "-c", "cat <<EOT > /x\nhello\nEOT"]


def test_history_texts():
    assert dispatch.run_created_by(["/bin/sh", "-c", "make"], {}) == "/bin/sh -c make"
    assert dispatch.run_created_by(["/bin/sh", "-c", "make"], {"B": "2", "A": "1"}) == (
        "|2 A=1 B=2 /bin/sh -c make")
    assert dispatch.nop_created_by({}, 'CMD ["sh"]') == '/bin/sh -c #(nop)  CMD ["sh"]'
    assert dispatch.nop_created_by({}, "WORKDIR /app", joined=True) == "/bin/sh -c #(nop) WORKDIR /app"
    assert dispatch.repr_list(['a"b', "c\\d"]) == '["a\\"b" "c\\\\d"]'
    assert dispatch.step_text("from busybox AS b") == "FROM busybox AS b"


@pytest.mark.parametrize(("dest", "workdir", "expected"), [
    (".", "/app", "/app/"),
    ("./", "/", "/"),
    ("sub/", "/app", "/app/sub/"),
    ("file.txt", "/app", "/app/file.txt"),
    ("/abs/.", "/app", "/abs/"),
    ("../up", "/app/x", "/app/up"),
    ("/", "/app", "/"),
])  # fmt: skip
def test_resolve_dest(dest, workdir, expected):
    assert dispatch.resolve_dest(dest, workdir) == expected


def test_parse_chmod():
    assert dispatch.parse_chmod("755") == 0o755
    assert dispatch.parse_chmod(None) is None
    with pytest.raises(dispatch.DispatchError, match="invalid chmod parameter: u\\+x"):
        dispatch.parse_chmod("u+x")


def test_stages_needed_follows_from_and_copy_from():
    stages = parse_dockerfile(
        "FROM scratch AS a\nFROM scratch AS unused\nFROM a AS b\nFROM scratch\nCOPY --from=b /x /x\n"
        "COPY --from=0 /y /y\n"
    ).stages
    assert dispatch.stages_needed(stages, 3) == [0, 2, 3]
    assert dispatch.stages_needed(stages, 1) == [1]
    assert dispatch.stage_reference("B", stages, 3) == 2
    assert dispatch.stage_reference("3", stages, 3) is None  # not an earlier stage: an image name


def test_expansion_env_and_run_env():
    assert dispatch.expansion_env(["A=env"], {"A": "arg", "B": "arg", "C": None}) == {"A": "env", "B": "arg"}
    from dockyard.build.steps import build_env

    assert build_env(["A=env"], {"A": "arg", "B": "b"}) == ["A=env", "B=b"]


def test_step_keys_are_stable_and_distinct():
    key = step_key(parent_id="sha256:p", kind="RUN", values=["a"], build_args={"X": "1"})
    assert key == step_key(parent_id="sha256:p", kind="RUN", values=["a"], build_args={"X": "1"})
    assert key != step_key(parent_id="sha256:p", kind="RUN", values=["a"], build_args={"X": "2"})
    assert key != step_key(parent_id="sha256:q", kind="RUN", values=["a"], build_args={"X": "1"})
    assert entry_blob(key) == b"dockyard-build-cache/v1\n" + key.encode()


def test_registry_config_header_and_auth_lookup():
    configs = {"127.0.0.1:5000": {"username": "u", "password": "p"},
               "https://index.docker.io/v1/": {"username": "hub", "password": "x"}}
    header = base64.urlsafe_b64encode(json.dumps(configs).encode()).decode().rstrip("=")
    decoded = decode_registry_config(header)
    lookup = auth_lookup(decoded)
    assert lookup(reference.parse("127.0.0.1:5000/app")).username == "u"
    assert lookup(reference.parse("busybox")).username == "hub"
    assert lookup(reference.parse("other.example/x")) is None
    assert decode_registry_config("e30=") == {}
    assert decode_registry_config(None) == {}
