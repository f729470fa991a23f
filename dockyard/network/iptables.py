"""The firewall through iptables (iptables-nft on current Debian), for hosts without nftables' own
library.  Same rules and guarantees as firewall.py's nftables backend, in chains of our own:

    filter DOCKYARD-FORWARD (from FORWARD)    per-network policy, after DOCKYARD-ISOLATION
    raw    DOCKYARD-GUARD   (from PREROUTING) 127/8 arriving on a bridge -> drop
    nat    DOCKYARD-PORTS   (from PREROUTING and OUTPUT, local destinations) -> DY-<id12> per container
    nat    DOCKYARD-POSTROUTING (from POSTROUTING) masquerade

Per-network rules carry ``-m comment --comment nw:<id12>`` and are deleted by replaying
``iptables -S`` lines with -D; our chains and the jumps into them go with the last network.
Without nft sets, isolation matches other dockyard bridges by name (``dy-+`` and ``dockyard0``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Iterable

from dockyard.errors import DockyardError, Unsupported

# (table, our chain, built-in chain jumping to it, extra match for the jump)
_HOOKS = [
    ("filter", "DOCKYARD-FORWARD", "FORWARD", []),
    ("raw", "DOCKYARD-GUARD", "PREROUTING", []),
    ("nat", "DOCKYARD-PORTS", "PREROUTING", ["-m", "addrtype", "--dst-type", "LOCAL"]),
    ("nat", "DOCKYARD-PORTS", "OUTPUT", ["-m", "addrtype", "--dst-type", "LOCAL"]),
    ("nat", "DOCKYARD-POSTROUTING", "POSTROUTING", []),
]
_OTHER = [("filter", "DOCKYARD-ISOLATION")]


def _ipt(table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("iptables")
    if exe is None:
        raise Unsupported("neither nftables nor iptables is available on this host")
    p = subprocess.run([exe, "-w", "-t", table, *args], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise DockyardError(f"iptables: {p.stderr.strip().splitlines()[-1] if p.stderr.strip() else p.returncode}")
    return p


def _exists(table: str, chain: str) -> bool:
    return _ipt(table, "-S", chain, check=False).returncode == 0


def _ensure_chains() -> None:
    for table, chain, hook, match in _HOOKS:
        if not _exists(table, chain):
            _ipt(table, "-N", chain)
        if _ipt(table, "-C", hook, *match, "-j", chain, check=False).returncode != 0:
            _ipt(table, "-I", hook, "1", *match, "-j", chain)
    for table, chain in _OTHER:
        if not _exists(table, chain):
            _ipt(table, "-N", chain)
            _ipt("filter", "-I", "DOCKYARD-FORWARD", "1", "-j", "DOCKYARD-ISOLATION")


def _rules(table: str, chain: str) -> list[list[str]]:
    p = _ipt(table, "-S", chain, check=False)
    return [shlex.split(ln)[2:] for ln in p.stdout.splitlines() if ln.startswith("-A ")]


def _delete_tagged(table: str, chain: str, tag: str) -> None:
    for spec in _rules(table, chain):
        if "--comment" in spec and spec[spec.index("--comment") + 1] == tag:
            _ipt(table, "-D", chain, *spec, check=False)


def _in_use() -> bool:
    for table, chain in [("filter", "DOCKYARD-FORWARD"), ("filter", "DOCKYARD-ISOLATION"),
                         ("nat", "DOCKYARD-POSTROUTING"), ("nat", "DOCKYARD-PORTS")]:
        for spec in _rules(table, chain):
            if "--comment" in spec:
                return True
    return False


def _drop_chains_if_unused() -> None:
    if _in_use():
        return
    for table, chain, hook, match in _HOOKS:
        while _ipt(table, "-D", hook, *match, "-j", chain, check=False).returncode == 0:
            pass
    for table, chain in [(t, c) for t, c, _, _ in _HOOKS] + _OTHER:
        if _exists(table, chain):
            _ipt(table, "-F", chain, check=False)
    for table, chain in dict.fromkeys([(t, c) for t, c, _, _ in _HOOKS] + _OTHER):
        _ipt(table, "-X", chain, check=False)


def add_network(net_id: str, bridge: str, subnet: str, internal: bool) -> None:
    tag = ["-m", "comment", "--comment", "nw:" + net_id[:12]]
    rules: list[tuple[str, str, list[str]]] = [
        ("filter", "DOCKYARD-ISOLATION", ["-i", bridge, "-o", bridge, "-j", "RETURN"]),
        ("filter", "DOCKYARD-ISOLATION", ["-i", bridge, "-o", "dy-+", "-j", "DROP"]),
        ("filter", "DOCKYARD-ISOLATION", ["-i", bridge, "-o", "dockyard0", "-j", "DROP"]),
        ("raw", "DOCKYARD-GUARD", ["-i", bridge, "-d", "127.0.0.0/8", "-j", "DROP"]),
    ]
    fwd = "DOCKYARD-FORWARD"
    if internal:
        rules += [("filter", fwd, ["-i", bridge, "!", "-o", bridge, "-j", "DROP"]),
                  ("filter", fwd, ["-o", bridge, "!", "-i", bridge, "-j", "DROP"])]
    else:
        rules += [
            ("filter", fwd, ["-o", bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"]),
            ("filter", fwd, ["-o", bridge, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"]),
            ("filter", fwd, ["-o", bridge, "-i", bridge, "-j", "ACCEPT"]),
            ("filter", fwd, ["-o", bridge, "-j", "DROP"]),
            ("filter", fwd, ["-i", bridge, "-j", "ACCEPT"]),
            ("nat", "DOCKYARD-POSTROUTING", ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"]),
            ("nat", "DOCKYARD-POSTROUTING", ["-o", bridge, "-s", "127.0.0.0/8", "-j", "MASQUERADE"]),
            ("nat", "DOCKYARD-POSTROUTING", ["-o", bridge, "-s", subnet, "-m", "conntrack", "--ctstate", "DNAT",
                                             "-j", "MASQUERADE"]),
        ]
    _ensure_chains()
    try:
        for table, chain, spec in rules:
            _ipt(table, "-A", chain, *spec[:-2], *tag, *spec[-2:])
    except DockyardError:
        remove_network(net_id, bridge)
        raise


def remove_network(net_id: str, bridge: str) -> None:
    tag = "nw:" + net_id[:12]
    for table, chain in [("filter", "DOCKYARD-ISOLATION"), ("filter", "DOCKYARD-FORWARD"),
                         ("raw", "DOCKYARD-GUARD"), ("nat", "DOCKYARD-POSTROUTING")]:
        _delete_tagged(table, chain, tag)
    _drop_chains_if_unused()


def add_ports(container_id: str, forwards: Iterable[tuple[str, int, str, str, int]]) -> None:
    chain = "DY-" + container_id[:12]
    _ensure_chains()
    try:
        if not _exists("nat", chain):
            _ipt("nat", "-N", chain)
        for host_ip, host_port, proto, cip, cport in forwards:
            match = [] if host_ip in ("", "0.0.0.0") else ["-d", host_ip]
            _ipt("nat", "-A", chain, *match, "-p", proto, "--dport", str(host_port),
                 "-j", "DNAT", "--to-destination", f"{cip}:{cport}")
        _ipt("nat", "-A", "DOCKYARD-PORTS", "-m", "comment", "--comment", "ct:" + container_id[:12], "-j", chain)
    except DockyardError:
        remove_ports(container_id)
        raise


def remove_ports(container_id: str) -> None:
    if not _exists("nat", "DOCKYARD-PORTS"):
        return
    _delete_tagged("nat", "DOCKYARD-PORTS", "ct:" + container_id[:12])
    chain = "DY-" + container_id[:12]
    if _exists("nat", chain):
        _ipt("nat", "-F", chain, check=False)
        _ipt("nat", "-X", chain, check=False)
    _drop_chains_if_unused()


def forwarded_ports() -> set[tuple[str, int]]:
    p = _ipt("nat", "-S", check=False)
    out: set[tuple[str, int]] = set()
    for ln in p.stdout.splitlines():
        spec = shlex.split(ln)
        if len(spec) > 1 and spec[0] == "-A" and spec[1].startswith("DY-") and "--dport" in spec and "-p" in spec:
            out.add((spec[spec.index("-p") + 1], int(spec[spec.index("--dport") + 1])))
    return out
