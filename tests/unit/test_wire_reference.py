"""Expected values were checked against the real docker CLI 28.2.2 (which
parses with distribution/reference before it sends anything)."""

import pytest

from dockyard.errors import InvalidParameter
from dockyard.wire.reference import (
    InvalidReference,
    Reference,
    is_full_id,
    looks_like_id_prefix,
    parse,
    validate_digest,
    validate_tag,
)

HEX = "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", None, None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("localhost:5000/x", "localhost:5000", "x", None, None),
        ("localhost/x", "localhost", "x", None, None),
        ("localhost", "docker.io", "library/localhost", None, None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        (f"host:5000/ns/x:tag@sha256:{HEX}", "host:5000", "ns/x", "tag", f"sha256:{HEX}"),
        ("user/repo", "docker.io", "user/repo", None, None),
        ("index.docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("index.docker.io/user/repo", "docker.io", "user/repo", None, None),
        # distribution rewrites only the legacy index name, not the registry host.
        ("registry-1.docker.io/library/alpine", "registry-1.docker.io", "library/alpine", None, None),
        ("docker.io/alpine", "docker.io", "library/alpine", None, None),
        ("docker.io/library/alpine:latest", "docker.io", "library/alpine", "latest", None),
        ("library/a/b", "docker.io", "library/a/b", None, None),
        ("Foo/bar", "Foo", "bar", None, None),
        ("FOO/bar:Tag", "FOO", "bar", "Tag", None),
        ("example.com/a/b", "example.com", "a/b", None, None),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
        ("[::1]/x", "[::1]", "x", None, None),
        ("127.0.0.1:5000/a", "127.0.0.1:5000", "a", None, None),
        (f"alpine@sha256:{HEX}", "docker.io", "library/alpine", None, f"sha256:{HEX}"),
        (f"alpine:3@sha256:{HEX}", "docker.io", "library/alpine", "3", f"sha256:{HEX}"),
        ("a__b/c--d/e.f_g:T_a.g-1", "docker.io", "a__b/c--d/e.f_g", "T_a.g-1", None),
        ("a.b", "docker.io", "library/a.b", None, None),
        ("alpine:_x", "docker.io", "library/alpine", "_x", None),
        ("ho_st.com/x", "", "ho_st.com/x", None, None),
        (f"sha256:{HEX}", "docker.io", "library/sha256", HEX, None),
        (f"{HEX}:tag", "docker.io", f"library/{HEX}", "tag", None),
        (f"alpine@sha512:{HEX * 2}", "docker.io", "library/alpine", None, f"sha512:{HEX * 2}"),
        (f"alpine@sha384:{HEX}{HEX[:32]}", "docker.io", "library/alpine", None, f"sha384:{HEX}{HEX[:32]}"),
    ],
)
def test_parse(text: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    assert parse(text) == Reference(domain=domain, path=path, tag=tag, digest=digest)


@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("alpine:3.20", "docker.io/library/alpine:3.20"),
        ("localhost:5000/x", "localhost:5000/x:latest"),
        (f"host:5000/ns/x:tag@sha256:{HEX}", f"host:5000/ns/x:tag@sha256:{HEX}"),
        (f"alpine@sha256:{HEX}", f"docker.io/library/alpine@sha256:{HEX}"),
        ("user/repo", "docker.io/user/repo:latest"),
    ],
)
def test_str_with_default_tag(text: str, full: str) -> None:
    assert str(parse(text).with_default_tag()) == full


def test_str_keeps_absent_tag_absent() -> None:
    ref = parse("alpine")
    assert str(ref) == "docker.io/library/alpine"
    assert ref.name == "docker.io/library/alpine"


@pytest.mark.parametrize(
    ("text", "familiar_name", "familiar"),
    [
        ("docker.io/library/alpine:3.20", "alpine", "alpine:3.20"),
        ("alpine", "alpine", "alpine"),
        ("docker.io/user/repo", "user/repo", "user/repo"),
        ("localhost:5000/x:1", "localhost:5000/x", "localhost:5000/x:1"),
        ("docker.io/library/a/b", "library/a/b", "library/a/b"),
        (f"alpine:3@sha256:{HEX}", "alpine", f"alpine:3@sha256:{HEX}"),
        ("example.com/library/x", "example.com/library/x", "example.com/library/x"),
    ],
)
def test_familiar(text: str, familiar_name: str, familiar: str) -> None:
    ref = parse(text)
    assert ref.familiar_name == familiar_name
    assert ref.familiar() == familiar


def test_with_default_tag_leaves_tag_or_digest_alone() -> None:
    assert parse("alpine:3").with_default_tag().tag == "3"
    digested = parse(f"alpine@sha256:{HEX}").with_default_tag()
    assert digested.tag is None
    assert digested.digest == f"sha256:{HEX}"


def test_docker_ref_form_drops_tag_when_digested() -> None:
    ref = parse(f"busybox:latest@sha256:{HEX}").without_tag_if_digested()
    assert str(ref) == f"docker.io/library/busybox@sha256:{HEX}"


def test_with_tag_and_trimmed() -> None:
    ref = parse("alpine:3").with_tag("edge")
    assert str(ref) == "docker.io/library/alpine:edge"
    assert str(ref.trimmed()) == "docker.io/library/alpine"
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        ref.with_tag("-bad")


TOO_LONG = "a" * 256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Alpine", "invalid reference format: repository name (library/Alpine) must be lowercase"),
        ("Ubuntu:Tag", "invalid reference format: repository name (library/Ubuntu) must be lowercase"),
        ("upper/Lower", "invalid reference format: repository name (upper/Lower) must be lowercase"),
        ("localhost:5000/Bar", "invalid reference format: repository name (Bar) must be lowercase"),
        (
            f"ALPINE@sha256:{HEX}",
            "invalid reference format: repository name (library/ALPINE@sha256) must be lowercase",
        ),
        (
            f"alpine@SHA256:{HEX}",
            "invalid reference format: repository name (library/alpine@SHA256) must be lowercase",
        ),
        (TOO_LONG, "repository name must not be more than 255 characters"),
        (f"example.com/{TOO_LONG}", "repository name must not be more than 255 characters"),
        ("alpine:" + "t" * 129, "invalid reference format"),
        ("alpine:-x", "invalid reference format"),
        ("alpine:.x", "invalid reference format"),
        ("alpine:x/y", "invalid reference format"),
        ("alpine::x", "invalid reference format"),
        ("alpine:", "invalid reference format"),
        ("alpine@", "invalid reference format"),
        ("alpine@sha256:abc", "invalid reference format"),
        (f"alpine@sha256:{HEX}0", "invalid checksum digest length"),
        (f"alpine@sha256:{HEX[:-1]}", "invalid checksum digest length"),
        (f"alpine@sha512:{HEX}", "invalid checksum digest length"),
        (f"alpine@sha256:{HEX.upper()}", "invalid checksum digest format"),
        ("alpine@md5:0123456789abcdef0123456789abcdef", "unsupported digest algorithm"),
        ("alpine@foo+bar:0123456789abcdef0123456789abcdef", "unsupported digest algorithm"),
        ("alpine@foo:0123456789abcdef0123456789abcdeX", "invalid reference format"),
        ("a-", "invalid reference format"),
        ("a___b", "invalid reference format"),
        ("a..b", "invalid reference format"),
        (":tag", "invalid reference format"),
        ("/a", "invalid reference format"),
        ("a/", "invalid reference format"),
        ("a//b", "invalid reference format"),
        ("a b", "invalid reference format"),
        ("", "invalid reference format"),
        ("localhost:abc/x", "invalid reference format"),
        ("host-.com/x", "invalid reference format"),
        ("[fe80::1%eth0]:5000/x", "invalid reference format"),
        ("alpine\n", "invalid reference format"),
        (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
    ],
)
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(text)
    assert info.value.message == message
    assert str(info.value) == message
    assert isinstance(info.value, InvalidParameter)


def test_longest_valid_path() -> None:
    # The limit applies to the path, "library/" included, not to the domain.
    with pytest.raises(InvalidReference):
        parse("a" * 248)
    assert parse("a" * 247).path == "library/" + "a" * 247
    assert parse("example.com/" + "a" * 255).path == "a" * 255


def test_validate_tag_and_digest() -> None:
    validate_tag("v1.2-rc_3")
    validate_tag("t" * 128)
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        validate_tag("t" * 129)
    validate_digest(f"sha256:{HEX}")
    with pytest.raises(InvalidReference, match="^invalid checksum digest format$"):
        validate_digest("sha256")
    with pytest.raises(InvalidReference, match="^invalid checksum digest length$"):
        validate_digest("sha256:abcd")


def test_id_helpers() -> None:
    assert is_full_id(HEX)
    assert not is_full_id(HEX.upper())
    assert not is_full_id("sha256:" + HEX)
    assert looks_like_id_prefix("0123ab")
    assert looks_like_id_prefix("sha256:" + HEX)
    assert not looks_like_id_prefix("alpine")
    assert not looks_like_id_prefix("")
