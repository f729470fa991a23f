"""A private Docker engine for benchmarks that compare against Docker (root only).

``private_dockerd(workdir, archive)`` starts dockerd (Debian's docker.io) with everything of its
own under ``workdir``: data root, exec root (its containerd too), pid file and API socket.  It
runs with ``--bridge none --iptables=false`` so it touches neither docker0 nor the host's
iptables/nftables rules: networks a benchmark creates are its own bridges, and published ports
go through docker-proxy (which is also what Docker uses for connections to 127.0.0.1 when it
does manage iptables, as its DNAT rules skip loopback destinations).  The image comes from
``archive`` (a `dockyard save` tarball) through `docker load`: there is no registry here.

On exit it removes its containers and networks, stops dockerd by pid, ends any process still
running from its exec root, unmounts what is left under ``workdir`` and deletes the files
dockerd writes outside it (/etc/docker/key.json, /run/docker) unless they were there before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class Dockerd:
    host: str  # DOCKER_HOST value
    pid: int

    def argv(self, *args: str) -> list[str]:
        return ["docker", "-H", self.host, *args]

    def run(self, *args: str) -> str:
        p = subprocess.run(self.argv(*args), capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)}: {p.stderr.strip()[-300:]}")
        return p.stdout.strip()


def unavailable() -> str | None:
    """Why no private dockerd can run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for prog in ("dockerd", "docker", "containerd"):
        if shutil.which(prog) is None:
            return f"{prog} is not installed (apt-get install docker.io)"
    return None


def _pids_using(path: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    out.append(int(pid))
    return out


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True)


@contextlib.contextmanager
def private_dockerd(workdir: str, archive: str, timeout: float = 60.0) -> Iterator[Dockerd]:
    why = unavailable()
    if why:
        raise RuntimeError(f"no private dockerd: {why}")
    root = os.path.join(workdir, "dockerd")
    os.makedirs(root)
    sock = os.path.join(root, "docker.sock")
    host = "unix://" + sock
    outside = ["/etc/docker/key.json", "/run/docker"]
    existed = {p: os.path.exists(p) for p in outside}
    log = open(os.path.join(root, "dockerd.log"), "wb")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", os.path.join(root, "data"), "--exec-root", os.path.join(root, "exec"),
         "--pidfile", os.path.join(root, "dockerd.pid"), "-H", host, "--bridge", "none", "--iptables=false",
         "--ip6tables=false", "--ip-masq=false", "--exec-opt", "native.cgroupdriver=cgroupfs",
         "--storage-driver", "overlay2"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    d = Dockerd(host, proc.pid)
    try:
        deadline = time.monotonic() + timeout
        while subprocess.run(d.argv("version"), capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(root, "dockerd.log"), errors="replace") as f:
                    tail = f.read().strip().splitlines()[-3:]
                raise RuntimeError("dockerd did not start: " + " | ".join(tail))
            time.sleep(0.2)
        d.run("load", "-i", archive)
        yield d
    finally:
        with contextlib.suppress(Exception):
            ids = d.run("ps", "-aq").split()
            if ids:
                d.run("rm", "-f", *ids)
        bridges = []
        with contextlib.suppress(Exception):
            for net in d.run("network", "ls", "-q", "--filter", "type=custom").split():
                bridges.append("br-" + net[:12])
                d.run("network", "rm", net)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        exec_root = os.path.join(root, "exec")
        for pid in _pids_using(exec_root):  # shims of a dockerd that died uncleanly
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for b in bridges:
            if os.path.exists(f"/sys/class/net/{b}"):
                subprocess.run(["ip", "link", "del", b], capture_output=True)
        for m in _mounts_under(root):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        for p, was in existed.items():
            if not was and os.path.exists(p):
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
