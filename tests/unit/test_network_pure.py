"""Pure parts of dockyard.network: the /etc/hosts line and CNI plugin configurations."""

from __future__ import annotations

from dockyard.network import cni, hosts


def test_own_address_line_as_dockerd_writes_it():
    assert hosts.own_address_line(address="10.213.0.2", hostname="abc") == "10.213.0.2\tabc\n"
    assert hosts.own_address_line(address="10.213.0.2", hostname="web", domainname="example.com") == (
        "10.213.0.2\tweb.example.com web\n")


def test_with_own_address_appends_and_replaces_a_previous_run():
    base = "127.0.0.1\tlocalhost\n1.2.3.4\tother\n"
    first = hosts.with_own_address(base, address="10.213.0.2", hostname="abc")
    assert first == base + "10.213.0.2\tabc\n"
    assert hosts.with_own_address(first, address="10.213.0.9", hostname="abc") == base + "10.213.0.9\tabc\n"
    assert hosts.with_own_address("x\ty", address="10.0.0.1", hostname="h") == "x\ty\n10.0.0.1\th\n"


def test_plugin_config_carries_name_version_capabilities_and_prev_result():
    network = {"cniVersion": "1.0.0", "name": "bridge", "plugins": []}
    plugin = {"type": "portmap", "capabilities": {"portMappings": True, "bandwidth": False}, "snat": True}
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    config = cni.plugin_config(network, plugin, runtime_config={"portMappings": mappings, "bandwidth": {}},
                               prev_result={"ips": []})
    assert config == {"cniVersion": "1.0.0", "name": "bridge", "type": "portmap", "snat": True,
                      "runtimeConfig": {"portMappings": mappings}, "prevResult": {"ips": []}}
    assert cni.plugin_config(network, {"type": "bridge"}) == {
        "cniVersion": "1.0.0", "name": "bridge", "type": "bridge"}


def test_requested_ports_from_bindings_and_publish_all():
    from dockyard.network.ports import PortRequest, requested_ports

    host_config = {"PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}],
                                    "53/udp": [{"HostIp": "", "HostPort": ""}]},
                   "PublishAllPorts": True}
    assert requested_ports({"ExposedPorts": {"80/tcp": {}, "8080/tcp": {}}}, host_config) == [
        PortRequest(container_port=53, protocol="udp", host_ip="0.0.0.0", host_port=0),
        PortRequest(container_port=80, protocol="tcp", host_ip="0.0.0.0", host_port=0),
        PortRequest(container_port=8080, protocol="tcp", host_ip="127.0.0.1", host_port=9000),
    ]


def test_port_views_as_dockerd_shows_them():
    from dockyard.network.ports import BoundPort, ps_ports, settings_ports

    bound = [BoundPort(container_port=8080, protocol="tcp", host_ip="127.0.0.1", host_port=9000)]
    config = {"ExposedPorts": {"80/tcp": {}, "8080/tcp": {}}}
    assert settings_ports(config, bound) == {
        "80/tcp": None, "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}]}
    assert ps_ports(config, bound) == [
        {"PrivatePort": 80, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 8080, "PublicPort": 9000, "Type": "tcp"}]
