"""Pure parts of the registry client: fetched-manifest checks, platforms, endpoints, errors."""

from __future__ import annotations

import json

import pytest

from dockyard.oci.image import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
)
from dockyard.registry.endpoints import (
    DOCKER_IO,
    Endpoint,
    InsecurePolicy,
    mirror_endpoint,
    normalize_registry,
    registry_endpoints,
)
from dockyard.registry.errors import ManifestRefused, errcode_message, errcodes
from dockyard.registry.httpio import digest_like, next_link
from dockyard.registry.manifests import (
    MAX_MANIFEST_SIZE,
    format_platform,
    parse_fetched,
    parse_platform,
    select_manifest,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def manifest_json(media_type: str | None = DOCKER_MANIFEST, **overrides: object) -> bytes:
    value: dict[str, object] = {
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": D1, "size": 10},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": D2, "size": 20}],
    }
    if media_type is not None:
        value["mediaType"] = media_type
    value.update(overrides)
    return json.dumps(value).encode()


# parse_fetched --------------------------------------------------------------------


def test_docker_manifest_by_content_type_with_parameters() -> None:
    value = parse_fetched(DOCKER_MANIFEST + "; charset=utf-8", manifest_json())
    assert isinstance(value, Manifest)
    assert value.media_type == DOCKER_MANIFEST
    assert value.layers[0].digest == D2


def test_generic_content_type_is_sniffed() -> None:
    value = parse_fetched("application/json", manifest_json(None))
    assert isinstance(value, Manifest) and value.media_type == OCI_MANIFEST
    index = parse_fetched(None, json.dumps({"schemaVersion": 2, "manifests": []}).encode())
    assert isinstance(index, Index) and index.media_type == OCI_INDEX


def test_body_contradicting_content_type_is_refused() -> None:
    with pytest.raises(ManifestRefused, match="does not match Content-Type"):
        parse_fetched(OCI_MANIFEST, manifest_json(DOCKER_MANIFEST))
    with pytest.raises(ManifestRefused):
        parse_fetched(DOCKER_MANIFEST_LIST, manifest_json(DOCKER_MANIFEST))


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/html", b"<html>", "unsupported manifest media type 'text/html'"),
        ("application/vnd.docker.distribution.manifest.v1+prettyjws", b"{}", "[DEPRECATION NOTICE]"),
        (DOCKER_MANIFEST, b"not json", "invalid manifest"),
        (DOCKER_MANIFEST, manifest_json(layers=[{"mediaType": "text/plain", "digest": D2, "size": 1}]),
         "unsupported layer media type 'text/plain'"),
        (DOCKER_MANIFEST, manifest_json(layers=[{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                                 "digest": D2, "size": 1 << 50}]), "absurd size"),
        (DOCKER_MANIFEST, manifest_json(config={"mediaType": "application/vnd.oci.empty.v1+json",
                                                "digest": D1, "size": 2}), "unsupported image config media type"),
        (DOCKER_MANIFEST, manifest_json(config={"mediaType": "application/vnd.docker.container.image.v1+json",
                                                "digest": D1, "size": 1 << 30}), "image config too large"),
        (OCI_INDEX, json.dumps({"manifests": [{"mediaType": OCI_MANIFEST, "digest": D1, "size": 1 << 40}]}).encode(),
         "too large"),
    ],
)  # fmt: skip
def test_refusals(content_type: str, body: bytes, message: str) -> None:
    with pytest.raises(ManifestRefused) as info:
        parse_fetched(content_type, body, name="x:y")
    assert message in info.value.message


def test_oversized_manifest_is_refused_before_parsing() -> None:
    with pytest.raises(ManifestRefused, match="manifest too large"):
        parse_fetched(DOCKER_MANIFEST, b" " * (MAX_MANIFEST_SIZE + 1))


def test_schema1_message_names_the_image() -> None:
    with pytest.raises(ManifestRefused) as info:
        parse_fetched("application/json", b'{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}', name="old:1")
    assert "Suggest the author of old:1 to upgrade" in info.value.message


# Platforms ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", Platform(os="linux", architecture="amd64")),
        ("linux/x86_64", Platform(os="linux", architecture="amd64")),
        ("linux/amd64/v3", Platform(os="linux", architecture="amd64", variant="v3")),
        ("linux/arm64/v8", Platform(os="linux", architecture="arm64")),
        ("linux/aarch64", Platform(os="linux", architecture="arm64")),
        ("linux/arm", Platform(os="linux", architecture="arm", variant="v7")),
        ("linux/arm/6", Platform(os="linux", architecture="arm", variant="v6")),
        ("linux/armhf", Platform(os="linux", architecture="arm", variant="v7")),
        ("Linux/I386", Platform(os="linux", architecture="386")),
        ("arm64", Platform(os="linux", architecture="arm64")),
        ("windows", Platform(os="windows", architecture="amd64")),
        ("macos/arm64", Platform(os="darwin", architecture="arm64")),
    ],
)
def test_parse_platform(text: str, expected: Platform) -> None:
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", ["", "/", "linux//v7", "a/b/c/d"])
def test_parse_platform_refuses(text: str) -> None:
    with pytest.raises(ManifestRefused):
        parse_platform(text)


def entry(digest: str, os: str, arch: str, variant: str = "", media_type: str = OCI_MANIFEST) -> Descriptor:
    return Descriptor(media_type=media_type, digest=digest, size=1,
                      platform=Platform(os=os, architecture=arch, variant=variant))  # fmt: skip


def test_select_exact_and_default() -> None:
    index = Index(media_type=OCI_INDEX, manifests=(
        entry(D1, "linux", "arm64", "v8"), entry(D2, "linux", "amd64"),
        entry(D3, "unknown", "unknown", media_type=OCI_MANIFEST),
    ))  # fmt: skip
    assert select_manifest(index).digest == D2
    assert select_manifest(index, parse_platform("linux/arm64")).digest == D1
    assert select_manifest(index, parse_platform("linux/arm64/v8")).digest == D1


def test_select_prefers_best_compatible_variant() -> None:
    index = Index(media_type=OCI_INDEX, manifests=(
        entry(D1, "linux", "arm", "v5"), entry(D2, "linux", "arm", "v6"), entry(D3, "linux", "amd64", "v2"),
    ))  # fmt: skip
    assert select_manifest(index, parse_platform("linux/arm/v7")).digest == D2
    assert select_manifest(index, parse_platform("linux/arm/v5")).digest == D1
    assert select_manifest(index, parse_platform("linux/amd64/v3")).digest == D3
    with pytest.raises(ManifestRefused) as info:
        select_manifest(index)  # amd64 (v1) cannot run a v2 image
    assert info.value.message == "no matching manifest for linux/amd64 in the manifest list entries"
    assert select_manifest(index, parse_platform("linux/arm/v8")).digest == D2  # 32-bit on v8 runs v6
    with pytest.raises(ManifestRefused) as info:
        select_manifest(index, parse_platform("linux/arm64"))
    assert info.value.message == "no matching manifest for linux/arm64 in the manifest list entries"


def test_select_skips_attestations_and_falls_back_to_unlabelled() -> None:
    attestation = Descriptor(media_type="application/vnd.in-toto+json", digest=D1, size=1,
                             platform=Platform(os="linux", architecture="amd64"))  # fmt: skip
    plain = Descriptor(media_type=DOCKER_MANIFEST, digest=D2, size=1)
    assert select_manifest(Index(media_type=OCI_INDEX, manifests=(attestation, plain))).digest == D2


def test_format_platform() -> None:
    assert format_platform(Platform(os="linux", architecture="arm", variant="v7")) == "linux/arm/v7"
    assert format_platform(Platform(os="", architecture="")) == "unknown/unknown"


# Endpoints ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("docker.io", DOCKER_IO), ("index.docker.io", DOCKER_IO), ("registry-1.docker.io", DOCKER_IO),
        ("https://index.docker.io/v1/", DOCKER_IO), ("", DOCKER_IO),
        ("http://127.0.0.1:5000/", "127.0.0.1:5000"), ("Registry.Example.com:443", "registry.example.com:443"),
    ],
)  # fmt: skip
def test_normalize_registry(name: str, expected: str) -> None:
    assert normalize_registry(name) == expected


def test_insecure_policy() -> None:
    policy = InsecurePolicy(["myreg:5000", "10.1.0.0/16", "http://other.example/"])
    assert policy.is_insecure("127.0.0.1:5000") and policy.is_insecure("127.9.9.9")
    assert policy.is_insecure("localhost:5000") and policy.is_insecure("[::1]:5000")
    assert policy.is_insecure("myreg:5000") and not policy.is_insecure("myreg:5001")
    assert policy.is_insecure("other.example")
    assert policy.is_insecure("10.1.2.3:5000") and not policy.is_insecure("10.2.0.1")
    assert policy.is_insecure("named:5000", ["10.1.0.7"]) and not policy.is_insecure("named:5000", ["8.8.8.8"])
    assert not policy.is_insecure("docker.io")
    assert policy.needs_lookup("named:5000") and not policy.needs_lookup("10.0.0.1:5000")


def test_registry_endpoints() -> None:
    assert registry_endpoints("index.docker.io", insecure=False) == (
        Endpoint(registry=DOCKER_IO, base_url="https://registry-1.docker.io", verify_tls=True),
    )
    assert [e.base_url for e in registry_endpoints("127.0.0.1:5000", insecure=True)] == [
        "https://127.0.0.1:5000", "http://127.0.0.1:5000",
    ]
    assert registry_endpoints("r.example", insecure=False)[0].verify_tls
    mirror = mirror_endpoint("mirror.example:5000/", insecure=False)
    assert (mirror.base_url, mirror.mirror, mirror.host) == ("https://mirror.example:5000", True, "mirror.example:5000")


# Errors and HTTP helpers ----------------------------------------------------------


def test_errcode_message() -> None:
    one = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}'
    assert errcode_message(one) == "manifest unknown: manifest unknown"
    assert errcodes(one) == ("MANIFEST_UNKNOWN",)
    two = b'{"errors":[{"code":"DENIED","message":"no"},{"code":"NAME_UNKNOWN"}]}'
    assert errcode_message(two) == "errors:\ndenied: no\nname unknown\n"
    assert errcode_message(b'{"details":"incorrect username or password"}') == (
        "unauthorized: incorrect username or password"
    )
    assert errcode_message(b"<html>") is None and errcode_message(b'{"errors":[]}') is None


def test_next_link_and_digests() -> None:
    assert next_link('</v2/x/tags/list?last=b&n=2>; rel="next"') == "/v2/x/tags/list?last=b&n=2"
    assert next_link('<a>; rel="prev", <b>; rel = "next"') == "b"
    assert next_link(None) is None and next_link("<a>") is None
    assert digest_like(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert digest_like(b"", "sha512:" + "0" * 128).startswith("sha512:cf83e1357eefb8bd")
