"""Links, addresses and routes over netlink (pyroute2): bridges on the host, veth pairs into
containers' network namespaces.  No `ip` subprocesses: one netlink socket does it all, and
errors come back as errno values we can turn into clear messages.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import secrets
import socket
from collections.abc import Iterator
from typing import Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound

IFNAMSIZ = 15


@contextlib.contextmanager
def _ipr() -> Iterator[Any]:
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


@contextlib.contextmanager
def _netns(path: str) -> Iterator[Any]:
    from pyroute2 import NetNS

    if not os.path.exists(path):
        raise NotFound(f"network namespace {path} does not exist")
    ns = NetNS(path)
    try:
        yield ns
    finally:
        ns.close()


def check_ifname(name: str) -> str:
    if not name or len(name) > IFNAMSIZ or "/" in name or any(c.isspace() for c in name) or name in (".", ".."):
        raise InvalidArgument(f"invalid interface name {name!r}: at most {IFNAMSIZ} characters, no '/' or spaces")
    return name


def host_networks() -> list[tuple[str, ipaddress.IPv4Network]]:
    """IPv4 networks the host already uses: addresses on its links and non-default routes."""
    out: list[tuple[str, ipaddress.IPv4Network]] = []
    with _ipr() as ipr:
        names = {link["index"]: link.get("ifname") for link in ipr.get_links()}
        for a in ipr.get_addr(family=socket.AF_INET):
            addr = a.get("address")
            if not addr or addr.startswith("127."):
                continue
            net = ipaddress.IPv4Network(f"{addr}/{a['prefixlen']}", strict=False)
            out.append((f"interface {names.get(a['index'], a['index'])}", net))
        for r in ipr.get_routes(family=socket.AF_INET, table=254):
            dst = r.get("dst")
            if not dst or r["dst_len"] == 0:
                continue
            net = ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False)
            out.append((f"a route via {names.get(r.get('oif'), 'the host')}", net))
    return out


def link_names() -> set[str]:
    with _ipr() as ipr:
        return {link.get("ifname") for link in ipr.get_links()}


def link_present(name: str) -> bool:
    """Whether a link exists, from sysfs: no netlink socket (nor pyroute2 import) needed."""
    return bool(name) and "/" not in name and os.path.exists(f"/sys/class/net/{name}")


def link_exists(name: str) -> bool:
    return link_present(name)


def link_addresses(name: str) -> list[str]:
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return []
        return [f"{a.get('address')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx[0], family=socket.AF_INET)]


def create_bridge(name: str, gateway: str, prefixlen: int, mtu: int = 0) -> None:
    """Create bridge ``name`` with the gateway address, up.  Reuses one that already has it."""
    check_ifname(name)
    want = f"{gateway}/{prefixlen}"
    from pyroute2.netlink.exceptions import NetlinkError

    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if idx:
            have = [f"{a.get('address')}/{a['prefixlen']}" for a in ipr.get_addr(index=idx[0], family=socket.AF_INET)]
            if want not in have:
                raise Conflict(f"interface {name} already exists on the host and is not this network's bridge")
            ipr.link("set", index=idx[0], state="up")
            return
        try:
            # A fixed MAC: by default a bridge takes its lowest port's, so it would change as
            # containers come and go and leave every other container's ARP entry for the gateway stale.
            kw: dict[str, Any] = {"ifname": name, "kind": "bridge", "address": random_mac()}
            if mtu:
                kw["mtu"] = mtu
            ipr.link("add", **kw)
            idx = ipr.link_lookup(ifname=name)
            ipr.addr("add", index=idx[0], address=gateway, prefixlen=prefixlen)
            ipr.link("set", index=idx[0], state="up")
        except NetlinkError as e:
            with contextlib.suppress(NetlinkError):
                ipr.link("del", ifname=name)
            raise DockyardError(f"cannot create bridge {name}: {os.strerror(e.code)}") from None


def delete_link(name: str) -> None:
    """Delete a link if it exists (idempotent, so it is safe after a crash)."""
    from dockyard.network import nl

    idx = nl.ifindex(name) if "/" not in name else None
    if idx is None:
        return
    try:
        with nl.Rtnl() as ipr:
            ipr.del_link(idx)
    except nl.NetlinkError as e:
        if e.code != errno.ENODEV:
            raise DockyardError(f"cannot delete interface {name}: {os.strerror(e.code)}") from None


def bridge_ports(name: str) -> list[str]:
    with _ipr() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return []
        return [link.get("ifname") for link in ipr.get_links() if link.get("master") == idx[0]]


def random_mac() -> str:
    b = bytearray(secrets.token_bytes(6))
    b[0] = (b[0] & 0xFE) | 0x02  # unicast, locally administered
    return ":".join(f"{x:02x}" for x in b)


def check_mac(mac: str) -> str:
    parts = mac.lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise InvalidArgument(f"invalid MAC address {mac!r}: expected six hex pairs like 02:42:ac:11:00:02")
    if int(parts[0], 16) & 1:
        raise InvalidArgument(f"invalid MAC address {mac}: a multicast address cannot be assigned")
    return ":".join(parts)


def netns_ifnames(netns_path: str) -> set[str]:
    with _netns(netns_path) as ns:
        return {link.get("ifname") for link in ns.get_links()}


def add_veth(bridge: str, netns_path: str, ifname: str, address: str, prefixlen: int, gateway: str | None,
             mac: str, default_route: bool, mtu: int = 0) -> str:
    """Plug a namespace into ``bridge``: a veth pair whose peer is ``ifname`` inside the namespace,
    with the address, up, and (optionally) the default route via ``gateway``.  Returns the host end's
    name.  On any failure nothing is left behind (deleting one end of a veth deletes both).

    Every container start comes through here, so it uses the lean client in ``nl``: three
    round trips (create the pair enslaved and up; look up the peer; address, links up and route
    in one batch) instead of pyroute2's IPRoute and a forked NetNS helper.
    """
    from dockyard.network import nl

    host = "veth" + secrets.token_hex(4)[:7]
    br = nl.ifindex(bridge)
    if br is None:
        raise NotFound(f"bridge {bridge} does not exist")
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with nl.Rtnl() as ipr:
            try:
                ipr.add_veth(host, ifname, fd, br, mac, mtu)
            except nl.NetlinkError as e:
                if e.code == errno.EEXIST:
                    raise Conflict(f"interface {ifname} (or {host}) already exists") from None
                raise DockyardError(f"cannot attach to bridge {bridge}: cannot create veth pair: "
                                    f"{os.strerror(e.code)}") from None
            try:
                # With br_netfilter the DNAT of a container's packet to its own published port is
                # bridged straight back out of the port it came in on: allowed only in hairpin mode
                # (Docker sets it too when it relies on NAT rather than its userland proxy).
                with open(f"/sys/class/net/{host}/brport/hairpin_mode", "w") as f:
                    f.write("1")
                with nl.open_in(netns_path) as ns:
                    cidx = ns.index_of(ifname)
                    reqs = [ns.set_up(1), ns.add_addr(cidx, address, prefixlen), ns.set_up(cidx)]
                    if default_route and gateway:
                        reqs.append(ns.default_route(gateway, cidx))
                    ns.call(*reqs)
            except BaseException as e:
                idx = nl.ifindex(host)
                if idx is not None:
                    with contextlib.suppress(OSError):
                        ipr.del_link(idx)
                if isinstance(e, nl.NetlinkError):
                    raise DockyardError(f"cannot attach to bridge {bridge}: {os.strerror(e.code)}") from None
                raise
    finally:
        os.close(fd)
    return host


def remove_ns_link(netns_path: str, ifname: str) -> None:
    """Delete ``ifname`` inside a namespace, if both still exist (the kernel removes the host end)."""
    from pyroute2.netlink.exceptions import NetlinkError

    if not os.path.exists(netns_path):
        return
    with contextlib.suppress(NotFound, NetlinkError, OSError), _netns(netns_path) as ns:
        idx = ns.link_lookup(ifname=ifname)
        if idx:
            ns.link("del", index=idx[0])


def set_sysctl(path: str, value: str) -> str | None:
    """Write a /proc/sys value; returns the previous one when it changed, else None."""
    full = "/proc/sys/" + path
    with open(full) as f:
        old = f.read().strip()
    if old == value:
        return None
    with open(full, "w") as f:
        f.write(value)
    return old
