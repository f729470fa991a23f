"""Fixtures for network tests: an engine on a private root, network namespaces standing in for
containers, and a teardown check that nothing the test's store made is left on the host."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers import unique_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def links() -> set[str]:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        return {link.get("ifname") for link in ipr.get_links()}


def links_in(subnet: str) -> list[str]:
    """Links holding an address inside ``subnet``: where a half-built network would show.  (Other
    stores on the host may add and remove their own links meanwhile, so tests never compare whole
    link lists.)"""
    import ipaddress

    from pyroute2 import IPRoute

    net = ipaddress.ip_network(subnet)
    with IPRoute() as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.get_links()}
        return [names.get(a["index"], "?") for a in ipr.get_addr(family=2)
                if ipaddress.ip_address(a.get("address")) in net]


def nft_table() -> str:
    p = subprocess.run(["nft", "list", "table", "inet", "dockyard"], capture_output=True, text=True)
    return p.stdout if p.returncode == 0 else ""


def dns_pids(root: Path) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"dockyard.network.dns" in cmd and str(root).encode() in cmd:
            out.append(int(pid))
    return out


class Netns:
    """Named network namespaces (`ip netns`) standing in for containers; deleted at teardown."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def new(self, prefix: str = "dyt") -> str:
        name = unique_name(prefix)
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.names.append(name)
        return name

    @staticmethod
    def path(name: str) -> str:
        return f"/run/netns/{name}"

    @staticmethod
    def run(name: str, *argv: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", name, *argv], capture_output=True, text=True,
                              timeout=timeout, **kw)

    def cleanup(self) -> None:
        for n in self.names:
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        self.names.clear()


@pytest.fixture
def netns():
    ns = Netns()
    try:
        yield ns
    finally:
        ns.cleanup()


@pytest.fixture
def eng(dy_root):
    """An Engine on the test's private root.  Teardown removes what the test left (and fails the
    test if it had to), then checks the host holds nothing of this store's."""
    from dockyard.engine import Engine

    e = Engine(dy_root)
    # An empty table found at the start is some earlier test's or session's leftover, not this test's.
    table_before = nft_table()
    try:
        yield e
    finally:
        leftovers = []
        db = e.db
        bridges = [r["bridge"] for r in db.query("SELECT bridge FROM networks WHERE bridge IS NOT NULL")]
        ids = [r["id"] for r in db.query("SELECT id FROM networks")]
        for r in db.query("SELECT DISTINCT container_id FROM network_endpoints"):
            leftovers.append(f"endpoint of {r['container_id']}")
            with contextlib.suppress(Exception):
                e.networks.detach(r["container_id"])
        for r in db.query("SELECT DISTINCT container_id FROM published_ports"):
            leftovers.append(f"published ports of {r['container_id']}")
            with contextlib.suppress(Exception):
                e.networks.unpublish(r["container_id"])
        for r in db.query("SELECT name FROM networks WHERE builtin = 0"):
            leftovers.append(f"network {r['name']}")
            with contextlib.suppress(Exception):
                e.networks.remove(r["name"])
        e.close()
        now = links()
        stray = [b for b in bridges if b in now]
        table = nft_table()
        stray += [f"nft rules of {i[:12]}" for i in ids if f"nw:{i[:12]}" in table]
        stray += [f"dns server pid {p}" for p in dns_pids(dy_root)]
        if table and "comment" not in table and (not table_before or "comment" in table_before):
            # The table must go with the last network's rules, not linger empty.
            stray.append("empty nft table inet dockyard")
        assert not stray, f"left on the host: {stray}"
        assert not leftovers, f"test did not clean up: {leftovers}"
