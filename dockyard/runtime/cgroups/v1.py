"""cgroup v1 (also used on hybrid hosts): one directory per mounted hierarchy."""

from __future__ import annotations

import errno
import os
import time

from dockyard.errors import Unsupported
from dockyard.runtime.cgroups import (
    CgroupManager,
    _own_cgroup,
    keyed,
    pids_in,
    read,
    read_int,
    rmdir_tree,
    wants_limits,
    write,
)

# v1 reports "unlimited" as the largest page-aligned signed 64-bit value.
_UNLIMITED_FLOOR = 1 << 62


def _unlimited(v: int | None) -> int | None:
    return None if v is None or v < 0 or v >= _UNLIMITED_FLOOR else v


class V1Manager(CgroupManager):
    version = "v1"

    def __init__(self, path: str, container_id: str, rootless: bool = False, *,
                 mounts: dict[str, str], unified: str | None = None) -> None:
        super().__init__(path, container_id, rootless)
        self.mounts = dict(mounts)
        for ctrl, mnt in self.mounts.items():
            rel = path if path.startswith("/") else os.path.join(_own_cgroup(ctrl), path)
            self.paths[ctrl] = os.path.normpath(mnt + "/" + rel.lstrip("/"))
        if unified:
            # Hybrid host: like runc, also place the container in the (controller-less) unified
            # hierarchy, so /proc/PID/cgroup's "0::" line and cgroup-v2 tools see the container.
            rel = path if path.startswith("/") else os.path.join(_own_cgroup(None), path)
            self.paths[""] = os.path.normpath(unified + "/" + rel.lstrip("/"))

    # -- helpers --------------------------------------------------------------------------------

    def _dirs(self) -> list[str]:
        return sorted(set(self.paths.values()))

    def _dir(self, ctrl: str, feature: str) -> str:
        try:
            return self.paths[ctrl]
        except KeyError:
            raise Unsupported(f"cgroup controller {ctrl!r} is not available on this host (needed for {feature})") \
                from None

    def _has_file(self, ctrl: str, name: str) -> bool:
        mnt = self.mounts.get(ctrl)
        return mnt is not None and os.path.exists(os.path.join(mnt, name))

    def _check(self, resources: dict, warnings: list[str]) -> None:
        """Refuse, before touching anything, a request this host cannot enforce."""
        mem = resources.get("memory") or {}
        if any(mem.get(k) for k in ("limit", "reservation", "swap", "disableOOMKiller", "kernelTCP")) \
                or mem.get("swappiness") is not None:
            self._dir("memory", "memory limits")
        cpu = resources.get("cpu") or {}
        if any(cpu.get(k) for k in ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod",
                                    "idle")):
            self._dir("cpu", "CPU shares/quota")
        for key, fname in (("burst", "cpu.cfs_burst_us"), ("idle", "cpu.idle"),
                           ("realtimeRuntime", "cpu.rt_runtime_us"), ("realtimePeriod", "cpu.rt_period_us")):
            if cpu.get(key) and not self._has_file("cpu", fname):
                raise Unsupported(f"cpu.{key} is not supported by this kernel (no {fname})")
        if cpu.get("cpus") or cpu.get("mems"):
            self._dir("cpuset", "cpuset cpus/mems")
        if (resources.get("pids") or {}).get("limit"):
            self._dir("pids", "pids.limit")
        blkio = resources.get("blockIO") or {}
        if any(blkio.get(k) for k in blkio):
            self._dir("blkio", "blockIO limits")
            if blkio.get("weight") and not (self._has_file("blkio", "blkio.weight")
                                            or self._has_file("blkio", "blkio.bfq.weight")):
                raise Unsupported("blockIO.weight is not supported on this host "
                                  "(the blkio controller has no weight file; the CFQ/BFQ scheduler is not in use)")
        if resources.get("hugepageLimits"):
            self._dir("hugetlb", "hugepage limits")
        net = resources.get("network") or {}
        if net.get("classID"):
            self._dir("net_cls", "network.classID")
        if net.get("priorities"):
            self._dir("net_prio", "network.priorities")
        if resources.get("unified"):
            raise Unsupported("linux.resources.unified needs cgroup v2; this host uses cgroup v1")
        if resources.get("devices") and "devices" not in self.paths:
            warnings.append("the devices cgroup controller is not available: device access rules not enforced")
        if mem.get("swap") and not self._has_file("memory", "memory.memsw.limit_in_bytes"):
            warnings.append("your kernel does not support swap limit capabilities: memory swap limit discarded")
        if mem.get("kernel"):
            warnings.append("kernel memory limits are deprecated and ignored")

    def _delegated(self) -> bool:
        for d in self._dirs():
            probe = d
            while not os.path.exists(probe):
                probe = os.path.dirname(probe)
            if not os.access(probe, os.W_OK):
                return False
        return True

    def _mkdirs(self) -> list[str]:
        created = []
        for d in self._dirs():
            if not os.path.isdir(d):
                os.makedirs(d)
                created.append(d)
        if "cpuset" in self.paths:
            self._init_cpuset(self.paths["cpuset"])
        return created

    def _init_cpuset(self, leaf: str) -> None:
        # A new v1 cpuset has empty cpus/mems and refuses tasks until they are set: copy each level's
        # value from its parent, top down.
        mnt = self.mounts["cpuset"]
        levels = []
        d = leaf
        while d != mnt and d.startswith(mnt):
            levels.append(d)
            d = os.path.dirname(d)
        for d in reversed(levels):
            parent = os.path.dirname(d)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if not read(os.path.join(d, f)):
                    write(os.path.join(d, f), read(os.path.join(parent, f)))

    # -- resources ------------------------------------------------------------------------------

    def _apply(self, resources: dict, warnings: list[str]) -> None:
        mem = resources.get("memory") or {}
        if mem:
            self._set_memory(mem)
        cpu = resources.get("cpu") or {}
        if cpu:
            self._set_cpu(cpu)
        pids = resources.get("pids") or {}
        if pids.get("limit"):
            limit = int(pids["limit"])
            write(os.path.join(self._dir("pids", "pids.limit"), "pids.max"), limit if limit > 0 else "max")
        blkio = resources.get("blockIO") or {}
        if any(blkio.get(k) for k in blkio):
            self._set_blkio(blkio, warnings)
        for hp in resources.get("hugepageLimits") or []:
            write(os.path.join(self._dir("hugetlb", "hugepage limits"),
                               f"hugetlb.{hp['pageSize']}.limit_in_bytes"), int(hp["limit"]))
        net = resources.get("network") or {}
        if net.get("classID"):
            write(os.path.join(self.paths["net_cls"], "net_cls.classid"), int(net["classID"]))
        for prio in net.get("priorities") or []:
            write(os.path.join(self.paths["net_prio"], "net_prio.ifpriomap"), f"{prio['name']} {int(prio['priority'])}")
        if resources.get("devices") and "devices" in self.paths:
            self._set_devices(resources["devices"])

    def _set_memory(self, mem: dict) -> None:
        d = self.paths["memory"]
        limit = int(mem.get("limit") or 0)
        swap = int(mem.get("swap") or 0)
        has_swap = os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes"))
        if limit == -1 and swap == 0:
            swap = -1  # unlimited memory means unlimited memory+swap, as runc does
        if not has_swap:
            swap = 0
        mem_f, swap_f = os.path.join(d, "memory.limit_in_bytes"), os.path.join(d, "memory.memsw.limit_in_bytes")
        if limit and swap:
            # The kernel insists memory <= memory+swap at every step, so the order depends on the direction.
            cur = int(read(mem_f))
            if swap == -1 or cur < swap:
                write(swap_f, swap)
                write(mem_f, limit)
            else:
                write(mem_f, limit)
                write(swap_f, swap)
        else:
            if limit:
                write(mem_f, limit)
            if swap:
                write(swap_f, swap)
        if mem.get("reservation"):
            write(os.path.join(d, "memory.soft_limit_in_bytes"), int(mem["reservation"]))
        if mem.get("kernelTCP"):
            write(os.path.join(d, "memory.kmem.tcp.limit_in_bytes"), int(mem["kernelTCP"]))
        if mem.get("swappiness") is not None and int(mem["swappiness"]) >= 0:
            write(os.path.join(d, "memory.swappiness"), int(mem["swappiness"]))
        if mem.get("disableOOMKiller"):
            write(os.path.join(d, "memory.oom_control"), 1)

    def _set_cpu(self, cpu: dict) -> None:
        if cpu.get("cpus"):
            write(os.path.join(self.paths["cpuset"], "cpuset.cpus"), cpu["cpus"])
        if cpu.get("mems"):
            write(os.path.join(self.paths["cpuset"], "cpuset.mems"), cpu["mems"])
        if not any(cpu.get(k) for k in ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod",
                                        "idle")):
            return
        d = self.paths["cpu"]
        if cpu.get("shares"):
            write(os.path.join(d, "cpu.shares"), int(cpu["shares"]))
            got = int(read(os.path.join(d, "cpu.shares")))
            if got != int(cpu["shares"]):
                raise Unsupported(f"cpu.shares {cpu['shares']} is out of range; the kernel allows {got} at most"
                                  if got < int(cpu["shares"]) else
                                  f"cpu.shares {cpu['shares']} is out of range; the kernel allows {got} at least")
        period, quota = int(cpu.get("period") or 0), int(cpu.get("quota") or 0)
        period_f, quota_f = os.path.join(d, "cpu.cfs_period_us"), os.path.join(d, "cpu.cfs_quota_us")
        if period and quota:
            try:
                write(period_f, period)
                write(quota_f, quota)
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                # The old quota did not fit the new period (or vice versa): the other order works.
                write(quota_f, quota)
                write(period_f, period)
        elif period:
            write(period_f, period)
        elif quota:
            write(quota_f, quota)
        if cpu.get("burst"):
            write(os.path.join(d, "cpu.cfs_burst_us"), int(cpu["burst"]))
        if cpu.get("realtimePeriod"):
            write(os.path.join(d, "cpu.rt_period_us"), int(cpu["realtimePeriod"]))
        if cpu.get("realtimeRuntime"):
            write(os.path.join(d, "cpu.rt_runtime_us"), int(cpu["realtimeRuntime"]))
        if cpu.get("idle"):
            write(os.path.join(d, "cpu.idle"), int(cpu["idle"]))

    def _set_blkio(self, blkio: dict, warnings: list[str]) -> None:
        d = self.paths["blkio"]
        prefix = "blkio." if os.path.exists(os.path.join(d, "blkio.weight")) else "blkio.bfq."
        if blkio.get("weight"):
            write(os.path.join(d, prefix + "weight"), int(blkio["weight"]))
        if blkio.get("leafWeight"):
            if os.path.exists(os.path.join(d, "blkio.leaf_weight")):
                write(os.path.join(d, "blkio.leaf_weight"), int(blkio["leafWeight"]))
            else:
                warnings.append("blockIO.leafWeight is not supported by this kernel; ignored")
        for wd in blkio.get("weightDevice") or []:
            if wd.get("weight"):
                write(os.path.join(d, prefix + "weight_device"), f"{wd['major']}:{wd['minor']} {int(wd['weight'])}")
        for key, fname in (("throttleReadBpsDevice", "read_bps_device"), ("throttleWriteBpsDevice", "write_bps_device"),
                           ("throttleReadIOPSDevice", "read_iops_device"),
                           ("throttleWriteIOPSDevice", "write_iops_device")):
            for td in blkio.get(key) or []:
                write(os.path.join(d, "blkio.throttle." + fname), f"{td['major']}:{td['minor']} {int(td['rate'])}")

    def _set_devices(self, rules: list[dict]) -> None:
        d = self.paths["devices"]
        for rule in rules:
            typ = rule.get("type") or "a"
            major = "*" if rule.get("major") in (None, -1) else int(rule["major"])
            minor = "*" if rule.get("minor") in (None, -1) else int(rule["minor"])
            access = rule.get("access") or "rwm"
            entry = "a" if typ == "a" and major == "*" and minor == "*" else f"{typ} {major}:{minor} {access}"
            write(os.path.join(d, "devices.allow" if rule.get("allow") else "devices.deny"), entry)

    # -- the interface --------------------------------------------------------------------------

    def create(self, resources: dict | None = None) -> list[str]:
        warnings: list[str] = []
        resources = resources or {}
        if self.rootless and not self._delegated():
            if wants_limits(resources):
                raise Unsupported("rootless containers cannot set resource limits on cgroup v1 "
                                  "(the cgroup hierarchies are not writable by this user)")
            self.disabled = True
            return ["cgroup v1 is not delegated to this user: running without a cgroup, resource limits unavailable"]
        self._check(resources, warnings)
        created = self._mkdirs()
        try:
            self._apply(resources, warnings)
        except BaseException:
            for d in created:
                rmdir_tree(d, timeout=1.0)
            raise
        return warnings

    def update(self, resources: dict) -> list[str]:
        if self.disabled:
            if wants_limits(resources):
                raise Unsupported("this container runs without a cgroup; its limits cannot be updated")
            return []
        warnings: list[str] = []
        self._check(resources, warnings)
        self._apply(resources, warnings)
        return warnings

    def add(self, pid: int) -> None:
        if self.disabled:
            return
        for d in self._dirs():
            write(os.path.join(d, "cgroup.procs"), pid)

    def self_attach(self) -> tuple[list[str], str | None] | None:
        # Writing "0" (the writer itself) to a v1 `tasks` file moves one thread, which the kernel does
        # without the global threadgroup lock (so without its grace period); the unified directory
        # of a hybrid host is joined by clone3 instead.
        if self.disabled:
            return [], None
        unified = self.paths.get("")
        return [os.path.join(d, "tasks") for d in self._dirs() if d != unified], unified

    def _freezer(self) -> str:
        return os.path.join(self._dir("freezer", "pause/unpause"), "freezer.state")

    def freeze(self) -> None:
        f = self._freezer()
        deadline = time.monotonic() + 30
        while True:
            # Writing FROZEN again re-tries processes that were mid-fork the last time.
            write(f, "FROZEN")
            if read(f) == "FROZEN":
                return
            if time.monotonic() > deadline:
                write(f, "THAWED")
                raise OSError(errno.EBUSY, f"cgroup {os.path.dirname(f)} did not freeze within 30s")
            time.sleep(0.01)

    def thaw(self) -> None:
        write(self._freezer(), "THAWED")

    def freezer_state(self) -> str:
        if self.disabled or not os.path.isdir(self.paths.get("freezer", "")):
            return "THAWED"
        return read(self._freezer())

    def pids(self) -> list[int]:
        if self.disabled:
            return []
        for ctrl in ("pids", "freezer", "memory", "cpu"):
            if ctrl in self.paths and os.path.isdir(self.paths[ctrl]):
                return pids_in(self.paths[ctrl])
        dirs = [d for d in self._dirs() if os.path.isdir(d)]
        return pids_in(dirs[0]) if dirs else []

    def oom_kill_count(self) -> int:
        if self.disabled or "memory" not in self.paths:
            return 0
        return keyed(os.path.join(self.paths["memory"], "memory.oom_control")).get("oom_kill", 0)

    def stats(self) -> dict:
        out: dict = {"memory": {"usage": None, "limit": None, "max_usage": None},
                     "cpu": {"usage_ns": None}, "pids": {"current": None, "limit": None}}
        if self.disabled:
            return out
        if "memory" in self.paths:
            d = self.paths["memory"]
            stat = keyed(os.path.join(d, "memory.stat"))
            out["memory"] = {"usage": read_int(os.path.join(d, "memory.usage_in_bytes")),
                             "limit": _unlimited(read_int(os.path.join(d, "memory.limit_in_bytes"))),
                             "max_usage": read_int(os.path.join(d, "memory.max_usage_in_bytes")),
                             "cache": stat.get("total_cache", stat.get("cache")),
                             "oom_kill": self.oom_kill_count()}
        if "cpuacct" in self.paths:
            out["cpu"] = {"usage_ns": read_int(os.path.join(self.paths["cpuacct"], "cpuacct.usage"))}
        if "pids" in self.paths:
            d = self.paths["pids"]
            out["pids"] = {"current": read_int(os.path.join(d, "pids.current")),
                           "limit": read_int(os.path.join(d, "pids.max"))}
        return out

    def destroy(self) -> None:
        if self.disabled:
            return
        for d in self._dirs():
            rmdir_tree(d)
