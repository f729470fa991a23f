"""--network values: Podman's NAME:opt=..., Docker's name=NAME,opt=..., plain lists and modes."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.network import netopts


def test_spellings():
    [a] = netopts.parse("web:ip=10.1.0.5,alias=x,alias=y,mac=02:AA:bb:cc:dd:ee")
    assert (a.name, a.ip, a.aliases, a.mac) == ("web", "10.1.0.5", ["x", "y"], "02:aa:bb:cc:dd:ee")
    [b] = netopts.parse("name=db,ip=10.2.0.6,alias=z,mac-address=02:00:00:00:00:01")
    assert (b.name, b.ip, b.aliases, b.mac) == ("db", "10.2.0.6", ["z"], "02:00:00:00:00:01")
    assert [r.name for r in netopts.parse(["a,b", "c:alias=q"])] == ["a", "b", "c"]
    assert [r.name for r in netopts.parse("container:abc")] == ["container:abc"]
    assert [r.name for r in netopts.parse("slirp4netns:allow_host_loopback=true,mtu=1500")] == \
        ["slirp4netns:allow_host_loopback=true,mtu=1500"]
    assert netopts.parse(None) == [] and netopts.parse([]) == []


def test_per_network_and_flags():
    assert netopts.per_network(["a:ip=10.0.0.2", "b"], ip=None) == {"a": {"ip": "10.0.0.2", "aliases": [],
                                                                          "mac": None}}
    assert netopts.per_network(["a", "b"], ip="10.0.0.3") == {}  # the flag stays a flag: setup gives it to a
    assert netopts.per_network(["a:ip=10.0.0.2"], ip="10.0.0.2") != {}  # the same value twice is no clash


@pytest.mark.parametrize("values, message", [
    (["a:ip=300.1.1.1"], "invalid IPv4 address: 300.1.1.1"),
    (["a:bogus=1"], "unknown option 'bogus'"),
    (["a:ip"], "expected option=value"),
    (["ip=10.0.0.1,alias=x"], "name= is missing"),
    (["a:mac=zz"], "invalid MAC address: zz"),
    (["none", "a"], "--network none cannot be combined with other networks"),
    (["a", "a:alias=x"], "network a given twice"),
    ([":ip=10.0.0.1"], "the network name is missing"),
])
def test_bad_values(values, message):
    with pytest.raises(InvalidArgument, match=message):
        netopts.parse(values)


def test_flag_clash_with_first_networks_own_value():
    with pytest.raises(InvalidArgument, match="cannot specify both --ip and per-network IPv4 address"):
        netopts.per_network(["a:ip=10.0.0.2", "b"], ip="10.0.0.9")
    with pytest.raises(InvalidArgument, match="cannot specify both --mac-address"):
        netopts.per_network(["a:mac=02:00:00:00:00:01"], mac="02:00:00:00:00:02")
