"""What a test session leaves on the host: mounts, interfaces, netns, nft tables, cgroups, runroot
state, processes.

tests/conftest.py snapshots these at session start and end and prints the difference as a warning
section.  It never fails the run: a leftover from one area must not block every other area's CI, but
it must be visible.  Everything is read from /proc and /sys except the nft tables (one `nft` call), so
the check costs a few milliseconds.  Host-wide objects (interfaces, netns, cgroups, overlay mounts)
made by another test session running at the same time show up too; in CI there is only one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
NAME_PREFIXES = ("dockyard", "dy")


def _mounts(tmp_root: str) -> set[str]:
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point = left.split()[4]
            fstype = right.split()[0] if right else ""
            if fstype == "overlay" or point.startswith(tmp_root):
                out.add(f"{fstype} on {point}")
    return out


def _interfaces() -> set[str]:
    out = set()
    for name in os.listdir("/sys/class/net"):
        kind = "bridge" if os.path.isdir(f"/sys/class/net/{name}/bridge") else "link"
        try:
            # A veth's peer lives elsewhere: its iflink differs from its own ifindex.
            base = f"/sys/class/net/{name}/"
            if kind == "link" and open(base + "iflink").read() != open(base + "ifindex").read():
                kind = "veth"
        except OSError:
            pass
        out.add(f"{kind} {name}")
    return out


def _netns() -> set[str]:
    try:
        return {f"netns {n}" for n in os.listdir("/run/netns")}
    except OSError:
        return set()


def _nft_tables() -> set[str]:
    nft = shutil.which("nft")
    if not nft:
        return set()
    try:
        p = subprocess.run([nft, "list", "tables"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {line.strip() for line in p.stdout.splitlines()
            if line.split()[-1:] and line.split()[-1].startswith("dockyard")}


def _cgroup_dirs() -> set[str]:
    """dockyard*/dy* cgroups (and their children) at each hierarchy's root and below this process's
    own cgroup, where tests that use relative cgroup paths create theirs."""
    bases: set[Path] = set()
    hierarchies = [CGROUP_ROOT] + ([p for p in CGROUP_ROOT.iterdir() if p.is_dir()]
                                   if CGROUP_ROOT.is_dir() else [])
    own: dict[str, str] = {}
    try:
        for line in open("/proc/self/cgroup"):
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.replace("name=", "").split(",") if controllers else ["unified", ""]:
                own[c] = path
    except OSError:
        pass
    for h in hierarchies:
        if not (h / "cgroup.procs").exists():
            continue
        bases.add(h)
        rel = own.get(h.name) or (own.get("") if h == CGROUP_ROOT else None)
        if rel and rel != "/":
            bases.add(h / rel.lstrip("/"))
    out = set()
    for b in bases:
        try:
            entries = list(os.scandir(b))
        except OSError:
            continue
        for e in entries:
            if e.is_dir(follow_symlinks=False) and e.name.startswith(NAME_PREFIXES):
                try:
                    out.update(f"cgroup {c.path}" for c in os.scandir(e.path) if c.is_dir(follow_symlinks=False))
                except OSError:
                    pass
                if e.name != "dockyard":  # the engine's shared parent, kept like runc's parents
                    out.add(f"cgroup {e.path}")
    return out


def _runroot_entries() -> set[str]:
    """Per-container and per-network state in the host's runroot, which the `dy` fixture's
    private --root still shares (it passes no --runroot)."""
    out = set()
    for kind in ("containers", "networks", "slirp4netns"):
        try:
            out.update(f"runroot /run/dockyard/{kind}/{n}" for n in os.listdir(f"/run/dockyard/{kind}"))
        except OSError:
            pass
    return out


def _descendants(root_pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = set(), [root_pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _processes(tmp_root: str) -> set[str]:
    """Processes of this session: our descendants mentioning dockyard, dockyard processes with a file
    open in the pytest tmp dirs, and anything whose command line, root or working directory is
    there.  (A container's own process shows as its cgroup and overlay mount.)"""
    mine = _descendants(os.getpid())
    out = set()
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if not cmd:
            continue  # kernel thread or zombie
        ours = ("dockyard" in cmd and int(d) in mine) or tmp_root in cmd
        for link in ("root", "cwd"):
            if ours:
                break
            try:
                ours = os.readlink(f"/proc/{d}/{link}").startswith(tmp_root)
            except OSError:
                pass
        if not ours and "dockyard" in cmd:
            # A daemonized container monitor: reparented to init, its cmdline names only the
            # runroot, but it holds the store's database and the container's log open.
            try:
                ours = any(os.readlink(f"/proc/{d}/fd/{fd}").startswith(tmp_root)
                           for fd in os.listdir(f"/proc/{d}/fd"))
            except OSError:
                pass
        if ours:
            out.add(f"pid {d}: {cmd[:200]}")
    return out


def snapshot(tmp_root: str) -> set[str]:
    return (_mounts(tmp_root) | _interfaces() | _netns() | _nft_tables() | _cgroup_dirs()
            | _runroot_entries() | _processes(tmp_root))


def left_behind(before: set[str], tmp_root: str, grace: float = 3.0) -> list[str]:
    """What is there now and was not at the start; asynchronous teardown (a monitor exiting, the
    kernel freeing a namespace's veths) gets ``grace`` seconds before it counts."""
    deadline = time.monotonic() + grace
    while True:
        new = snapshot(tmp_root) - before
        if not new or time.monotonic() > deadline:
            return sorted(new)
        time.sleep(0.2)
