"""The DNS message format (RFC 1035) as far as the embedded resolver needs it (pure, no I/O).

``parse_query`` reads a query's header and first question (names may use
compression pointers); ``answer_a`` / ``answer_aaaa`` / ``answer_empty`` /
``answer_nxdomain`` / ``answer_servfail`` build the reply to it, echoing the
id, the RD flag and the question as a resolver must.

Raises only ``DnsFormatError`` (a ``ValueError``) for malformed input.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CLASS_IN", "DnsFormatError", "Query", "RCODE_NXDOMAIN", "RCODE_SERVFAIL", "TYPE_A", "TYPE_AAAA",
    "answer_a", "answer_aaaa", "answer_empty", "answer_nxdomain", "answer_servfail", "encode_name",
    "parse_query",
]

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1
RCODE_NXDOMAIN = 3
RCODE_SERVFAIL = 2

_HEADER = struct.Struct("!HHHHHH")
_FLAG_QR = 0x8000
_FLAG_AA = 0x0400
_FLAG_RD = 0x0100
_FLAG_RA = 0x0080
_OPCODE_MASK = 0x7800
#: Pointer back to offset 12, where the (single) question's name starts.
_QUESTION_POINTER = b"\xc0\x0c"
#: dockerd's embedded server answers with a 600 s TTL.
DEFAULT_TTL = 600
_MAX_POINTERS = 64


class DnsFormatError(ValueError):
    """The bytes are not a DNS query this resolver can read."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Query:
    """A query's id, flags and first question; ``name`` is lower-case, without the final dot."""

    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    #: The question's own bytes (name as sent, type, class), echoed in answers.
    question: bytes

    @property
    def opcode(self) -> int:
        return (self.flags & _OPCODE_MASK) >> 11


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset after it in the message (pointers followed)."""
    labels: list[str] = []
    end = -1
    jumps = 0
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsFormatError("truncated compression pointer")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsFormatError("compression pointer loop")
            if end < 0:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsFormatError("unknown label type")
        offset += 1
        if length == 0:
            break
        label = data[offset:offset + length]
        if len(label) != length:
            raise DnsFormatError("label runs past the end of the message")
        labels.append(label.decode("ascii", errors="replace").lower())
        offset += length
    return ".".join(labels), (end if end >= 0 else offset)


def parse_query(data: bytes) -> Query:
    """The query in ``data``; raises ``DnsFormatError`` unless it is a query with a question."""
    if len(data) < _HEADER.size:
        raise DnsFormatError("message shorter than a DNS header")
    ident, flags, qdcount, _, _, _ = _HEADER.unpack_from(data)
    if flags & _FLAG_QR:
        raise DnsFormatError("not a query")
    if qdcount < 1:
        raise DnsFormatError("no question")
    name, offset = _read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise DnsFormatError("question runs past the end of the message")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    # Echo the question uncompressed: a pointer in it would point into the query.
    question = encode_name(name) + struct.pack("!HH", qtype, qclass)
    return Query(id=ident, flags=flags, name=name, qtype=qtype, qclass=qclass, question=question)


def encode_name(name: str) -> bytes:
    """``name`` as length-prefixed labels ending in the root label."""
    out = bytearray()
    for label in name.rstrip(".").split("."):
        if not label:
            continue
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise DnsFormatError(f"label too long: {label!r}")
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out)


def _reply(query: Query, *, rcode: int, answers: Sequence[bytes], authoritative: bool) -> bytes:
    flags = _FLAG_QR | _FLAG_RA | (query.flags & (_OPCODE_MASK | _FLAG_RD)) | rcode
    if authoritative:
        flags |= _FLAG_AA
    header = _HEADER.pack(query.id, flags, 1, len(answers), 0, 0)
    return header + query.question + b"".join(answers)


def _record(rtype: int, rdata: bytes, ttl: int) -> bytes:
    return _QUESTION_POINTER + struct.pack("!HHIH", rtype, CLASS_IN, ttl, len(rdata)) + rdata


def answer_a(query: Query, addresses: Sequence[str], *, ttl: int = DEFAULT_TTL) -> bytes:
    """A records for ``addresses`` (IPv4 text), owner name compressed to the question."""
    records = [_record(TYPE_A, ipaddress.IPv4Address(a).packed, ttl) for a in addresses]
    return _reply(query, rcode=0, answers=records, authoritative=False)


def answer_aaaa(query: Query, addresses: Sequence[str], *, ttl: int = DEFAULT_TTL) -> bytes:
    """AAAA records for ``addresses`` (IPv6 text)."""
    records = [_record(TYPE_AAAA, ipaddress.IPv6Address(a).packed, ttl) for a in addresses]
    return _reply(query, rcode=0, answers=records, authoritative=False)


def answer_empty(query: Query) -> bytes:
    """NOERROR without records: the name exists, not with this type."""
    return _reply(query, rcode=0, answers=(), authoritative=False)


def answer_nxdomain(query: Query) -> bytes:
    """NXDOMAIN: no such name."""
    return _reply(query, rcode=RCODE_NXDOMAIN, answers=(), authoritative=False)


def answer_servfail(query: Query) -> bytes:
    """SERVFAIL: the upstream resolvers did not answer."""
    return _reply(query, rcode=RCODE_SERVFAIL, answers=(), authoritative=False)
