"""Published ports: ``-p`` parsing (Docker's syntax) and host port availability.

A published port is a DNAT rule (firewall.add_ports), so nothing listens on the host port; the
availability check therefore asks three owners: the kernel (can we bind it?), this store's
table of published ports, and the DNAT rules of every dockyard store on the host.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from dockyard.errors import Conflict, InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""  # "" = all addresses (0.0.0.0)
    host_port: int = 0  # 0 = pick one (from host_range if given)
    host_range: tuple[int, int] | None = None

    def key(self) -> str:
        return f"{self.container_port}/{self.protocol}"

    def describe(self) -> str:
        return f"{self.key()} -> {self.host_ip or '0.0.0.0'}:{self.host_port}"


def _port(text: str, spec: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise InvalidArgument(f"invalid port {text!r} in {spec!r}: expected a number from 1 to 65535")
    return int(text)


def _range(text: str, spec: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    a = _port(lo, spec)
    b = _port(hi, spec) if sep else a
    if b < a:
        raise InvalidArgument(f"invalid port range {text!r} in {spec!r}: the end is before the start")
    return a, b


def parse_publish(spec: str) -> list[PortMapping]:
    """``[[IP:][HOSTPORT[-END]]:]CPORT[-END][/PROTO]`` as ``docker run -p`` takes it."""
    body, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid protocol {proto!r} in {spec!r}: expected tcp, udp or sctp")
    if body.startswith("["):
        raise InvalidArgument(f"invalid publish spec {spec!r}: IPv6 host addresses are not supported")
    parts = body.split(":")
    if len(parts) > 3 or not parts[-1]:
        raise InvalidArgument(f"invalid publish spec {spec!r}: expected [[IP:]HOSTPORT:]CONTAINERPORT[/PROTO]")
    host_ip = ""
    if len(parts) == 3:
        host_ip = parts[0]
        try:
            addr = ipaddress.ip_address(host_ip)
        except ValueError:
            raise InvalidArgument(f"invalid host IP {host_ip!r} in {spec!r}") from None
        if addr.version != 4:
            raise InvalidArgument(f"invalid publish spec {spec!r}: IPv6 host addresses are not supported")
        host_ip = "" if host_ip == "0.0.0.0" else host_ip
    c_lo, c_hi = _range(parts[-1], spec)
    host_text = parts[-2] if len(parts) >= 2 else ""
    if not host_text:
        return [PortMapping(p, proto, host_ip) for p in range(c_lo, c_hi + 1)]
    h_lo, h_hi = _range(host_text, spec)
    if c_lo == c_hi and h_hi > h_lo:
        return [PortMapping(c_lo, proto, host_ip, 0, (h_lo, h_hi))]
    if h_hi - h_lo != c_hi - c_lo:
        raise InvalidArgument(f"invalid publish spec {spec!r}: host and container port ranges differ in size")
    return [PortMapping(c, proto, host_ip, h_lo + i) for i, c in enumerate(range(c_lo, c_hi + 1))]


def from_exposed(exposed: Iterable[str]) -> list[PortMapping]:
    """``-P``: every EXPOSE'd port ("80", "53/udp") on a random host port."""
    out = []
    for e in exposed:
        port, _, proto = e.partition("/")
        out.append(PortMapping(_port(port, e), (proto or "tcp").lower()))
    return out


def _sock_type(proto: str) -> int:
    return socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM


def can_bind(host_ip: str, port: int, proto: str) -> bool:
    s = socket.socket(socket.AF_INET, _sock_type(proto))
    try:
        if proto != "udp":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host_ip or "0.0.0.0", port))
        return True
    except OSError as e:
        if e.errno in (errno.EADDRINUSE, errno.EACCES):
            return False
        if e.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"cannot publish on {host_ip}: the host has no such address") from None
        raise
    finally:
        s.close()


def random_port(host_ip: str, proto: str, taken: set[tuple[str, int]]) -> int:
    """A free port from the kernel's ephemeral range, as Docker picks for ``-p CPORT``."""
    for _ in range(64):
        s = socket.socket(socket.AF_INET, _sock_type(proto))
        try:
            s.bind((host_ip or "0.0.0.0", 0))
            port = s.getsockname()[1]
        finally:
            s.close()
        if (proto, port) not in taken:
            return port
    raise Conflict("no free host port found for a random port mapping")


def in_use_error(m: PortMapping, port: int) -> Conflict:
    return Conflict(f"Bind for {m.host_ip or '0.0.0.0'}:{port} failed: port is already allocated")


def docker_ports(mappings: Iterable[PortMapping], exposed: Iterable[str] = ()) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports as Docker's inspect shows it."""
    out: dict[str, list[dict[str, str]] | None] = {}
    for e in exposed:
        out.setdefault(e if "/" in e else e + "/tcp", None)
    for m in mappings:
        lst = out.get(m.key()) or []
        lst.append({"HostIp": m.host_ip or "0.0.0.0", "HostPort": str(m.host_port)})
        out[m.key()] = lst
    return dict(sorted(out.items()))  # Go's encoding/json orders map keys
