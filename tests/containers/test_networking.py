"""Containers on networks: the default bridge, published ports, custom networks with DNS, shared namespaces."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from tests.containers.conftest import IMAGE, needs_runtime
from tests.helpers import unique_name, wait_for

pytestmark = [needs_runtime, pytest.mark.skipif(os.geteuid() != 0, reason="bridge networks need root")]


def _free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def test_default_bridge_publish_and_inspect(ctr):
    port = _free_port()
    cid = ctr("run", "-d", "--name", "web", "-p", f"{port}:80", IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc",
              check=True).stdout.strip()
    ip = ctr("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "web").stdout.strip()
    assert ip.count(".") == 3
    assert ctr("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "web").stdout.strip() == ip
    nets = ctr("inspect", "web", "-f", '{{range $k, $v := .NetworkSettings.Networks}}{{printf "%s\\n" $k}}{{end}}')
    assert nets.stdout.strip() == "bridge"
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/hostname") == cid[:12] + "\n", timeout=15, what="httpd")
    assert f"0.0.0.0:{port}->80/tcp" in ctr("ps").stdout
    assert ctr("port", "web").stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"
    assert ctr("port", "web", "80").stdout.strip() == f"0.0.0.0:{port}"
    # another container on the bridge reaches it by address
    p = ctr("run", "--rm", IMAGE, "wget", "-qO-", f"http://{ip}/hostname")
    assert p.stdout == cid[:12] + "\n", p.stderr
    # the port is taken while the container lives
    p = ctr("run", "-d", "-p", f"{port}:80", IMAGE, "true")
    assert p.returncode == 125 and "already allocated" in p.stderr
    ctr("rm", "-f", "web", check=True)
    assert ctr("ps", "-aq").stdout == ""


def test_custom_network_dns_and_isolation(ctr):
    net = unique_name("tn")
    ctr("network", "create", net, check=True)
    try:
        ctr("run", "-d", "--name", "websrv", "--network", net, IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc",
            check=True)
        ip = ctr("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "websrv").stdout.strip()
        # (busybox-static's wget cannot resolve names itself; its nslookup and ping can)
        p = ctr("run", "--rm", "--network", net, IMAGE, "nslookup", "websrv")
        assert p.returncode == 0 and ip in p.stdout, p.stdout + p.stderr
        p = ctr("run", "--rm", "--cap-add=NET_RAW", "--network", net, IMAGE, "ping", "-c", "1", "-W", "5", "websrv")
        assert p.returncode == 0, p.stderr
        # from the default bridge the custom network is unreachable
        p = ctr("run", "--rm", IMAGE, "ping", "-c", "1", "-W", "2", ip)
        assert p.returncode != 0
    finally:
        ids = ctr("ps", "-aq").stdout.split()
        if ids:
            ctr("rm", "-f", *ids)
        ctr("network", "rm", net)


def test_network_container_mode_shares_the_namespace(ctr):
    ctr("run", "-d", "--name", "side", IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
    cid = ctr("container", "ls", "--filter", "name=side", "--quiet").stdout.strip()
    p = ctr("container", "run", "--rm", "--network", f"container:{cid}", IMAGE, "wget", "-qO-",
            "http://127.0.0.1/hostname")
    assert p.returncode == 0 and p.stdout.strip() == cid, p.stderr


def test_unknown_network_is_refused(ctr):
    p = ctr("run", "--rm", "--network", "no-such-net", IMAGE, "true")
    assert p.returncode == 125 and "no-such-net" in p.stderr
    assert ctr("ps", "-aq").stdout == ""


def test_network_settings_shape(ctr):
    ctr("run", "-d", "--name", "ns", IMAGE, "sleep", "600", check=True)
    ns = json.loads(ctr("inspect", "ns").stdout)[0]["NetworkSettings"]
    ep = ns["Networks"]["bridge"]
    for k in ("IPAddress", "IPPrefixLen", "Gateway", "MacAddress", "NetworkID"):
        assert k in ep
    assert ns["IPAddress"] == ep["IPAddress"]


def _rm_all(ctr, net: str) -> None:
    ids = ctr("ps", "-aq").stdout.split()
    if ids:
        ctr("rm", "-f", *ids)
    ctr("network", "rm", net)


def test_alias_ip_and_dns_flags_on_a_custom_network(ctr):
    net = unique_name("tn")
    ctr("network", "create", "--subnet", "10.231.7.0/24", net, check=True)
    try:
        ctr("run", "-d", "--name", "aliased", "--network", net, "--network-alias", "db", "--network-alias", "store",
            "--ip", "10.231.7.50", "--mac-address", "92:d0:c6:0a:29:33", IMAGE, "sleep", "300", check=True)
        ep = json.loads(ctr("inspect", "-f", "{{json .NetworkSettings.Networks}}", "aliased").stdout)[net]
        assert ep["IPAddress"] == "10.231.7.50"
        assert ep["MacAddress"] == "92:d0:c6:0a:29:33"
        assert {"db", "store"} <= set(ep["Aliases"] or []), ep
        for alias in ("db", "store"):
            p = ctr("run", "--rm", "--network", net, IMAGE, "nslookup", alias)
            assert p.returncode == 0 and "10.231.7.50" in p.stdout, p.stdout + p.stderr
        p = ctr("run", "--rm", "--cap-add=NET_RAW", "--network", net, IMAGE, "ping", "-c", "1", "-W", "5", "db")
        assert p.returncode == 0, p.stderr
        p = ctr("run", "--rm", "--network", net, "--dns-search", "example.internal", "--dns-option", "ndots:3",
                IMAGE, "cat", "/etc/resolv.conf")
        assert p.returncode == 0
        assert "search example.internal" in p.stdout and "options ndots:3" in p.stdout, p.stdout
        # an address outside the subnet, or --ip on the default bridge, is refused before anything runs
        p = ctr("run", "--rm", "--network", net, "--ip", "10.99.0.5", IMAGE, "true")
        assert p.returncode != 0 and "10.99.0.5" in p.stderr
        p = ctr("create", "--ip", "10.88.0.9", IMAGE, "true")
        assert p.returncode == 125 and "user defined networks" in p.stderr
        p = ctr("create", "--network-alias", "x", IMAGE, "true")
        assert p.returncode == 125 and "user defined networks" in p.stderr
    finally:
        _rm_all(ctr, net)


def test_publish_all_publishes_exposed_ports(ctr):
    ctr("create", "--name", "base", IMAGE, "true", check=True)
    image = unique_name("exposed").lower()
    ctr("commit", "--change", "EXPOSE 80 81/udp", "base", image, check=True)
    try:
        ctr("run", "-d", "--name", "pall", "-P", image, "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
        out = ctr("port", "pall").stdout.splitlines()
        assert len(out) == 2, out
        assert any(line.startswith("80/tcp -> 0.0.0.0:") for line in out), out
        assert any(line.startswith("81/udp -> 0.0.0.0:") for line in out), out
        port = int(next(line for line in out if line.startswith("80/tcp")).rsplit(":", 1)[1])
        wait_for(lambda: _get(f"http://127.0.0.1:{port}/hostname").strip() != "", timeout=15, what="httpd")
    finally:
        ctr("rm", "-f", "pall", "base")
        ctr("rmi", image)


def test_rm_forgets_network_connections(ctr):
    import sqlite3

    net = unique_name("tn")
    ctr("network", "create", net, check=True)
    try:
        cid = ctr("create", "--name", "later", IMAGE, "true", check=True).stdout.strip()
        ctr("network", "connect", net, "later", check=True)

        def recorded() -> int:
            with sqlite3.connect(ctr.root / "dockyard.db") as db:
                return db.execute("SELECT COUNT(*) FROM container_networks WHERE container_id = ?",
                                  (cid,)).fetchone()[0]

        assert recorded() == 1
        ctr("rm", "later", check=True)
        assert recorded() == 0
    finally:
        _rm_all(ctr, net)


def test_inspect_follows_connect_and_disconnect(ctr):
    net = unique_name("tn")
    ctr("network", "create", net, check=True)
    try:
        ctr("run", "-d", "--name", "hop", IMAGE, "sleep", "300", check=True)

        def networks() -> dict:
            return json.loads(ctr("inspect", "-f", "{{json .NetworkSettings.Networks}}", "hop").stdout)

        assert list(networks()) == ["bridge"]
        ctr("network", "connect", "--alias", "hopper", net, "hop", check=True)
        nets = networks()
        assert sorted(nets) == sorted(["bridge", net])
        assert nets[net]["IPAddress"] and "hopper" in (nets[net]["Aliases"] or [])
        # the new address is live in the container's namespace
        p = ctr("exec", "hop", "ip", "-4", "addr")
        assert nets[net]["IPAddress"] in p.stdout, p.stdout
        ctr("network", "disconnect", net, "hop", check=True)
        assert list(networks()) == ["bridge"]
        ctr("network", "disconnect", "bridge", "hop", check=True)
        assert networks() == {}
        assert ctr("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "hop").stdout.strip() == ""
    finally:
        _rm_all(ctr, net)
