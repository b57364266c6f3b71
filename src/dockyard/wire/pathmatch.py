"""Go's ``path.Match`` patterns as Python regular expressions. Pure.

``*`` and ``?`` never cross ``/``; ``[...]`` classes with ``^`` or ``!``
negation; a backslash escapes the next character. Used wherever Docker
matches names with ``path.Match``: COPY/ADD sources, the ``reference``
filter of ``docker images``.
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidParameter


class BadPattern(InvalidParameter):
    """Go's ``path.ErrBadPattern``."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def compile_match(pattern: str) -> re.Pattern[str]:
    """A regex matching exactly what ``path.Match(pattern, name)`` matches
    (use ``.match``; the regex is anchored at the end). Raises BadPattern."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise BadPattern()
            body = pattern[i + 1 : end]
            if body.startswith(("^", "!")):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")
