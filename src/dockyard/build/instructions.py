"""Values of a parsed Dockerfile: directives, instructions, stages (pure).

`dockerfile.parse_dockerfile` produces these; the builder consumes them.
Arguments are kept as written — quotes and `$VAR` unexpanded — because
expansion needs the build-time environment: the builder expands them with
`shellwords.expand_word` when it dispatches the instruction, as BuildKit and
dockerd's classic builder do.

Errors::

    ValueError
     └── DockerfileError            .message (BuildKit's text), .start_line,
         │                          .end_line (1-based; 0 when not tied to a line).
         │                          str(): the bare message, as dockerd prints
         │                          e.g. "no build stage in current context"
         ├── DockerfileSyntaxError  the file cannot be split into instructions
         │                          (bad directive, unterminated heredoc, bad JSON
         │                          array, no instructions); dockerd prefixes
         │                          "failed to parse <Dockerfile name>: "
         └── InstructionError       an instruction's arguments or flags are wrong;
              │                     str(): "dockerfile parse error on line N: <message>"
              └── UnknownInstructionError   .instruction, as written
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "Add",
    "Arg",
    "ArgDefinition",
    "Cmd",
    "Copy",
    "Directive",
    "Dockerfile",
    "DockerfileError",
    "DockerfileSyntaxError",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "Healthcheck",
    "Heredoc",
    "Instruction",
    "InstructionError",
    "KeyValue",
    "Label",
    "Maintainer",
    "Node",
    "Onbuild",
    "Run",
    "Shell",
    "SourceContent",
    "Stage",
    "StopSignal",
    "UnknownInstructionError",
    "User",
    "Volume",
    "Workdir",
]


class DockerfileError(ValueError):
    """A Dockerfile that cannot be parsed; `message` is BuildKit's wording."""

    def __init__(self, message: str, *, start_line: int = 0, end_line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.start_line = start_line
        self.end_line = max(end_line, start_line)

    def __str__(self) -> str:
        return self.message


class DockerfileSyntaxError(DockerfileError):
    """The text cannot be split into instructions (BuildKit's parser package)."""


class InstructionError(DockerfileError):
    """An instruction's arguments or flags are invalid (BuildKit's instructions package)."""

    def __str__(self) -> str:
        return f"dockerfile parse error on line {self.start_line}: {self.message}"


class UnknownInstructionError(InstructionError):
    """The keyword is not a Dockerfile instruction."""

    def __init__(self, message: str, *, instruction: str, start_line: int, end_line: int) -> None:
        super().__init__(message, start_line=start_line, end_line=end_line)
        self.instruction = instruction


@dataclass(frozen=True, kw_only=True)
class Directive:
    """A parser directive (`# escape=`, `# syntax=`, `# check=`) from the top of the file."""

    name: str  # lower-cased
    value: str
    line: int


@dataclass(frozen=True, kw_only=True)
class Heredoc:
    """A here-document attached to RUN, COPY or ADD.

    `content` is the body as written, each line with its newline, tabs not
    yet stripped: apply `chomp` (strip leading tabs of every line) where
    the content is used. `expand` is false when the delimiter was quoted.
    """

    name: str
    content: str
    expand: bool
    chomp: bool
    file_descriptor: int


@dataclass(frozen=True, kw_only=True)
class Node:
    """One instruction as the line parser split it (BuildKit's AST node).

    `values` are the arguments in BuildKit's layout: for ENV and LABEL
    triples (key, value, "=" or "" for the legacy `KEY value` form), for
    HEALTHCHECK the type then the command; `child` is ONBUILD's trigger.
    """

    keyword: str  # as written
    flags: tuple[str, ...]
    values: tuple[str, ...]
    json: bool
    child: Node | None
    heredocs: tuple[Heredoc, ...]
    original: str
    start_line: int
    end_line: int


@dataclass(frozen=True, kw_only=True)
class _Instruction:
    # `original` is the instruction as written (continuations joined,
    # surrounding space trimmed): what `Step N/M : …` and the image
    # history print.
    original: str
    start_line: int
    end_line: int


@dataclass(frozen=True, kw_only=True)
class From(_Instruction):
    base: str
    name: str | None  # lower-cased stage name of `AS name`
    platform: str | None


@dataclass(frozen=True, kw_only=True)
class ArgDefinition:
    key: str
    default: str | None  # None: `ARG name` without a value


@dataclass(frozen=True, kw_only=True)
class Arg(_Instruction):
    args: tuple[ArgDefinition, ...]


@dataclass(frozen=True, kw_only=True)
class KeyValue:
    key: str
    value: str
    legacy: bool  # written `KEY value` rather than `KEY=value`


@dataclass(frozen=True, kw_only=True)
class Env(_Instruction):
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Label(_Instruction):
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Run(_Instruction):
    """RUN: `command` is one string in shell form, the argv in exec form."""

    command: tuple[str, ...]
    exec_form: bool
    heredocs: tuple[Heredoc, ...]
    mounts: tuple[str, ...]  # raw `--mount=` values
    network: str  # "default", "none" or "host"
    security: str  # "sandbox" or "insecure"
    devices: tuple[str, ...]
    flags_used: tuple[str, ...]  # names of the flags given, in order


@dataclass(frozen=True, kw_only=True)
class Cmd(_Instruction):
    command: tuple[str, ...]
    exec_form: bool


@dataclass(frozen=True, kw_only=True)
class Entrypoint(_Instruction):
    command: tuple[str, ...]
    exec_form: bool


@dataclass(frozen=True, kw_only=True)
class Shell(_Instruction):
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SourceContent:
    """An inline COPY/ADD source from a heredoc (`COPY <<EOF /dest`)."""

    path: str  # the heredoc name, used as the file name
    data: str  # tabs already stripped for `<<-`
    expand: bool


@dataclass(frozen=True, kw_only=True)
class Copy(_Instruction):
    sources: tuple[str, ...]
    contents: tuple[SourceContent, ...]
    dest: str
    from_: str | None
    chown: str | None
    chmod: str | None
    link: bool
    parents: bool
    excludes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Add(_Instruction):
    sources: tuple[str, ...]
    contents: tuple[SourceContent, ...]
    dest: str
    chown: str | None
    chmod: str | None
    link: bool
    keep_git_dir: bool | None
    checksum: str | None
    unpack: bool | None
    excludes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Workdir(_Instruction):
    path: str


@dataclass(frozen=True, kw_only=True)
class User(_Instruction):
    user: str


@dataclass(frozen=True, kw_only=True)
class Maintainer(_Instruction):
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class StopSignal(_Instruction):
    signal: str


@dataclass(frozen=True, kw_only=True)
class Expose(_Instruction):
    ports: tuple[str, ...]  # sorted, as BuildKit sorts them


@dataclass(frozen=True, kw_only=True)
class Volume(_Instruction):
    volumes: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Healthcheck(_Instruction):
    """HEALTHCHECK: `test` is Docker's Healthcheck.Test (`("NONE",)`,
    `("CMD", argv…)` or `("CMD-SHELL", cmd)`); durations in nanoseconds,
    0 meaning "inherit"."""

    test: tuple[str, ...]
    interval: int
    timeout: int
    start_period: int
    start_interval: int
    retries: int


@dataclass(frozen=True, kw_only=True)
class Onbuild(_Instruction):
    """ONBUILD: `expression` is the trigger as stored in the image's
    `Config.OnBuild` (heredoc bodies appended); it is parsed again when
    a later build uses the image as its base."""

    expression: str


Instruction: TypeAlias = (
    Run | Cmd | Entrypoint | Shell | Copy | Add | Env | Arg | Label | Workdir | User
    | Maintainer | StopSignal | Expose | Volume | Healthcheck | Onbuild
)


@dataclass(frozen=True, kw_only=True)
class Stage:
    """A build stage: its FROM and the instructions up to the next FROM."""

    name: str | None
    base: str
    platform: str | None
    from_: From
    instructions: tuple[Instruction, ...]


@dataclass(frozen=True, kw_only=True)
class Dockerfile:
    """A parsed Dockerfile.

    `syntax` is the `# syntax=` directive's value (a frontend image the
    classic builder does not run: warn and ignore), `escape` the escape
    character in force, `meta_args` the ARGs before the first FROM,
    `warnings` the parser's warnings (empty continuation lines) as
    BuildKit words them.
    """

    directives: tuple[Directive, ...]
    escape: str
    syntax: str | None
    meta_args: tuple[Arg, ...]
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...]
