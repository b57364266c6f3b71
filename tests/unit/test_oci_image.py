"""oci/image: manifests, indexes, configs, chain ids, GC labels, inspect shape."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import pytest

from dockyard.engine.image_import import apply_changes
from dockyard.errors import InvalidParameter
from dockyard.oci import image as oci
from dockyard.testing import fixtures

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def test_chain_ids_follow_the_oci_spec() -> None:
    assert oci.chain_ids([]) == []
    assert oci.chain_ids([D1]) == [D1]
    second = "sha256:" + hashlib.sha256(f"{D1} {D2}".encode()).hexdigest()
    third = "sha256:" + hashlib.sha256(f"{second} {D3}".encode()).hexdigest()
    assert oci.chain_ids([D1, D2, D3]) == [D1, second, third]


def test_manifest_round_trip_is_byte_exact() -> None:
    manifest = oci.Manifest(
        media_type=oci.DOCKER_MANIFEST,
        config=oci.Descriptor(media_type=oci.DOCKER_CONFIG, digest=D1, size=10),
        layers=(oci.Descriptor(media_type=oci.DOCKER_LAYER_GZIP, digest=D2, size=20),),
    )
    data = oci.encode_manifest(manifest)
    assert data == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
        b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"' + D1.encode()
        + b'","size":10},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip",'
        b'"digest":"' + D2.encode() + b'","size":20}]}'
    )
    assert oci.parse_manifest(data) == manifest
    assert oci.manifest_gc_labels(manifest) == {
        "containerd.io/gc.ref.content.config": D1,
        "containerd.io/gc.ref.content.l.0": D2,
    }


def test_manifest_errors() -> None:
    for bad in (b"[]", b"{", b'{"layers":[]}', b'{"config":{"digest":"x","size":1},"layers":[]}'):
        with pytest.raises(oci.ImageFormatError):
            oci.parse_manifest(bad)
    with pytest.raises(oci.ImageFormatError, match="unsupported media type"):
        oci.parse_manifest(b'{"mediaType":"text/plain"}')


def test_index_platform_selection() -> None:
    index = oci.parse_index(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {"mediaType": oci.OCI_MANIFEST, "digest": D1, "size": 1,
                     "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                    {"mediaType": oci.OCI_MANIFEST, "digest": D2, "size": 1,
                     "platform": {"os": "linux", "architecture": "amd64"}},
                    {"mediaType": oci.OCI_MANIFEST, "digest": D3, "size": 1,
                     "platform": {"os": "unknown", "architecture": "unknown"}},
                ],
            }
        ).encode()
    )
    assert oci.select_platform(index).digest == D2
    assert oci.select_platform(index, architecture="arm64").digest == D1
    with pytest.raises(oci.ImageFormatError, match="no matching manifest"):
        oci.select_platform(index, architecture="s390x")
    assert oci.index_gc_labels(index)["containerd.io/gc.ref.content.m.2"] == D3
    assert oci.media_kind(b'{"manifests":[]}') == oci.OCI_INDEX
    assert oci.media_kind(b'{"layers":[]}') == oci.OCI_MANIFEST


def test_config_parsing_labels_and_inspect_shape() -> None:
    image = fixtures.build_image(extra_layers=[{"a": b"b"}])
    config = oci.parse_config(image.config)
    assert config.diff_ids == image.diff_ids
    assert config.os == "linux" and config.architecture == "amd64"
    assert config.history[-1].empty_layer and not config.history[0].empty_layer
    assert oci.config_gc_labels(config) == {
        "containerd.io/gc.ref.snapshot.overlayfs": oci.chain_ids(image.diff_ids)[-1]
    }
    assert oci.inspect_config(config) == {
        "ExposedPorts": {"8080/tcp": {}},
        "Env": [fixtures.PATH_ENV],
        "Cmd": ["sh"],
        "Labels": {"org.dockyard.fixture": "busybox"},
    }
    with pytest.raises(oci.ImageFormatError):
        oci.parse_config(b'{"rootfs":{"diff_ids":["nope"]}}')


def test_fixture_is_deterministic() -> None:
    assert fixtures.build_image().id == fixtures.build_image().id
    assert fixtures.assemble_docker_archive([fixtures.build_image()]) == fixtures.assemble_docker_archive(
        [fixtures.build_image()]
    )


def test_times() -> None:
    assert oci.created_unix("2024-01-01T00:00:00Z") == 1704067200
    assert oci.created_unix("2024-01-01T01:00:00.123456789+01:00") == 1704067200
    assert oci.created_unix("") == 0 and oci.created_unix("yesterday") == 0
    moment = datetime(2024, 1, 2, 3, 4, 5, 120000, tzinfo=timezone.utc)
    assert oci.format_rfc3339_nano(moment) == "2024-01-02T03:04:05.12Z"
    assert oci.format_rfc3339_nano(moment.replace(microsecond=0)) == "2024-01-02T03:04:05Z"


def test_import_changes() -> None:
    out = apply_changes(
        {"Env": ["A=0"]},
        [
            'CMD ["sh", "-c", "echo hi"]',
            "ENTRYPOINT /bin/run --flag",
            "ENV A=1 B=\"two words\"",
            "ENV LEGACY some value",
            "LABEL x=y",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "WORKDIR /srv",
            "WORKDIR sub",
            "USER tester:testers",
            "STOPSIGNAL SIGINT",
        ],
    )
    assert out == {
        "Env": ["A=1", "B=two words", "LEGACY=some value"],
        "Cmd": ["sh", "-c", "echo hi"],
        "Entrypoint": ["/bin/sh", "-c", "/bin/run --flag"],
        "Labels": {"x": "y"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}},
        "WorkingDir": "/srv/sub",
        "User": "tester:testers",
        "StopSignal": "SIGINT",
    }
    with pytest.raises(InvalidParameter, match="run is not a valid change command"):
        apply_changes({}, ["RUN true"])
    with pytest.raises(InvalidParameter):
        apply_changes({}, ["EXPOSE eighty"])
