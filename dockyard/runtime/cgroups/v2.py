"""cgroup v2: one directory in the unified hierarchy; controllers enabled down the ancestor chain."""

from __future__ import annotations

import errno
import os
import time

from dockyard.errors import InvalidArgument, Unsupported
from dockyard.runtime.cgroups import (
    CgroupManager,
    _own_cgroup,
    blkio_weight_to_io_weight,
    keyed,
    pids_in,
    read,
    read_int,
    rmdir_tree,
    shares_to_weight,
    wants_limits,
    write,
)

# Enabled when available so stats and later updates work even without limits at create time.
_USEFUL = ("cpu", "cpuset", "io", "memory", "pids")


def swap_to_v2(swap: int, limit: int) -> int:
    """OCI memory.swap is memory+swap (v1 semantics); v2's memory.swap.max is swap alone (runc's rule)."""
    if limit == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if limit in (0, -1):
        raise InvalidArgument("a memory+swap limit needs a memory limit too")
    if swap < limit:
        raise InvalidArgument(f"memory+swap limit {swap} must be at least the memory limit {limit}")
    return swap - limit


def _max(v: int) -> str:
    return "max" if v < 0 else str(v)


class V2Manager(CgroupManager):
    version = "v2"

    def __init__(self, path: str, container_id: str, rootless: bool = False, *, mount: str) -> None:
        super().__init__(path, container_id, rootless)
        self.mount = mount
        if path.startswith("/"):
            rel = path
        elif rootless:
            # Beside our own cgroup, inside the delegated parent: v2 cannot enable controllers below a
            # cgroup that holds processes, and ours holds this one.
            rel = os.path.join(os.path.dirname(_own_cgroup(None)), path)
        else:
            rel = os.path.join(_own_cgroup(None), path)
        self.dir = os.path.normpath(mount + "/" + rel.lstrip("/"))
        self.paths = {"": self.dir}

    def _file(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _existing_ancestor(self) -> str:
        d = os.path.dirname(self.dir)
        while not os.path.isdir(d):
            d = os.path.dirname(d)
        return d

    @staticmethod
    def _needed(resources: dict) -> dict[str, str]:
        """Controller -> the resource asking for it."""
        need: dict[str, str] = {}
        mem = resources.get("memory") or {}
        if any(mem.get(k) for k in ("limit", "reservation", "swap")):
            need["memory"] = "memory limits"
        cpu = resources.get("cpu") or {}
        if any(cpu.get(k) for k in ("shares", "quota", "period", "burst", "idle")):
            need["cpu"] = "CPU shares/quota"
        if cpu.get("cpus") or cpu.get("mems"):
            need["cpuset"] = "cpuset cpus/mems"
        if (resources.get("pids") or {}).get("limit"):
            need["pids"] = "pids.limit"
        blkio = resources.get("blockIO") or {}
        if any(blkio.get(k) for k in blkio):
            need["io"] = "blockIO limits"
        if resources.get("hugepageLimits"):
            need["hugetlb"] = "hugepage limits"
        for key in resources.get("unified") or {}:
            ctrl = key.split(".", 1)[0]
            if ctrl != "cgroup":
                need.setdefault(ctrl, f"unified {key}")
        return need

    def _enable(self, need: dict[str, str], warnings: list[str]) -> None:
        """Enable needed (and useful) controllers in every ancestor's cgroup.subtree_control."""
        top = self.mount
        chain = []
        d = os.path.dirname(self.dir)
        while d.startswith(top) and len(d) >= len(top):
            chain.append(d)
            if d == top:
                break
            d = os.path.dirname(d)
        for anc in reversed(chain):
            available = set(read(os.path.join(anc, "cgroup.controllers")).split())
            enabled = set(read(os.path.join(anc, "cgroup.subtree_control")).split())
            for ctrl in sorted((set(need) | set(_USEFUL)) & available - enabled):
                try:
                    write(os.path.join(anc, "cgroup.subtree_control"), f"+{ctrl}")
                except OSError as e:
                    if ctrl in need:
                        why = " (the cgroup has processes of its own; v2 only delegates controllers from " \
                              "cgroups without processes)" if e.errno == errno.EBUSY else f": {e.strerror}"
                        raise Unsupported(f"cannot enable the {ctrl} controller in {anc}{why}") from None
                    warnings.append(f"cgroup controller {ctrl} could not be enabled in {anc}: {e.strerror}")

    def _check(self, resources: dict, warnings: list[str]) -> dict[str, str]:
        for key in resources.get("unified") or {}:
            if "/" in key or key.startswith(".") or "." not in key:
                raise InvalidArgument(f"invalid unified cgroup key: {key!r}")
        need = self._needed(resources)
        anc = self._existing_ancestor()
        available = set(read(os.path.join(anc, "cgroup.controllers")).split())
        for ctrl, why in need.items():
            if ctrl not in available:
                raise Unsupported(f"cgroup controller {ctrl!r} is not available on this host (needed for {why})")
        mem = resources.get("memory") or {}
        if mem.get("swappiness") not in (None, -1):
            warnings.append("memory.swappiness is not supported on cgroup v2; ignored")
        if mem.get("disableOOMKiller"):
            warnings.append("disabling the OOM killer is not supported on cgroup v2; ignored")
        if mem.get("kernel") or mem.get("kernelTCP"):
            warnings.append("kernel memory limits are not supported on cgroup v2; ignored")
        cpu = resources.get("cpu") or {}
        if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
            raise Unsupported("realtime CPU limits are not supported on cgroup v2")
        return need

    def _apply(self, resources: dict, warnings: list[str]) -> None:
        mem = resources.get("memory") or {}
        limit, swap = int(mem.get("limit") or 0), int(mem.get("swap") or 0)
        if limit or swap:
            v2swap = swap_to_v2(swap, limit)
            if limit:
                write(self._file("memory.max"), _max(limit))
            # 0 is a limit too: memory+swap equal to memory means no swap at all (runc writes it as well).
            if v2swap or swap > 0:
                if os.path.exists(self._file("memory.swap.max")):
                    write(self._file("memory.swap.max"), _max(v2swap))
                else:
                    warnings.append("your kernel does not support swap limit capabilities: memory swap limit discarded")
        if mem.get("reservation"):
            write(self._file("memory.low"), _max(int(mem["reservation"])))
        cpu = resources.get("cpu") or {}
        if cpu.get("shares"):
            write(self._file("cpu.weight"), shares_to_weight(int(cpu["shares"])))
        quota, period = int(cpu.get("quota") or 0), int(cpu.get("period") or 0)
        if quota or period:
            if not period:
                period = int(read(self._file("cpu.max")).split()[1])
            write(self._file("cpu.max"), f"{_max(quota) if quota else 'max'} {period}")
        for key, fname in (("burst", "cpu.max.burst"), ("idle", "cpu.idle")):
            if cpu.get(key):
                if not os.path.exists(self._file(fname)):
                    raise Unsupported(f"cpu.{key} is not supported by this kernel (no {fname})")
                write(self._file(fname), int(cpu[key]))
        if cpu.get("cpus"):
            write(self._file("cpuset.cpus"), cpu["cpus"])
        if cpu.get("mems"):
            write(self._file("cpuset.mems"), cpu["mems"])
        pids = resources.get("pids") or {}
        if pids.get("limit"):
            write(self._file("pids.max"), _max(int(pids["limit"])))
        self._set_io(resources.get("blockIO") or {}, warnings)
        for hp in resources.get("hugepageLimits") or []:
            write(self._file(f"hugetlb.{hp['pageSize']}.max"), int(hp["limit"]))
        for key, value in (resources.get("unified") or {}).items():
            if not os.path.exists(self._file(key)):
                raise Unsupported(f"unified cgroup file {key!r} does not exist on this host")
            write(self._file(key), value)

    def _set_io(self, blkio: dict, warnings: list[str]) -> None:
        if blkio.get("weight"):
            if os.path.exists(self._file("io.bfq.weight")):
                write(self._file("io.bfq.weight"), int(blkio["weight"]))
            elif os.path.exists(self._file("io.weight")):
                write(self._file("io.weight"), f"default {blkio_weight_to_io_weight(int(blkio['weight']))}")
            else:
                raise Unsupported("blockIO.weight is not supported on this host (no io.weight or io.bfq.weight)")
        if blkio.get("leafWeight"):
            warnings.append("blockIO.leafWeight is not supported on cgroup v2; ignored")
        for wd in blkio.get("weightDevice") or []:
            if wd.get("weight"):
                f = "io.bfq.weight" if os.path.exists(self._file("io.bfq.weight")) else "io.weight"
                w = int(wd["weight"]) if f == "io.bfq.weight" else blkio_weight_to_io_weight(int(wd["weight"]))
                write(self._file(f), f"{wd['major']}:{wd['minor']} {w}")
        for key, name in (("throttleReadBpsDevice", "rbps"), ("throttleWriteBpsDevice", "wbps"),
                          ("throttleReadIOPSDevice", "riops"), ("throttleWriteIOPSDevice", "wiops")):
            for td in blkio.get(key) or []:
                rate = int(td["rate"])
                write(self._file("io.max"), f"{td['major']}:{td['minor']} {name}={rate if rate else 'max'}")

    def _set_devices(self, rules: list[dict], warnings: list[str]) -> None:
        from dockyard.runtime.cgroups import devices

        try:
            devices.attach(self.dir, rules)
        except Unsupported as e:
            if not self.rootless:
                raise
            # Unprivileged users cannot load BPF programs; their user namespace already keeps them from
            # creating or opening device nodes they do not own.
            warnings.append(f"device rules not applied: {e}")

    def _delegated(self) -> bool:
        anc = self._existing_ancestor()
        return os.access(anc, os.W_OK) and os.access(os.path.join(anc, "cgroup.procs"), os.W_OK)

    # -- the interface --------------------------------------------------------------------------

    def create(self, resources: dict | None = None) -> list[str]:
        warnings: list[str] = []
        resources = resources or {}
        if self.rootless and not self._delegated():
            if wants_limits(resources):
                raise Unsupported(f"rootless resource limits need a delegated cgroup v2 subtree; "
                                  f"{self._existing_ancestor()} is not writable by uid {os.geteuid()}")
            self.disabled = True
            return [f"cgroup {self._existing_ancestor()} is not delegated to uid {os.geteuid()}: "
                    f"running without a cgroup, resource limits unavailable"]
        need = self._check(resources, warnings)
        created = not os.path.isdir(self.dir)
        os.makedirs(os.path.dirname(self.dir), exist_ok=True)
        self._enable(need, warnings)
        if created:
            os.mkdir(self.dir)
        try:
            self._apply(resources, warnings)
            if resources.get("devices"):
                self._set_devices(resources["devices"], warnings)
        except BaseException:
            if created:
                rmdir_tree(self.dir, timeout=1.0)
            raise
        return warnings

    def update(self, resources: dict) -> list[str]:
        if self.disabled:
            if wants_limits(resources):
                raise Unsupported("this container runs without a cgroup; its limits cannot be updated")
            return []
        warnings: list[str] = []
        need = self._check(resources, warnings)
        self._enable(need, warnings)
        self._apply(resources, warnings)
        if resources.get("devices"):
            # Programs attached with BPF_F_ALLOW_MULTI all have to allow an access, so adding one could
            # only narrow the rules; the set chosen at create time stays.
            warnings.append("device rules cannot be changed on a running container on cgroup v2; ignored")
        return warnings

    def add(self, pid: int) -> None:
        if not self.disabled:
            write(self._file("cgroup.procs"), pid)

    def freeze(self) -> None:
        write(self._file("cgroup.freeze"), 1)
        deadline = time.monotonic() + 30
        while keyed(self._file("cgroup.events")).get("frozen") != 1:
            if time.monotonic() > deadline:
                write(self._file("cgroup.freeze"), 0)
                raise OSError(errno.EBUSY, f"cgroup {self.dir} did not freeze within 30s")
            time.sleep(0.01)

    def thaw(self) -> None:
        write(self._file("cgroup.freeze"), 0)

    def freezer_state(self) -> str:
        if self.disabled or not os.path.exists(self._file("cgroup.freeze")):
            return "THAWED"
        if read(self._file("cgroup.freeze")) == "0":
            return "THAWED"
        return "FROZEN" if keyed(self._file("cgroup.events")).get("frozen") == 1 else "FREEZING"

    def pids(self) -> list[int]:
        if self.disabled or not os.path.isdir(self.dir):
            return []
        return pids_in(self.dir)

    def oom_kill_count(self) -> int:
        if self.disabled:
            return 0
        return keyed(self._file("memory.events")).get("oom_kill", 0)

    def stats(self) -> dict:
        out: dict = {"memory": {"usage": None, "limit": None, "max_usage": None},
                     "cpu": {"usage_ns": None}, "pids": {"current": None, "limit": None}}
        if self.disabled:
            return out
        if os.path.exists(self._file("memory.current")):
            stat = keyed(self._file("memory.stat"))
            out["memory"] = {"usage": read_int(self._file("memory.current")),
                             "limit": read_int(self._file("memory.max")),
                             "max_usage": read_int(self._file("memory.peak")),
                             "cache": stat.get("file"),
                             "oom_kill": self.oom_kill_count()}
        usage = keyed(self._file("cpu.stat")).get("usage_usec")
        out["cpu"] = {"usage_ns": None if usage is None else usage * 1000}
        if os.path.exists(self._file("pids.current")):
            out["pids"] = {"current": read_int(self._file("pids.current")), "limit": read_int(self._file("pids.max"))}
        return out

    def destroy(self) -> None:
        if not self.disabled:
            rmdir_tree(self.dir)
