"""NAT, isolation and port forwarding with nftables, in dockyard's own table ``inet dockyard``.

libnftables (what the ``nft`` command is built on) is called through ctypes: one batch of
commands is one atomic netlink transaction, without a process per change.  Nothing outside our
table is ever touched, so other tools' rules (Docker's, Podman's, the admin's) stay as they are.

Every rule we add for a network carries the comment ``nw:<id12>``; each container's port
forwards live in its own chain ``ct-<id12>``.  Removal lists the table with handles and deletes
exactly those, and the table itself goes when the last network's rules are gone.

Layout::

    set bridges            all dockyard bridges (for isolation and the 127/8 guard)
    chain forward          filter/forward:  jump isolation, then per-network policy
    chain isolation        per network: from this bridge to another dockyard bridge -> drop
    chain guard            filter/prerouting(raw): 127.0.0.0/8 arriving on a bridge -> drop
    chain prerouting       nat/prerouting:  local destination -> jump ports
    chain output           nat/output:      local destination -> jump ports
    chain ports            jump ct-<id12> per container with published ports
    chain postrouting      nat/postrouting: per network masquerade
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
from collections.abc import Iterable
from typing import Any

from dockyard.errors import DockyardError, InvalidArgument, Unsupported

TABLE = "inet dockyard"
_OUTPUT_HANDLE = 1 << 3
_OUTPUT_JSON = 1 << 4

_lib: Any = None


def _load() -> Any:
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            raise Unsupported("nftables is not available on this host (install the nftables package)") from None
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        _lib = lib
    return _lib


def run(commands: str, json_output: bool = False) -> str:
    """Run nft commands (one atomic batch); returns the output, raises with nft's message."""
    lib = _load()
    ctx = lib.nft_ctx_new(0)
    try:
        if json_output:
            lib.nft_ctx_output_set_flags(ctx, _OUTPUT_JSON | _OUTPUT_HANDLE)
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        rc = lib.nft_run_cmd_from_buffer(ctx, commands.encode())
        out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode()
        err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode()
    finally:
        lib.nft_ctx_free(ctx)
    if rc != 0:
        first = next((ln for ln in err.splitlines() if ln.startswith("Error")), err.strip()[:300])
        raise DockyardError(f"nftables: {first}")
    return out


def backend() -> str:
    """``nftables`` (our own table through libnftables), or ``iptables`` where libnftables is
    missing; ``DOCKYARD_FIREWALL`` picks one, as Podman's firewall_driver does."""
    forced = os.environ.get("DOCKYARD_FIREWALL", "")
    if forced in ("nftables", "iptables"):
        return forced
    if forced:
        raise InvalidArgument(f"DOCKYARD_FIREWALL={forced!r}: expected nftables or iptables")
    try:
        _load()
        return "nftables"
    except Unsupported:
        return "iptables"


def _table_objects() -> list[dict[str, Any]] | None:
    try:
        out = run(f"list table {TABLE}", json_output=True)
    except DockyardError:
        return None
    return [o for o in json.loads(out).get("nftables", []) if "metainfo" not in o]


def table_exists() -> bool:
    return _table_objects() is not None


def _q(s: str) -> str:
    return json.dumps(s)  # nft string literal: double-quoted, same escapes


def _table_setup() -> list[str]:
    """Commands creating the table, to run in the same batch as the first rules (callers hold the
    host network lock, so no other dockyard process can create it in between)."""
    if table_exists():
        return []
    return f"""add table {TABLE}
add set {TABLE} bridges {{ type ifname; }}
add chain {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
add chain {TABLE} isolation
add chain {TABLE} guard {{ type filter hook prerouting priority raw; policy accept; }}
add chain {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain {TABLE} ports
add chain {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add rule {TABLE} forward jump isolation
add rule {TABLE} guard iifname @bridges ip daddr 127.0.0.0/8 drop
add rule {TABLE} prerouting fib daddr type local jump ports
add rule {TABLE} output fib daddr type local jump ports""".splitlines()


def _in_use(objs: list[dict[str, Any]]) -> bool:
    for o in objs:
        if "rule" in o and str(o["rule"].get("comment", "")).startswith("nw:"):
            return True
        if "chain" in o and o["chain"]["name"].startswith("ct-"):
            return True
    return False


def add_network(net_id: str, bridge: str, subnet: str, internal: bool) -> None:
    """Isolation, inbound policy and masquerade for one network, added in one transaction."""
    if backend() == "iptables":
        from dockyard.network import iptables

        return iptables.add_network(net_id, bridge, subnet, internal)
    tag = f"comment {_q('nw:' + net_id[:12])}"
    br = _q(bridge)
    rules = [
        f"add element {TABLE} bridges {{ {br} }}",
        f"add rule {TABLE} isolation iifname {br} oifname != {br} oifname @bridges drop {tag}",
    ]
    if internal:
        rules += [
            f"add rule {TABLE} forward iifname {br} oifname != {br} drop {tag}",
            f"add rule {TABLE} forward oifname {br} iifname != {br} drop {tag}",
        ]
    else:
        rules += [
            # Into the bridge: replies, published ports and traffic between its own members only,
            # so a neighbour routing to the subnet cannot reach unpublished container ports.
            f"add rule {TABLE} forward oifname {br} ct state established,related accept {tag}",
            f"add rule {TABLE} forward oifname {br} ct status dnat accept {tag}",
            f"add rule {TABLE} forward oifname {br} iifname {br} accept {tag}",
            f"add rule {TABLE} forward oifname {br} drop {tag}",
            f"add rule {TABLE} forward iifname {br} accept {tag}",
            f"add rule {TABLE} postrouting ip saddr {subnet} oifname != {br} masquerade {tag}",
            # Published on 127.0.0.1: the packet keeps a loopback source after DNAT; give the
            # container an address it can answer (Docker does the same without its userland proxy).
            f"add rule {TABLE} postrouting oifname {br} ip saddr 127.0.0.0/8 masquerade {tag}",
            # Hairpin: a container reaching a published port (via the host's address) of a container
            # on its own bridge.  The reply would go straight back over the bridge with the wrong
            # source; masquerading makes it return through the host, where the DNAT is undone.
            f"add rule {TABLE} postrouting oifname {br} ip saddr {subnet} ct status dnat masquerade {tag}",
        ]
    # One batch: the table appears with its first network's rules, or not at all.
    run("\n".join(_table_setup() + rules))


def remove_network(net_id: str, bridge: str) -> None:
    """Delete exactly this network's rules (found by comment) and its set element; idempotent."""
    if backend() == "iptables":
        from dockyard.network import iptables

        return iptables.remove_network(net_id, bridge)
    objs = _table_objects()
    if objs is None:
        return
    tag = "nw:" + net_id[:12]
    cmds = [f"delete rule {TABLE} {o['rule']['chain']} handle {o['rule']['handle']}"
            for o in objs if "rule" in o and o["rule"].get("comment") == tag]
    for o in objs:
        if "set" in o and o["set"]["name"] == "bridges" and bridge in _set_elems(o["set"]):
            cmds.append(f"delete element {TABLE} bridges {{ {_q(bridge)} }}")
    remaining = [o for o in objs if not ("rule" in o and o["rule"].get("comment") == tag)]
    if not _in_use(remaining):
        cmds = [f"delete table {TABLE}"]  # the last network: the table goes in the same batch
    if cmds:
        run("\n".join(cmds))


def _set_elems(s: dict[str, Any]) -> list[str]:
    return [e for e in s.get("elem", []) if isinstance(e, str)]


def add_ports(container_id: str, forwards: Iterable[tuple[str, int, str, str, int]]) -> None:
    """DNAT ``(host_ip, host_port, proto, container_ip, container_port)`` in chain ct-<id12>."""
    if backend() == "iptables":
        from dockyard.network import iptables

        return iptables.add_ports(container_id, forwards)
    chain = "ct-" + container_id[:12]
    rules = [f"add chain {TABLE} {chain}"]
    for host_ip, host_port, proto, cip, cport in forwards:
        match = "" if host_ip in ("", "0.0.0.0") else f"ip daddr {host_ip} "
        rules.append(f"add rule {TABLE} {chain} {match}{proto} dport {host_port} dnat ip to {cip}:{cport}")
    rules.append(f"add rule {TABLE} ports jump {chain} comment {_q('ct:' + container_id[:12])}")
    run("\n".join(_table_setup() + rules))


def remove_ports(container_id: str) -> None:
    if backend() == "iptables":
        from dockyard.network import iptables

        return iptables.remove_ports(container_id)
    objs = _table_objects()
    if objs is None:
        return
    chain = "ct-" + container_id[:12]
    cmds = [f"delete rule {TABLE} ports handle {o['rule']['handle']}"
            for o in objs if "rule" in o and o["rule"].get("comment") == "ct:" + container_id[:12]]
    if any("chain" in o and o["chain"]["name"] == chain for o in objs):
        cmds += [f"flush chain {TABLE} {chain}", f"delete chain {TABLE} {chain}"]
    remaining = [o for o in objs if not ("chain" in o and o["chain"]["name"] == chain)]
    if not _in_use(remaining):
        cmds = [f"delete table {TABLE}"]
    if cmds:
        run("\n".join(cmds))


def forwarded_ports() -> set[tuple[str, int]]:
    """(protocol, host port) of every DNAT in our table, whichever dockyard store added it."""
    if backend() == "iptables":
        from dockyard.network import iptables

        return iptables.forwarded_ports()
    objs = _table_objects() or []
    out: set[tuple[str, int]] = set()
    for o in objs:
        if "rule" not in o or not o["rule"]["chain"].startswith("ct-"):
            continue
        for m in o["rule"].get("expr", []):
            match = m.get("match")
            if not match:
                continue
            left = match.get("left", {})
            payload = left.get("payload", {})
            if payload.get("field") == "dport" and isinstance(match.get("right"), int):
                out.add((payload.get("protocol", ""), match["right"]))
    return out
