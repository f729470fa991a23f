"""The per-container /etc/hosts, /etc/resolv.conf and /etc/hostname, as Docker generates them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from dockyard.errors import InvalidArgument

# Docker's fallback when the host only has loopback resolvers, which a container cannot reach.
FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"]


def parse_host_resolv(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf."""
    ns: list[str] = []
    search: list[str] = []
    opts: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            ns.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            opts += words[1:]
    return ns, search, opts


def read_host_resolv(path: str = "/etc/resolv.conf") -> tuple[list[str], list[str], list[str]]:
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return [], [], []
    if "127.0.0.53" in text:
        # systemd-resolved's stub is loopback-only; the real upstream list sits next to it.
        try:
            with open("/run/systemd/resolve/resolv.conf") as f:
                text = f.read()
        except OSError:
            pass
    return parse_host_resolv(text)


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(*, embedded_dns: str | None = None, dns: Iterable[str] = (), dns_search: Iterable[str] = (),
                dns_options: Iterable[str] = (), host_resolv: str = "/etc/resolv.conf") -> str:
    """The container's resolv.conf.

    ``embedded_dns`` is the network's DNS server (the gateway of a custom network): it answers
    container names and forwards the rest, so it is the only nameserver then.  Otherwise the
    user's ``--dns`` servers, else the host's minus loopback ones (unreachable from the container).
    """
    host_ns, host_search, host_opts = read_host_resolv(host_resolv)
    dns = list(dns)
    for d in dns:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            raise InvalidArgument(f"invalid --dns address {d!r}") from None
    if embedded_dns:
        servers = [embedded_dns]
    elif dns:
        servers = dns
    else:
        servers = [n for n in host_ns if not _is_loopback(n)] or FALLBACK_NAMESERVERS
    search = list(dns_search) or host_search
    opts = list(dns_options) or host_opts
    lines = [f"nameserver {s}" for s in servers]
    if search and search != ["."]:
        lines.append("search " + " ".join(search))
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"


def hosts(*, hostname: str, addresses: Iterable[str] = (), extra_hosts: Iterable[str] = (),
          gateway: str | None = None, aliases: Iterable[str] = ()) -> str:
    """The container's /etc/hosts: loopback, its own addresses with its hostname, then --add-host.

    ``extra_hosts`` entries are ``NAME:IP`` (``host-gateway`` as the IP means the network's gateway,
    i.e. the host as seen from the container, as in Docker).
    """
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    names = " ".join(dict.fromkeys([hostname, *aliases]))
    for a in addresses:
        lines.append(f"{a}\t{names}")
    for entry in extra_hosts:
        name, sep, ip = entry.partition(":")
        if not sep or not name or not ip:
            raise InvalidArgument(f"invalid --add-host {entry!r}: expected NAME:IP")
        if ip == "host-gateway":
            if not gateway:
                raise InvalidArgument(f"--add-host {entry}: host-gateway needs a bridge network")
            ip = gateway
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            raise InvalidArgument(f"invalid IP address {ip!r} in --add-host {entry}") from None
        lines.append(f"{ip.strip('[]')}\t{name}")
    return "\n".join(lines) + "\n"


def hostname_file(hostname: str) -> str:
    check_hostname(hostname)
    return hostname + "\n"


def check_hostname(hostname: str) -> str:
    labels = hostname.split(".")
    if not hostname or len(hostname) > 253 or not all(
            0 < len(x) <= 63 and x.replace("-", "").replace("_", "").isalnum() and x[0] != "-" for x in labels):
        raise InvalidArgument(f"invalid hostname {hostname!r}")
    return hostname
