"""Rootless networking: slirp4netns in a user+network namespace, outbound and published ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.request

import pytest

from dockyard.errors import Conflict, InvalidArgument
from dockyard.network import rootless
from dockyard.network.ports import can_bind, parse_publish
from tests.helpers import BUSYBOX, wait_for
from tests.network.test_firewall import OUT_HOST, OUT_PEER, free_port, outside  # noqa: F401

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="needs root"), pytest.mark.peer("slirp4netns")]


def in_ctr(netns: str, *argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, timeout=30, **kw)


def test_slirp4netns_outbound_and_published_port(eng, procs, outside, tmp_path):  # noqa: F811
    """``--network slirp4netns``: a namespace of its own, made before the container, behind slirp4netns."""
    cid = "5a" * 32
    port = free_port()
    (tmp_path / "index.html").write_text("rootless page\n")
    try:
        out = eng.networks.setup_rootless(cid, "slirp4netns", parse_publish(f"{port}:80"))
        netns = out["netns"]
        assert netns == out["NetworkSettings"]["SandboxKey"] and os.path.ismount(netns)
        assert out["NetworkSettings"]["IPAddress"] == rootless.GUEST_IP
        assert out["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        assert out["resolv_conf"] == "nameserver 10.0.2.3\n"
        addrs = in_ctr(netns, "ip", "-o", "addr").stdout
        assert "tap0" in addrs and "127.0.0.1/8" in addrs
        # Outbound: slirp4netns opens the connection from the host, so the server sees the host.
        p = in_ctr(netns, BUSYBOX, "wget", "-q", "-O", "-", f"http://{OUT_PEER}:8000/")
        assert p.stdout.strip() == OUT_HOST, p.stderr
        procs.start(["nsenter", f"--net={netns}", BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(tmp_path)])
        wait_for(lambda: in_ctr(netns, BUSYBOX, "wget", "-q", "-O", "-", "http://127.0.0.1/").returncode == 0,
                 timeout=15, what="httpd")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.read() == b"rootless page\n"
        assert [m.host_port for m in eng.networks.published(cid)] == [port]
        with pytest.raises(Conflict, match="already allocated"):
            eng.networks.setup_rootless("6b" * 32, "slirp4netns", parse_publish(f"{port}:80"))
        assert not (eng.roots.runroot / "netns" / ("6b" * 32)).exists()  # the failed setup undid itself
    finally:
        eng.networks.teardown(cid)
    assert can_bind("", port, "tcp") and eng.networks.published(cid) == []
    assert not (eng.roots.runroot / "slirp4netns" / cid[:12]).exists()
    assert not (eng.roots.runroot / "netns" / cid).exists()


def test_slirp4netns_options_are_checked(eng):
    with pytest.raises(InvalidArgument, match="invalid slirp4netns option 'mtu=1'"):
        eng.networks.setup_rootless("7c" * 32, "slirp4netns:mtu=1")


def test_slirp4netns_as_an_unprivileged_user(eng, tmp_path):
    """The same as a real non-root user, where the host lets users open /dev/net/tun."""
    st = os.stat("/dev/net/tun")
    if not st.st_mode & 0o006:
        pytest.skip("/dev/net/tun is not accessible to unprivileged users on this host")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv is missing")
    user = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
    p = subprocess.Popen(user + ["unshare", "--user", "--map-root-user", "--net", "sleep", "300"])
    run_dir = tmp_path / "slirp"
    run_dir.mkdir()
    os.chown(run_dir, 65534, 65534)
    try:
        wait_for(lambda: os.readlink(f"/proc/{p.pid}/ns/net") != os.readlink("/proc/self/ns/net"))
        s = subprocess.run(user + ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                                   "--exit-fd", "0", str(p.pid), "tap0"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        assert "tap0" in s.stdout + s.stderr or s.returncode == 0
    finally:
        p.kill()
        p.wait()
