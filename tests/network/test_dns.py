"""Embedded DNS on custom networks, queried from inside namespaces with busybox."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dockyard.network import files
from tests.helpers import BUSYBOX
from tests.network.conftest import dns_pids

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def use_resolv(ns: str, text: str) -> None:
    """`ip netns exec` bind-mounts /etc/netns/NAME/resolv.conf over /etc/resolv.conf."""
    d = Path("/etc/netns") / ns
    d.mkdir(parents=True, exist_ok=True)
    (d / "resolv.conf").write_text(text)


@pytest.fixture
def etc_netns(netns):
    yield
    for n in netns.names:
        shutil.rmtree(Path("/etc/netns") / n, ignore_errors=True)


def lookup(netns, ns: str, name: str) -> tuple[int, list[str]]:
    p = netns.run(ns, BUSYBOX, "nslookup", name)
    addrs = [ln.split()[-1] for ln in p.stdout.splitlines() if ln.startswith("Address") and not ln.rstrip().endswith(":53")]
    return p.returncode, addrs


def test_names_aliases_and_isolation(eng, netns, etc_netns):
    eng.networks.create("dnsnet")
    eng.networks.create("othernet")
    a, b, c, x = (netns.new() for _ in range(4))
    try:
        ea = eng.networks.attach("a" * 64, "webserver", netns.path(a), "dnsnet", aliases=["web"], hostname="www1")
        eb = eng.networks.attach("b" * 64, "replica", netns.path(b), "dnsnet", aliases=["web"])
        eng.networks.attach("c" * 64, "client", netns.path(c), "dnsnet")
        eng.networks.attach("d" * 64, "stranger", netns.path(x), "othernet")
        gw = ea["Gateway"]
        use_resolv(c, files.resolv_conf(embedded_dns=gw, dns_search=["."]))

        assert lookup(netns, c, "webserver") == (0, [ea["IPAddress"]])
        assert lookup(netns, c, "www1")[1] == [ea["IPAddress"]]  # hostname
        assert lookup(netns, c, "a" * 12)[1] == [ea["IPAddress"]]  # short id
        assert sorted(lookup(netns, c, "web")[1]) == sorted([ea["IPAddress"], eb["IPAddress"]])
        rc, addrs = lookup(netns, c, "stranger")  # lives on another network
        assert rc != 0 and addrs == []
        # The tutorial's `ping webserver` on the same custom network.
        p = netns.run(c, BUSYBOX, "ping", "-c", "1", "-W", "2", "webserver")
        assert p.returncode == 0 and ea["IPAddress"] in p.stdout

        # Leaving the network takes the name with it.
        eng.networks.detach("a" * 64)
        assert lookup(netns, c, "webserver")[0] != 0
        assert lookup(netns, c, "web")[1] == [eb["IPAddress"]]
    finally:
        for cid in "abcd":
            eng.networks.detach(cid * 64)
    # The last container gone, so is the network's DNS server.
    assert dns_pids(eng.roots.root) == []
    eng.networks.remove("dnsnet")
    eng.networks.remove("othernet")


def test_other_names_are_forwarded(eng, netns, etc_netns):
    from dnslib import QTYPE, RR, A
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    class Upstream(BaseResolver):
        def __init__(self) -> None:
            self.asked: list[str] = []

        def resolve(self, request, handler):
            reply = request.reply()
            self.asked.append(str(request.q.qname))
            if str(request.q.qname) == "svc.example.test." and request.q.qtype == QTYPE.A:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("203.0.113.7"), ttl=5))
            return reply

    up = Upstream()
    # A stand-in for the host's resolver on a loopback address only this test uses.
    server = DNSServer(up, address="127.0.0.2", port=53, logger=DNSLogger("-request,-reply,-recv,-send"))
    server.start_thread()
    eng.networks.create("fwd")
    ns = netns.new()
    try:
        e = eng.networks.attach("e" * 64, "asker", netns.path(ns), "fwd", dns_servers=["127.0.0.2"])
        use_resolv(ns, files.resolv_conf(embedded_dns=e["Gateway"], dns_search=["."]))
        assert lookup(netns, ns, "svc.example.test") == (0, ["203.0.113.7"])
        assert "svc.example.test." in up.asked
        # Unknown single-label names stop at the embedded server.
        asked = len(up.asked)
        assert lookup(netns, ns, "nosuchcontainer")[0] != 0
        assert len(up.asked) == asked
    finally:
        server.stop()
        eng.networks.detach("e" * 64)
        eng.networks.remove("fwd")


def test_default_bridge_has_no_dns(eng, netns):
    ns = netns.new()
    e = eng.networks.attach("f" * 64, "plain", netns.path(ns), "bridge")
    try:
        assert e["DNSNames"] is None and dns_pids(eng.roots.root) == []
    finally:
        eng.networks.detach("f" * 64)


def test_generated_files(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("# comment\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\n"
                    "options ndots:2\n")
    assert files.resolv_conf(host_resolv=str(host)) == \
        "nameserver 192.0.2.53\nsearch corp.example\noptions ndots:2\n"
    assert files.resolv_conf(embedded_dns="10.89.0.1", host_resolv=str(host)).startswith("nameserver 10.89.0.1\n")
    assert files.resolv_conf(dns=["9.9.9.9"], dns_search=["a.test"], dns_options=["rotate"],
                             host_resolv=str(host)) == "nameserver 9.9.9.9\nsearch a.test\noptions rotate\n"
    host.write_text("nameserver 127.0.0.1\n")
    assert files.resolv_conf(host_resolv=str(host)) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    h = files.hosts(hostname="web1", addresses=["10.88.0.5"], extra_hosts=["db:10.0.0.9", "gw:host-gateway"],
                    gateway="10.88.0.1")
    assert "127.0.0.1\tlocalhost\n" in h and "10.88.0.5\tweb1\n" in h
    assert "10.0.0.9\tdb\n" in h and "10.88.0.1\tgw\n" in h
    assert files.hostname_file("web1") == "web1\n"
    from dockyard.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="--add-host"):
        files.hosts(hostname="x", extra_hosts=["nocolon"])
    with pytest.raises(InvalidArgument, match="--dns"):
        files.resolv_conf(dns=["not-an-ip"])
    with pytest.raises(InvalidArgument, match="hostname"):
        files.hostname_file("bad_host name")

