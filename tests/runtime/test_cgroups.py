"""cgroup managers against the real kernel: limits read back from cgroupfs, OOM kills, fork limits,
freezing.  On this project's hybrid hosts the v1 manager is what ``manager()`` returns; the v2 manager
is exercised on the (controller-less) unified mount as far as it allows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from dockyard import host
from dockyard.errors import Conflict, InvalidArgument, Unsupported
from dockyard.runtime import cgroups
from dockyard.runtime.cgroups.v2 import V2Manager, swap_to_v2
from tests.helpers import BUSYBOX, REPO, unique_name, wait_for

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="creating cgroups needs root")
INFO = host.cgroup_info()


def read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def cpu_ticks(pid: int) -> int:
    """utime + stime: proof that a process ran, without a file it writes (on a disk mounted with
    `discard` every truncate of such a file waits on the device, so readers mostly saw it empty)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("State:"):
                return line.split()[1]
    return "?"


class Held:
    """A process that waits on stdin until it has been moved into the cgroup under test."""

    def __init__(self, args: list[str]) -> None:
        self.p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, start_new_session=True)

    def go(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("go\n")
        self.p.stdin.close()
        self.p.stdin = None  # lets communicate() collect the output later

    def stop(self) -> None:
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
        self.p.wait(timeout=30)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            if f is not None and not f.closed:
                f.close()


@pytest.fixture
def cg():
    """A fresh manager for this host with a unique cgroup below the test's own cgroup; always removed."""
    made: list[tuple[cgroups.CgroupManager, list[Held]]] = []

    def make(resources: dict | None = None, path: str | None = None) -> tuple[cgroups.CgroupManager, list[Held]]:
        name = unique_name("dytest")
        m = cgroups.manager(path or name, name)
        held: list[Held] = []
        made.append((m, held))
        return m, held

    yield make
    for m, held in made:
        try:
            for h in held:
                h.stop()
        finally:
            if m.exists():
                for pid in m.pids():  # only processes this test started end up in its cgroup
                    os.kill(pid, signal.SIGKILL)
                m.destroy()
        assert not m.exists()


# -- pure helpers ---------------------------------------------------------------------------------

def test_parse_memory_docker_syntax():
    assert cgroups.parse_memory("512m") == 512 << 20
    assert cgroups.parse_memory("1g") == 1 << 30
    assert cgroups.parse_memory("1.5G") == 3 << 29
    assert cgroups.parse_memory("64MiB") == 64 << 20
    assert cgroups.parse_memory("4096") == 4096
    assert cgroups.parse_memory("100kb") == 102400
    assert cgroups.parse_memory("-1") == -1
    for bad in ("", "lots", "12x", "-5m", "1..2m"):
        with pytest.raises(InvalidArgument, match="invalid memory size"):
            cgroups.parse_memory(bad)


def test_cpus_to_quota():
    assert cgroups.cpus_to_quota(1.5) == (150000, 100000)
    assert cgroups.cpus_to_quota("0.5") == (50000, 100000)
    assert cgroups.cpus_to_quota(0.01) == (1000, 100000)
    for bad in ("abc", 0, -1, 100000):
        with pytest.raises(InvalidArgument, match="--cpus"):
            cgroups.cpus_to_quota(bad)


def test_share_and_weight_conversions_match_runc():
    assert cgroups.shares_to_weight(1024) == 39  # Docker's default shares
    assert cgroups.shares_to_weight(2) == 1 and cgroups.shares_to_weight(262144) == 10000
    assert cgroups.shares_to_weight(0) == 0
    assert cgroups.weight_to_shares(1) == 2 and cgroups.weight_to_shares(10000) == 262144
    assert cgroups.blkio_weight_to_io_weight(10) == 1 and cgroups.blkio_weight_to_io_weight(1000) == 10000
    assert swap_to_v2(512 << 20, 256 << 20) == 256 << 20
    assert swap_to_v2(-1, 256 << 20) == -1 and swap_to_v2(0, -1) == -1
    with pytest.raises(InvalidArgument):
        swap_to_v2(100, 200)


def test_cgroups_path_semantics():
    assert cgroups.resolve_path(None, "abc") == "/dockyard/abc"
    assert cgroups.resolve_path("/foo/bar", "abc") == "/foo/bar"
    assert cgroups.resolve_path("foo/bar", "abc") == "foo/bar"
    assert cgroups.resolve_path("system.slice:docker:abc", "abc") == "/system.slice/docker-abc.scope"
    assert cgroups.resolve_path("machine-web.slice:dy:1", "x") == "/machine.slice/machine-web.slice/dy-1.scope"
    assert cgroups.resolve_path(":dy:1", "x") == "/system.slice/dy-1.scope"
    assert cgroups.resolve_path("-.slice:dy:1", "x") == "/dy-1.scope"
    for bad in ("a:b", "nope:dy:1", "../../etc"):
        with pytest.raises(InvalidArgument):
            cgroups.resolve_path(bad, "x")


def test_manager_follows_the_host_layout():
    m = cgroups.manager(None, "abc")
    if INFO.version in ("v1", "hybrid"):
        assert m.version == "v1"
        assert m.paths["memory"] == os.path.join(INFO.v1_mounts["memory"], "dockyard/abc")
    elif INFO.version == "v2":
        assert m.version == "v2" and m.paths[""] == os.path.join(INFO.v2_mount or "", "dockyard/abc")


# -- the host's manager ---------------------------------------------------------------------------

@root_only
def test_limits_are_written_to_the_kernel_and_destroy_removes_everything(cg):
    m, _ = cg()
    resources = {"memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
                 "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
                 "pids": {"limit": 42}}
    m.create(resources)
    assert m.exists()
    if m.version == "v1":
        mem, cpu = m.paths["memory"], m.paths["cpu"]
        assert int(read(f"{mem}/memory.limit_in_bytes")) == 64 << 20
        assert int(read(f"{mem}/memory.soft_limit_in_bytes")) == 32 << 20
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            assert int(read(f"{mem}/memory.memsw.limit_in_bytes")) == 96 << 20
        assert read(f"{cpu}/cpu.cfs_quota_us") == "50000" and read(f"{cpu}/cpu.cfs_period_us") == "100000"
        assert read(f"{cpu}/cpu.shares") == "512"
        assert read(f"{m.paths['pids']}/pids.max") == "42"
        assert read(f"{m.paths['cpuset']}/cpuset.cpus") == "0"
    else:
        d = m.paths[""]
        assert int(read(f"{d}/memory.max")) == 64 << 20 and int(read(f"{d}/memory.low")) == 32 << 20
        assert int(read(f"{d}/memory.swap.max")) == 32 << 20
        assert read(f"{d}/cpu.max") == "50000 100000" and read(f"{d}/cpu.weight") == "20"
        assert read(f"{d}/pids.max") == "42"
    # update (docker update) changes a live cgroup
    m.update({"memory": {"limit": 128 << 20, "swap": 256 << 20}, "pids": {"limit": -1}})
    st = m.stats()
    assert st["memory"]["limit"] == 128 << 20 and st["pids"]["limit"] is None
    paths = list(m.paths.values())
    m.destroy()
    assert not m.exists() and not any(os.path.exists(p) for p in paths)


@root_only
def test_process_joins_and_stats_count_it(cg):
    m, held = cg()
    m.create({"memory": {"limit": 256 << 20}})
    h = Held([sys.executable, "-c",
              "import sys, time; sys.stdin.readline(); b = bytearray(32 << 20); print('ready', flush=True); "
              "sum(range(3_000_000)); time.sleep(60)"])
    held.append(h)
    m.add(h.p.pid)
    h.go()
    assert h.p.stdout is not None and h.p.stdout.readline().strip() == "ready"
    assert h.p.pid in m.pids()
    if INFO.version == "hybrid":
        # like runc, the container is also placed in the unified hierarchy
        unified = read(f"/proc/{h.p.pid}/cgroup").splitlines()[-1]
        assert unified.startswith("0::") and unified.endswith("/" + m.container_id)
    st = m.stats()
    assert st["memory"]["usage"] >= 32 << 20
    assert st["memory"]["limit"] == 256 << 20
    assert st["cpu"]["usage_ns"] > 0
    if st["pids"]["current"] is not None:
        assert st["pids"]["current"] >= 1


@root_only
def test_memory_limit_oom_kills_and_is_counted(cg):
    m, held = cg()
    m.create({"memory": {"limit": 32 << 20, "swap": 32 << 20}})  # memory+swap = memory: no swap escape
    assert m.oom_kill_count() == 0
    h = Held([sys.executable, "-c", "import sys; sys.stdin.readline(); x = bytearray(256 << 20); print('survived')"])
    held.append(h)
    m.add(h.p.pid)
    h.go()
    out, _ = h.p.communicate(timeout=60)
    assert h.p.returncode == -signal.SIGKILL and "survived" not in out
    assert wait_for(lambda: m.oom_kill_count() == 1, timeout=10, what="oom_kill counter")


@root_only
def test_pids_limit_makes_fork_fail(cg):
    m, held = cg()
    m.create({"pids": {"limit": 4}})
    h = Held([BUSYBOX, "sh", "-c", "read go; for i in 1 2 3 4 5 6 7 8; do sleep 30 >/dev/null 2>&1 & p=\"$p $!\"; done; "
              "kill $p; wait; exit 0"])
    held.append(h)
    m.add(h.p.pid)
    h.go()
    out, err = h.p.communicate(timeout=60)
    assert "can't fork" in err and "Resource temporarily unavailable" in err, err
    if m.version == "v1":
        assert read(f"{m.paths['pids']}/pids.max") == "4"


@root_only
def test_freeze_and_thaw(cg):
    m, held = cg()
    m.create(None)
    h = Held([BUSYBOX, "sh", "-c", "read go; while :; do :; done"])
    held.append(h)
    m.add(h.p.pid)
    h.go()
    wait_for(lambda: cpu_ticks(h.p.pid) > 0, timeout=30, what="the process to run")
    m.freeze()
    assert m.freezer_state() == "FROZEN"
    if m.version == "v1":
        assert proc_state(h.p.pid) == "D"  # the v1 freezer parks tasks in uninterruptible sleep
    time.sleep(0.05)
    frozen_at = cpu_ticks(h.p.pid)
    time.sleep(0.5)
    assert cpu_ticks(h.p.pid) == frozen_at, "a frozen process kept running"
    m.thaw()
    assert m.freezer_state() == "THAWED"
    wait_for(lambda: cpu_ticks(h.p.pid) != frozen_at, timeout=30, what="the process to run again")


@root_only
def test_missing_controller_is_one_clear_unsupported_line(cg):
    m, _ = cg()
    if m.version == "v1":
        candidates = [("hugetlb", {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]}),
                      ("net_cls", {"network": {"classID": 42}}), ("net_prio", {"network": {"priorities": [
                          {"name": "lo", "priority": 1}]}})]
        missing = [(c, r) for c, r in candidates if c not in INFO.v1_mounts]
    else:
        have = set(INFO.v2_controllers)
        missing = [(c, r) for c, r in (("memory", {"memory": {"limit": 1 << 24}}), ("pids", {"pids": {"limit": 5}}))
                   if c not in have]
    if not missing:
        pytest.skip("every controller this test knows is available here")
    ctrl, res = missing[0]
    with pytest.raises(Unsupported) as e:
        m.create(res)
    msg = str(e.value)
    assert "\n" not in msg and f"'{ctrl}'" in msg and "not available" in msg
    assert not m.exists(), "nothing may be left half-created"


@root_only
def test_blkio_weight_unsupported_or_applied(cg):
    m, _ = cg()
    try:
        m.create({"blockIO": {"weight": 500}})
    except Unsupported as e:
        assert "blockIO.weight" in str(e) and "\n" not in str(e)
        assert not m.exists()
        return
    if m.version == "v1":
        d = m.paths["blkio"]
        f = "blkio.weight" if os.path.exists(f"{d}/blkio.weight") else "blkio.bfq.weight"
        assert "500" in read(f"{d}/{f}")


@root_only
def test_destroy_waits_for_tasks_but_never_kills(cg):
    m, held = cg()
    m.create(None)
    h = Held([BUSYBOX, "sh", "-c", "read go; sleep 60"])
    held.append(h)
    m.add(h.p.pid)
    with pytest.raises(Conflict, match="processes are still in it"):
        cgroups.rmdir_tree(next(iter(m.paths.values())), timeout=0.5)
    assert h.p.poll() is None
    h.stop()
    m.destroy()
    assert not m.exists()


@root_only
def test_absolute_default_path_is_created_and_removed():
    cid = unique_name("dytest")
    m = cgroups.manager(None, cid)
    try:
        m.create(None)
        assert all(p.endswith(f"/dockyard/{cid}") for p in m.paths.values())
        assert m.exists()
    finally:
        m.destroy()
        for p in set(m.paths.values()):
            try:  # the shared /dockyard parent stays while other containers use it
                os.rmdir(os.path.dirname(p))
            except OSError:
                pass
    assert not m.exists()


def _run_as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    pre = ("import os\nfrom dockyard.runtime import cgroups\nfrom dockyard.errors import Unsupported\n"
           "import dockyard.host, dockyard.runtime.cgroups.v1, dockyard.runtime.cgroups.v2\n"
           "os.setgroups([]); os.setgid(65534); os.setuid(65534)\n")
    return subprocess.run([sys.executable, "-c", pre + code], capture_output=True, text=True, timeout=60, env=env)


@root_only
def test_rootless_without_delegation_warns_or_refuses_limits():
    p = _run_as_nobody("""
m = cgroups.manager(None, "rootless-probe", rootless=True)
w = m.create(None)
print("disabled", m.disabled, w)
m.add(os.getpid()); m.destroy()
try:
    cgroups.manager(None, "rootless-probe", rootless=True).create({"memory": {"limit": 1 << 26}})
except Unsupported as e:
    print("unsupported:", e)
""")
    assert p.returncode == 0, p.stderr
    assert "disabled True" in p.stdout and "running without a cgroup" in p.stdout
    assert "unsupported:" in p.stdout and "rootless" in p.stdout


# -- cgroup v2 ------------------------------------------------------------------------------------

V2_MOUNT = INFO.v2_mount


@pytest.fixture
def v2():
    if V2_MOUNT is None or os.geteuid() != 0:
        pytest.skip("no cgroup2 mount to test on")
    made: list[tuple[V2Manager, list[Held]]] = []

    def make(name: str | None = None, rootless: bool = False) -> tuple[V2Manager, list[Held]]:
        n = name or "/" + unique_name("dytest")
        m = V2Manager(n, n.strip("/"), rootless, mount=V2_MOUNT)
        held: list[Held] = []
        made.append((m, held))
        return m, held

    before = read(os.path.join(V2_MOUNT, "cgroup.subtree_control")).split()
    yield make
    for m, held in made:
        try:
            for h in held:
                h.stop()
        finally:
            m.destroy()
        assert not m.exists()
    # leave the host's root delegation as it was
    for ctrl in set(read(os.path.join(V2_MOUNT, "cgroup.subtree_control")).split()) - set(before):
        try:
            with open(os.path.join(V2_MOUNT, "cgroup.subtree_control"), "w") as f:
                f.write(f"-{ctrl}")
        except OSError:
            pass


def test_v2_lifecycle_join_freeze_thaw_destroy(v2):
    m, held = v2()
    m.create(None)
    assert os.path.isdir(m.dir)
    h = Held([BUSYBOX, "sh", "-c", "read go; while :; do :; done"])
    held.append(h)
    m.add(h.p.pid)
    h.go()
    assert m.pids() == [h.p.pid]
    assert read(f"/proc/{h.p.pid}/cgroup").splitlines()[-1] == "0::" + m.dir[len(V2_MOUNT):]
    wait_for(lambda: cpu_ticks(h.p.pid) > 0, timeout=30, what="the process to run")
    m.freeze()
    assert m.freezer_state() == "FROZEN"
    time.sleep(0.05)
    frozen_at = cpu_ticks(h.p.pid)
    time.sleep(0.5)
    assert cpu_ticks(h.p.pid) == frozen_at, "a frozen process kept running"
    m.thaw()
    assert m.freezer_state() == "THAWED"
    wait_for(lambda: cpu_ticks(h.p.pid) != frozen_at, timeout=30, what="the process to run again")
    assert m.stats()["cpu"]["usage_ns"] > 0
    h.stop()
    m.destroy()
    assert not os.path.exists(m.dir)


def test_v2_missing_controllers_are_unsupported(v2):
    available = set(read(os.path.join(V2_MOUNT, "cgroup.controllers")).split())
    m, _ = v2()
    for ctrl, res in (("memory", {"memory": {"limit": 1 << 24}}), ("pids", {"pids": {"limit": 5}}),
                      ("cpu", {"cpu": {"quota": 1000, "period": 100000}})):
        if ctrl in available:
            continue
        with pytest.raises(Unsupported, match=f"cgroup controller '{ctrl}' is not available"):
            m.create(res)
        assert not os.path.exists(m.dir)


def test_v2_enables_controllers_down_the_chain(v2):
    available = set(read(os.path.join(V2_MOUNT, "cgroup.controllers")).split())
    if "hugetlb" not in available or not os.path.isdir("/sys/kernel/mm/hugepages/hugepages-2048kB"):
        pytest.skip("needs the hugetlb controller on the cgroup2 mount")
    parent = "/" + unique_name("dytest")
    m, _ = v2(parent + "/inner")
    try:
        m.create({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}]})
        assert "hugetlb" in read(os.path.join(V2_MOUNT, parent.strip("/"), "cgroup.subtree_control")).split()
        assert read(os.path.join(m.dir, "hugetlb.2MB.max")) == str(4 << 21)
    finally:
        m.destroy()
        os.rmdir(os.path.join(V2_MOUNT, parent.strip("/")))


def test_v2_unified_keys_are_written(v2):
    m, _ = v2()
    m.create({"unified": {"cgroup.max.descendants": "3"}})
    assert read(os.path.join(m.dir, "cgroup.max.descendants")) == "3"
    with pytest.raises(InvalidArgument):
        m.update({"unified": {"../escape": "1"}})


def test_v2_rootless_uses_a_delegated_subtree(v2):
    m, _ = v2()
    m.create(None)
    for f in ("", "cgroup.procs", "cgroup.subtree_control"):
        os.chown(os.path.join(m.dir, f), 65534, 65534)
    p = _run_as_nobody(f"""
from dockyard.runtime.cgroups.v2 import V2Manager
m = V2Manager({m.path + "/ctr"!r}, "ctr", True, mount={V2_MOUNT!r})
print(m.create(None), m.disabled, os.path.isdir(m.dir))
m.destroy()
print(os.path.isdir(m.dir))
""")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split("\n")[:2] == ["[] False True", "False"]


DEVICE_RULES = [{"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # /dev/null
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}]     # /dev/zero, read only
DEVICE_SCRIPT = ("read go; cat /dev/null && echo null-ok; head -c1 /dev/zero | wc -c; "
                 "echo x > /dev/zero; echo write-zero=$?; head -c1 /dev/urandom; echo urandom=$?")


def _check_device_rules(m: cgroups.CgroupManager, held: list[Held]) -> None:
    h = Held([BUSYBOX, "sh", "-c", DEVICE_SCRIPT])
    held.append(h)
    m.add(h.p.pid)
    h.go()
    out, err = h.p.communicate(timeout=30)
    assert out.split() == ["null-ok", "1", "write-zero=1", "urandom=1"], out + err
    assert "Operation not permitted" in err


@root_only
def test_device_rules_are_enforced(cg):
    m, held = cg()
    if m.version == "v1" and "devices" not in m.paths:
        pytest.skip("no devices controller")
    m.create({"devices": DEVICE_RULES})
    _check_device_rules(m, held)


def test_v2_device_rules_are_enforced_by_ebpf(v2):
    # cgroup BPF programs act on the unified hierarchy even on hybrid hosts
    m, held = v2()
    m.create({"devices": DEVICE_RULES})
    _check_device_rules(m, held)


def test_device_program_rejects_bad_rules():
    from dockyard.runtime.cgroups import devices

    with pytest.raises(InvalidArgument, match="device rule type 'x'"):
        devices.program([{"allow": True, "type": "x"}])
    with pytest.raises(InvalidArgument, match="device rule access 'rwz'"):
        devices.program([{"allow": True, "type": "c", "access": "rwz"}])
    # a leading deny-all ends the program: nothing after it would be reachable
    assert len(devices.program([{"allow": False, "access": "rwm"}])) == 9 * 8
