"""Rootless networking with slirp4netns: a user-mode TCP/IP stack behind a tap device in the
container's namespace, so a user without privileges gets outbound traffic and published ports.

The container's process must exist (its user and network namespaces are made by the runtime);
slirp4netns joins them by pid.  Ports are published through its API socket (``add_hostfwd``):
slirp4netns itself listens on the host port, as the user, so 127.0.0.1 and other hosts work.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
from pathlib import Path

from dockyard.errors import Conflict, DockyardError, Unsupported

# slirp4netns --configure's fixed layout.
GUEST_IP = "10.0.2.100"
GATEWAY = "10.0.2.2"
DNS = "10.0.2.3"
PREFIXLEN = 24
MTU = 65520


def _pid(rundir: Path) -> int | None:
    try:
        pid = int((rundir / "slirp4netns.pid").read_text())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except (OSError, ValueError):
        return None
    return pid if b"slirp4netns" in cmd and str(rundir).encode() in cmd else None


def start(rundir: Path, pid: int, timeout: float = 10.0) -> int:
    """Start slirp4netns for the namespaces of ``pid``; returns once tap0 is configured."""
    exe = shutil.which("slirp4netns")
    if exe is None:
        raise Unsupported("rootless networking needs slirp4netns (apt-get install slirp4netns)")
    if _pid(rundir):
        raise Conflict("slirp4netns already runs for this container")
    rundir.mkdir(parents=True, exist_ok=True)
    sock = rundir / "slirp4netns.sock"
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    r, w = os.pipe()
    try:
        with open(rundir / "slirp4netns.log", "ab") as log:
            proc = subprocess.Popen(
                [exe, "--configure", f"--mtu={MTU}", "--disable-host-loopback", "--enable-sandbox",
                 "--api-socket", str(sock), "--ready-fd", str(w), str(pid), "tap0"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(w,), start_new_session=True)
        os.close(w)
        w = -1
        ready, _, _ = select.select([r], [], [], timeout)
        ok = bool(ready) and os.read(r, 1) == b"1"
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    if not ok:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        tail = (rundir / "slirp4netns.log").read_text(errors="replace").strip().splitlines()[-1:]
        shutil.rmtree(rundir, ignore_errors=True)
        raise DockyardError(f"slirp4netns failed to set up the container's network: "
                            f"{tail[0] if tail else 'no output'}")
    (rundir / "slirp4netns.pid").write_text(str(proc.pid))
    return proc.pid


def add_forward(rundir: Path, proto: str, host_ip: str, host_port: int, guest_port: int) -> None:
    if proto not in ("tcp", "udp"):
        raise Unsupported(f"rootless port publishing supports tcp and udp, not {proto}")
    req = {"execute": "add_hostfwd", "arguments": {
        "proto": proto, "host_addr": host_ip or "0.0.0.0", "host_port": host_port,
        "guest_addr": GUEST_IP, "guest_port": guest_port}}
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(10)
        s.connect(str(rundir / "slirp4netns.sock"))
        s.sendall(json.dumps(req).encode())
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    finally:
        s.close()
    reply = json.loads(data or b"{}")
    if "error" in reply:
        desc = reply["error"].get("desc", reply["error"])
        raise Conflict(f"Bind for {host_ip or '0.0.0.0'}:{host_port} failed: {desc}")


def stop(rundir: Path, timeout: float = 5.0) -> None:
    pid = _pid(rundir)
    if pid:
        from dockyard.network.helperproc import terminate

        terminate(pid, timeout)
    shutil.rmtree(rundir, ignore_errors=True)
