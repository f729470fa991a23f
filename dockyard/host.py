"""Facts about the host that decide how containers can be built here.

Everything is read from /proc and /sys (no subprocesses) so ``info`` stays fast and the runtime can
call it on its hot path.
"""

from __future__ import annotations

import os

CGROUP_ROOT = "/sys/fs/cgroup"
CAP_SYS_RESOURCE = 24
CAP_SYS_ADMIN = 21


class CgroupInfo:
    # A plain class, not a dataclass: the runtime imports this module on every container start and
    # `dataclasses` alone costs several milliseconds of import time.
    __slots__ = ("version", "v1_mounts", "v2_mount", "v2_controllers")

    def __init__(self, version: str, v1_mounts: dict[str, str] | None = None,
                 v2_mount: str | None = None, v2_controllers: list[str] | None = None) -> None:
        self.version = version  # "v1", "v2", "hybrid" or "none"
        # v1 controllers that are mounted, mapped to their mount point.
        self.v1_mounts = v1_mounts or {}
        self.v2_mount = v2_mount
        # Controllers enabled at the v2 root (empty on hybrid hosts, where v2 manages nothing).
        self.v2_controllers = v2_controllers or []

    def __repr__(self) -> str:
        return (f"CgroupInfo(version={self.version!r}, v1_mounts={self.v1_mounts!r}, "
                f"v2_mount={self.v2_mount!r}, v2_controllers={self.v2_controllers!r})")

    @property
    def controllers(self) -> list[str]:
        """Controllers dockyard can use for limits on this host."""
        if self.version == "v2":
            return sorted(self.v2_controllers)
        return sorted(c for c in self.v1_mounts if not c.startswith("name="))


def _mounts() -> list[tuple[str, str, str]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            lparts = left.split()
            rparts = right.split()
            if len(lparts) < 5 or len(rparts) < 3:
                continue
            out.append((lparts[4], rparts[0], rparts[2]))  # mount point, fstype, super options
    return out


# Host facts don't change while a command runs; cached in module globals rather than with
# functools.lru_cache, whose import the runtime would pay on every container start.
_cgroup_info: CgroupInfo | None = None
_filesystems: set[str] | None = None


def cgroup_info() -> CgroupInfo:
    global _cgroup_info
    if _cgroup_info is None:
        _cgroup_info = _read_cgroup_info()
    return _cgroup_info


def _read_cgroup_info() -> CgroupInfo:
    v1: dict[str, str] = {}
    v2: str | None = None
    for mnt, fstype, opts in _mounts():
        if fstype == "cgroup2" and mnt.startswith(CGROUP_ROOT):
            if v2 is None or mnt == CGROUP_ROOT:
                v2 = mnt
        elif fstype == "cgroup" and mnt.startswith(CGROUP_ROOT):
            for o in opts.split(","):
                if o in ("rw", "ro") or o.startswith(("release_agent", "clone_children")):
                    continue
                if o == "xattr" or o == "noprefix":
                    continue
                v1[o] = mnt
    if v2 == CGROUP_ROOT and not v1:
        ctrls: list[str] = []
        try:
            with open(os.path.join(v2, "cgroup.controllers")) as f:
                ctrls = f.read().split()
        except OSError:
            pass
        return CgroupInfo("v2", {}, v2, ctrls)
    if v1:
        ctrls = []
        if v2:
            try:
                with open(os.path.join(v2, "cgroup.controllers")) as f:
                    ctrls = f.read().split()
            except OSError:
                pass
        return CgroupInfo("hybrid" if v2 else "v1", v1, v2, ctrls)
    return CgroupInfo("v2" if v2 else "none", {}, v2, [])


def effective_caps() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def has_cap(cap: int) -> bool:
    return bool(effective_caps() >> cap & 1)


def can_raise_rlimits() -> bool:
    """Whether hard rlimits can be raised above their current values (needs CAP_SYS_RESOURCE)."""
    return has_cap(CAP_SYS_RESOURCE)


def filesystems() -> set[str]:
    global _filesystems
    if _filesystems is None:
        with open("/proc/filesystems") as f:
            _filesystems = {line.split()[-1] for line in f if line.strip()}
    return _filesystems


def overlay_supported() -> bool:
    return "overlay" in filesystems()


def mem_total() -> int:
    """Bytes of RAM the kernel reports (MemTotal), 0 if /proc/meminfo can't be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def kernel() -> str:
    return os.uname().release


def go_arch() -> str:
    """The host architecture in OCI/Go spelling (amd64, arm64, ...)."""
    m = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)


def external_runtimes() -> dict[str, str]:
    import shutil

    found = {}
    for name in ("runc", "crun"):
        p = shutil.which(name)
        if p:
            found[name] = p
    return found


def os_release() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open("/etc/os-release") as f:
            for line in f:
                k, sep, v = line.strip().partition("=")
                if sep:
                    out[k] = v.strip('"')
    except OSError:
        pass
    return out
