"""Line-parser nodes → typed instructions and stages (pure).

A port of BuildKit's `frontend/dockerfile/instructions` parsing (flags,
argument checks, HEALTHCHECK durations, ONBUILD triggers, stages) and of
the parser's heredoc-word detection. Messages are BuildKit's; errors are
the `InstructionError` tree of `instructions.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

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
from dockyard.build.shellwords import Lexer, ShellWordError, go_quote

__all__ = [
    "chomp_heredoc",
    "heredocs_from_line",
    "parse_duration",
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


# --- flags (BuildKit's BFlags) -------------------------------------------------


class _Flags:
    def __init__(self, args: Sequence[str]) -> None:
        self.args = args
        self.kinds: dict[str, str] = {}
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.used: list[str] = []

    def add(self, name: str, kind: str, default: str = "") -> None:
        self.kinds[name] = kind
        self.values[name] = default
        self.lists[name] = []

    def parse(self) -> None:
        for arg in self.args:
            if arg == "--":
                return
            if not arg.startswith("--"):
                raise DockerfileError(f"arg should start with -- : {arg}")
            flag_name, has_value, value = arg.partition("=")
            name = flag_name[2:]
            kind = self.kinds.get(name)
            if kind is None:
                raise DockerfileError(
                    _suggest(f"unknown flag: {flag_name}", name, self.kinds, case_sensitive=True)
                )
            if name in self.used and kind != "strings":
                raise DockerfileError(f"duplicate flag specified: {flag_name}")
            if name not in self.used:
                self.used.append(name)
            if kind == "bool":
                if has_value and value == "":
                    raise DockerfileError(f"missing a value on flag: {flag_name}")
                if value.lower() not in ("true", "false", ""):
                    raise DockerfileError(
                        f"expecting boolean value for flag {flag_name}, not: {value}"
                    )
                self.values[name] = "false" if value.lower() == "false" else "true"
            elif not has_value:
                raise DockerfileError(f"missing a value on flag: {flag_name}")
            elif kind == "string":
                self.values[name] = value
            else:
                self.lists[name].append(value)

    def string(self, name: str) -> str | None:
        return self.values[name] if name in self.used else None

    def true(self, name: str) -> bool:
        return self.values[name] == "true"

    def optional_bool(self, name: str) -> bool | None:
        return self.values[name] == "true" if name in self.used else None


def _levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _suggest(message: str, value: str, options: Sequence[str], *, case_sensitive: bool) -> str:
    """BuildKit's suggest.WrapError: add "(did you mean X?)" for a near miss."""
    wanted = value if case_sensitive else value.lower()
    best, best_distance = "", 3
    for option in sorted(options):
        candidate = option if case_sensitive else option.lower()
        if candidate == wanted:
            return message
        distance = _levenshtein(wanted, candidate)
        if distance < best_distance:
            best, best_distance = candidate, distance
            if not case_sensitive:
                if value == value.lower():
                    best = candidate.lower()
                elif value == value.upper():
                    best = candidate.upper()
    return f"{message} (did you mean {best}?)" if best else message


# --- Go number and duration parsing ----------------------------------------------------

_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_INT64 = (1 << 63) - 1


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; raises DockerfileError."""
    invalid = DockerfileError(f"time: invalid duration {go_quote(text)}")
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise invalid
        digits = _leading_digits(s)
        whole = int(digits) if digits else 0
        s = s[len(digits) :]
        fraction = ""
        if s.startswith("."):
            s = s[1:]
            fraction = _leading_digits(s)
            s = s[len(fraction) :]
        if not digits and not fraction:
            raise invalid
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise DockerfileError(f"time: missing unit in duration {go_quote(text)}")
        unit_name, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise DockerfileError(
                f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(text)}"
            )
        value = whole * unit
        if fraction:
            value += int(fraction) * unit // 10 ** len(fraction)
        total += value
        if total > _MAX_INT64 + (1 if negative else 0):
            raise invalid
    return -total if negative else total


def _leading_digits(s: str) -> str:
    i = 0
    while i < len(s) and "0" <= s[i] <= "9":
        i += 1
    return s[:i]


def _parse_int32(text: str) -> int:
    """Go's strconv.ParseInt(text, 10, 32); raises DockerfileError."""
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not all("0" <= c <= "9" for c in body):
        raise DockerfileError(f"strconv.ParseInt: parsing {go_quote(text)}: invalid syntax")
    value = int(text)
    if not -(1 << 31) <= value < (1 << 31):
        raise DockerfileError(f"strconv.ParseInt: parsing {go_quote(text)}: value out of range")
    return value


def _interval(flags: _Flags, name: str) -> int:
    text = flags.values[name]
    if not text:
        return 0
    nanos = parse_duration(text)
    if nanos == 0:
        return 0
    if nanos < 1_000_000:
        raise DockerfileError(f"Interval {go_quote(name)} cannot be less than 1ms")
    return nanos


# --- instructions ----------------------------------------------------------------


def _args(node: Node) -> list[str]:
    if node.child is not None:
        return [node.child.keyword, *_args(node.child)]
    return list(node.values)


def _common(node: Node) -> dict[str, object]:
    return {
        "original": node.original.strip(" \t\n\v\f\r\x85\xa0"),
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
    flags = _Flags(node.flags)
    flags.add("platform", "string")
    flags.parse()
    return From(base=args[0], name=name, platform=flags.string("platform"), **_common(node))  # type: ignore[arg-type]


def _parse_run(node: Node) -> Run:
    flags = _Flags(node.flags)
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
        **_common(node),  # type: ignore[arg-type]
    )


def _no_flags(node: Node) -> None:
    _Flags(node.flags).parse()


def _parse_copy(node: Node) -> Copy:
    args = _args(node)
    if len(args) < 2:
        raise DockerfileError(
            "COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    flags = _Flags(node.flags)
    for name, kind in (("chown", "string"), ("from", "string"), ("chmod", "string"),
                       ("link", "bool"), ("exclude", "strings"), ("parents", "bool")):  # fmt: skip
        flags.add(name, kind, "false" if kind == "bool" else "")
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
        **_common(node),  # type: ignore[arg-type]
    )


def _parse_add(node: Node) -> Add:
    args = _args(node)
    if len(args) < 2:
        raise DockerfileError(
            "ADD requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    flags = _Flags(node.flags)
    for name, kind in (("chown", "string"), ("chmod", "string"), ("link", "bool"),
                       ("keep-git-dir", "bool"), ("checksum", "string"), ("unpack", "bool"),
                       ("exclude", "strings")):  # fmt: skip
        flags.add(name, kind, "false" if kind == "bool" else "")
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
        **_common(node),  # type: ignore[arg-type]
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
                           start_interval=0, retries=0, **common)  # type: ignore[arg-type]  # fmt: skip
    flags = _Flags(node.flags)
    for name in ("interval", "timeout", "start-period", "start-interval", "retries"):
        flags.add(name, "string")
    flags.parse()
    if kind != "CMD":
        raise DockerfileError(f"Unknown type {go_quote(kind)} in HEALTHCHECK (try CMD)")
    command = _command_line(node, rest)
    if not command:
        raise DockerfileError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *command) if node.json else ("CMD-SHELL", *command)
    interval = _interval(flags, "interval")
    timeout = _interval(flags, "timeout")
    start_period = _interval(flags, "start-period")
    start_interval = _interval(flags, "start-interval")
    retries = 0
    if flags.values["retries"]:
        retries = _parse_int32(flags.values["retries"])
        if retries < 0:
            raise DockerfileError(f"--retries cannot be negative ({retries})")
    return Healthcheck(test=test, interval=interval, timeout=timeout, start_period=start_period,
                       start_interval=start_interval, retries=retries, **common)  # type: ignore[arg-type]  # fmt: skip


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
    return Onbuild(expression=expression, **_common(node))  # type: ignore[arg-type]


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
    return Arg(args=tuple(defs), **_common(node))  # type: ignore[arg-type]


def _parse_shell(node: Node) -> Shell:
    _no_flags(node)
    shell = _command_line(node, _args(node))
    if not shell:
        raise DockerfileError("SHELL requires at least one argument")
    if not node.json:
        raise DockerfileError("SHELL requires the arguments to be in JSON form")
    return Shell(shell=shell, **_common(node))  # type: ignore[arg-type]


def _parse_volume(node: Node) -> Volume:
    args = _args(node)
    if not args:
        raise DockerfileError("VOLUME requires at least one argument")
    _no_flags(node)
    volumes = []
    for volume in args:
        volume = volume.strip(" \t\n\v\f\r\x85\xa0")
        if not volume:
            raise DockerfileError("VOLUME specified can not be an empty string")
        volumes.append(volume)
    return Volume(volumes=tuple(volumes), **_common(node))  # type: ignore[arg-type]


def _simple(node: Node) -> Instruction:
    """The instructions whose parsing is a flag check and an argument count."""
    keyword = node.keyword.lower()
    args = _args(node)
    common = _common(node)
    if keyword == "env":
        _no_flags(node)
        return Env(pairs=_kvps(args, "ENV"), **common)  # type: ignore[arg-type]
    if keyword == "label":
        _no_flags(node)
        return Label(pairs=_kvps(args, "LABEL"), **common)  # type: ignore[arg-type]
    if keyword == "maintainer":
        value = _one(args, "MAINTAINER")
        _no_flags(node)
        return Maintainer(maintainer=value, **common)  # type: ignore[arg-type]
    if keyword == "workdir":
        value = _one(args, "WORKDIR")
        _no_flags(node)
        return Workdir(path=value, **common)  # type: ignore[arg-type]
    if keyword == "user":
        value = _one(args, "USER")
        _no_flags(node)
        return User(user=value, **common)  # type: ignore[arg-type]
    if keyword == "stopsignal":
        return StopSignal(signal=_one(args, "STOPSIGNAL"), **common)  # type: ignore[arg-type]
    if keyword == "expose":
        if not args:
            raise DockerfileError("EXPOSE requires at least one argument")
        _no_flags(node)
        return Expose(ports=tuple(sorted(args)), **common)  # type: ignore[arg-type]
    if keyword == "cmd":
        _no_flags(node)
        return Cmd(command=_command_line(node, args), exec_form=node.json, **common)  # type: ignore[arg-type]
    _no_flags(node)  # entrypoint
    return Entrypoint(command=_command_line(node, args), exec_form=node.json, **common)  # type: ignore[arg-type]


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
        message = _suggest(
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
