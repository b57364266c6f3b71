from pathlib import Path

import pytest

from dockyard.config import DEFAULT_HOST, Flags, load_config, parse_config_file
from dockyard.engine.host import parse_runc_version, read_os_release
from dockyard.errors import InvalidParameter


def test_defaults():
    config = load_config(Flags())
    assert config.hosts == (DEFAULT_HOST,)
    assert config.data_root == Path("/var/lib/dockyard")
    assert config.containerd is None


def test_file_keys_use_dockerd_names():
    data = parse_config_file(
        '{"hosts": ["unix:///tmp/x.sock"], "data-root": "/tmp/d", "log-level": "debug",'
        ' "registry-mirrors": ["http://127.0.0.1:5000"], "insecure-registries": ["127.0.0.1:5000"],'
        ' "containerd": "/run/c.sock"}'
    )
    config = load_config(Flags(), data)
    assert config.hosts == ("unix:///tmp/x.sock",)
    assert config.data_root == Path("/tmp/d")
    assert config.log_level == "debug"
    assert config.registry_mirrors == ("http://127.0.0.1:5000",)
    assert config.insecure_registries == ("127.0.0.1:5000",)
    assert config.containerd == "/run/c.sock"


def test_flag_and_file_conflict_is_refused():
    with pytest.raises(InvalidParameter, match="both as a flag and in the configuration file"):
        load_config(Flags(data_root="/a"), {"data-root": "/b"})


def test_unknown_key_and_bad_json():
    with pytest.raises(InvalidParameter, match="don't match any configuration option: nope"):
        parse_config_file('{"nope": 1}')
    with pytest.raises(InvalidParameter, match="unable to configure"):
        parse_config_file("{")
    with pytest.raises(InvalidParameter, match="invalid value for 'hosts'"):
        parse_config_file('{"hosts": "unix:///x"}')


def test_bad_log_level():
    with pytest.raises(InvalidParameter, match="unable to parse logging level: loud"):
        load_config(Flags(log_level="loud"))


def test_runc_version_and_os_release():
    v = parse_runc_version("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n")
    assert (v.version, v.commit) == ("1.1.5+ds1", "1.1.5+ds1-1+deb12u1")
    osr = read_os_release('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\n# c\n')
    assert osr == {"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "VERSION_ID": "12"}
