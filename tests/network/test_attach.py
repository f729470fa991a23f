"""Attaching network namespaces (standing in for containers) to networks: real veths, real pings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dockyard.errors import Conflict, InvalidArgument
from tests.helpers import BUSYBOX, REPO
from tests.network.conftest import links, nft_table

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def ping(netns, ns: str, target: str, count: int = 1) -> bool:
    p = netns.run(ns, BUSYBOX, "ping", "-c", str(count), "-W", "2", target)
    return p.returncode == 0


def routes(ns_name: str) -> str:
    return subprocess.run(["ip", "-n", ns_name, "-4", "route"], capture_output=True, text=True).stdout


def test_ping_across_default_bridge_then_nothing_left(eng, netns):
    a, b = netns.new(), netns.new()
    ea = eng.networks.attach("a" * 64, "ctr-a", netns.path(a), "bridge")
    eb = eng.networks.attach("b" * 64, "ctr-b", netns.path(b), "podman")
    assert ea["Gateway"] == eb["Gateway"] and ea["IPAddress"] != eb["IPAddress"]
    assert ea["NetworkID"] == eng.networks.inspect("bridge")["Id"] and len(ea["EndpointID"]) == 64
    assert ea["DNSNames"] is None  # no name resolution on the default network, as in Docker
    assert f"default via {ea['Gateway']} dev eth0" in routes(a)
    assert ping(netns, a, eb["IPAddress"]) and ping(netns, b, ea["IPAddress"])
    assert ping(netns, a, ea["Gateway"])  # the host, through the bridge

    br = eng.networks.inspect("bridge")["Options"]["com.docker.network.bridge.name"]
    veths = set(eng.db.query_one("SELECT group_concat(host_ifname) FROM network_endpoints")[0].split(","))
    assert veths <= links() and br in links()
    inspect = eng.networks.inspect("bridge")
    assert set(inspect["Containers"]) == {"a" * 64, "b" * 64}
    assert eng.networks.endpoints("a" * 64)["bridge"]["IPAddress"] == ea["IPAddress"]

    eng.networks.detach("a" * 64)
    eng.networks.detach("a" * 64)  # idempotent
    eng.networks.detach("b" * 64)
    now = links()
    assert not veths & now and br not in now  # the default bridge goes with its last container
    assert "nw:" + inspect["Id"][:12] not in nft_table()
    assert "eth0" not in subprocess.run(["ip", "-n", a, "link"], capture_output=True, text=True).stdout
    assert routes(a) == ""


def test_custom_networks_are_isolated(eng, netns):
    eng.networks.create("red")
    eng.networks.create("blue")
    r1, r2, b1 = netns.new(), netns.new(), netns.new()
    try:
        e1 = eng.networks.attach("1" * 64, "r1", netns.path(r1), "red")
        e2 = eng.networks.attach("2" * 64, "r2", netns.path(r2), "red")
        e3 = eng.networks.attach("3" * 64, "b1", netns.path(b1), "blue")
        assert ping(netns, r1, e2["IPAddress"])  # same network: reachable
        assert not ping(netns, r1, e3["IPAddress"])  # other network: dropped
        assert not ping(netns, b1, e1["IPAddress"])
        # Removing a network with containers on it is refused and leaves it working.
        with pytest.raises(Conflict, match="has active endpoints"):
            eng.networks.remove("red")
        assert ping(netns, r1, e2["IPAddress"])
    finally:
        for c in "123":
            eng.networks.detach(c * 64)
        eng.networks.remove("red")
        eng.networks.remove("blue")


def test_static_ip_mac_multiple_networks(eng, netns):
    eng.networks.create("front", subnet="10.218.1.0/24")
    eng.networks.create("back", subnet="10.218.2.0/24", internal=True)
    ns = netns.new()
    cid = "c" * 64
    try:
        e = eng.networks.attach(cid, "multi", netns.path(ns), "front", ip="10.218.1.50",
                                mac="02:42:0a:da:01:32", aliases=["web"], hostname="h1")
        assert e["IPAddress"] == "10.218.1.50" and e["MacAddress"] == "02:42:0a:da:01:32"
        assert e["IPAMConfig"] == {"IPv4Address": "10.218.1.50"} and e["Aliases"] == ["web"]
        assert e["DNSNames"] == ["multi", "web", "c" * 12, "h1"]
        e2 = eng.networks.attach(cid, "multi", netns.path(ns), "back")
        assert e2["InterfaceName"] == "eth1" and e2["IPAddress"] == "10.218.2.2"
        out = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr"], capture_output=True, text=True).stdout
        assert "eth0    inet 10.218.1.50/24" in out.replace("\\", "") or "10.218.1.50/24" in out
        assert "10.218.2.2/24" in out
        assert routes(ns).count("default") == 1  # only the first, non-internal network routes out
        assert set(eng.networks.endpoints(cid)) == {"front", "back"}

        other = netns.new()
        with pytest.raises(Conflict, match="already in use"):
            eng.networks.attach("d" * 64, "dup", netns.path(other), "front", ip="10.218.1.50")
        with pytest.raises(InvalidArgument, match="not in network subnet"):
            eng.networks.attach("d" * 64, "dup", netns.path(other), "front", ip="10.1.1.1")
        with pytest.raises(InvalidArgument, match="invalid MAC"):
            eng.networks.attach("d" * 64, "dup", netns.path(other), "front", mac="zz")
        with pytest.raises(InvalidArgument, match="user-defined networks only"):
            eng.networks.attach("d" * 64, "dup", netns.path(other), "bridge", ip="10.88.0.9")
        with pytest.raises(Conflict, match="already connected"):
            eng.networks.attach(cid, "multi", netns.path(ns), "front")
        assert "eth0" not in subprocess.run(["ip", "-n", other, "link"], capture_output=True, text=True).stdout

        eng.networks.detach(cid, "back")
        assert set(eng.networks.endpoints(cid)) == {"front"}
        assert "10.218.2.2" not in subprocess.run(["ip", "-n", ns, "-4", "addr"], capture_output=True,
                                                  text=True).stdout
    finally:
        eng.networks.detach(cid)
        eng.networks.remove("front")
        eng.networks.remove("back")


_PARALLEL = """
import json, sys
from dockyard.engine import Engine
e = Engine(sys.argv[1])
ep = e.networks.attach(sys.argv[2], sys.argv[2][:8], sys.argv[3], "par")
print(ep["IPAddress"])
"""


def test_parallel_attaches_get_distinct_addresses(eng, netns):
    eng.networks.create("par", subnet="10.219.0.0/24")
    names = [netns.new() for _ in range(6)]
    ids = [f"{i:064x}" for i in range(1, 7)]
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        procs = [subprocess.Popen([sys.executable, "-c", _PARALLEL, str(eng.roots.root), cid, netns.path(n)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                 for cid, n in zip(ids, names, strict=True)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
        addrs = [o[0].strip() for o in outs]
        assert len(set(addrs)) == 6
        info = eng.networks.inspect("par")
        assert sorted(c["IPv4Address"] for c in info["Containers"].values()) == sorted(a + "/24" for a in addrs)
    finally:
        for cid in ids:
            eng.networks.detach(cid)
        eng.networks.remove("par")


def test_cli_inspect_shows_containers(dy, eng, netns):
    dy("network", "create", "insp", check=True)
    ns = netns.new()
    eng.networks.attach("e" * 64, "shown", netns.path(ns), "insp")
    try:
        info = json.loads(dy("network", "inspect", "insp", check=True).stdout)[0]
        ctr = info["Containers"]["e" * 64]
        assert ctr["Name"] == "shown" and ctr["IPv4Address"].endswith("/24")
        p = dy("network", "rm", "insp")
        assert p.returncode == 125 and "has active endpoints" in p.stderr
        assert dy("network", "prune", "-f").stdout == ""
    finally:
        eng.networks.detach("e" * 64)
        dy("network", "rm", "insp", check=True)


def test_joining_an_up_default_bridge_does_not_wait_for_the_host_lock(eng, netns):
    """Other stores hold the host-wide network lock while they make bridges or start DNS servers;
    a container joining or leaving the default bridge while it is up must not queue behind them.
    The last one out still takes the lock (and the bridge down)."""
    import fcntl
    import threading

    from dockyard.engine.networks import HOST_LOCK

    a, b = netns.new(), netns.new()
    eng.networks.attach("a" * 64, "ctr-a", netns.path(a), "bridge")  # brings the bridge up
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another store's long network operation
    done: list[object] = []

    def join_and_leave() -> None:
        try:
            done.append(eng.networks.attach("b" * 64, "ctr-b", netns.path(b), "bridge")["IPAddress"])
            eng.networks.detach("b" * 64)
            done.append("left")
        except Exception as e:  # reported below
            done.append(e)

    try:
        t = threading.Thread(target=join_and_leave)
        t.start()
        t.join(20)
        assert not t.is_alive(), "attach/detach waited for the host lock"
        assert len(done) == 2 and done[1] == "left", done
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        t.join(60)
    eng.networks.detach("a" * 64)  # the last one: takes the lock and the bridge down
    br = eng.networks.inspect("bridge")["Options"]["com.docker.network.bridge.name"]
    assert br not in links()
