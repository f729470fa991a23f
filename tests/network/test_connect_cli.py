"""`network connect/disconnect` on real containers, and endpoints of dead containers being reaped."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def running(dy, eng):
    dy("image", "bootstrap", "busybox", check=True)
    names: list[str] = []

    def start(name: str) -> str:
        dy("run", "-d", "--name", name, "localhost/busybox", "sleep", "300", check=True)
        names.append(name)
        return name

    try:
        yield start
    finally:
        for n in names:
            dy("rm", "-f", n)


def addrs(dy, name: str) -> str:
    return dy("exec", name, "ip", "-o", "-4", "addr", check=True).stdout


def test_connect_disconnect(dy, eng, running):
    dy("network", "create", "--subnet", "10.221.0.0/24", "mynet", check=True)
    running("web")
    p = dy("network", "connect", "--alias", "webalias", "--ip", "10.221.0.77", "mynet", "web")
    assert p.returncode == 0, p.stderr
    assert "10.221.0.77/24" in addrs(dy, "web")
    info = json.loads(dy("network", "inspect", "mynet", check=True).stdout)[0]
    (ctr,) = info["Containers"].values()
    assert ctr["Name"] == "web" and ctr["IPv4Address"] == "10.221.0.77/24"
    p = dy("network", "connect", "mynet", "web")
    assert p.returncode == 125 and "already connected" in p.stderr
    p = dy("network", "rm", "mynet")
    assert p.returncode == 125 and "active endpoints" in p.stderr

    assert dy("network", "disconnect", "mynet", "web").returncode == 0
    assert "10.221.0.77" not in addrs(dy, "web")
    p = dy("network", "disconnect", "mynet", "web")
    assert p.returncode == 125 and "not connected" in p.stderr
    assert dy("network", "disconnect", "-f", "mynet", "web").returncode == 0
    p = dy("network", "connect", "nosuch", "web")
    assert p.returncode == 125 and "network nosuch not found" in p.stderr
    p = dy("network", "connect", "mynet", "nosuchctr")
    assert p.returncode == 125
    dy("network", "rm", "mynet", check=True)


def test_two_containers_ping_over_a_connected_network(dy, eng, running):
    dy("network", "create", "pingnet", check=True)
    running("pa")
    running("pb")
    dy("network", "connect", "pingnet", "pa", check=True)
    dy("network", "connect", "pingnet", "pb", check=True)
    info = json.loads(dy("network", "inspect", "pingnet", check=True).stdout)[0]
    ip_b = next(c["IPv4Address"].split("/")[0] for c in info["Containers"].values() if c["Name"] == "pb")
    p = dy("exec", "pa", "ping", "-c", "1", "-W", "3", ip_b)
    assert p.returncode == 0, p.stdout + p.stderr
    # Removing the containers without a disconnect (as after a crash) leaves no obstacle:
    # their endpoints are reaped because the kernel took their veths with their namespaces.
    dy("rm", "-f", "pa", "pb", check=True)
    assert dy("network", "rm", "pingnet").returncode == 0


def test_dead_namespace_endpoint_is_reaped(eng, netns):
    eng.networks.create("reapnet")
    ns = netns.new()
    e = eng.networks.attach("7" * 64, "doomed", netns.path(ns), "reapnet", ip=None)
    subprocess.run(["ip", "netns", "del", ns], check=True)
    netns.names.remove(ns)
    assert eng.networks.reap() == 1
    assert eng.networks.inspect("reapnet")["Containers"] == {}
    ns2 = netns.new()
    again = eng.networks.attach("8" * 64, "reuser", netns.path(ns2), "reapnet")
    assert again["IPAddress"] == e["IPAddress"]  # the address was freed
    eng.networks.detach("8" * 64)
    eng.networks.remove("reapnet")


def test_connections_persist_across_restarts_and_apply_to_stopped_containers(dy, eng, running):
    dy("network", "create", "--subnet", "10.222.0.0/24", "keep", check=True)
    running("live")
    dy("network", "connect", "--ip", "10.222.0.50", "keep", "live", check=True)
    dy("create", "--name", "later", "localhost/busybox", "sleep", "300", check=True)
    try:
        dy("network", "connect", "keep", "later", check=True)
        assert "10.222.0.50/24" in addrs(dy, "live")
        dy("stop", "-t", "0", "live", check=True)
        dy("start", "live", check=True)
        assert "10.222.0.50/24" in addrs(dy, "live")  # rejoined with its address
        dy("start", "later", check=True)
        assert "10.222.0." in addrs(dy, "later")  # connected while stopped, joined at start

        dy("network", "disconnect", "keep", "live", check=True)
        dy("stop", "-t", "0", "live", check=True)
        dy("start", "live", check=True)
        assert "10.222.0." not in addrs(dy, "live")
    finally:
        dy("rm", "-f", "later")
    dy("rm", "-f", "live", check=True)
    dy("network", "rm", "keep", check=True)


def test_per_network_ip_and_alias(dy, eng, running):
    """Podman's NAME:ip=..,alias=.. and Docker's name=NAME,ip=.. give each network its own address
    and aliases; plain --ip still goes to the first network only."""
    dy("network", "create", "--subnet", "10.223.0.0/24", "neta", check=True)
    dy("network", "create", "--subnet", "10.224.0.0/24", "netb", check=True)
    try:
        p = dy("run", "-d", "--name", "multi", "--network", "neta:ip=10.223.0.50,alias=first",
               "--network", "name=netb,ip=10.224.0.60,alias=second", "localhost/busybox", "sleep", "300")
        assert p.returncode == 0, p.stderr
        text = addrs(dy, "multi")
        assert "10.223.0.50/24" in text and "10.224.0.60/24" in text
        nets = json.loads(dy("inspect", "multi", check=True).stdout)[0]["NetworkSettings"]["Networks"]
        assert nets["neta"]["Aliases"] == ["first"] and nets["netb"]["Aliases"] == ["second"]
        dy("rm", "-f", "multi", check=True)

        p = dy("run", "-d", "--name", "multi", "--ip", "10.223.0.51", "--network", "neta",
               "--network", "netb", "localhost/busybox", "sleep", "300")
        assert p.returncode == 0, p.stderr
        nets = json.loads(dy("inspect", "multi", check=True).stdout)[0]["NetworkSettings"]["Networks"]
        assert nets["neta"]["IPAddress"] == "10.223.0.51" and nets["netb"]["IPAddress"] != "10.224.0.51"
        dy("rm", "-f", "multi", check=True)

        # both a flag and the first network's own address: Docker's refusal, before anything runs
        p = dy("run", "-d", "--name", "multi", "--ip", "10.223.0.52", "--network", "neta:ip=10.223.0.53",
               "localhost/busybox", "true")
        assert p.returncode == 125 and "cannot specify both --ip and per-network IPv4 address" in p.stderr
        p = dy("run", "-d", "--network", "neta:bogus=1", "localhost/busybox", "true")
        assert p.returncode == 125 and "unknown option 'bogus'" in p.stderr
        p = dy("run", "-d", "--network", "none", "--network", "neta", "localhost/busybox", "true")
        assert p.returncode == 125 and "cannot be combined" in p.stderr
    finally:
        dy("rm", "-f", "multi")
        dy("network", "rm", "neta", "netb")
