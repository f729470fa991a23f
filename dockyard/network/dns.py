"""Embedded DNS for custom networks: one small server process per network, on its gateway, port 53.

Why a process per network: there is no daemon, and the server must outlive the ``dockyard run``
that started it.  The first endpoint on a network starts it (``ensure_server``), the last one
to leave stops it (``stop_server``); its pid file in the runroot is how later commands find it.

Records are not copied anywhere: each query reads the network's endpoints from the store
(SQLite, read-only, WAL so it never waits for writers).  A name answers with the addresses of
every container on *this* network that has it as name, short id, hostname or alias -- so
replicas sharing an alias all answer, and names on other networks are unknown here.  Single-label
names nobody claims get NXDOMAIN at once (they are container names, the internet has no answer
for them); other names go to the container's own --dns servers, else the host's resolvers.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError

FORWARD_TIMEOUT = 3.0


def _pidfile(rundir: Path) -> Path:
    return rundir / "dns.pid"


def _alive(pid: int, net_id: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return False
    return b"dockyard.network.dns" in cmd and net_id.encode() in cmd


def server_pid(rundir: Path, net_id: str) -> int | None:
    try:
        pid = int(_pidfile(rundir).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid, net_id) else None


def ensure_server(rundir: Path, db_path: Path, net_id: str, listen: str, upstreams: list[str],
                  timeout: float = 10.0) -> int:
    """Start the network's DNS server unless it runs; returns its pid once it is answering."""
    pid = server_pid(rundir, net_id)
    if pid:
        return pid
    rundir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        _pidfile(rundir).unlink()
    log = open(rundir / "dns.log", "ab")
    try:
        argv = [sys.executable, "-m", "dockyard.network.dns", "--db", str(db_path), "--network", net_id,
                "--listen", listen, "--pidfile", str(_pidfile(rundir))]
        for u in upstreams:
            argv += ["--upstream", u]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=_child_env())
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (rundir / "dns.log").read_text(errors="replace").strip().splitlines()[-1:]
            raise DockyardError(f"the DNS server for network {net_id[:12]} failed to start: "
                                f"{tail[0] if tail else 'exit ' + str(proc.returncode)}")
        if server_pid(rundir, net_id) == proc.pid:
            return proc.pid
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    raise DockyardError(f"the DNS server for network {net_id[:12]} did not start within {timeout:.0f}s")


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def stop_server(rundir: Path, net_id: str, timeout: float = 5.0) -> None:
    pid = server_pid(rundir, net_id)
    if pid:
        from dockyard.network.helperproc import terminate

        terminate(pid, timeout)
    with contextlib.suppress(FileNotFoundError):
        _pidfile(rundir).unlink()


# -- the server process ----------------------------------------------------------------------

class _Resolver:
    def __init__(self, db_path: str, net_id: str, upstreams: list[str]) -> None:
        self.db_path = db_path
        self.net_id = net_id
        self.upstreams = upstreams

    def _rows(self) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            conn.row_factory = sqlite3.Row
            return conn.execute(
                "SELECT container_id, container_name, hostname, aliases, ip_address, dns_servers "
                "FROM network_endpoints WHERE network_id = ?", (self.net_id,)).fetchall()
        finally:
            conn.close()

    @staticmethod
    def _names(row: sqlite3.Row) -> set[str]:
        names = {row["container_name"].lower(), row["container_id"][:12]}
        if row["hostname"]:
            names.add(row["hostname"].lower())
        names.update(a.lower() for a in json.loads(row["aliases"]))
        return names

    def resolve(self, request: Any, handler: Any) -> Any:
        from dnslib import PTR, QTYPE, RCODE, RR, A, DNSRecord

        q = request.q
        qname = str(q.qname).rstrip(".").lower()
        reply = request.reply()
        rows = self._rows()
        if q.qtype == QTYPE.PTR and qname.endswith(".in-addr.arpa"):
            ip = ".".join(reversed(qname[: -len(".in-addr.arpa")].split(".")))
            for r in rows:
                if r["ip_address"] == ip:
                    reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(r["container_name"] + "."), ttl=60))
                    return reply
        matches = [r for r in rows if qname in self._names(r)]
        if matches:
            if q.qtype in (QTYPE.A, QTYPE.ANY):
                for r in matches:
                    reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(r["ip_address"]), ttl=60))
            return reply  # known name, no such record type (AAAA...): NOERROR, empty
        if "." not in qname:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        client = handler.client_address[0]
        own: list[str] = next((json.loads(r["dns_servers"]) for r in rows if r["ip_address"] == client), [])
        for server in own or self.upstreams:
            host, _, port = server.partition("#")
            try:
                data = request.send(host, int(port or 53), tcp=handler.protocol == "tcp", timeout=FORWARD_TIMEOUT)
                return DNSRecord.parse(data)
            except Exception:  # noqa: BLE001 - a dead upstream: try the next one
                continue
        reply.header.rcode = RCODE.SERVFAIL
        return reply


def serve(db_path: str, net_id: str, listen: str, pidfile: str, upstreams: list[str]) -> None:
    from dnslib.server import DNSLogger, DNSServer

    from dockyard.store.blobs import atomic_write

    resolver = _Resolver(db_path, net_id, upstreams)
    quiet = DNSLogger(log="-request,-reply,-truncated,-recv,-send,-data", prefix=False)
    udp = DNSServer(resolver, address=listen, port=53, logger=quiet)
    tcp = DNSServer(resolver, address=listen, port=53, tcp=True, logger=quiet)
    udp.start_thread()
    tcp.start_thread()

    def stop(*_: object) -> None:
        # Nothing to flush or save; a graceful socketserver shutdown would wait out its 0.5 s poll.
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    atomic_write(pidfile, f"{os.getpid()}\n")
    while True:
        signal.pause()


def main() -> None:
    import argparse  # only the server process parses arguments

    ap = argparse.ArgumentParser(prog="python -m dockyard.network.dns")
    ap.add_argument("--db", required=True)
    ap.add_argument("--network", required=True)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--pidfile", required=True)
    ap.add_argument("--upstream", action="append", default=[])
    a = ap.parse_args()
    serve(a.db, a.network, a.listen, a.pidfile, a.upstream)


if __name__ == "__main__":
    main()
