"""The pure parts of pull/push: fromImage+tag as dockerd combines them, layer ids, source labels."""

from __future__ import annotations

import pytest

from dockyard import errors
from dockyard.engine.image_pull import distribution_source_labels, parse_pull_reference, short_id

DIGEST = "sha256:" + "ab" * 32


def test_tag_parameter_is_a_tag_or_a_digest() -> None:
    assert str(parse_pull_reference("alpine", "3.20")) == "docker.io/library/alpine:3.20"
    assert str(parse_pull_reference("127.0.0.1:5000/a/b", "v1")) == "127.0.0.1:5000/a/b:v1"
    # The CLI sends `docker pull x@sha256:…` as fromImage=x&tag=sha256:…
    by_digest = parse_pull_reference("alpine", DIGEST)
    assert (by_digest.tag, by_digest.digest) == (None, DIGEST)
    assert by_digest.familiar() == f"alpine@{DIGEST}"
    # No tag at all: every tag (docker pull -a).
    everything = parse_pull_reference("localhost/x")
    assert (everything.tag, everything.digest) == (None, None)
    assert str(parse_pull_reference("index.docker.io/user/repo", "t")) == "docker.io/user/repo:t"


def test_invalid_references_are_400() -> None:
    with pytest.raises(errors.InvalidParameter):
        parse_pull_reference("UPPER", "x")
    with pytest.raises(errors.InvalidParameter):
        parse_pull_reference("alpine", "sha256:short")
    with pytest.raises(errors.InvalidParameter):
        parse_pull_reference("alpine", "bad tag")


def test_short_id_and_source_labels() -> None:
    assert short_id(DIGEST) == "ab" * 6
    key = "containerd.io/distribution.source.127.0.0.1:5000"
    assert distribution_source_labels("127.0.0.1:5000", "a/b") == {key: "a/b"}
    assert distribution_source_labels("127.0.0.1:5000", "a/c", "a/b") == {key: "a/b,a/c"}
    assert distribution_source_labels("127.0.0.1:5000", "a/b", "a/b") == {key: "a/b"}
