"""The rtnetlink requests a container's start and removal make, kept cheap.

pyroute2 builds and parses every message here, but its ``IPRoute``/``NetNS`` cost too much for
the path every `run` takes: importing the ``pyroute2`` package loads its whole API (~100 ms:
asyncio, NDB, IPDB, conntrack, wireguard ...), and ``NetNS``/``netns.create`` fork a helper
process per namespace.  So this module

- imports only pyroute2's message codecs (``ifinfmsg``, ``ifaddrmsg``, ``rtmsg``), without
  running the package's ``__init__`` (``_codecs``); the rest of pyroute2 still loads on first
  use anywhere else in the process,
- talks to the kernel over one plain ``AF_NETLINK`` socket per namespace, sending a batch of
  requests and reading their acks (``Rtnl.call``),
- gets a socket inside a container's namespace from a short-lived thread that enters (or
  creates) the namespace: namespaces are per thread, and a socket stays in the namespace it was
  made in, so no process is forked.

Everything not on that path (dumps, bridges for `network create`, host routes) uses pyroute2's
``IPRoute`` as before.
"""

from __future__ import annotations

import ctypes
import errno
import importlib.util
import os
import socket
import struct
import sys
import threading
import types
from typing import Any

NETLINK_ROUTE = 0
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 18, 20, 24
IFF_UP = 1
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 0x1000, 0x4000, 1 << 20
_HDR = struct.Struct("=IHHII")
_libc: Any = None
_loaded: types.SimpleNamespace | None = None
_made: dict[str, socket.socket] = {}  # path -> a socket inside the namespace create_netns made there


class NetlinkError(OSError):
    """A request the kernel refused; ``code`` (also ``errno``) says why."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))
        self.code = code


def _codecs() -> types.SimpleNamespace:
    """pyroute2's rtnetlink message classes, without importing the rest of pyroute2.

    Importing ``pyroute2.x`` runs ``pyroute2/__init__`` first, which imports every API the
    library has.  Registering the package module un-executed (its submodules still import
    normally) avoids that; the first lookup of a name it would have defined (``from pyroute2
    import IPRoute``) runs the real ``__init__`` then, so other users of pyroute2 see no
    difference."""
    global _loaded
    if _loaded is not None:
        return _loaded
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.loader is None:
            from dockyard.errors import Unsupported

            raise Unsupported("pyroute2 is not installed")
        pkg = importlib.util.module_from_spec(spec)
        loading = False

        def __getattr__(name: str) -> Any:
            nonlocal loading
            if name.startswith("__") or loading:
                raise AttributeError(name)
            if importlib.util.find_spec(f"pyroute2.{name}") is not None:
                return importlib.import_module(f"pyroute2.{name}")
            loading = True
            del pkg.__dict__["__getattr__"]
            spec.loader.exec_module(pkg)  # type: ignore[union-attr]
            return getattr(pkg, name)

        pkg.__dict__["__getattr__"] = __getattr__
        sys.modules["pyroute2"] = pkg
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    _loaded = types.SimpleNamespace(ifinfmsg=ifinfmsg, ifaddrmsg=ifaddrmsg, rtmsg=rtmsg)
    return _loaded


def _lib() -> Any:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


class Rtnl:
    """One rtnetlink socket (in whatever namespace it was made in)."""

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.sock = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    @property
    def c(self) -> types.SimpleNamespace:
        return _codecs()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *requests: tuple[int, int, Any]) -> list[bytes]:
        """Send ``(type, extra flags, message)`` requests in one write and wait for every ack;
        returns the replies' raw messages.  Raises NetlinkError for the first refused one (the
        kernel still runs the later ones, so callers send together only what may fail alone)."""
        buf = bytearray()
        seqs = []
        for mtype, flags, msg in requests:
            self.seq += 1
            msg["header"]["type"] = mtype
            msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
            msg["header"]["sequence_number"] = self.seq
            msg.encode()
            buf += msg.data
            seqs.append(self.seq)
        self.sock.send(bytes(buf))
        pending = set(seqs)
        replies: list[bytes] = []
        failed: NetlinkError | None = None
        while pending:
            data = self.sock.recv(1 << 16)
            off = 0
            while off + _HDR.size <= len(data):
                length, mtype, _, seq, _ = _HDR.unpack_from(data, off)
                if length < _HDR.size:
                    break
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", data, off + _HDR.size)[0]
                    pending.discard(seq)
                    if code and failed is None:
                        failed = NetlinkError(code)
                elif mtype != NLMSG_DONE and seq in pending:
                    replies.append(bytes(data[off:off + length]))
                off += (length + 3) & ~3
        if failed is not None:
            raise failed
        return replies

    # -- messages ------------------------------------------------------------------------------
    def link_msg(self, index: int = 0, up: bool = False, **attrs: Any) -> Any:
        m = self.c.ifinfmsg()
        m["index"] = index
        if up:
            m["flags"] = m["change"] = IFF_UP
        m["attrs"] = list(attrs.items())
        return m

    def index_of(self, ifname: str) -> int:
        """A link's index in this socket's namespace, by name."""
        reply = self.call((RTM_GETLINK, 0, self.link_msg(IFLA_IFNAME=ifname)))
        m = self.c.ifinfmsg(reply[0])
        m.decode()
        return int(m["index"])

    def set_up(self, index: int) -> tuple[int, int, Any]:
        return RTM_NEWLINK, 0, self.link_msg(index, up=True)

    def add_addr(self, index: int, address: str, prefixlen: int) -> tuple[int, int, Any]:
        m = self.c.ifaddrmsg()
        m["family"], m["prefixlen"], m["index"] = socket.AF_INET, prefixlen, index
        m["attrs"] = [("IFA_LOCAL", address), ("IFA_ADDRESS", address)]
        return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, m

    def default_route(self, gateway: str, oif: int) -> tuple[int, int, Any]:
        m = self.c.rtmsg()
        # main table, proto boot, scope universe, unicast: what `ip route add default via` makes
        m["family"], m["table"], m["proto"], m["scope"], m["type"] = socket.AF_INET, 254, 3, 0, 1
        m["attrs"] = [("RTA_TABLE", 254), ("RTA_GATEWAY", gateway), ("RTA_OIF", oif)]
        return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, m

    def add_veth(self, host: str, peer: str, peer_ns_fd: int, master: int, mac: str, mtu: int = 0) -> None:
        """A veth pair: ``host`` up and enslaved to bridge index ``master`` here, ``peer`` (with
        ``mac``) in the namespace ``peer_ns_fd`` -- one request."""
        peer_attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", peer), ("IFLA_NET_NS_FD", peer_ns_fd),
                                             ("IFLA_ADDRESS", mac)]
        attrs: dict[str, Any] = {"IFLA_IFNAME": host, "IFLA_MASTER": master}
        if mtu:
            attrs["IFLA_MTU"] = mtu
            peer_attrs.append(("IFLA_MTU", mtu))
        attrs["IFLA_LINKINFO"] = {"attrs": [
            ("IFLA_INFO_KIND", "veth"),
            ("IFLA_INFO_DATA", {"attrs": [("VETH_INFO_PEER", {"attrs": peer_attrs})]})]}
        self.call((RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, self.link_msg(up=True, **attrs)))

    def del_link(self, index: int) -> None:
        self.call((RTM_DELLINK, 0, self.link_msg(index)))


def _in_thread(target: Any) -> Any:
    """Run ``target`` in a fresh thread (which may change its own namespaces and then ends);
    returns its result or raises its exception."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = target()
        except BaseException as e:  # handed to the caller
            out["error"] = e

    t = threading.Thread(target=run, name="dockyard-netns")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


def _netlink_socket() -> socket.socket:
    return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)


def open_in(path: str) -> Rtnl:
    """An rtnetlink socket inside the network namespace at ``path`` (the one ``create_netns``
    made for it, if this process made the namespace: no second thread needed)."""
    made = _made.pop(path, None)
    if made is not None:
        return Rtnl(made)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)

    def enter() -> socket.socket:
        _check(_lib().setns(fd, CLONE_NEWNET), f"cannot enter network namespace {path}")
        return _netlink_socket()

    try:
        return Rtnl(_in_thread(enter))
    finally:
        os.close(fd)


def create_netns(path: str) -> None:
    """Create a network namespace pinned at ``path`` (a bind mount, as `ip netns add` makes); the
    next ``open_in(path)`` gets the socket made inside it.  ``path``'s directory must exist."""
    libc = _lib()
    d = os.path.dirname(path).encode()
    # The directory must be a shared mount so the pin shows in other mount namespaces (runtimes
    # that unshare theirs, `ip netns exec`): iproute2's steps, once per boot in practice.
    if libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None) != 0:
        _check(libc.mount(d, d, b"none", MS_BIND | MS_REC, None), f"cannot bind-mount {d.decode()}")
        _check(libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None), f"cannot share {d.decode()}")
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))

    def make() -> socket.socket:
        _check(libc.unshare(CLONE_NEWNET), "cannot create a network namespace")
        _check(libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
               f"cannot pin the network namespace at {path}")
        return _netlink_socket()

    forget(path)
    try:
        _made[path] = _in_thread(make)
    except BaseException:
        os.unlink(path)
        raise


def forget(path: str) -> None:
    """Drop the socket kept for a namespace that is being removed."""
    sock = _made.pop(path, None)
    if sock is not None:
        sock.close()


def ifindex(name: str) -> int | None:
    """A host link's index from sysfs (no netlink needed)."""
    try:
        with open(f"/sys/class/net/{name}/ifindex") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def is_gone(e: OSError) -> bool:
    return e.errno in (errno.ENODEV, errno.ENOENT)
