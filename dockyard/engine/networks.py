"""Networks: create/list/inspect/remove bridge networks, attach containers' namespaces to them,
publish ports.  The kernel work lives in dockyard.network.*; this service keeps the store and
the kernel in step.

Ordering rules that keep them consistent:
- Host-wide changes (bridges, nft rules, subnet choice) happen under one host lock, taken before
  the store's writer lock, so two stores (two roots) never pick the same subnet or bridge.
- Kernel objects are made inside the store transaction that records them: if making one fails,
  the ones already made are undone and the transaction rolls back, so nothing is half-built.
- Removal is idempotent: each step checks what still exists, so it can be repeated after a crash.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound, Unsupported
from dockyard.paths import is_rootless

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.network.ports import PortMapping

DEFAULT_NETWORK = "bridge"
# Podman calls its default network "podman"; the tutorial uses `--network podman`.
NETWORK_ALIASES = {"podman": DEFAULT_NETWORK}
PREDEFINED = {"bridge": "bridge", "host": "host", "none": "null"}
DEFAULT_ROOT = Path("/var/lib/dockyard")
HOST_LOCK = "/run/lock/dockyard-network.lock"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_KNOWN_OPTS = {"mtu": "mtu", "com.docker.network.driver.mtu": "mtu",
               "com.docker.network.bridge.name": "bridge"}


_lock_depth = 0


@contextlib.contextmanager
def host_lock(path: str | None = None, timeout: float = 60.0) -> Iterator[None]:
    """Serialises changes to host networking across every dockyard store on the machine
    (re-entrant within a process, so a failing attach can call detach to undo itself)."""
    global _lock_depth
    if _lock_depth:
        _lock_depth += 1
        try:
            yield
        finally:
            _lock_depth -= 1
        return
    if path is None:
        path = HOST_LOCK if os.path.isdir(os.path.dirname(HOST_LOCK)) else "/run/dockyard-network.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DockyardError(f"timed out waiting for the network lock {path}") from None
                time.sleep(0.005)
        _lock_depth = 1
        try:
            yield
        finally:
            _lock_depth = 0
    finally:
        os.close(fd)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _check_unprivileged_ports(publish: builtins.list[PortMapping]) -> None:
    """slirp4netns listens as the user: ports below net.ipv4.ip_unprivileged_port_start are refused."""
    low = [m.host_port for m in publish if m.host_port] + [m.host_range[0] for m in publish if m.host_range]
    if not low:
        return
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            first = int(f.read())
    except (OSError, ValueError):
        return
    if min(low) < first:
        raise Unsupported(f"rootless port publishing cannot bind port {min(low)}: ports below {first} need root "
                          f"(sysctl net.ipv4.ip_unprivileged_port_start={first})")


class NetworkService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def db(self) -> Any:
        return self.engine.db

    def _host_lock(self) -> contextlib.AbstractContextManager[None]:
        if is_rootless():
            # Nothing host-wide to guard without privileges (slirp4netns only); /run is not ours.
            self.engine.roots.runroot.mkdir(parents=True, exist_ok=True)
            return host_lock(str(self.engine.roots.runroot / "network.lock"))
        return host_lock()

    def _rundir(self, net_id: str) -> Path:
        return self.engine.roots.runroot / "networks" / net_id[:12]

    # -- lookup --------------------------------------------------------------------------------
    def _ensure_predefined(self) -> None:
        if self.db.query_one("SELECT 1 FROM networks WHERE builtin = 1 AND name = 'bridge'"):
            return
        from dockyard.network import bridge, ipam

        with self._host_lock(), self.db.write() as c:
            if c.execute("SELECT 1 FROM networks WHERE builtin = 1 AND name = 'bridge'").fetchone():
                return
            now = time.time()
            for name, driver in PREDEFINED.items():
                net_id = secrets.token_hex(32)
                subnet = gateway = br = None
                auto = 0
                if driver == "bridge":
                    configured = self._configured_default_subnet()
                    if configured:
                        net, gw, _ = ipam.validate_config(configured, None, None, [])
                    else:
                        auto = 1
                        net = ipam.choose_subnet(ipam.DEFAULT_POOL, self._taken_nets(c, with_host=True))
                        gw = net.network_address + 1
                    subnet, gateway = str(net), str(gw)
                    # The default store owns the well-known bridge name; private stores (tests, CI,
                    # --root) get their own so they never fight over one bridge.
                    br = "dockyard0" if self.engine.roots.root == DEFAULT_ROOT else "dy-" + net_id[:12]
                    bridge.check_ifname(br)
                c.execute("INSERT INTO networks (id, name, driver, bridge, subnet, gateway, builtin, auto_subnet, "
                          "created) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                          (net_id, name, driver, br, subnet, gateway, auto, now))

    def _configured_default_subnet(self) -> str | None:
        env = os.environ.get("DOCKYARD_DEFAULT_SUBNET")
        if env:
            return env
        conf = self.engine.roots.root / "network.toml"
        if conf.is_file():
            import tomllib

            try:
                data = tomllib.loads(conf.read_text())
            except (OSError, tomllib.TOMLDecodeError) as e:
                raise InvalidArgument(f"cannot read {conf}: {e}") from None
            value = data.get("default_subnet")
            return str(value) if value else None
        return None

    def _taken_nets(self, c: sqlite3.Connection, with_host: bool, exclude: str | None = None) -> builtins.list[Any]:
        from dockyard.network import bridge, ipam

        taken = [ipam.parse_subnet(r["subnet"]) for r in c.execute("SELECT id, subnet FROM networks")
                 if r["subnet"] and r["id"] != exclude]
        if with_host:
            taken += [n for _, n in bridge.host_networks()]
        return taken

    def _get(self, ref: str) -> sqlite3.Row:
        self._ensure_predefined()
        ref = NETWORK_ALIASES.get(ref, ref)
        row = self.db.query_one("SELECT * FROM networks WHERE name = ?", (ref,)) or \
            self.db.query_one("SELECT * FROM networks WHERE id = ?", (ref,))
        if row is None and ref:
            rows = self.db.query("SELECT * FROM networks WHERE id LIKE ?", (ref.lower() + "%",))
            if len(rows) > 1:
                raise Conflict(f"network id prefix {ref} is ambiguous")
            row = rows[0] if rows else None
        if row is None:
            raise NotFound(f"network {ref} not found")
        return row

    def resolve(self, ref: str) -> dict[str, Any]:
        """Canonical name, id and driver of a network (``podman`` means the default bridge)."""
        r = self._get(ref)
        return {"Name": r["name"], "Id": r["id"], "Driver": r["driver"], "DNS": bool(r["dns"]),
                "Internal": bool(r["internal"]), "Gateway": r["gateway"]}

    # -- create / inspect / list / remove --------------------------------------------------------
    def create(self, name: str, *, driver: str = "bridge", subnet: str | None = None,
               gateway: str | None = None, ip_range: str | None = None, internal: bool = False,
               labels: dict[str, str] | None = None, options: dict[str, str] | None = None) -> dict[str, Any]:
        from dockyard.network import bridge, firewall, ipam

        if not _NAME_RE.match(name):
            raise InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        if name in PREDEFINED or name in NETWORK_ALIASES:
            raise Conflict(f"network name {name} is reserved for a pre-defined network")
        if driver != "bridge":
            raise Unsupported(f"network driver {driver!r} is not supported (only bridge)")
        if (gateway or ip_range) and not subnet:
            raise InvalidArgument("--gateway and --ip-range need --subnet")
        if is_rootless():
            raise Unsupported("creating bridge networks needs root (rootless containers use slirp4netns)")
        options = dict(options or {})
        mtu = 0
        br_name = None
        for k, v in options.items():
            kind = _KNOWN_OPTS.get(k)
            if kind == "mtu":
                if not v.isdigit() or not 68 <= int(v) <= 65535:
                    raise InvalidArgument(f"invalid mtu {v!r}: expected 68-65535")
                mtu = int(v)
            elif kind == "bridge":
                br_name = bridge.check_ifname(v)
            else:
                raise InvalidArgument(f"unsupported bridge network option {k!r} "
                                      f"(known: {', '.join(sorted(_KNOWN_OPTS))})")
        self._ensure_predefined()
        net_id = secrets.token_hex(32)
        br_name = br_name or "dy-" + net_id[:12]
        with self._host_lock(), self.db.write() as c:
            if c.execute("SELECT 1 FROM networks WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"network with name {name} already exists")
            if subnet:
                owners = [(f"network {r['name']}", ipam.parse_subnet(r["subnet"]))
                          for r in c.execute("SELECT name, subnet FROM networks WHERE subnet IS NOT NULL")]
                owners += bridge.host_networks()
                net, gw, rng = ipam.validate_config(subnet, gateway, ip_range, owners)
            else:
                net = ipam.choose_subnet(ipam.CUSTOM_POOL, self._taken_nets(c, with_host=True))
                gw, rng = net.network_address + 1, None
            if bridge.link_exists(br_name):
                raise Conflict(f"interface {br_name} already exists on the host")
            c.execute("INSERT INTO networks (id, name, driver, bridge, subnet, gateway, ip_range, internal, dns, "
                      "mtu, labels, options, created) VALUES (?, ?, 'bridge', ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                      (net_id, name, br_name, str(net), str(gw), str(rng) if rng else None, int(internal), mtu,
                       json.dumps(labels or {}), json.dumps(options), time.time()))
            try:
                self._bring_up(net_id, br_name, str(net), str(gw), net.prefixlen, internal, mtu)
            except BaseException:
                with contextlib.suppress(Exception):
                    firewall.remove_network(net_id, br_name)
                bridge.delete_link(br_name)
                raise
        return self.inspect(net_id)

    @staticmethod
    def _bring_up(net_id: str, br: str, subnet: str, gw: str, prefixlen: int, internal: bool, mtu: int) -> None:
        from dockyard.network import bridge, firewall

        bridge.create_bridge(br, gw, prefixlen, mtu)
        # Ports published on 127.0.0.1 are DNATed to the container with their loopback source;
        # the bridge must route them (the guard chain drops 127/8 *arriving* from containers).
        bridge.set_sysctl(f"net/ipv4/conf/{br}/route_localnet", "1")
        if not internal:
            # Docker turns forwarding on and leaves it on; turning it off later could cut off
            # other users of it, so neither do we.
            bridge.set_sysctl("net/ipv4/ip_forward", "1")
        firewall.add_network(net_id, br, subnet, internal)

    def _inspect_row(self, r: sqlite3.Row) -> dict[str, Any]:
        containers = {}
        for e in self.db.query("SELECT * FROM network_endpoints WHERE network_id = ? ORDER BY created", (r["id"],)):
            prefix = r["subnet"].split("/")[1] if r["subnet"] else "32"
            containers[e["container_id"]] = {
                "Name": e["container_name"], "EndpointID": e["endpoint_id"], "MacAddress": e["mac_address"],
                "IPv4Address": f"{e['ip_address']}/{prefix}", "IPv6Address": ""}
        config = []
        if r["subnet"]:
            cfg = {"Subnet": r["subnet"], "Gateway": r["gateway"]}
            if r["ip_range"]:
                cfg["IPRange"] = r["ip_range"]
            config.append(cfg)
        options = json.loads(r["options"])
        if r["driver"] == "bridge":
            options.setdefault("com.docker.network.bridge.name", r["bridge"])
        return {
            "Name": r["name"], "Id": r["id"], "Created": _iso(r["created"]), "Scope": "local",
            "Driver": r["driver"], "EnableIPv4": r["driver"] == "bridge", "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": {}, "Config": config},
            "Internal": bool(r["internal"]), "Attachable": False, "Ingress": False,
            "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": containers,
            "Options": options, "Labels": json.loads(r["labels"]),
            "DNSEnabled": bool(r["dns"]),
        }

    def inspect(self, ref: str) -> dict[str, Any]:
        return self._inspect_row(self._get(ref))

    def list(self, filters: dict[str, builtins.list[str]] | None = None) -> builtins.list[dict[str, Any]]:
        self._ensure_predefined()
        rows = self.db.query("SELECT * FROM networks ORDER BY builtin DESC, created")
        out = [self._inspect_row(r) for r in rows]
        return [n for n in out if _matches(n, filters or {})]

    def remove(self, ref: str, force: bool = False) -> str:
        from dockyard.network import bridge, dns, firewall

        r = self._get(ref)
        if r["builtin"]:
            raise Conflict(f"{r['name']} is a pre-defined network and cannot be removed")
        self.reap(r["id"])
        with self._host_lock(), self.db.write() as c:
            n = c.execute("SELECT COUNT(*) FROM network_endpoints WHERE network_id = ?", (r["id"],)).fetchone()[0]
            if n:
                raise Conflict(f"error while removing network: network {r['name']} id {r['id'][:12]} "
                               f"has active endpoints ({n} container{'s' if n > 1 else ''} attached)")
            dns.stop_server(self._rundir(r["id"]), r["id"])
            firewall.remove_network(r["id"], r["bridge"])
            bridge.delete_link(r["bridge"])
            c.execute("DELETE FROM networks WHERE id = ?", (r["id"],))
        shutil.rmtree(self._rundir(r["id"]), ignore_errors=True)
        return r["name"]

    def prune(self, filters: dict[str, builtins.list[str]] | None = None) -> builtins.list[str]:
        removed = []
        for n in self.list(filters):
            if n["Name"] in PREDEFINED or n["Containers"]:
                continue
            with contextlib.suppress(NotFound, Conflict):
                removed.append(self.remove(n["Id"]))
        return removed

    # -- endpoints -----------------------------------------------------------------------------
    def attach(self, container_id: str, container_name: str, netns_path: str, network: str, *,
               aliases: builtins.list[str] | None = None, ip: str | None = None, mac: str | None = None,
               hostname: str | None = None, dns_servers: builtins.list[str] | None = None) -> dict[str, Any]:
        """Plug the container's network namespace into ``network``; returns its endpoint as
        Docker's inspect shows it under NetworkSettings.Networks[NAME]."""
        from dockyard.network import bridge

        r = self._get(network)
        if r["driver"] != "bridge":
            raise InvalidArgument(f"network {r['name']} ({r['driver']}) is not attached to, it is a network mode")
        if is_rootless():
            raise Unsupported("bridge networks need root; rootless containers use slirp4netns")
        if ip and not r["builtin"] and not r["subnet"]:
            raise InvalidArgument("--ip needs a network with a configured subnet")
        if r["builtin"] and (ip or aliases):
            # Docker: "user specified IP address is supported on user defined networks only".
            raise InvalidArgument("--ip and --network-alias are supported on user-defined networks only")
        mac = bridge.check_mac(mac) if mac else bridge.random_mac()
        if self.db.query_one("SELECT 1 FROM network_endpoints WHERE network_id = ? AND container_id = ?",
                             (r["id"], container_id)):
            raise Conflict(f"container {container_name} is already connected to network {r['name']}")
        plug = (r, container_id, container_name, netns_path, aliases or [], ip, mac, hostname, dns_servers or [])
        # A bridge that is up and needs no DNS server leaves nothing host-wide to do: the store's
        # own lock (held by _plug) orders this against the detach that would take the default
        # bridge down (it does so inside its transaction), so other stores' network work never
        # holds this container back.  Making the bridge or starting a DNS server takes the host lock.
        if not r["dns"] and bridge.link_present(r["bridge"]):
            self.reap(r["id"])
            try:
                self._plug(*plug)
            except NotFound:
                if bridge.link_present(r["bridge"]):
                    raise
            else:
                return self._endpoint(self.db.query_one(
                    "SELECT * FROM network_endpoints WHERE network_id = ? AND container_id = ?",
                    (r["id"], container_id)), r)
        with self._host_lock():
            self.reap(r["id"])
            if r["builtin"]:
                r = self._ensure_default_bridge(r)
                plug = (r, *plug[1:])
            try:
                self._plug(*plug)
                if r["dns"]:
                    from dockyard.network import dns

                    dns.ensure_server(self._rundir(r["id"]), self.engine.roots.db_path, r["id"], r["gateway"],
                                      self._upstreams())
            except BaseException:
                with contextlib.suppress(NotFound):
                    self.detach(container_id, r["id"])
                if r["builtin"] and not self.db.query_one(
                        "SELECT 1 FROM network_endpoints WHERE network_id = ?", (r["id"],)):
                    self._tear_down_default(r)
                raise
        return self._endpoint(self.db.query_one(
            "SELECT * FROM network_endpoints WHERE network_id = ? AND container_id = ?", (r["id"], container_id)), r)

    def _plug(self, r: sqlite3.Row, container_id: str, container_name: str, netns_path: str,
              aliases: builtins.list[str], ip: str | None, mac: str, hostname: str | None,
              dns_servers: builtins.list[str]) -> None:
        from dockyard.network import bridge, ipam

        net = ipam.parse_subnet(r["subnet"])
        gw = ipam.parse_address(r["gateway"])
        with self.db.write() as c:
            used = [x[0] for x in c.execute("SELECT ip_address FROM network_endpoints WHERE network_id = ?",
                                            (r["id"],))]
            rng = ipam.parse_subnet(r["ip_range"]) if r["ip_range"] else None
            addr = ipam.check_requested(ip, net, gw, used) if ip else ipam.allocate(net, gw, used, rng)
            mine = c.execute("SELECT e.ifname, n.internal FROM network_endpoints e JOIN networks n "
                             "ON n.id = e.network_id WHERE e.container_id = ?", (container_id,)).fetchall()
            taken_if = {m["ifname"] for m in mine}
            ifname = next(f"eth{i}" for i in range(len(taken_if) + 1) if f"eth{i}" not in taken_if)
            default_route = not r["internal"] and not any(not m["internal"] for m in mine)
            host_if = bridge.add_veth(r["bridge"], netns_path, ifname, str(addr), net.prefixlen, str(gw), mac,
                                      default_route, r["mtu"])
            try:
                c.execute("INSERT INTO network_endpoints (network_id, container_id, container_name, endpoint_id, "
                          "ip_address, requested_ip, mac_address, ifname, host_ifname, netns_path, hostname, "
                          "aliases, dns_servers, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (r["id"], container_id, container_name, secrets.token_hex(32), str(addr), ip, mac,
                           ifname, host_if, netns_path, hostname, json.dumps(aliases), json.dumps(dns_servers),
                           time.time()))
            except BaseException:
                bridge.delete_link(host_if)
                raise

    @staticmethod
    def _upstreams() -> builtins.list[str]:
        from dockyard.network.files import read_host_resolv

        return read_host_resolv()[0]

    def reap(self, net_id: str | None = None) -> int:
        """Forget endpoints whose container namespace died without a detach (a crash, a killed
        runtime): the kernel deletes a veth with its namespace, so a missing host end (or
        namespace file) means the endpoint is gone.  Frees their addresses and names; returns how
        many were reaped."""
        from dockyard.network import bridge

        sql = "SELECT container_id, network_id, host_ifname, netns_path FROM network_endpoints"
        rows = self.db.query(sql + " WHERE network_id = ?", (net_id,)) if net_id else self.db.query(sql)
        if not rows:
            return 0
        # The namespace file gone counts too: the kernel deletes the veth asynchronously.
        dead = [e for e in rows if not bridge.link_present(e["host_ifname"]) or not os.path.exists(e["netns_path"])]
        for e in dead:
            with contextlib.suppress(NotFound):
                self.detach(e["container_id"], e["network_id"])
        return len(dead)

    def _ensure_default_bridge(self, r: sqlite3.Row) -> sqlite3.Row:
        """The default bridge exists while containers use it (Podman's way); (re)create it on demand,
        moving an automatically chosen subnet if the host started using it meanwhile."""
        from dockyard.network import bridge, ipam

        if bridge.link_exists(r["bridge"]):
            return r
        net = ipam.parse_subnet(r["subnet"])
        clash = ipam.overlapping(net, [n for _, n in bridge.host_networks()])
        if clash is not None:
            if not r["auto_subnet"]:
                raise Conflict(f"the default network's subnet {net} overlaps {clash} on the host; "
                               f"configure another one (DOCKYARD_DEFAULT_SUBNET)")
            with self.db.write() as c:
                if c.execute("SELECT 1 FROM network_endpoints WHERE network_id = ?", (r["id"],)).fetchone():
                    raise Conflict(f"the default network's subnet {net} overlaps {clash} on the host")
                new = ipam.choose_subnet(ipam.DEFAULT_POOL, self._taken_nets(c, with_host=True, exclude=r["id"]))
                c.execute("UPDATE networks SET subnet = ?, gateway = ? WHERE id = ?",
                          (str(new), str(new.network_address + 1), r["id"]))
            r = self.db.query_one("SELECT * FROM networks WHERE id = ?", (r["id"],))
        try:
            self._bring_up(r["id"], r["bridge"], r["subnet"], r["gateway"], int(r["subnet"].split("/")[1]),
                           bool(r["internal"]), r["mtu"])
        except BaseException:
            self._tear_down_default(r)
            raise
        return r

    @staticmethod
    def _tear_down_default(r: sqlite3.Row) -> None:
        from dockyard.network import bridge, firewall

        firewall.remove_network(r["id"], r["bridge"])
        bridge.delete_link(r["bridge"])

    def _endpoint(self, e: sqlite3.Row, r: sqlite3.Row) -> dict[str, Any]:
        aliases = json.loads(e["aliases"])
        dns_names = None
        if r["dns"]:
            dns_names = list(dict.fromkeys([e["container_name"], *aliases, e["container_id"][:12],
                                            *([e["hostname"]] if e["hostname"] else [])]))
        return {
            "IPAMConfig": {"IPv4Address": e["requested_ip"]} if e["requested_ip"] else None,
            "Links": None, "Aliases": aliases or None, "MacAddress": e["mac_address"], "DriverOpts": None,
            "NetworkID": r["id"], "EndpointID": e["endpoint_id"], "Gateway": r["gateway"],
            "IPAddress": e["ip_address"], "IPPrefixLen": int(r["subnet"].split("/")[1]),
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": dns_names, "InterfaceName": e["ifname"],
        }

    def endpoints(self, container_id: str) -> dict[str, dict[str, Any]]:
        """NetworkSettings.Networks of a container: network name -> endpoint."""
        out = {}
        for e in self.db.query("SELECT * FROM network_endpoints WHERE container_id = ? ORDER BY created",
                               (container_id,)):
            r = self.db.query_one("SELECT * FROM networks WHERE id = ?", (e["network_id"],))
            out[r["name"]] = self._endpoint(e, r)
        return out

    def detach(self, container_id: str, network: str | None = None, *, delete_links: bool = True) -> None:
        """Unplug the container from ``network`` (all networks when None; then also its published
        ports).  Idempotent: safe to repeat, and after the namespace is already gone.
        ``delete_links=False``: the caller removed the container's namespace, whose veths the
        kernel is deleting anyway."""
        from dockyard.network import bridge

        if network is None:
            self.unpublish(container_id)
            net_ids = [x[0] for x in self.db.query(
                "SELECT network_id FROM network_endpoints WHERE container_id = ?", (container_id,))]
        else:
            r = self._get(network)
            net_ids = [r["id"]]
        delete = "DELETE FROM network_endpoints WHERE network_id = ? AND container_id = ?"
        for net_id in net_ids:
            e = self.db.query_one("SELECT * FROM network_endpoints WHERE network_id = ? AND container_id = ?",
                                  (net_id, container_id))
            if e is None:
                if network is not None:
                    raise NotFound(f"container {container_id[:12]} is not connected to network {network}")
                continue
            if delete_links and e["host_ifname"] and bridge.link_present(e["host_ifname"]):
                bridge.delete_link(e["host_ifname"])
            r = self.db.query_one("SELECT * FROM networks WHERE id = ?", (net_id,))
            # Leaving a network others still use is this store's business alone; the last one out
            # takes the DNS server and the default bridge down, host-wide work, under the host lock.
            with self.db.write() as c:
                others = c.execute("SELECT COUNT(*) FROM network_endpoints WHERE network_id = ? AND "
                                   "container_id != ?", (net_id, container_id)).fetchone()[0]
                last = r is not None and not others and (r["dns"] or r["builtin"])
                if not last:
                    c.execute(delete, (net_id, container_id))
            if not last:
                continue
            with self._host_lock(), self.db.write() as c:
                c.execute(delete, (net_id, container_id))
                if not c.execute("SELECT 1 FROM network_endpoints WHERE network_id = ?", (net_id,)).fetchone():
                    # Inside the transaction: an attach that skipped the host lock plugs in either
                    # before (and this finds it) or after (and finds the bridge gone).
                    from dockyard.network import dns

                    dns.stop_server(self._rundir(net_id), net_id)
                    if r["builtin"]:
                        self._tear_down_default(r)

    # -- whole-container wiring (what `run`/`start` and `rm`/cleanup call) ------------------------
    def setup(self, container_id: str, name: str, mode: str = "bridge", *, aliases: builtins.list[str] | None = None,
              ip: str | None = None, mac: str | None = None, hostname: str | None = None,
              publish: builtins.list[PortMapping] | None = None, dns: builtins.list[str] | None = None,
              dns_search: builtins.list[str] | None = None, dns_options: builtins.list[str] | None = None,
              extra_hosts: builtins.list[str] | None = None,
              network_opts: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Give a container its network for ``--network MODE`` before its process starts.

        MODE is ``bridge``/``podman``, network names (comma-separated for several), ``none``,
        ``host`` or ``container:<full id>``.  Returns ``netns`` (path for the OCI spec; None =
        the host's), ``NetworkSettings`` (Docker's inspect shape) and the contents of ``hosts``,
        ``resolv_conf`` and ``hostname`` for the container's /etc.  On failure everything made
        so far is undone.

        ``network_opts``: per-network ``ip``, ``aliases`` and ``mac`` by network name (from
        ``--network NAME:ip=...,alias=...``), on top of ``ip``/``mac`` (the first network's) and
        ``aliases`` (every user-defined network's).
        """
        from dockyard.network import files
        from dockyard.network import netns as N

        hostname = hostname or container_id[:12]
        if mode == "slirp4netns" or mode.startswith("slirp4netns:"):
            return self.setup_rootless(container_id, mode, publish, hostname=hostname, dns=dns,
                                       dns_search=dns_search, dns_options=dns_options, extra_hosts=extra_hosts)
        if is_rootless() and mode not in ("host", "none") and not mode.startswith("container:"):
            raise Unsupported("bridge networks need root: rootless containers use --network slirp4netns")
        settings: dict[str, Any] = {"Networks": {}, "Ports": {}, "SandboxKey": "", "IPAddress": "",
                                    "IPPrefixLen": 0, "Gateway": "", "MacAddress": ""}
        if mode == "host":
            with open("/etc/hosts") as f:
                hosts_text = f.read()
            extra = files.hosts(hostname="localhost", extra_hosts=extra_hosts or [])
            hosts_text += "".join(extra.splitlines(keepends=True)[6:])
            settings["Networks"]["host"] = self._mode_endpoint("host")
            return {"netns": None, "NetworkSettings": settings, "hosts": hosts_text,
                    "resolv_conf": files.resolv_conf(dns=dns or [], dns_search=dns_search or [],
                                                      dns_options=dns_options or []),
                    "hostname": files.hostname_file(os.uname().nodename)}
        if mode.startswith("container:"):
            other = mode.split(":", 1)[1]
            path = N.path_for(other)
            if not os.path.exists(path):
                raise Conflict(f"cannot join the network namespace of container {other[:12]}: it is not running")
            return {"netns": path, "NetworkSettings": settings, "hosts": None, "resolv_conf": None,
                    "hostname": None}
        names = [] if mode == "none" else [n for n in mode.split(",") if n]
        nets = [self._get(n) for n in names]
        recorded = {} if mode == "none" else {x["network_id"]: x for x in self.db.query(
            "SELECT * FROM container_networks WHERE container_id = ?", (container_id,))}
        for net_id in recorded:
            if net_id not in {r["id"] for r in nets}:
                nets.append(self._get(net_id))
        for r in nets:
            if r["driver"] != "bridge":
                raise InvalidArgument(f"network {r['name']} cannot be combined with other networks")
        per_net = {self._get(n)["id"]: o for n, o in (network_opts or {}).items()}
        if is_rootless():
            # Rootless --network none: the runtime makes the namespace inside the container's userns.
            settings["Networks"]["none"] = self._mode_endpoint("none")
            return {"netns": "", "NetworkSettings": settings, "resolv_conf": files.resolv_conf(dns=dns or []),
                    "hosts": files.hosts(hostname=hostname, extra_hosts=extra_hosts or []),
                    "hostname": files.hostname_file(hostname)}
        path = N.create(container_id, lo_up=not nets)
        settings["SandboxKey"] = path
        try:
            first: dict[str, Any] | None = None
            for i, r in enumerate(nets):
                rec = recorded.get(r["id"])
                own = per_net.get(r["id"], {})
                net_aliases = [*(aliases or [] if not r["builtin"] else []), *(own.get("aliases") or [])]
                ep = self.attach(container_id, name, path, r["id"],
                                 aliases=json.loads(rec["aliases"]) if rec else net_aliases or None,
                                 ip=rec["ip_address"] if rec else own.get("ip") or (ip if i == 0 else None),
                                 mac=own.get("mac") or (mac if i == 0 else None), hostname=hostname,
                                 dns_servers=dns)
                settings["Networks"][r["name"]] = ep
                first = first or ep
            if mode == "none":
                settings["Networks"]["none"] = self._mode_endpoint("none")
            if first is not None:
                if nets[0]["builtin"]:
                    for k in ("IPAddress", "IPPrefixLen", "Gateway", "MacAddress"):
                        settings[k] = first[k]
                settings["Ports"] = self._ports_dict(self.publish(container_id, publish or [], first["IPAddress"]))
            elif publish:
                raise InvalidArgument("port publishing needs a bridge network (not --network none)")
        except BaseException:
            self.teardown(container_id)
            raise
        dns_net = next((r for r in nets if r["dns"]), None)
        addresses = [first["IPAddress"]] if first else []
        gateway = first["Gateway"] if first else None
        return {
            "netns": path, "NetworkSettings": settings,
            "hosts": files.hosts(hostname=hostname, addresses=addresses, extra_hosts=extra_hosts or [],
                                 gateway=gateway),
            "resolv_conf": files.resolv_conf(embedded_dns=dns_net["gateway"] if dns_net else None, dns=dns or [],
                                             dns_search=dns_search or [], dns_options=dns_options or []),
            "hostname": files.hostname_file(hostname),
        }

    def teardown(self, container_id: str) -> None:
        """Undo ``setup``: detach from every network, unpublish ports, delete the namespace.
        Idempotent, so cleanup after a crash can call it again."""
        from dockyard.network import netns as N

        # The namespace first: the kernel then deletes the container's veths with it (in the
        # background, a few ms later), so the detach below neither deletes nor waits for them --
        # either costs a kernel RCU grace period on every container's removal.
        gone = N.remove(container_id)
        self.teardown_rootless(container_id)
        self.detach(container_id, delete_links=not gone)

    def _slirp_dir(self, container_id: str) -> Path:
        return self.engine.roots.runroot / "slirp4netns" / container_id[:12]

    def _rootless_netns(self, container_id: str) -> Path:
        return self.engine.roots.runroot / "netns" / container_id

    def setup_rootless(self, container_id: str, mode: str = "slirp4netns",
                       publish: builtins.list[PortMapping] | None = None, *, hostname: str | None = None,
                       dns: builtins.list[str] | None = None, dns_search: builtins.list[str] | None = None,
                       dns_options: builtins.list[str] | None = None,
                       extra_hosts: builtins.list[str] | None = None) -> dict[str, Any]:
        """``--network slirp4netns[:allow_host_loopback=true]`` (rootless default, as Podman): a network
        namespace of our own with slirp4netns behind tap0, ports published by slirp4netns on the host.
        Returns what ``setup`` returns; on failure everything made so far is undone."""
        from dockyard.network import files, rootless

        allow_loopback = False
        for opt in filter(None, mode.partition(":")[2].split(",")):
            k, _, v = opt.partition("=")
            if k != "allow_host_loopback" or v not in ("true", "false"):
                raise InvalidArgument(f"invalid slirp4netns option {opt!r} (supported: allow_host_loopback=true|false)")
            allow_loopback = v == "true"
        rundir = self._slirp_dir(container_id)
        path = self._rootless_netns(container_id)
        hostname = hostname or container_id[:12]
        if is_rootless():
            _check_unprivileged_ports(publish or [])
        try:
            self.teardown_rootless(container_id)  # what a crash or an earlier run left
            rootless.create_netns(path)
            with self._host_lock(), self.db.write() as c:
                out = self._resolve_ports(c, publish or [], set())
                rootless.start(rundir, str(path), allow_host_loopback=allow_loopback)
                for m in out:
                    rootless.add_forward(rundir, m.protocol, m.host_ip, m.host_port, m.container_port)
                    c.execute("INSERT INTO published_ports VALUES (?, ?, ?, ?, ?, ?)",
                              (container_id, m.host_ip, m.host_port, m.protocol, m.container_port,
                               rootless.GUEST_IP))
        except BaseException:
            self.teardown_rootless(container_id)
            raise
        endpoint = {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
                    "NetworkID": "slirp4netns", "EndpointID": "", "Gateway": rootless.GATEWAY,
                    "IPAddress": rootless.GUEST_IP, "IPPrefixLen": rootless.PREFIXLEN, "IPv6Gateway": "",
                    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
        settings = {"Networks": {"slirp4netns": endpoint}, "Ports": self._ports_dict(out),
                    "SandboxKey": str(path), "IPAddress": rootless.GUEST_IP,
                    "IPPrefixLen": rootless.PREFIXLEN, "Gateway": rootless.GATEWAY, "MacAddress": ""}
        return {
            "netns": str(path), "NetworkSettings": settings,
            "hosts": files.hosts(hostname=hostname, addresses=[rootless.GUEST_IP], extra_hosts=extra_hosts or [],
                                 gateway=rootless.GATEWAY),
            "resolv_conf": files.resolv_conf(dns=dns or [rootless.DNS], dns_search=dns_search or [],
                                             dns_options=dns_options or []),
            "hostname": files.hostname_file(hostname),
        }

    def teardown_rootless(self, container_id: str) -> None:
        """Undo ``setup_rootless`` (stop slirp4netns, drop its ports, delete the namespace); idempotent."""
        rundir = self._slirp_dir(container_id)
        if not (rundir.exists() or self._rootless_netns(container_id).exists()):
            return  # every bridge container's teardown passes here: no imports for nothing
        from dockyard.network import rootless

        rootless.stop(rundir)
        if rootless.remove_netns(self._rootless_netns(container_id)) and self.db.query_one(
                "SELECT 1 FROM published_ports WHERE container_id = ?", (container_id,)):
            with self.db.write() as c:
                c.execute("DELETE FROM published_ports WHERE container_id = ?", (container_id,))

    def _mode_endpoint(self, name: str) -> dict[str, Any]:
        r = self._get(name)
        return {"IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "", "DriverOpts": None,
                "NetworkID": r["id"], "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}

    @staticmethod
    def _ports_dict(mappings: builtins.list[PortMapping]) -> dict[str, Any]:
        if not mappings:
            return {}
        from dockyard.network.ports import docker_ports

        return docker_ports(mappings)

    def connect(self, network: str, container: str, *, aliases: builtins.list[str] | None = None,
                ip: str | None = None) -> dict[str, Any]:
        """`network connect`: the container joins ``network`` now if it runs, and at every start
        from now on (recorded with the container, as Docker does).  Returns the endpoint, or {}
        for a stopped container."""
        from dockyard.network import netns as N

        row = self.engine.containers.row(container)
        cid, name = str(row["id"]), str(row["name"])
        hc = json.loads(row["host_config"] or "{}")
        mode = hc.get("NetworkMode") or "bridge"
        if mode in ("host", "none") or mode.startswith("container:"):
            raise Conflict(f"container {name} uses network mode {mode} and cannot be connected to networks")
        r = self._get(network)
        if r["driver"] != "bridge":
            raise InvalidArgument(f"network {r['name']} is a network mode, not a network to connect to")
        in_mode = {self._get(n)["id"] for n in mode.split(",") if n}
        if r["id"] in in_mode or self.db.query_one(
                "SELECT 1 FROM container_networks WHERE container_id = ? AND network_id = ?", (cid, r["id"])):
            raise Conflict(f"container {name} is already connected to network {r['name']}")
        ep: dict[str, Any] = {}
        if self.engine.containers.is_running(cid):
            path = N.path_for(cid)
            if not os.path.exists(path):
                path = f"/proc/{int(row['pid'])}/ns/net"  # a namespace the runtime made
            hostname = json.loads(row["config"]).get("Hostname") or cid[:12]
            ep = self.attach(cid, name, path, r["id"], aliases=aliases, ip=ip, hostname=hostname)
        elif ip:
            from dockyard.network import ipam

            if not r["subnet"] or ipam.parse_address(ip) not in ipam.parse_subnet(r["subnet"]):
                raise InvalidArgument(f"requested IP address {ip} is not in network subnet {r['subnet']}")
        with self.db.write() as c:
            c.execute("INSERT INTO container_networks VALUES (?, ?, ?, ?)",
                      (cid, r["id"], json.dumps(aliases or []), ip))
        return ep

    def disconnect(self, network: str, container: str, force: bool = False) -> None:
        """`network disconnect`: leave now and at later starts; with ``force`` a container that
        is not connected is no error."""
        row = self.engine.containers.row(container)
        cid = str(row["id"])
        r = self._get(network)
        with self.db.write() as c:
            recorded = c.execute("DELETE FROM container_networks WHERE container_id = ? AND network_id = ?",
                                 (cid, r["id"])).rowcount
        try:
            self.detach(cid, r["id"])
        except NotFound:
            if not (recorded or force):
                raise NotFound(f"container {row['name']} is not connected to network {r['name']}") from None

    def forget(self, container_id: str) -> None:
        """Drop what ``connect`` recorded for a container that is being removed."""
        with self.db.write() as c:
            c.execute("DELETE FROM container_networks WHERE container_id = ?", (container_id,))

    # -- ports ---------------------------------------------------------------------------------
    def publish(self, container_id: str, ports: builtins.list[PortMapping], container_ip: str) -> builtins.list[PortMapping]:
        """Forward host ports to the container; resolves random host ports.  Raises Conflict
        ("... port is already allocated") before changing anything when a port is taken."""
        if not ports:
            return []
        from dockyard.network import firewall

        with self._host_lock(), self.db.write() as c:
            out = self._resolve_ports(c, ports, firewall.forwarded_ports())
            for m in out:
                c.execute("INSERT INTO published_ports VALUES (?, ?, ?, ?, ?, ?)",
                          (container_id, m.host_ip, m.host_port, m.protocol, m.container_port, container_ip))
            firewall.add_ports(container_id, [(m.host_ip, m.host_port, m.protocol, container_ip, m.container_port)
                                              for m in out])
        return out

    @staticmethod
    def _resolve_ports(c: sqlite3.Connection, ports: builtins.list[PortMapping],
                       taken: set[tuple[str, int]]) -> builtins.list[PortMapping]:
        """Concrete host ports for ``ports``, none of them taken or bindable by someone else."""
        from dataclasses import replace

        from dockyard.network import ports as P

        taken = set(taken) | {(row["protocol"], row["host_port"])
                              for row in c.execute("SELECT host_port, protocol FROM published_ports")}
        out = []
        for m in ports:
            if m.host_port:
                port = m.host_port
                if (m.protocol, port) in taken or not P.can_bind(m.host_ip, port, m.protocol):
                    raise P.in_use_error(m, port)
            elif m.host_range:
                lo, hi = m.host_range
                free = [p for p in range(lo, hi + 1)
                        if (m.protocol, p) not in taken and P.can_bind(m.host_ip, p, m.protocol)]
                if not free:
                    raise Conflict(f"Bind for {m.host_ip or '0.0.0.0'}:{lo}-{hi} failed: "
                                   f"all ports in the range are already allocated")
                port = free[0]
            else:
                port = P.random_port(m.host_ip, m.protocol, taken)
            taken.add((m.protocol, port))
            out.append(replace(m, host_port=port, host_range=None))
        return out

    def unpublish(self, container_id: str) -> None:
        # The rows and the forwarding rules are written in one transaction, so without rows
        # there is nothing in the firewall either (and no nft work on every container's removal).
        if not self.db.query_one("SELECT 1 FROM published_ports WHERE container_id = ?", (container_id,)):
            return
        from dockyard.network import firewall

        with self._host_lock(), self.db.write() as c:
            firewall.remove_ports(container_id)
            c.execute("DELETE FROM published_ports WHERE container_id = ?", (container_id,))

    def published(self, container_id: str) -> builtins.list[PortMapping]:
        from dockyard.network.ports import PortMapping

        return [PortMapping(r["container_port"], r["protocol"], r["host_ip"], r["host_port"])
                for r in self.db.query("SELECT * FROM published_ports WHERE container_id = ? "
                                       "ORDER BY container_port, protocol", (container_id,))]


def _matches(n: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "name":
            ok = any(v in n["Name"] for v in values)
        elif key == "id":
            ok = any(n["Id"].startswith(v) for v in values)
        elif key == "driver":
            ok = n["Driver"] in values
        elif key == "scope":
            ok = "local" in values
        elif key == "type":
            builtin = n["Name"] in PREDEFINED
            ok = any((v == "builtin") == builtin for v in values if v in ("builtin", "custom"))
            if any(v not in ("builtin", "custom") for v in values):
                raise InvalidArgument(f"invalid filter type={values}: expected custom or builtin")
        elif key == "label":
            ok = all(_label_match(n["Labels"], v) for v in values)
        elif key == "dangling":
            want = values[-1].lower() in ("1", "true")
            ok = (not n["Containers"] and n["Name"] not in PREDEFINED) == want
        else:
            raise InvalidArgument(f"invalid filter {key!r}")
        if not ok:
            return False
    return True


def _label_match(labels: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    return k in labels and (not sep or labels[k] == v)
