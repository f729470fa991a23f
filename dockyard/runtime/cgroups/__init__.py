"""Control groups for containers: one manager per cgroup version, one interface.

``manager()`` picks the implementation from ``dockyard.host.cgroup_info()``: pure v2 hosts use the
unified hierarchy; v1 and hybrid hosts (v1 controllers plus an empty cgroup2 mount) use the v1
controllers, because on hybrid hosts v2 owns no controller that could enforce a limit.

``cgroups_path`` follows runc: ``/a/b`` is relative to each hierarchy's root, ``a/b`` to the calling
process's own cgroup, ``slice:prefix:name`` is the systemd notation mapped onto the cgroupfs layout
systemd would use (``/slice/prefix-name.scope``) without needing systemd; ``None`` is
``/dockyard/<id>``.
"""

from __future__ import annotations

import abc
import errno
import os
import time

from dockyard.errors import Conflict, InvalidArgument, Unsupported

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
CPU_PERIOD_US = 100_000  # Docker's --cpus period


def parse_memory(text: str | int) -> int:
    """Docker's memory size syntax (``512m``, ``1.5g``, ``1024``; binary units) -> bytes; ``-1`` = unlimited."""
    if isinstance(text, int):
        return text
    t = text.strip()
    if t == "-1":
        return -1
    import re  # not at import: every container start imports this module, few parse sizes

    m = re.match(r"^(\d+(?:\.\d+)?) ?([kmgtp]?)(i?b)?$", t, re.IGNORECASE)
    if not m or (m.group(3) and m.group(3).lower() == "ib" and not m.group(2)):
        raise InvalidArgument(f"invalid memory size: {text!r} (want a number with optional unit b, k, m, g, t)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def cpus_to_quota(cpus: float | str) -> tuple[int, int]:
    """Docker's ``--cpus 1.5`` -> CFS (quota, period) in microseconds: (150000, 100000)."""
    try:
        value = float(cpus)
    except (TypeError, ValueError):
        raise InvalidArgument(f"invalid value for --cpus: {cpus!r}") from None
    ncpu = os.cpu_count() or 1
    if not 0.01 <= value <= ncpu:
        raise InvalidArgument(f"invalid value for --cpus: {cpus!r}: range of CPUs is from 0.01 to {ncpu}.00, "
                              f"as there are only {ncpu} CPUs available")
    return int(round(value * CPU_PERIOD_US)), CPU_PERIOD_US


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000], the linear map runc and crun share."""
    if shares <= 0:
        return 0
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def weight_to_shares(weight: int) -> int:
    """Inverse of ``shares_to_weight`` (for reporting v2 weights in v1 terms)."""
    if weight <= 0:
        return 0
    weight = min(max(weight, 1), 10000)
    return 2 + ((weight - 1) * 262142) // 9999


def blkio_weight_to_io_weight(weight: int) -> int:
    """v1 blkio.weight [10, 1000] -> v2 io.weight [1, 10000] (runc's conversion)."""
    if weight <= 0:
        return 0
    return 1 + (min(max(weight, 10), 1000) - 10) * 9999 // 990


def _expand_slice(slice_name: str) -> str:
    """``a-b-c.slice`` -> ``/a.slice/a-b.slice/a-b-c.slice`` (systemd's nesting rule)."""
    if slice_name == "-.slice":
        return "/"
    if not slice_name.endswith(".slice") or "/" in slice_name:
        raise InvalidArgument(f"invalid systemd slice name: {slice_name!r}")
    base = slice_name[: -len(".slice")]
    if not base or base.startswith("-") or base.endswith("-") or "--" in base:
        raise InvalidArgument(f"invalid systemd slice name: {slice_name!r}")
    parts = base.split("-")
    return "/" + "/".join("-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))


def _own_cgroup(controller: str | None) -> str:
    """This process's cgroup in the v1 hierarchy holding ``controller``, or in v2 when ``None``."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _id, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller is None and ctrls == "":
                return path
            if controller is not None and controller in ctrls.split(","):
                return path
    return "/"


def resolve_path(cgroups_path: str | None, container_id: str, rootless: bool = False) -> str:
    """The OCI ``linux.cgroupsPath`` as a path below a hierarchy root (relative paths keep a leading ``./``)."""
    if not cgroups_path:
        return f"dockyard-{container_id}" if rootless else f"/dockyard/{container_id}"
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise InvalidArgument(f"invalid systemd cgroups path {cgroups_path!r} (want slice:prefix:name)")
        slice_name, prefix, name = parts
        if not name:
            raise InvalidArgument(f"invalid systemd cgroups path {cgroups_path!r}: empty name")
        parent = _expand_slice(slice_name or ("user.slice" if rootless else "system.slice"))
        unit = name if name.endswith(".slice") else (f"{prefix}-{name}.scope" if prefix else f"{name}.scope")
        return os.path.join(parent, unit)
    norm = os.path.normpath(cgroups_path)
    if norm.startswith("..") or "/../" in norm + "/":
        raise InvalidArgument(f"invalid cgroups path {cgroups_path!r}: must not leave the hierarchy")
    return norm


def wants_limits(resources: dict | None) -> bool:
    """Whether an OCI ``linux.resources`` object asks for any limit (an empty device list does not count)."""
    if not resources:
        return False
    for key, value in resources.items():
        if key == "devices":
            continue
        if isinstance(value, dict) and any(v not in (None, 0, "", [], {}) for v in value.values()):
            return True
        if isinstance(value, list) and value:
            return True
    return False


def write(path: str, value: str | int) -> None:
    # os-level calls, not open(): a container start makes some 30 of these writes, and the io
    # layers' objects cost more than the system calls themselves.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise OSError(e.errno, f"cannot write {value!r} to {path}: {os.strerror(e.errno or 0)}") from None


def read(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode().strip()


def read_int(path: str) -> int | None:
    """An integer cgroup file; ``max`` or a missing file give ``None``."""
    try:
        v = read(path)
    except OSError:
        return None
    return None if v == "max" else int(v)


def keyed(path: str) -> dict[str, int]:
    """Flat keyed files (``memory.events``, ``cpu.stat``, ``memory.oom_control``)."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if v.strip().lstrip("-").isdigit():
                    out[k] = int(v)
    except OSError:
        pass
    return out


def rmdir_tree(top: str, timeout: float = 5.0) -> None:
    """Remove a cgroup directory and its child cgroups, leaf first, retrying while exiting tasks drain."""
    try:
        os.rmdir(top)  # the usual case, a leaf the container has left: no need to list cgroupfs
        return
    except FileNotFoundError:
        return
    except OSError:
        if not os.path.isdir(top):
            return
    dirs = [top] + [os.path.join(dp, d) for dp, dns, _ in os.walk(top) for d in dns]
    deadline = time.monotonic() + timeout
    for d in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
        delay = 0.01
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise Conflict(f"cannot remove cgroup {d}: {os.strerror(e.errno or 0)}"
                                   f"{' (processes are still in it)' if e.errno == errno.EBUSY else ''}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.2)


def pids_in(top: str) -> list[int]:
    """Every pid in a cgroup directory and its descendants."""
    out: list[int] = []
    for dp, _dns, _fns in os.walk(top):
        try:
            with open(os.path.join(dp, "cgroup.procs")) as f:
                out.extend(int(x) for x in f.read().split())
        except FileNotFoundError:
            continue
    return sorted(set(out))


class CgroupManager(abc.ABC):
    """A container's cgroup(s).  Subclasses implement one cgroup version.

    ``paths`` maps a controller (v1) or ``""`` (v2) to the absolute cgroup directory.  Methods raise
    ``dockyard.errors`` exceptions, or ``OSError`` for unexpected kernel failures.
    """

    version = ""

    def __init__(self, path: str, container_id: str, rootless: bool = False) -> None:
        self.path = path
        self.container_id = container_id
        self.rootless = rootless
        self.paths: dict[str, str] = {}
        # Set when a rootless container runs without cgroups (no delegation): every method is a no-op.
        self.disabled = False

    @abc.abstractmethod
    def create(self, resources: dict | None = None) -> list[str]:
        """Create the cgroup and apply OCI ``linux.resources``; returns warnings (limits skipped)."""

    @abc.abstractmethod
    def update(self, resources: dict) -> list[str]:
        """Apply new OCI ``linux.resources`` to an existing cgroup (``docker update``)."""

    @abc.abstractmethod
    def add(self, pid: int) -> None:
        """Move a process into the cgroup."""

    @abc.abstractmethod
    def freeze(self) -> None:
        """Freeze every process in the cgroup; returns once the kernel reports it frozen."""

    @abc.abstractmethod
    def thaw(self) -> None:
        """Undo ``freeze``."""

    @abc.abstractmethod
    def freezer_state(self) -> str:
        """``"FROZEN"``, ``"THAWED"`` (or ``"FREEZING"`` on v1 while in progress)."""

    @abc.abstractmethod
    def pids(self) -> list[int]:
        """Every process in the cgroup and its descendants."""

    @abc.abstractmethod
    def oom_kill_count(self) -> int:
        """How many processes the OOM killer has killed in this cgroup."""

    @abc.abstractmethod
    def stats(self) -> dict:
        """``{"memory": {"usage", "limit"}, "cpu": {"usage_ns"}, "pids": {"current", "limit"}}``; unlimited = None."""

    @abc.abstractmethod
    def destroy(self) -> None:
        """Remove the cgroup directories (never kills; waits briefly for exiting tasks)."""

    def self_attach(self) -> tuple[list[str], str | None] | None:
        """How a new single-threaded child can join this cgroup without the RCU grace-period wait that
        moving a process by pid costs (attach_warmup): ``(files, directory)`` -- the child writes "0"
        to each file itself, and is created by clone3 in the cgroup2 ``directory`` if there is one.
        ``None``: only ``add(pid)`` can place it."""
        return None

    def exists(self) -> bool:
        return not self.disabled and any(os.path.isdir(p) for p in self.paths.values())


def manager(cgroups_path: str | None, container_id: str, rootless: bool = False) -> CgroupManager:
    """The cgroup manager for this host's cgroup layout."""
    from dockyard import host

    info = host.cgroup_info()
    path = resolve_path(cgroups_path, container_id, rootless)
    if info.version == "v2":
        from dockyard.runtime.cgroups.v2 import V2Manager
        assert info.v2_mount is not None
        return V2Manager(path, container_id, rootless, mount=info.v2_mount)
    if info.version in ("v1", "hybrid"):
        from dockyard.runtime.cgroups.v1 import V1Manager
        return V1Manager(path, container_id, rootless, mounts=info.v1_mounts,
                         unified=info.v2_mount if info.version == "hybrid" else None)
    raise Unsupported("no cgroup filesystem is mounted under /sys/fs/cgroup")
