"""Line-parser nodes → typed instructions and stages (pure).

A port of BuildKit's `frontend/dockerfile/instructions` parsing (flags,
argument checks, HEALTHCHECK durations, ONBUILD triggers, stages) and of
the parser's heredoc-word detection. Messages are BuildKit's; errors are
the `InstructionError` tree of `instructions.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypedDict

from dockyard.build.instructions import (
    Add,
    Arg,
    ArgDefinition,
    Cmd,
    Copy,
    DockerfileError,
    DockerfileSyntaxError,
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
    Node,
    Onbuild,
    Run,
    Shell,
    SourceContent,
    Stage,
    StopSignal,
    UnknownInstructionError,
    User,
    Volume,
    Workdir,
)
from dockyard.build.instruction_flags import Flags, parse_int32, parse_interval, suggest
from dockyard.build.shellwords import GO_SPACES, Lexer, ShellWordError, go_quote

__all__ = [
    "chomp_heredoc",
    "heredocs_from_line",
    "parse_heredoc_word",
    "parse_instruction",
    "stages_from_nodes",
]

_INSTRUCTION_NAMES = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
    "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
    "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)  # fmt: skip

# --- heredocs -----------------------------------------------------------------

# Go's \d and \s are ASCII-only.
_HEREDOC_RE = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_LEADING_TABS_RE = re.compile(r"^\t+", re.MULTILINE)
_HEREDOC_LINE_LEXER = Lexer(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
_HEREDOC_WORD_LEXER = Lexer(skip_unset_env=True)
_HEREDOC_WORD_LEXER_RAW = Lexer(skip_unset_env=True, raw_quotes=True)


def parse_heredoc_word(word: str) -> Heredoc | None:
    """The heredoc a word like `<<EOF`, `<<-"EOF"`, `3<<EOF` opens, else None.

    `content` is empty; `expand` is false when any part of the delimiter is
    quoted. Raises ShellWordError for an unterminated quote.
    """
    match = _HEREDOC_RE.match(word)
    if match is None or not match.group(3):
        return None
    fd_text, dash, rest = match.groups()
    words = _HEREDOC_WORD_LEXER.process(rest, {}).words
    if len(words) != 1:
        return None
    raw = _HEREDOC_WORD_LEXER_RAW.process(rest, {}).words
    if len(raw) != len(words):
        raise ShellWordError(
            f"internal lexing of heredoc produced inconsistent results: {rest}"
        )
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    return Heredoc(
        name=words[0],
        content="",
        expand=quotes == raw_quotes,
        chomp=dash == "-",
        file_descriptor=int(fd_text) if fd_text else 0,
    )


def heredocs_from_line(line: str, start_line: int, end_line: int) -> list[Heredoc]:
    """The heredocs a RUN/COPY/ADD line opens, in order (bodies empty).

    Raises DockerfileSyntaxError for a malformed delimiter.
    """
    try:
        words = _HEREDOC_LINE_LEXER.process(line, {}).words
    except ShellWordError:
        return []  # BuildKit ignores a line its lexer cannot split
    docs: list[Heredoc] = []
    for word in words:
        try:
            doc = parse_heredoc_word(word)
        except ShellWordError as exc:
            raise DockerfileSyntaxError(
                str(exc), start_line=start_line, end_line=end_line
            ) from None
        if doc is not None:
            docs.append(doc)
    return docs


def chomp_heredoc(content: str) -> str:
    """Strip the leading tabs of every line, as `<<-` asks."""
    return _LEADING_TABS_RE.sub("", content)


# --- instructions ----------------------------------------------------------------


def _args(node: Node) -> list[str]:
    if node.child is not None:
        return [node.child.keyword, *_args(node.child)]
    return list(node.values)


class _Common(TypedDict):
    original: str
    start_line: int
    end_line: int


def _common(node: Node) -> _Common:
    return {
        "original": node.original.strip(GO_SPACES),
        "start_line": node.start_line,
        "end_line": node.end_line,
    }


def _command_line(node: Node, args: list[str]) -> tuple[str, ...]:
    if not args:
        return ()
    return tuple(args) if node.json else (" ".join(args),)


def _kvps(args: list[str], keyword: str) -> tuple[KeyValue, ...]:
    if not args:
        raise DockerfileError(f"{keyword} requires at least one argument")
    if len(args) % 3:
        raise DockerfileError(f"Bad input to {keyword}, too many arguments")
    pairs = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise DockerfileError(f"{keyword} names can not be blank")
        pairs.append(KeyValue(key=args[i], value=args[i + 1], legacy=args[i + 2] == ""))
    return tuple(pairs)


def _one(args: list[str], keyword: str) -> str:
    if len(args) != 1:
        raise DockerfileError(f"{keyword} requires exactly one argument")
    return args[0]


def _sources_and_dest(
    node: Node, args: list[str], keyword: str
) -> tuple[tuple[str, ...], tuple[SourceContent, ...], str]:
    *sources, dest = args
    if _heredoc_word(dest) is not None:
        raise DockerfileError(f"{keyword} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc.content for doc in node.heredocs}
    paths: list[str] = []
    contents: list[SourceContent] = []
    for source in sources:
        doc = _heredoc_word(source)
        if doc is None:
            paths.append(source)
            continue
        data = bodies.get(doc.name, "")
        contents.append(
            SourceContent(
                path=doc.name,
                data=chomp_heredoc(data) if doc.chomp else data,
                expand=doc.expand,
            )
        )
    return tuple(paths), tuple(contents), dest


def _heredoc_word(word: str) -> Heredoc | None:
    try:
        return parse_heredoc_word(word)
    except ShellWordError:
        return None  # BuildKit's MustParseHeredoc drops the error


def _parse_from(node: Node) -> From:
    args = _args(node)
    name: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not re.fullmatch(r"[a-z][a-z0-9\-_.]*", name):
            raise DockerfileError(
                f"invalid name for build stage: {go_quote(args[2])}, "
                "name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise DockerfileError("FROM requires either one or three arguments")
    flags = Flags(node.flags)
    flags.add("platform", "string")
    flags.parse()
    return From(base=args[0], name=name, platform=flags.string("platform"), **_common(node))


def _parse_run(node: Node) -> Run:
    flags = Flags(node.flags)
    flags.add("mount", "strings")
    flags.add("network", "string", "default")
    flags.add("security", "string", "sandbox")
    flags.add("device", "strings")
    flags.parse()
    network = flags.values["network"]
    if network not in ("default", "none", "host"):
        raise DockerfileError(f"invalid network mode {go_quote(network)}")
    security = flags.values["security"]
    if security not in ("sandbox", "insecure"):
        raise DockerfileError(f"security {go_quote(security)} is not valid")
    return Run(
        command=_command_line(node, _args(node)),
        exec_form=node.json,
        heredocs=node.heredocs,
        mounts=tuple(flags.lists["mount"]),
        network=network,
        security=security,
        devices=tuple(flags.lists["device"]),
        flags_used=tuple(flags.used),
        **_common(node),
    )


def _no_flags(node: Node) -> None:
    Flags(node.flags).parse()


def _parse_copy(node: Node) -> Copy:
    args = _args(node)
    if len(args) < 2:
        raise DockerfileError(
            "COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    flags = Flags(node.flags)
    for name in ("chown", "from", "chmod"):
        flags.add(name, "string")
    for name in ("link", "parents"):
        flags.add(name, "bool", "false")
    flags.add("exclude", "strings")
    flags.parse()
    sources, contents, dest = _sources_and_dest(node, args, "COPY")
    return Copy(
        sources=sources,
        contents=contents,
        dest=dest,
        from_=flags.string("from"),
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.true("link"),
        parents=flags.true("parents"),
        excludes=tuple(flags.lists["exclude"]),
        **_common(node),
    )


def _parse_add(node: Node) -> Add:
    args = _args(node)
    if len(args) < 2:
        raise DockerfileError(
            "ADD requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    flags = Flags(node.flags)
    for name in ("chown", "chmod", "checksum"):
        flags.add(name, "string")
    for name in ("link", "keep-git-dir", "unpack"):
        flags.add(name, "bool", "false")
    flags.add("exclude", "strings")
    flags.parse()
    sources, contents, dest = _sources_and_dest(node, args, "ADD")
    return Add(
        sources=sources,
        contents=contents,
        dest=dest,
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.true("link"),
        keep_git_dir=flags.optional_bool("keep-git-dir"),
        checksum=flags.string("checksum"),
        unpack=flags.optional_bool("unpack"),
        excludes=tuple(flags.lists["exclude"]),
        **_common(node),
    )


def _parse_healthcheck(node: Node) -> Healthcheck:
    args = _args(node)
    if not args:
        raise DockerfileError("HEALTHCHECK requires at least one argument")
    kind = args[0].upper()
    rest = args[1:]
    common = _common(node)
    if kind == "NONE":
        if rest:
            raise DockerfileError("HEALTHCHECK NONE takes no arguments")
        return Healthcheck(test=("NONE",), interval=0, timeout=0, start_period=0,
                           start_interval=0, retries=0, **common)  # fmt: skip
    flags = Flags(node.flags)
    for name in ("interval", "timeout", "start-period", "start-interval", "retries"):
        flags.add(name, "string")
    flags.parse()
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    command = _command_line(node, rest)
    if not command:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *command) if node.json else ("CMD-SHELL", *command)
    interval = parse_interval(flags, "interval")
    timeout = parse_interval(flags, "timeout")
    start_period = parse_interval(flags, "start-period")
    start_interval = parse_interval(flags, "start-interval")
    retries = 0
    if flags.values["retries"]:
        retries = parse_int32(flags.values["retries"])
        if retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({retries})")
    return Healthcheck(test=test, interval=interval, timeout=timeout, start_period=start_period,
                       start_interval=start_interval, retries=retries, **common)  # fmt: skip


_ONBUILD_PREFIX_RE = re.compile(r"^[\t\n\f\r ]*ONBUILD[\t\n\f\r ]*", re.IGNORECASE)


def _parse_onbuild(node: Node) -> Onbuild:
    args = _args(node)
    if not args:
        raise DockerfileError("ONBUILD requires at least one argument")
    _no_flags(node)
    trigger = args[0].strip().upper()
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = _ONBUILD_PREFIX_RE.sub("", node.original, count=1)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return Onbuild(expression=expression, **_common(node))


def _parse_arg(node: Node) -> Arg:
    args = _args(node)
    if not args:
        raise DockerfileError("ARG requires at least one argument")
    defs = []
    for arg in args:
        key, has_value, value = arg.partition("=")
        if has_value and not key:
            raise DockerfileError("ARG names can not be blank")
        defs.append(ArgDefinition(key=key, default=value if has_value else None))
    return Arg(args=tuple(defs), **_common(node))


def _parse_shell(node: Node) -> Shell:
    _no_flags(node)
    shell = _command_line(node, _args(node))
    if not shell:
        raise DockerfileError("SHELL requires at least one argument")
    if not node.json:
        raise DockerfileError("SHELL requires the arguments to be in JSON form")
    return Shell(shell=shell, **_common(node))


def _parse_volume(node: Node) -> Volume:
    args = _args(node)
    if not args:
        raise DockerfileError("VOLUME requires at least one argument")
    _no_flags(node)
    volumes = []
    for volume in args:
        volume = volume.strip(GO_SPACES)
        if not volume:
            raise DockerfileError("VOLUME specified can not be an empty string")
        volumes.append(volume)
    return Volume(volumes=tuple(volumes), **_common(node))


def _simple(node: Node) -> Instruction:
    """The instructions whose parsing is a flag check and an argument count."""
    keyword = node.keyword.lower()
    args = _args(node)
    common = _common(node)
    if keyword == "env":
        _no_flags(node)
        return Env(pairs=_kvps(args, "ENV"), **common)
    if keyword == "label":
        _no_flags(node)
        return Label(pairs=_kvps(args, "LABEL"), **common)
    if keyword == "maintainer":
        value = _one(args, "MAINTAINER")
        _no_flags(node)
        return Maintainer(maintainer=value, **common)
    if keyword == "workdir":
        value = _one(args, "WORKDIR")
        _no_flags(node)
        return Workdir(path=value, **common)
    if keyword == "user":
        value = _one(args, "USER")
        _no_flags(node)
        return User(user=value, **common)
    if keyword == "stopsignal":
        return StopSignal(signal=_one(args, "STOPSIGNAL"), **common)
    if keyword == "expose":
        if not args:
            raise DockerfileError("EXPOSE requires at least one argument")
        _no_flags(node)
        return Expose(ports=tuple(sorted(args)), **common)
    if keyword == "cmd":
        _no_flags(node)
        return Cmd(command=_command_line(node, args), exec_form=node.json, **common)
    _no_flags(node)  # entrypoint
    return Entrypoint(command=_command_line(node, args), exec_form=node.json, **common)


_PARSERS: dict[str, Callable[[Node], From | Instruction]] = {
    "from": _parse_from,
    "run": _parse_run,
    "copy": _parse_copy,
    "add": _parse_add,
    "healthcheck": _parse_healthcheck,
    "onbuild": _parse_onbuild,
    "arg": _parse_arg,
    "shell": _parse_shell,
    "volume": _parse_volume,
    **{k: _simple for k in ("env", "label", "maintainer", "workdir", "user", "stopsignal",
                            "expose", "cmd", "entrypoint")},  # fmt: skip
}


def parse_instruction(node: Node) -> From | Instruction:
    """One node → its typed instruction; raises InstructionError."""
    parser = _PARSERS.get(node.keyword.lower())
    if parser is None:
        message = suggest(
            f"unknown instruction: {node.keyword}", node.keyword, _INSTRUCTION_NAMES,
            case_sensitive=False,
        )  # fmt: skip
        raise UnknownInstructionError(
            message, instruction=node.keyword, start_line=node.start_line, end_line=node.end_line
        )
    try:
        return parser(node)
    except InstructionError:
        raise
    except DockerfileError as exc:
        raise InstructionError(
            exc.message, start_line=node.start_line, end_line=node.end_line
        ) from None


def stages_from_nodes(nodes: Sequence[Node]) -> tuple[tuple[Arg, ...], tuple[Stage, ...]]:
    """Group instructions into stages; ARGs before the first FROM are meta ARGs.

    Raises InstructionError, or DockerfileError("no build stage in current
    context") for another instruction before the first FROM.
    """
    meta_args: list[Arg] = []
    stages: list[tuple[From, list[Instruction]]] = []
    for node in nodes:
        parsed = parse_instruction(node)
        if isinstance(parsed, From):
            stages.append((parsed, []))
        elif not stages:
            if not isinstance(parsed, Arg):
                raise DockerfileError(
                    "no build stage in current context",
                    start_line=node.start_line,
                    end_line=node.end_line,
                )
            meta_args.append(parsed)
        else:
            stages[-1][1].append(parsed)
    return tuple(meta_args), tuple(
        Stage(name=f.name, base=f.base, platform=f.platform, from_=f, instructions=tuple(i))
        for f, i in stages
    )
