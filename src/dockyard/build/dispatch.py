"""What each Dockerfile instruction does to an image config, and the text the
classic builder shows for it (pure: values in, values out).

The executor keeps the stage's image config (the inner ``config`` object of
an image config JSON) and its build args; these functions compute the next
config, the argv of a RUN, the image history's ``created_by`` and the cache
inputs, with moby's classic-builder rules (``builder/dockerfile/dispatchers.go``):
ENV and LABEL expand every pair against the environment from before the
instruction; WORKDIR joins relative paths to the current one; ENTRYPOINT
drops an inherited CMD unless the stage set one; shell forms use SHELL.

Errors: ``DispatchError`` (InvalidParameter) with dockerd's words.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dockyard import errors
from dockyard.build import instructions as ins
from dockyard.build.instruction_parse import chomp_heredoc
from dockyard.build.shellwords import ShellWordError, expand_word, expand_words

__all__ = [
    "DEFAULT_SHELL",
    "DispatchError",
    "PREDEFINED_ARGS",
    "apply_config",
    "expansion_env",
    "nop_created_by",
    "parse_chmod",
    "resolve_dest",
    "run_argv",
    "run_created_by",
    "stages_needed",
    "step_text",
]

DEFAULT_SHELL = ("/bin/sh", "-c")
#: Build args usable without an ARG (moby's ``builtinAllowedBuildArgs``);
#: they reach RUN but never the image history or the cache key.
PREDEFINED_ARGS = frozenset({
    "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
    "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy",
})  # fmt: skip
_SIGNALS = frozenset({
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
})  # fmt: skip


class DispatchError(errors.InvalidParameter):
    """An instruction whose arguments cannot be applied."""


@dataclass(frozen=True, kw_only=True)
class ConfigChange:
    """The next inner config, and the history text after ``#(nop) ``."""

    config: dict[str, Any]
    comment: str
    author: str | None = None


def expansion_env(config_env: Sequence[str], args: Mapping[str, str | None]) -> dict[str, str]:
    """Variables for word expansion: build args with values, then Env over them."""
    env = {k: v for k, v in args.items() if v is not None}
    for entry in config_env:
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def _expand(word: str, env: Mapping[str, str], escape: str) -> str:
    try:
        return expand_word(word, env, escape=escape)
    except ShellWordError as exc:
        raise DispatchError(str(exc)) from exc


def _expand_words(word: str, env: Mapping[str, str], escape: str) -> list[str]:
    try:
        return expand_words(word, env, escape=escape)
    except ShellWordError as exc:
        raise DispatchError(str(exc)) from exc


def shell_of(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("Shell") or DEFAULT_SHELL)


def _command(command: Sequence[str], exec_form: bool, config: Mapping[str, Any]) -> list[str]:
    return list(command) if exec_form else [*shell_of(config), *command]


def _ports(words: Sequence[str]) -> list[str]:
    """EXPOSE words as ``port/proto`` keys, ranges expanded (nat.ParsePortSpecs)."""
    out = []
    for word in words:
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        first, _, last = port.partition("-")
        if not first.isdigit() or (last and not last.isdigit()) or proto not in ("tcp", "udp", "sctp"):
            raise DispatchError(f"invalid containerPort: {port}" if proto in ("tcp", "udp", "sctp")
                                else f"invalid proto: {proto}")
        start, end = int(first), int(last or first)
        if end < start:
            raise DispatchError(f"invalid range specified for container: {port}")
        out += [f"{p}/{proto}" for p in range(start, end + 1)]
    return out


def apply_config(
    instruction: ins.Instruction,
    config: Mapping[str, Any],
    env: Mapping[str, str],
    *,
    escape: str = "\\",
    cmd_set: bool = False,
) -> ConfigChange:
    """Apply a config-only instruction (not RUN, COPY, ADD, ARG) to ``config``."""
    out: dict[str, Any] = dict(config)
    if isinstance(instruction, ins.Env):
        pairs = [(_expand(p.key, env, escape), _expand(p.value, env, escape)) for p in instruction.pairs]
        current = list(out.get("Env") or [])
        for key, value in pairs:
            current = [e for e in current if e.partition("=")[0] != key] + [f"{key}={value}"]
        out["Env"] = current
        return ConfigChange(config=out, comment="ENV " + " ".join(f"{k}={v}" for k, v in pairs))
    if isinstance(instruction, ins.Label):
        labels = dict(out.get("Labels") or {})
        shown = []
        for pair in instruction.pairs:
            key, value = _expand(pair.key, env, escape), _expand(pair.value, env, escape)
            labels[key] = value
            shown.append(f"{key}={value}")
        out["Labels"] = labels
        return ConfigChange(config=out, comment="LABEL " + " ".join(shown))
    if isinstance(instruction, ins.Expose):
        words = [w for port in instruction.ports for w in _expand_words(port, env, escape)]
        exposed = dict(out.get("ExposedPorts") or {})
        for key in _ports(words):
            exposed[key] = {}
        out["ExposedPorts"] = exposed
        return ConfigChange(config=out, comment="EXPOSE " + " ".join(words))
    if isinstance(instruction, ins.Volume):
        volumes = dict(out.get("Volumes") or {})
        for volume in instruction.volumes:
            path = _expand(volume, env, escape).strip()
            if not path:
                raise DispatchError("VOLUME specified can not be an empty string")
            volumes[path] = {}
        out["Volumes"] = volumes
        return ConfigChange(config=out, comment="VOLUME " + repr_list(instruction.volumes))
    if isinstance(instruction, ins.User):
        out["User"] = _expand(instruction.user, env, escape)
        return ConfigChange(config=out, comment=f"USER {out['User']}")
    if isinstance(instruction, ins.Workdir):
        path = _expand(instruction.path, env, escape)
        out["WorkingDir"] = posixpath.join(out.get("WorkingDir") or "/", path) if path else (
            out.get("WorkingDir") or "/")
        out["WorkingDir"] = posixpath.normpath(out["WorkingDir"]) if out["WorkingDir"] != "/" else "/"
        return ConfigChange(config=out, comment=f"WORKDIR {out['WorkingDir']}")
    if isinstance(instruction, ins.Cmd):
        out["Cmd"] = _command(instruction.command, instruction.exec_form, out)
        return ConfigChange(config=out, comment="CMD " + repr_list(out["Cmd"]))
    if isinstance(instruction, ins.Entrypoint):
        out["Entrypoint"] = _command(instruction.command, instruction.exec_form, out)
        if not cmd_set:
            out["Cmd"] = None
        return ConfigChange(config=out, comment="ENTRYPOINT " + repr_list(out["Entrypoint"]))
    if isinstance(instruction, ins.StopSignal):
        signal = _expand(instruction.signal, env, escape)
        name = signal.upper().removeprefix("SIG")
        if not (signal.isdigit() or name in _SIGNALS or re.fullmatch(r"RTMIN(\+\d+)?|RTMAX(-\d+)?", name)):
            raise DispatchError(f"Invalid signal: {signal}")
        out["StopSignal"] = signal
        return ConfigChange(config=out, comment=f"STOPSIGNAL {signal}")
    if isinstance(instruction, ins.Healthcheck):
        check: dict[str, Any] = {"Test": list(instruction.test)}
        durations = (("Interval", instruction.interval), ("Timeout", instruction.timeout),
                     ("StartPeriod", instruction.start_period), ("StartInterval", instruction.start_interval),
                     ("Retries", instruction.retries))
        for field_name, amount in durations:
            if amount:
                check[field_name] = amount
        out["Healthcheck"] = check
        return ConfigChange(config=out, comment="HEALTHCHECK " + repr_list(check["Test"]))
    if isinstance(instruction, ins.Shell):
        out["Shell"] = list(instruction.shell)
        return ConfigChange(config=out, comment="SHELL " + repr_list(out["Shell"]))
    if isinstance(instruction, ins.Onbuild):
        out["OnBuild"] = [*(out.get("OnBuild") or []), instruction.expression]
        return ConfigChange(config=out, comment="ONBUILD " + instruction.expression)
    if isinstance(instruction, ins.Maintainer):
        return ConfigChange(config=out, comment="MAINTAINER " + instruction.maintainer,
                            author=instruction.maintainer)
    raise TypeError(f"not a config instruction: {type(instruction).__name__}")


def repr_list(values: Sequence[str]) -> str:
    """Go's ``%q`` of a string slice, as the classic builder's history shows it."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def run_argv(run: ins.Run, config: Mapping[str, Any]) -> list[str]:
    """The argv of a RUN: exec form as written; shell form through SHELL, with
    heredocs as BuildKit runs them (a lone ``<<EOF`` is the script itself,
    others are appended so the shell reads them)."""
    if run.exec_form:
        return list(run.command)
    command = run.command[0] if run.command else ""
    if run.heredocs:
        first = run.heredocs[0]
        if len(run.heredocs) == 1 and re.fullmatch(r"\d*<<-?\s*[\"']?" + re.escape(first.name) + r"[\"']?",
                                                   command.strip()):
            body = chomp_heredoc(first.content) if first.chomp else first.content
            return [*shell_of(config), body]
        for doc in run.heredocs:
            command += "\n" + doc.content + doc.name
    return [*shell_of(config), command]


def run_created_by(argv: Sequence[str], args: Mapping[str, str]) -> str:
    """History of a RUN: ``|N k=v … argv`` when build args apply (moby's prependEnvOnCmd)."""
    if not args:
        return " ".join(argv)
    pairs = [f"{k}={v}" for k, v in sorted(args.items())]
    return " ".join([f"|{len(pairs)}", *pairs, *argv])


def nop_created_by(config: Mapping[str, Any], comment: str, *, joined: bool = False) -> str:
    """``<shell> #(nop)  <comment>``: moby's withCmdComment (two spaces), or with
    ``joined`` its withCmdCommentString (one space: WORKDIR, COPY, ADD)."""
    if joined:
        return " ".join([*shell_of(config), "#(nop) " + comment])
    return " ".join([*shell_of(config), "#(nop) ", comment])


def step_text(original: str) -> str:
    """``Step N/M : <text>``: the instruction as written, its keyword upper-cased."""
    keyword, sep, rest = original.partition(" ")
    return keyword.upper() + sep + rest


def resolve_dest(dest: str, workdir: str) -> str:
    """COPY's destination as an absolute path, keeping a trailing ``/`` (moby's
    rule: ``.`` and paths ending in ``/`` or ``/.`` are directories)."""
    is_dir = dest in (".", "./") or dest.endswith("/") or dest.endswith("/.")
    path = dest if dest.startswith("/") else posixpath.join("/", workdir or "/", dest)
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = path[1:]
    if is_dir and not path.endswith("/"):
        path += "/"
    return path


def parse_chmod(text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"[0-7]{1,4}", text):
        raise DispatchError(f"invalid chmod parameter: {text}")
    return int(text, 8)


def stage_reference(text: str, stages: Sequence[ins.Stage], before: int) -> int | None:
    """The index of the stage (before ``before``) that ``text`` names, by name or number."""
    lowered = text.lower()
    for index in range(before):
        if stages[index].name == lowered:
            return index
    if text.isdigit() and int(text) < before:
        return int(text)
    return None


def stages_needed(stages: Sequence[ins.Stage], target: int) -> list[int]:
    """The stages the target needs (FROM another stage, COPY --from), in order."""
    needed = {target}
    pending = [target]
    while pending:
        index = pending.pop()
        stage = stages[index]
        refs = [stage.base]
        refs += [i.from_ for i in stage.instructions if isinstance(i, ins.Copy) and i.from_]
        for ref in refs:
            found = stage_reference(ref, stages, index)
            if found is not None and found not in needed:
                needed.add(found)
                pending.append(found)
    return sorted(needed)
