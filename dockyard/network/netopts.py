"""`--network` values with per-network settings, in both engines' spellings.

- Podman: ``--network NAME:ip=10.1.0.5,alias=web,mac=02:..`` (``alias`` may repeat), one
  ``--network`` per network; ``--network a,b`` (no ``:``) still lists several networks.
- Docker: ``--network name=NAME,ip=10.1.0.5,alias=web,mac-address=02:..``.

The plain ``--ip``/``--mac-address`` flags apply to the first network, as Docker applies them;
giving both a flag and the first network's own value is refused with Docker's message.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from dockyard.errors import InvalidArgument

MODES = ("none", "host")
_MAC = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
_KEYS = {"ip": "ip", "ip4": "ip", "alias": "alias", "mac": "mac", "mac-address": "mac"}


@dataclass
class NetworkRequest:
    name: str
    ip: str | None = None
    aliases: list[str] = field(default_factory=list)
    mac: str | None = None

    def options(self) -> dict[str, object]:
        return {"ip": self.ip, "aliases": self.aliases, "mac": self.mac}


def _is_mode(value: str) -> bool:
    return value in MODES or value.startswith(("container:", "slirp4netns"))


def _apply(req: NetworkRequest, key: str, value: str, spec: str) -> None:
    kind = _KEYS.get(key)
    if kind is None:
        raise InvalidArgument(f"invalid --network {spec!r}: unknown option {key!r} (known: ip, alias, mac)")
    if not value:
        raise InvalidArgument(f"invalid --network {spec!r}: {key} needs a value")
    if kind == "ip":
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {value}") from None
        req.ip = value
    elif kind == "alias":
        req.aliases.append(value)
    else:
        if not _MAC.fullmatch(value):
            raise InvalidArgument(f"invalid MAC address: {value}")
        req.mac = value.lower()


def parse_one(spec: str) -> list[NetworkRequest]:
    """One --network value: a mode is returned as a request of that name without options."""
    if _is_mode(spec):
        return [NetworkRequest(spec)]
    first = spec.split(",", 1)[0]
    if "=" in first and ":" not in first.partition("=")[0]:
        # Docker's advanced syntax: comma-separated key=value, one of them name=
        req = NetworkRequest("")
        for part in spec.split(","):
            key, sep, value = part.partition("=")
            if not sep:
                raise InvalidArgument(f"invalid --network {spec!r}: expected key=value, got {part!r}")
            if key == "name":
                req.name = value
            else:
                _apply(req, key, value, spec)
        if not req.name:
            raise InvalidArgument(f"invalid --network {spec!r}: name= is missing")
        return [req]
    name, sep, rest = spec.partition(":")
    if not sep:
        names = [n for n in spec.split(",") if n]
        if not names:
            raise InvalidArgument(f"invalid --network {spec!r}")
        return [NetworkRequest(n) for n in names]
    req = NetworkRequest(name)
    if not name:
        raise InvalidArgument(f"invalid --network {spec!r}: the network name is missing")
    for part in filter(None, rest.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise InvalidArgument(f"invalid --network {spec!r}: expected option=value, got {part!r}")
        _apply(req, key, value, spec)
    return [req]


def parse(values: str | list[str] | tuple[str, ...] | None) -> list[NetworkRequest]:
    """Every --network value given, in order; [] for none given.  A mode (none, host,
    container:X ...) must be the only one."""
    if not values:
        return []
    if isinstance(values, str):
        values = [values]
    out = [r for v in values for r in parse_one(v)]
    if len(out) > 1:
        for r in out:
            if _is_mode(r.name):
                raise InvalidArgument(f"--network {r.name} cannot be combined with other networks")
    seen: set[str] = set()
    for r in out:
        if r.name in seen:
            raise InvalidArgument(f"network {r.name} given twice in --network")
        seen.add(r.name)
    return out


def apply_flags(reqs: list[NetworkRequest], ip: str | None, mac: str | None) -> None:
    """--ip and --mac-address go to the first network (Docker's rule for several networks)."""
    if not reqs:
        return
    first = reqs[0]
    if ip:
        if first.ip and first.ip != ip:
            raise InvalidArgument("conflicting options: cannot specify both --ip and per-network IPv4 address")
        first.ip = ip
    if mac:
        if first.mac and first.mac != mac.lower():
            raise InvalidArgument("conflicting options: cannot specify both --mac-address and per-network MAC address")
        first.mac = mac.lower()


def per_network(values: str | list[str] | tuple[str, ...] | None, ip: str | None = None,
                mac: str | None = None) -> dict[str, dict[str, object]]:
    """The per-network options given in --network values, by network name (only networks that
    have some); checks them against the plain --ip/--mac-address flags."""
    reqs = parse(values)
    apply_flags([NetworkRequest(r.name, r.ip, list(r.aliases), r.mac) for r in reqs[:1]], ip, mac)
    return {r.name: r.options() for r in reqs if r.ip or r.aliases or r.mac}
