"""`network create/ls/inspect/rm/prune`: real bridges and nft rules, and clean failures."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess

import pytest

from tests.helpers import unique_name
from tests.network.conftest import links, links_in, nft_table

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def test_create_inspect_ls_rm(dy, eng):
    p = dy("network", "create", "--subnet", "10.213.7.0/24", "--gateway", "10.213.7.254",
           "--ip-range", "10.213.7.128/25", "--label", "team=blue", "mynet")
    assert p.returncode == 0, p.stderr
    net_id = p.stdout.strip()
    assert len(net_id) == 64

    info = json.loads(dy("network", "inspect", "mynet", check=True).stdout)[0]
    assert info["Id"] == net_id and info["Driver"] == "bridge" and info["Labels"] == {"team": "blue"}
    assert info["IPAM"]["Config"] == [{"Subnet": "10.213.7.0/24", "Gateway": "10.213.7.254",
                                       "IPRange": "10.213.7.128/25"}]
    br = info["Options"]["com.docker.network.bridge.name"]
    assert br == "dy-" + net_id[:12]
    addr = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", br], capture_output=True, text=True).stdout
    assert "10.213.7.254/24" in addr
    assert f'nw:{net_id[:12]}' in nft_table()
    assert "10.213.7.0/24" in nft_table()  # masquerade for the subnet

    out = dy("network", "ls", check=True).stdout.splitlines()
    assert out[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    names = [ln.split()[1] for ln in out[1:]]
    assert names == ["bridge", "host", "none", "mynet"]
    assert dy("network", "ls", "-q", "--filter", "label=team=blue", check=True).stdout.split() == [net_id[:12]]
    assert dy("network", "ls", "-q", "--filter", "type=custom", "--no-trunc", check=True).stdout.split() == [net_id]
    assert dy("network", "ls", "-q", "--filter", "name=nosuch", check=True).stdout == ""
    rows = [json.loads(ln) for ln in dy("network", "ls", "--format", "json", check=True).stdout.splitlines()]
    assert {r["Name"] for r in rows} == {"bridge", "host", "none", "mynet"}
    out = dy("network", "ls", "--filter", "driver=bridge", "--format", "{{.Name}}:{{.Driver}}", check=True).stdout
    assert out == "bridge:bridge\nmynet:bridge\n"
    out = dy("network", "ls", "--format", "table {{.Name}}\t{{.Internal}}", check=True).stdout.splitlines()
    assert out[0].split() == ["NAME", "INTERNAL"] and out[4].split() == ["mynet", "false"]
    assert dy("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "mynet",
              check=True).stdout == "10.213.7.254\n"

    p = dy("network", "rm", "mynet")
    assert p.returncode == 0 and p.stdout.strip() == "mynet"
    assert br not in links()
    assert f'nw:{net_id[:12]}' not in nft_table()


def test_podman_name_is_the_default_bridge(dy, eng):
    a = json.loads(dy("network", "inspect", "podman", check=True).stdout)[0]
    b = json.loads(dy("network", "inspect", "bridge", check=True).stdout)[0]
    assert a["Id"] == b["Id"] and a["Name"] == "bridge"
    # Chosen to not collide with anything on the host (docker0, Podman's bridge, the LAN).
    from dockyard.network.bridge import host_networks
    from dockyard.network.ipam import parse_subnet

    subnet = parse_subnet(a["IPAM"]["Config"][0]["Subnet"])
    # (Other stores' bridges may come and go meanwhile; the default bridge moves off them when
    # it is created, see test_default_bridge_moves_off_a_taken_subnet.)
    assert not any(subnet.overlaps(n) for desc, n in host_networks() if "dy-" not in desc and "dockyard0" not in desc)
    p = dy("network", "rm", "podman")
    assert p.returncode == 125 and "pre-defined" in p.stderr


def test_default_subnet_is_configurable(dy, eng):
    p = dy("network", "inspect", "bridge", env={"DOCKYARD_DEFAULT_SUBNET": "10.214.0.0/16"})
    assert json.loads(p.stdout)[0]["IPAM"]["Config"][0]["Subnet"] == "10.214.0.0/16"


def test_auto_subnets_avoid_each_other_and_the_host(dy, eng):
    ids = [dy("network", "create", f"n{i}", check=True).stdout.strip() for i in range(3)]
    subnets = [json.loads(dy("network", "inspect", i, check=True).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
               for i in ids]
    assert len(set(subnets)) == 3
    for i in range(3):
        assert dy("network", "rm", f"n{i}").returncode == 0


@pytest.mark.parametrize("args,msg", [
    (["--subnet", "10.215.0.0"], "missing the prefix length"),
    (["--subnet", "10.215.0.1/16"], "it should be 10.215.0.0/16"),
    (["--subnet", "banana/24"], "invalid subnet"),
    (["--subnet", "10.215.0.0/16", "--gateway", "10.216.0.1"], "not a usable address"),
    (["--subnet", "10.215.0.0/16", "--ip-range", "10.99.0.0/24"], "not inside subnet"),
    (["--gateway", "10.215.0.1"], "need --subnet"),
    (["-d", "macvlan"], "not supported"),
    (["-o", "bogus=1"], "unsupported bridge network option"),
])
def test_bad_input_builds_nothing(dy, eng, args, msg):
    p = dy("network", "create", *args, "badnet")
    assert p.returncode == 125, p.stdout
    assert msg in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert links_in("10.215.0.0/16") == []
    assert "badnet" not in dy("network", "ls", check=True).stdout


def test_overlapping_subnet_and_duplicate_name(dy, eng):
    dy("network", "create", "--subnet", "10.217.0.0/16", "first", check=True)
    p = dy("network", "create", "--subnet", "10.217.5.0/24", "second")
    assert p.returncode == 125 and "overlaps with 10.217.0.0/16 used by network first" in p.stderr
    p = dy("network", "create", "first")
    assert p.returncode == 125 and "already exists" in p.stderr
    # A subnet the host itself uses (its own LAN) is refused too.
    from dockyard.network.bridge import host_networks

    lan = next(str(n) for _, n in host_networks())
    p = dy("network", "create", "--subnet", lan, "third")
    assert p.returncode == 125 and "overlaps" in p.stderr
    assert len(links_in("10.217.0.0/16")) == 1  # only "first"'s bridge
    assert not [n for n in links_in(lan) if n.startswith("dy-")]
    dy("network", "rm", "first", check=True)


def test_unknown_network(dy, eng):
    for cmd in (["inspect", "nosuch"], ["rm", "nosuch"]):
        p = dy("network", *cmd)
        assert p.returncode == 125 and "network nosuch not found" in p.stderr
    assert dy("network", "rm", "-f", "nosuch").returncode == 0


def test_prune(dy, eng):
    dy("network", "create", "--label", "keep=1", "kept", check=True)
    dy("network", "create", "gone", check=True)
    p = dy("network", "prune", "-f", "--filter", "label=nothing")
    assert p.stdout == ""
    p = dy("network", "prune", input="n\n")
    assert "Are you sure" in p.stdout and "kept" in dy("network", "ls", check=True).stdout
    p = dy("network", "prune", "-f")
    assert p.stdout.split("\n")[0] == "Deleted Networks:"
    assert sorted(p.stdout.split()[2:]) == ["gone", "kept"]
    assert dy("network", "ls", "-q").stdout.count("\n") == 3


def test_default_bridge_moves_off_a_taken_subnet(eng, netns):
    """The default network's subnet is picked when the store first needs it; if the host starts
    using it before any container does, the next container moves the network to a free one."""
    first = eng.networks.inspect("bridge")["IPAM"]["Config"][0]["Subnet"]
    dummy = unique_name("dyt")
    subprocess.run(["ip", "link", "add", dummy, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", first.replace(".0/", ".1/"), "dev", dummy], check=True)
        ns = netns.new()
        e = eng.networks.attach("d" * 64, "mover", netns.path(ns), "bridge")
        moved = eng.networks.inspect("bridge")["IPAM"]["Config"][0]["Subnet"]
        assert moved != first
        assert ipaddress.ip_address(e["IPAddress"]) in ipaddress.ip_network(moved)
        eng.networks.detach("d" * 64)
    finally:
        subprocess.run(["ip", "link", "del", dummy], capture_output=True)
