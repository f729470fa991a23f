"""IP address management: subnets for networks and addresses for endpoints.

Pure functions over ``ipaddress`` objects; what is taken comes from the store (other networks,
other endpoints) and from the host (its addresses and routes), so a new network never shadows
a LAN, a VPN, docker0 or a Podman bridge that already exists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from dockyard.errors import Conflict, InvalidArgument

IPv4Net = ipaddress.IPv4Network
IPv4Addr = ipaddress.IPv4Address

# Podman's default network is 10.88.0.0/16 and its custom networks are /24s from 10.89.0.0/16;
# Docker's are 172.17.0.0/16 and then 172.18-31.  Trying them in that order means dockyard picks
# what users of either expect, and falls through when the host already uses one.
DEFAULT_POOL = [("10.88.0.0/16", 16)] + [(f"172.{n}.0.0/16", 16) for n in range(17, 32)]
CUSTOM_POOL = [("10.89.0.0/16", 24), ("10.90.0.0/16", 24)] + [(f"172.{n}.0.0/16", 16) for n in range(18, 32)]


def parse_subnet(text: str) -> IPv4Net:
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text!r}: expected an address/prefix such as 10.5.0.0/16") from None
    if "/" not in text:
        raise InvalidArgument(f"invalid subnet {text!r}: missing the prefix length, e.g. {text}/24")
    if net.version != 4:
        raise InvalidArgument(f"IPv6 subnet {text}: only IPv4 networks are supported")
    if str(net) != text:
        raise InvalidArgument(f"invalid subnet {text}: it should be {net} (host bits are set)")
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {text} is too small: it needs room for a gateway and a container (/30 at most)")
    assert isinstance(net, IPv4Net)
    return net


def parse_address(text: str, what: str = "address") -> IPv4Addr:
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what} {text!r}: expected an IPv4 address") from None
    if not isinstance(addr, IPv4Addr):
        raise InvalidArgument(f"invalid {what} {text}: only IPv4 is supported")
    return addr


def overlapping(net: IPv4Net, taken: Iterable[IPv4Net]) -> IPv4Net | None:
    for t in taken:
        if net.overlaps(t):
            return t
    return None


def validate_config(subnet: str, gateway: str | None, ip_range: str | None,
                    taken: Iterable[tuple[str, IPv4Net]]) -> tuple[IPv4Net, IPv4Addr, IPv4Net | None]:
    """Check a user-given subnet/gateway/range; ``taken`` pairs an owner's description with its net."""
    net = parse_subnet(subnet)
    for owner, t in taken:
        if net.overlaps(t):
            raise Conflict(f"subnet {net} overlaps with {t} used by {owner}")
    if gateway:
        gw = parse_address(gateway, "gateway")
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"gateway {gw} is not a usable address of subnet {net}")
    else:
        gw = net.network_address + 1
    rng = None
    if ip_range:
        rng = parse_subnet(ip_range)
        if not rng.subnet_of(net):
            raise InvalidArgument(f"ip-range {rng} is not inside subnet {net}")
    return net, gw, rng


def choose_subnet(pool: Iterable[tuple[str, int]], taken: Iterable[IPv4Net]) -> IPv4Net:
    """The first block of the pool that overlaps nothing taken."""
    taken = list(taken)
    for base, prefix in pool:
        for cand in ipaddress.IPv4Network(base).subnets(new_prefix=prefix):
            if overlapping(cand, taken) is None:
                return cand
    raise Conflict("no free subnet left in the address pools: remove unused networks (network prune) "
                   "or give --subnet")


def allocate(net: IPv4Net, gateway: IPv4Addr, used: Iterable[str], ip_range: IPv4Net | None = None) -> IPv4Addr:
    """The lowest free address, skipping the network, broadcast and gateway addresses."""
    skip = {str(gateway), str(net.network_address), str(net.broadcast_address)} | set(used)
    for addr in (ip_range or net).hosts():
        if str(addr) not in skip and addr in net:
            return addr
    raise Conflict(f"no available IP addresses left in network subnet {ip_range or net}")


def check_requested(addr_text: str, net: IPv4Net, gateway: IPv4Addr, used: Iterable[str]) -> IPv4Addr:
    addr = parse_address(addr_text, "IP address")
    if addr not in net:
        raise InvalidArgument(f"requested IP address {addr} is not in network subnet {net}")
    if addr in (net.network_address, net.broadcast_address, gateway):
        raise InvalidArgument(f"requested IP address {addr} is reserved in subnet {net}")
    if str(addr) in set(used):
        raise Conflict(f"requested IP address {addr} is already in use in subnet {net}")
    return addr
