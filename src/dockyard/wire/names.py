"""Container names: Docker's ``adjective_surname`` generator and name validation.

The word lists are dockyard's own (moby's are not copied); the shape of a
generated name and the retry suffix follow moby's ``namesgenerator``: on a
retry after a name clash, one random digit is appended (``calm_noether3``).

Pure: the random source is a parameter. Errors::

    dockyard.errors.InvalidParameter
    └── InvalidName      ``Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed``
"""

from __future__ import annotations

import random
import re

from dockyard.errors import InvalidParameter

__all__ = [
    "ADJECTIVES",
    "RESTRICTED_NAME_CHARS",
    "SURNAMES",
    "InvalidName",
    "generate",
    "is_valid_name",
    "validate_name",
]

# moby's daemon/names: shared by container and volume names.
RESTRICTED_NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]"
_RESTRICTED_NAME_RE = re.compile(RESTRICTED_NAME_CHARS + "+")


class InvalidName(InvalidParameter):
    """A user-chosen container name has characters Docker does not allow."""


ADJECTIVES: tuple[str, ...] = (
    "agile", "ardent", "balmy", "blissful", "bold", "brave", "breezy", "bright",
    "calm", "candid", "cheerful", "clever", "cosmic", "crisp", "curious", "daring",
    "dazzling", "deft", "diligent", "dreamy", "eager", "earnest", "elated", "fearless",
    "fervent", "gallant", "gentle", "gleaming", "glowing", "graceful", "hardy", "humble",
    "jolly", "jovial", "keen", "kind", "lively", "lucid", "merry", "mellow",
    "mindful", "nimble", "noble", "patient", "placid", "plucky", "polite", "proud",
    "quiet", "radiant", "serene", "sincere", "snappy", "spirited", "steady", "sunny",
    "swift", "tender", "thoughtful", "tranquil", "upbeat", "valiant", "vibrant", "vivid",
    "warm", "wise", "witty", "zealous",
)

# Surnames of scientists and engineers whose work this kind of software rests on.
SURNAMES: tuple[str, ...] = (
    "agnesi", "babbage", "bardeen", "bohr", "boole", "cannon", "cerf", "chandrasekhar",
    "curie", "darwin", "dijkstra", "euler", "faraday", "fermi", "feynman", "franklin",
    "galois", "gauss", "germain", "goodall", "hamilton", "hawking", "heisenberg", "hilbert",
    "hodgkin", "hopper", "hypatia", "johnson", "kepler", "knuth", "kowalevski", "lamarr",
    "laplace", "leavitt", "liskov", "lovelace", "maxwell", "meitner", "mendel", "mirzakhani",
    "newton", "noether", "pascal", "pasteur", "planck", "raman", "ramanujan", "ritchie",
    "sammet", "shannon", "somerville", "tesla", "thompson", "torvalds", "turing", "volta",
    "wiles", "wu", "yalow", "yonath",
)


def generate(rand: random.Random, retry: int = 0) -> str:
    """A random ``adjective_surname``; with ``retry > 0`` a digit 0-9 is appended.

    Deterministic for a seeded ``rand``. Never returns a leading ``/``.
    """
    name = rand.choice(ADJECTIVES) + "_" + rand.choice(SURNAMES)
    if retry > 0:
        name += str(rand.randrange(10))
    return name


def is_valid_name(name: str) -> bool:
    """True if ``name`` (one leading ``/`` allowed) is a valid container name.

    Needs at least two characters after the slash, as dockerd's pattern does.
    """
    bare = name[1:] if name.startswith("/") else name
    return _RESTRICTED_NAME_RE.fullmatch(bare) is not None


def validate_name(name: str) -> None:
    """Raise :class:`InvalidName` with dockerd's message unless ``name`` is valid.

    The message quotes ``name`` as the client sent it, slash included.
    """
    if not is_valid_name(name):
        raise InvalidName(
            f"Invalid container name ({name}), only {RESTRICTED_NAME_CHARS} are allowed"
        )
