"""NetworkService.setup/teardown: the whole-container wiring `run` uses, without a container."""

from __future__ import annotations

import os
import subprocess
import urllib.request

import pytest

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.network import netns as N
from dockyard.network.ports import parse_publish
from tests.helpers import BUSYBOX, wait_for
from tests.network.test_firewall import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def in_ns(cid: str, *argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", N.name_for(cid), *argv], capture_output=True, text=True,
                          timeout=30, **kw)


def test_bridge_with_published_port(eng, procs, tmp_path):
    cid = "1a" * 32
    port = free_port()
    (tmp_path / "index.html").write_text("tutorial page\n")
    try:
        out = eng.networks.setup(cid, "webserver", "podman", publish=parse_publish(f"{port}:80"),
                                 extra_hosts=["db:10.1.2.3"], dns=["192.0.2.53"])
        ns = out["NetworkSettings"]
        assert out["netns"] == N.path_for(cid) and ns["SandboxKey"] == out["netns"]
        assert list(ns["Networks"]) == ["bridge"] and ns["IPAddress"] == ns["Networks"]["bridge"]["IPAddress"]
        assert ns["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        assert f"{ns['IPAddress']}\t{cid[:12]}\n" in out["hosts"] and "10.1.2.3\tdb\n" in out["hosts"]
        assert out["resolv_conf"].startswith("nameserver 192.0.2.53\n") and out["hostname"] == cid[:12] + "\n"
        procs.start(["ip", "netns", "exec", N.name_for(cid), BUSYBOX, "httpd", "-f", "-p", "80",
                     "-h", str(tmp_path)])
        wait_for(lambda: in_ns(cid, BUSYBOX, "wget", "-q", "-O", "-", "http://127.0.0.1/").returncode == 0,
                 timeout=15, what="httpd")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.read() == b"tutorial page\n"
        # A second container asking for the same host port is refused and leaves nothing behind.
        with pytest.raises(Conflict, match="already allocated"):
            eng.networks.setup("2b" * 32, "second", "bridge", publish=parse_publish(f"{port}:80"))
        assert not os.path.exists(N.path_for("2b" * 32))
    finally:
        procs.stop_all()
        eng.networks.teardown(cid)
    assert not os.path.exists(N.path_for(cid))
    eng.networks.teardown(cid)  # idempotent


def test_several_networks_and_custom_dns(eng):
    eng.networks.create("app")
    eng.networks.create("db", internal=True)
    cid = "3c" * 32
    try:
        out = eng.networks.setup(cid, "api", "app,db", aliases=["backend"], hostname="api1")
        nets = out["NetworkSettings"]["Networks"]
        assert list(nets) == ["app", "db"]
        assert nets["app"]["Aliases"] == ["backend"] and nets["db"]["InterfaceName"] == "eth1"
        assert out["NetworkSettings"]["IPAddress"] == ""  # only the default bridge fills the legacy fields
        assert out["resolv_conf"].startswith(f"nameserver {nets['app']['Gateway']}\n")
        assert eng.networks.inspect("db")["Containers"][cid]["Name"] == "api"
        with pytest.raises(Conflict, match="active endpoints"):
            eng.networks.remove("app")
    finally:
        eng.networks.teardown(cid)
        eng.networks.remove("app")
        eng.networks.remove("db")


def test_none_host_and_bad_modes(eng):
    cid = "4d" * 32
    try:
        out = eng.networks.setup(cid, "loner", "none")
        assert list(out["NetworkSettings"]["Networks"]) == ["none"]
        p = in_ns(cid, "ip", "-o", "link")
        assert "lo:" in p.stdout and "eth0" not in p.stdout and "UP" in p.stdout
        joined = eng.networks.setup("5e" * 32, "sidecar", f"container:{cid}")
        assert joined["netns"] == out["netns"]
        with pytest.raises(InvalidArgument, match="needs a bridge network"):
            eng.networks.setup("6f" * 32, "x", "none", publish=parse_publish("80"))
    finally:
        eng.networks.teardown(cid)
    host = eng.networks.setup("7a" * 32, "h", "host", extra_hosts=["extra:10.9.9.9"])
    assert host["netns"] is None and "10.9.9.9\textra\n" in host["hosts"]
    with pytest.raises(NotFound, match="network nosuch not found"):
        eng.networks.setup("8b" * 32, "x", "bridge,nosuch")
    with pytest.raises(Conflict, match="not running"):
        eng.networks.setup("8b" * 32, "x", "container:" + "9" * 64)
    assert not os.path.exists(N.path_for("8b" * 32))
