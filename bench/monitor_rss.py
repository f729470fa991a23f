"""Resident memory of one idle container's supervisor: dockyard's monitor against podman's conmon
and docker's containerd-shim (when they run here).  Printed before the timings; the timed case is
`inspect` of that running container."""

from __future__ import annotations

import os
import subprocess
import time

from bench._containers import cleanup_podman, docker_available, dy, podman, run, setup_images
from bench.harness import Case


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _children_named(name: str) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().strip() == name:
                        out.append(int(p))
            except OSError:
                pass
    return out


def prepare(workdir: str) -> list[Case]:
    have = setup_images(workdir)
    cid = run(dy(workdir, "run", "-d", "--network", "none", "localhost/busybox", "sleep", "3600")).stdout.strip()
    time.sleep(1)
    with open(os.path.join(workdir, "dy", "run", "containers", cid, "monitor.pid")) as f:
        mon = int(f.read())
    rows = [("dockyard monitor", rss_kib(mon))]
    if have["podman"]:
        before = set(_children_named("conmon"))
        subprocess.run(podman(workdir, "run", "-d", "--network", "none", "localhost/busybox", "sleep", "3600"),
                       capture_output=True)
        time.sleep(1)
        for pid in set(_children_named("conmon")) - before:
            rows.append(("podman conmon", rss_kib(pid)))
    if have["docker"] and docker_available():
        before = set(_children_named("containerd-shim"))
        subprocess.run(["docker", "run", "-d", "--rm", "--network", "none", "localhost/busybox", "sleep", "3600"],
                       capture_output=True)
        time.sleep(1)
        for pid in set(_children_named("containerd-shim")) - before:
            rows.append(("docker containerd-shim", rss_kib(pid)))
    print("monitor_rss: resident memory of one idle container's supervisor")
    for label, kib in rows:
        print(f"  {label:<34}{kib / 1024:>8.1f} MiB")
    return [Case("dockyard inspect (running container)", dy(workdir, "inspect", cid))]


def cleanup(workdir: str) -> None:
    subprocess.run(dy(workdir, "rm", "-f", *run(dy(workdir, "ps", "-aq")).stdout.split()), capture_output=True)
    cleanup_podman(workdir)
