"""Byte-exact tests of the DNS wire format used by the embedded resolver."""

from __future__ import annotations

import pytest

from dockyard.network import dns_wire

# id 0xbeef, RD, one question: web.  A IN
QUERY_WEB_A = bytes.fromhex("beef 0100 0001 0000 0000 0000 03 776562 00 0001 0001".replace(" ", ""))


def test_parse_query():
    q = dns_wire.parse_query(QUERY_WEB_A)
    assert (q.id, q.flags, q.name, q.qtype, q.qclass) == (0xBEEF, 0x0100, "web", 1, 1)
    assert q.question == bytes.fromhex("03776562000001 0001".replace(" ", ""))
    assert q.opcode == 0


def test_parse_lowercases_and_joins_labels():
    data = bytes.fromhex("0001 0000 0001 0000 0000 0000".replace(" ", "")) + b"\x03WeB\x07example\x00\x00\x1c\x00\x01"
    q = dns_wire.parse_query(data)
    assert (q.name, q.qtype) == ("web.example", dns_wire.TYPE_AAAA)
    assert q.question == b"\x03web\x07example\x00\x00\x1c\x00\x01"


def test_compression_pointer_in_question():
    # Two questions; the second's name is "db" + pointer to "example" of the first, but we
    # make the FIRST question use a pointer to a name stored after the header of a crafted message:
    # header, q1 = "x" + ptr(->offset 12+ ...)
    header = bytes.fromhex("0007 0000 0001 0000 0000 0000".replace(" ", ""))
    # offset 12: \x02db  then pointer to offset 20 where "\x04test\x00" lives; then type/class.
    # Layout: 12:'\x02db'(3) 15:'\xc0\x14'(2) 17:type/class(4) 21: ... so put target at 21.
    body = b"\x02db\xc0\x15" + b"\x00\x01\x00\x01" + b"\x04test\x00"
    q = dns_wire.parse_query(header + body)
    assert q.name == "db.test"
    assert (q.qtype, q.qclass) == (1, 1)
    assert q.question == b"\x02db\x04test\x00\x00\x01\x00\x01"


def test_pointer_loop_is_an_error():
    header = bytes.fromhex("0007 0000 0001 0000 0000 0000".replace(" ", ""))
    with pytest.raises(dns_wire.DnsFormatError):
        dns_wire.parse_query(header + b"\xc0\x0c\x00\x01\x00\x01")


@pytest.mark.parametrize("data", [
    b"", b"\x00" * 11,
    bytes.fromhex("0001 8000 0001 0000 0000 0000".replace(" ", "")) + b"\x00\x00\x01\x00\x01",  # a response
    bytes.fromhex("0001 0000 0000 0000 0000 0000".replace(" ", "")),  # no question
    bytes.fromhex("0001 0000 0001 0000 0000 0000".replace(" ", "")) + b"\x05ab",  # truncated label
    bytes.fromhex("0001 0000 0001 0000 0000 0000".replace(" ", "")) + b"\x00\x00",  # truncated type
])
def test_malformed(data):
    with pytest.raises(dns_wire.DnsFormatError):
        dns_wire.parse_query(data)


def test_answer_a_exact_bytes():
    q = dns_wire.parse_query(QUERY_WEB_A)
    out = dns_wire.answer_a(q, ["10.214.0.2"])
    assert out == bytes.fromhex(
        "beef 8180 0001 0001 0000 0000"
        "03776562 00 0001 0001"
        "c00c 0001 0001 00000258 0004 0ad60002".replace(" ", ""))


def test_answer_a_two_addresses_and_ttl():
    q = dns_wire.parse_query(QUERY_WEB_A)
    out = dns_wire.answer_a(q, ["1.2.3.4", "5.6.7.8"], ttl=1)
    assert out[6:8] == b"\x00\x02"
    assert out.endswith(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x01\x02\x03\x04"
                        b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04\x05\x06\x07\x08")


def test_answer_aaaa_exact_bytes():
    q = dns_wire.parse_query(QUERY_WEB_A)
    out = dns_wire.answer_aaaa(q, ["fd00::1"])
    assert out[12:] == (b"\x03web\x00\x00\x01\x00\x01" + b"\xc0\x0c\x00\x1c\x00\x01\x00\x00\x02\x58\x00\x10"
                        + bytes.fromhex("fd000000000000000000000000000001"))


def test_nxdomain_and_empty_and_servfail():
    q = dns_wire.parse_query(QUERY_WEB_A)
    question = b"\x03web\x00\x00\x01\x00\x01"
    assert dns_wire.answer_nxdomain(q) == bytes.fromhex("beef818300010000 00000000".replace(" ", "")) + question
    assert dns_wire.answer_empty(q) == bytes.fromhex("beef818000010000 00000000".replace(" ", "")) + question
    assert dns_wire.answer_servfail(q) == bytes.fromhex("beef818200010000 00000000".replace(" ", "")) + question


def test_rd_not_set_is_not_echoed():
    data = b"\x00\x02\x00\x00" + QUERY_WEB_A[4:]
    out = dns_wire.answer_nxdomain(dns_wire.parse_query(data))
    assert out[:4] == b"\x00\x02\x80\x83"


def test_encode_name():
    assert dns_wire.encode_name("a.bc.") == b"\x01a\x02bc\x00"
    assert dns_wire.encode_name("") == b"\x00"
    with pytest.raises(dns_wire.DnsFormatError):
        dns_wire.encode_name("x" * 64)
