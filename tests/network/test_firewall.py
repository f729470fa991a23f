"""NAT with nftables: outbound masquerade, published ports (incl. 127.0.0.1), port conflicts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import pytest

from dockyard.errors import Conflict
from dockyard.network.ports import PortMapping, parse_publish
from tests.helpers import BUSYBOX, unique_name, wait_for
from tests.network.conftest import nft_table

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

# TEST-NET-2 (RFC 5737): never routed anywhere real, so the "outside" cannot be confused with a LAN.
OUT_HOST, OUT_PEER = "198.51.100.1", "198.51.100.2"

# Answers each TCP connection with the address it came from, so the test sees what the server saw.
_ECHO_PEER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
while True:
    c, addr = s.accept()
    c.recv(4096)
    body = addr[0].encode()
    c.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s" % (len(body), body))
    c.close()
"""


def _iptables_state() -> str:
    out = ""
    for table in ("filter", "nat", "raw"):
        out += subprocess.run(["iptables", "-w", "-t", table, "-S"], capture_output=True, text=True).stdout
    return "\n".join(ln for ln in out.splitlines() if "DOCKYARD" in ln or "DY-" in ln)


@pytest.fixture(autouse=True, params=["nftables", "iptables"])
def firewall_backend(request, monkeypatch):
    """Every test here runs on both backends: nftables, and iptables(-nft) for hosts without it."""
    if request.param == "iptables" and not shutil.which("iptables"):
        pytest.skip("iptables is not installed")
    monkeypatch.setenv("DOCKYARD_FIREWALL", request.param)
    tables_before = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    yield request.param
    if request.param == "iptables":
        left = _iptables_state()
        # iptables-nft creates the standard tables on first use and never removes them; drop the
        # ones this test brought into being if they hold nothing.
        for family_table in ("ip filter", "ip nat", "ip raw"):
            if f"table {family_table}" not in tables_before:
                listing = subprocess.run(["nft", "list", "table", *family_table.split()], capture_output=True,
                                         text=True).stdout
                body = [ln.strip() for ln in listing.splitlines()]
                if listing and all(ln.startswith(("table", "chain", "type", "}")) or not ln for ln in body):
                    subprocess.run(["nft", "delete", "table", *family_table.split()], capture_output=True)
        assert left == "", f"iptables rules left behind:\n{left}"


@pytest.fixture
def outside(netns, procs):
    """A namespace playing "another host": a veth to the host in TEST-NET-2 and a server in it."""
    ns = netns.new("out")
    host_if = unique_name("dyo")
    subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{OUT_HOST}/24", "dev", host_if], check=True)
        subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
        netns.run(ns, "ip", "addr", "add", f"{OUT_PEER}/24", "dev", "eth0", check=True)
        netns.run(ns, "ip", "link", "set", "eth0", "up", check=True)
        netns.run(ns, "ip", "link", "set", "lo", "up", check=True)
        p = procs.start(["ip", "netns", "exec", ns, sys.executable, "-c", _ECHO_PEER, "8000"],
                        stdout=subprocess.PIPE)
        assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
        yield ns
    finally:
        procs.stop_all()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def free_port() -> int:
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fetch(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def test_outbound_masquerade(eng, netns, outside):
    eng.networks.create("egress")
    ctr = netns.new()
    try:
        e = eng.networks.attach("f" * 64, "egress-ctr", netns.path(ctr), "egress")
        p = netns.run(ctr, BUSYBOX, "wget", "-q", "-O", "-", f"http://{OUT_PEER}:8000/")
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == OUT_HOST  # the server saw the host, not 10.x of the container
        assert p.stdout.strip() != e["IPAddress"]
        # The other way round, unpublished container ports are not reachable even with a route.
        netns.run(outside, "ip", "route", "add", e["IPAddress"], "via", OUT_HOST, check=True)
        p = netns.run(outside, BUSYBOX, "ping", "-c", "1", "-W", "2", e["IPAddress"])
        assert p.returncode != 0
    finally:
        eng.networks.detach("f" * 64)
        eng.networks.remove("egress")


def test_internal_network_has_no_way_out(eng, netns, outside):
    eng.networks.create("sealed", internal=True)
    ctr = netns.new()
    try:
        eng.networks.attach("9" * 64, "sealed-ctr", netns.path(ctr), "sealed")
        p = netns.run(ctr, BUSYBOX, "wget", "-q", "-O", "-", f"http://{OUT_PEER}:8000/")
        assert p.returncode != 0
    finally:
        eng.networks.detach("9" * 64)
        eng.networks.remove("sealed")


@pytest.fixture
def web(eng, netns, procs, tmp_path):
    """A "container" on the default bridge running busybox httpd on port 80."""
    ctr = netns.new()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from the container\n")
    e = eng.networks.attach("a1" * 32, "web", netns.path(ctr), "bridge")
    procs.start(["ip", "netns", "exec", ctr, BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(www)])
    wait_for(lambda: netns.run(ctr, BUSYBOX, "wget", "-q", "-O", "-", "http://127.0.0.1/").returncode == 0,
             timeout=15, what="httpd in the namespace")
    try:
        yield {**e, "netns": ctr}
    finally:
        procs.stop_all()
        eng.networks.detach("a1" * 32)


def test_publish_reachable_from_loopback_host_ip_and_outside(eng, web, netns, outside):
    port = free_port()
    got = eng.networks.publish("a1" * 32, parse_publish(f"{port}:80"), web["IPAddress"])
    assert got == [PortMapping(80, "tcp", "", port)]
    assert fetch(f"http://127.0.0.1:{port}/") == "hello from the container\n"
    p = netns.run(outside, BUSYBOX, "wget", "-q", "-O", "-", f"http://{OUT_HOST}:{port}/")
    assert p.stdout == "hello from the container\n", p.stderr
    assert eng.networks.published("a1" * 32) == got

    eng.networks.unpublish("a1" * 32)
    assert "ct-" + "a1" * 6 not in nft_table()
    with pytest.raises(OSError):
        fetch(f"http://127.0.0.1:{port}/", timeout=2)


def test_publish_on_loopback_only_and_random_port(eng, web, netns, outside):
    got = eng.networks.publish("a1" * 32, parse_publish("127.0.0.1::80") + parse_publish("80/udp"),
                               web["IPAddress"])
    try:
        assert got[0].host_ip == "127.0.0.1" and got[0].host_port > 0
        assert got[1].protocol == "udp" and got[1].host_port > 0
        assert fetch(f"http://127.0.0.1:{got[0].host_port}/") == "hello from the container\n"
        # Bound to 127.0.0.1: not reachable through the host's other addresses.
        p = netns.run(outside, BUSYBOX, "wget", "-q", "-O", "-", f"http://{OUT_HOST}:{got[0].host_port}/")
        assert p.returncode != 0
    finally:
        eng.networks.unpublish("a1" * 32)


def test_port_in_use_is_refused_before_anything_changes(eng, web):
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen(1)
    busy = s.getsockname()[1]
    try:
        with pytest.raises(Conflict, match=f"Bind for 0.0.0.0:{busy} failed: port is already allocated"):
            eng.networks.publish("a1" * 32, parse_publish(f"{free_port()}:81") + parse_publish(f"{busy}:80"),
                                 web["IPAddress"])
        assert "ct-" + "a1" * 6 not in nft_table() and eng.networks.published("a1" * 32) == []
    finally:
        s.close()
    # A port another container published (a DNAT rule, nothing listening) is taken too.
    port = free_port()
    eng.networks.publish("a1" * 32, parse_publish(f"{port}:80"), web["IPAddress"])
    try:
        with pytest.raises(Conflict, match="already allocated"):
            eng.networks.publish("b2" * 32, parse_publish(f"{port}:80"), web["IPAddress"])
    finally:
        eng.networks.unpublish("a1" * 32)
        eng.networks.unpublish("b2" * 32)


def test_hairpin_to_published_port_from_the_same_bridge(eng, web, netns):
    port = free_port()
    eng.networks.publish("a1" * 32, parse_publish(f"{port}:80"), web["IPAddress"])
    other = netns.new()
    eng.networks.attach("c3" * 32, "neighbour", netns.path(other), "bridge")
    try:
        # Through the host's address (the gateway is one), from a neighbour and from the container itself.
        url = f"http://{web['Gateway']}:{port}/"
        p = netns.run(other, BUSYBOX, "wget", "-q", "-O", "-", url)
        assert p.stdout == "hello from the container\n", p.stderr
        p = netns.run(web["netns"], BUSYBOX, "wget", "-q", "-O", "-", url)
        assert p.stdout == "hello from the container\n", p.stderr
    finally:
        eng.networks.detach("c3" * 32)
        eng.networks.unpublish("a1" * 32)
