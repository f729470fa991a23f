"""Rootless networking with slirp4netns: a user-mode TCP/IP stack behind a tap device in the
container's namespace, so a user without privileges gets outbound traffic and published ports.

The network namespace is made first (``create_netns``, owned by the user's rootless user namespace)
and slirp4netns joins it by path before the runtime starts the container in it, as Podman does.  Ports are published through its API socket (``add_hostfwd``):
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


def create_netns(path: Path) -> None:
    """A network namespace bound on ``path``, loopback up, made by a forked child so this process
    keeps its own (rootless: root of the user's namespace owns it, so slirp4netns may join it)."""
    import fcntl
    import struct

    from dockyard.runtime import linux as L

    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            L.unshare(L.CLONE_NEWNET)
            L.mount(f"/proc/{os.getpid()}/ns/net", str(path), None, L.MS_BIND)
            # As Docker does for a container's own namespace: its root may bind any port there, also a
            # nested --userns root, which has no privileges over a namespace we made.
            with open("/proc/sys/net/ipv4/ip_unprivileged_port_start", "w") as f:
                f.write("0")
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                siocsifflags, iff_up = 0x8914, 1
                fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", iff_up))
            code = 0
        except OSError as e:
            os.write(w, (e.strerror or str(e)).encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0:
        remove_netns(path)
        raise DockyardError(f"cannot create the container's network namespace: {err or status}")


def remove_netns(path: Path) -> bool:
    """Unmount and delete a namespace from ``create_netns``; idempotent."""
    from dockyard.runtime import linux as L

    if not path.exists():
        return False
    with contextlib.suppress(OSError):
        L.umount(str(path), L.MNT_DETACH)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return True


def start(rundir: Path, netns: str, timeout: float = 10.0, allow_host_loopback: bool = False) -> int:
    """Start slirp4netns for the network namespace at path ``netns``; returns once tap0 is configured.

    The host's loopback stays unreachable through 10.0.2.2 unless ``allow_host_loopback`` (Podman's
    slirp4netns:allow_host_loopback=true)."""
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
                [exe, "--configure", f"--mtu={MTU}", "--enable-sandbox", "--api-socket", str(sock),
                 "--ready-fd", str(w), "--netns-type=path"]
                + ([] if allow_host_loopback else ["--disable-host-loopback"]) + [netns, "tap0"],
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
