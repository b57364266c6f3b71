"""The line parser: continuations, comments, directives, JSON/shell form,
flags, heredocs, line numbers and syntax errors, byte for byte."""

from __future__ import annotations

import pytest

from dockyard.build.dockerfile import parse_lines
from dockyard.build.instructions import Directive, DockerfileSyntaxError, Heredoc, Node


def one(text: str) -> Node:
    nodes = parse_lines(text).nodes
    assert len(nodes) == 2, nodes
    return nodes[1]


def test_plain_instruction_keeps_keyword_as_written() -> None:
    node = one("FROM busybox\nrUn echo hi\n")
    assert node == Node(
        keyword="rUn", flags=(), values=("echo hi",), json=False, child=None, heredocs=(),
        original="rUn echo hi", start_line=2, end_line=2,
    )  # fmt: skip


def test_backslash_continuation_joins_lines_and_keeps_indentation() -> None:
    node = one("FROM x\nRUN a \\\n    b \\  \n  c\n")
    assert node.values == ("a     b   c",)
    assert (node.start_line, node.end_line) == (2, 4)
    assert node.original == "RUN a     b   c"


def test_comments_and_blank_lines_inside_continuation_are_dropped() -> None:
    result = parse_lines("FROM x\nRUN a \\\n  # note\n\n  b\n")
    node = result.nodes[1]
    assert node.values == ("a   b",)
    assert node.end_line == 5
    assert result.warnings == ("Empty continuation line found in: RUN a   b",)


def test_escaped_escape_at_end_does_not_continue() -> None:
    nodes = parse_lines("FROM x\nRUN echo a\\\\\nRUN echo b\n").nodes
    assert [n.values for n in nodes[1:]] == [("echo a\\\\",), ("echo b",)]


def test_continuation_at_end_of_file() -> None:
    node = one("FROM x\nRUN echo a \\")
    assert node.values == ("echo a",)


def test_escape_directive_switches_to_backtick() -> None:
    result = parse_lines("# escape=`\nFROM x\nRUN dir C:\\ `\n  /s\n")
    assert result.escape == "`"
    assert result.directives == (Directive(name="escape", value="`", line=1),)
    assert result.nodes[1].values == ("dir C:\\   /s",)


def test_directives_are_case_insensitive_and_spaced() -> None:
    result = parse_lines("#  SYNTAX = docker/dockerfile:1 \n# Escape=`\nFROM x\n")
    assert result.directives == (
        Directive(name="syntax", value="docker/dockerfile:1", line=1),
        Directive(name="escape", value="`", line=2),
    )


@pytest.mark.parametrize(
    "text",
    [
        "\n# escape=`\nFROM x\nRUN a \\\n b\n",  # after a blank line
        "# comment\n# escape=`\nFROM x\nRUN a \\\n b\n",  # after a comment
        "FROM x\n# escape=`\nRUN a \\\n b\n",  # after an instruction
    ],
)
def test_directive_not_at_top_is_a_comment(text: str) -> None:
    result = parse_lines(text)
    assert result.escape == "\\"
    assert result.directives == ()
    assert result.nodes[-1].values == ("a  b",)


def test_check_directive_is_recognised() -> None:
    result = parse_lines("# check=skip=all\nFROM x\n")
    assert result.directives == (Directive(name="check", value="skip=all", line=1),)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("# escape=`\n# escape=\\\nFROM x\n", "only one escape parser directive can be used", 2),
        ("# escape=x\nFROM x\n", "invalid escape token 'x' does not match ` or \\", 1),
        ("# hello\n\n", "file with no instructions", 2),
        ("", "file with no instructions", 1),
        ("FROM x\nRUN <<EOF\nno end\n", "unterminated heredoc", 2),
        ('FROM x\nCMD ["a", 1]\n', "when using JSON array syntax, arrays must be comprised of strings only", 2),
        ("FROM x\nENV A\n", "ENV must have two arguments", 2),
        ("FROM x\nLABEL a=b c\n", 'Syntax error - can\'t find = in "c". Must be of the form: name=value', 2),
    ],
)  # fmt: skip
def test_syntax_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(DockerfileSyntaxError) as caught:
        parse_lines(text)
    assert str(caught.value) == message
    assert caught.value.start_line == line


def test_bom_and_crlf() -> None:
    nodes = parse_lines("\ufeffFROM x\r\nRUN a \\\r\n  b\r\n").nodes
    assert nodes[0].values == ("x",)
    assert nodes[1].values == ("a   b",)


@pytest.mark.parametrize(
    ("line", "values", "is_json"),
    [
        ('RUN ["echo", "a b"]', ("echo", "a b"), True),
        ('RUN   [ "sh" , "-c" ]  ', ("sh", "-c"), True),
        ("RUN ['single']", ("['single']",), False),
        ('RUN ["unterminated"', ('["unterminated"',), False),
        ('RUN ["array"] then text', ('["array"] then text',), False),  # BuildKit ≥ 0.13
        ('CMD ["\\u00e9\\"q\\""]', ('é"q"',), True),
        ("CMD [NaN]", ("[NaN]",), False),
        ("CMD []", (), True),
        ("ENTRYPOINT", (), False),
        ("VOLUME /a  /b\t/c", ("/a", "/b", "/c"), False),
        ('VOLUME ["/a b"]', ("/a b",), True),
        ("EXPOSE 80  443/udp", ("80", "443/udp"), False),
        ("USER  me  too ", ("me  too",), False),
    ],
)
def test_json_and_shell_forms(line: str, values: tuple[str, ...], is_json: bool) -> None:
    node = one("FROM x\n" + line + "\n")
    assert (node.values, node.json) == (values, is_json)


@pytest.mark.parametrize(
    ("line", "flags", "values"),
    [
        ("COPY --from=a --chown=1:1 src /dst", ("--from=a", "--chown=1:1"), ("src", "/dst")),
        ('COPY --chown="a b" x y', ("--chown=a b",), ("x", "y")),
        ("COPY --link x y", ("--link",), ("x", "y")),
        ("RUN --network=none -- --not-a-flag", ("--network=none",), ("--not-a-flag",)),
        ("RUN -x --y", (), ("-x --y",)),
        ("RUN --mount=type=cache,target=/c\\ d echo", ("--mount=type=cache,target=/c d",), ("echo",)),
        ("FROM --platform=linux/arm64 img AS b", ("--platform=linux/arm64",), ("img", "AS", "b")),
    ],
)  # fmt: skip
def test_flags(line: str, flags: tuple[str, ...], values: tuple[str, ...]) -> None:
    node = one("FROM x\n" + line + "\n")
    assert (node.flags, node.values) == (flags, values)


def test_flags_honour_the_escape_directive() -> None:
    node = parse_lines("# escape=`\nFROM x\nCOPY --chown=a`:b s d\n").nodes[1]
    assert node.flags == ("--chown=a:b",)


@pytest.mark.parametrize(
    ("line", "values"),
    [
        ("ENV A=1 B=two", ("A", "1", "=", "B", "two", "=")),
        ('ENV A="a b" C=\'c d\' E=e\\ f', ("A", '"a b"', "=", "C", "'c d'", "=", "E", "e\\ f", "=")),
        ("ENV A value with  spaces", ("A", "value with  spaces", "")),
        ("ENV EMPTY=", ("EMPTY", "", "=")),
        ('LABEL "key with space"=v', ('"key with space"', "v", "=")),
        ("ARG A B=1 C='x y'", ("A", "B=1", "C='x y'")),
    ],
)  # fmt: skip
def test_key_value_instructions_keep_quotes(line: str, values: tuple[str, ...]) -> None:
    assert one("FROM x\n" + line + "\n").values == values


def test_healthcheck_node() -> None:
    node = one("FROM x\nHEALTHCHECK --interval=1s CMD [\"a\"]\n")
    assert (node.flags, node.values, node.json) == (("--interval=1s",), ("CMD", "a"), True)


def test_onbuild_has_the_trigger_as_child() -> None:
    node = one("FROM x\nONBUILD COPY --from=a b c\n")
    assert node.child is not None
    assert (node.child.keyword, node.child.flags, node.child.values) == (
        "COPY", ("--from=a",), ("b", "c"),
    )  # fmt: skip
    assert node.values == ()


def test_unknown_instruction_keeps_one_empty_value() -> None:
    assert one("FROM x\nFOO bar\n").values == ("",)


# --- heredocs ----------------------------------------------------------------


def doc(name: str, content: str, *, expand: bool = True, chomp: bool = False, fd: int = 0) -> Heredoc:
    return Heredoc(name=name, content=content, expand=expand, chomp=chomp, file_descriptor=fd)


def test_heredoc_body_and_lines() -> None:
    result = parse_lines("FROM x\nRUN <<EOF\necho $A\n  indented\nEOF\nRUN next\n")
    node = result.nodes[1]
    assert node.heredocs == (doc("EOF", "echo $A\n  indented\n"),)
    assert (node.start_line, node.end_line) == (2, 5)
    assert node.values == ("<<EOF",)
    assert result.nodes[2].start_line == 6


def test_heredoc_dash_strips_tabs_of_terminator_only_in_the_parser() -> None:
    node = one("FROM x\nRUN <<-EOT\n\tone\n\t\ttwo\n\tEOT\n")
    assert node.heredocs == (doc("EOT", "\tone\n\t\ttwo\n", chomp=True),)


@pytest.mark.parametrize(
    ("opener", "name", "expand"),
    [('<<"EOF"', "EOF", False), ("<<'EOF'", "EOF", False), ('<<E"O"F', "EOF", False), ("<<EOF", "EOF", True)],
)  # fmt: skip
def test_quoted_heredoc_delimiter_disables_expansion(opener: str, name: str, expand: bool) -> None:
    node = one(f"FROM x\nRUN {opener}\nbody\n{name}\n")
    assert node.heredocs == (doc(name, "body\n", expand=expand),)


def test_several_heredocs_and_file_descriptor() -> None:
    node = one("FROM x\nRUN <<A 3<<B cat\na\nA\nb\nB\n")
    assert node.heredocs == (doc("A", "a\n"), doc("B", "b\n", fd=3))
    assert node.end_line == 6


def test_copy_heredoc_and_whitespace_after_operator() -> None:
    node = one("FROM x\nCOPY << EOF /dest\ntext\nEOF\n")  # BuildKit ≥ 0.21 allows the space
    assert node.heredocs == (doc("EOF", "text\n"),)


def test_no_heredoc_in_json_form_or_other_instructions() -> None:
    nodes = parse_lines('FROM x\nRUN ["cat", "<<EOF"]\nENV A=<<EOF\nLABEL b=c\n').nodes
    assert [n.heredocs for n in nodes] == [(), (), (), ()]
    assert len(nodes) == 4


def test_heredoc_inside_onbuild_is_attached_to_onbuild() -> None:
    node = one("FROM x\nONBUILD RUN <<EOF\nhi\nEOF\n")
    assert node.heredocs == (doc("EOF", "hi\n"),)
