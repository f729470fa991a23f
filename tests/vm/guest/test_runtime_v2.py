"""`dockyard runtime` on a pure cgroup v2 host, against runc and crun with the same config.json.

Runs inside the VM (see tests/vm/conftest.py).  Each test runs one bundle under every runtime and
checks what the kernel shows: the cgroup files as the container sees them (cgroup namespace), the
cgroup the runtime placed the process in, OOM kills, fork failures, freezing."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.helpers import REPO, make_busybox_rootfs, unique_name, wait_for
from tests.runtime.oci import make_bundle

RUNTIMES = ("dockyard", "runc", "crun")
CG = "/sys/fs/cgroup"
MB = 1 << 20


def _cmd(which: str, root: Path) -> list[str]:
    if which == "dockyard":
        return [sys.executable, "-m", "dockyard", "runtime", "--root", str(root)]
    return [which, "--root", str(root)]


class Runtime:
    """One OCI runtime with a private state root; deletes every container it made."""

    def __init__(self, which: str, root: Path) -> None:
        self.which, self.root, self.ids = which, root, []
        self.env = dict(os.environ, PYTHONPATH=str(REPO))

    def __call__(self, *args: str, input: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(_cmd(self.which, self.root) + list(args), capture_output=True, text=True,
                              input=input, timeout=timeout, env=self.env)

    def new_id(self) -> str:
        cid = unique_name(self.which[:2], 24)
        self.ids.append(cid)
        return cid

    def run(self, bundle_dir: Path, cid: str | None = None) -> subprocess.CompletedProcess[str]:
        return self("run", "-b", str(bundle_dir), cid or self.new_id())

    def create_started(self, bundle_dir: Path) -> str:
        """create + start; the container's stdio goes to files, as a pipe would outlive `create`."""
        cid = self.new_id()
        with open(bundle_dir / "out", "w") as out, open(bundle_dir / "err", "w+") as err:
            p = subprocess.run(_cmd(self.which, self.root) + ["create", "-b", str(bundle_dir), cid],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=240, env=self.env)
            err.seek(0)
            assert p.returncode == 0, f"{self.which} create: {err.read()}"
        p = self("start", cid)
        assert p.returncode == 0, f"{self.which} start: {p.stderr}"
        return cid

    def state(self, cid: str) -> dict:
        p = self("state", cid)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture(params=RUNTIMES)
def rt(request, tmp_path, cgroup_dirs):  # after cgroup_dirs: its containers go before their parents
    r = Runtime(request.param, tmp_path / f"{request.param}-state")
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def bundle(tmp_path, rootfs):
    """bundle(args, resources=None, cgroups_path=None, cgroupns=True) -> the bundle directory."""

    def make(args: list[str], resources: dict | None = None, cgroups_path: str | None = None,
             cgroupns: bool = True) -> Path:
        b = make_bundle(tmp_path, rootfs, args)
        linux = b.config["linux"]
        if cgroupns:
            linux["namespaces"].append({"type": "cgroup"})
        if resources:
            linux.setdefault("resources", {}).update(copy.deepcopy(resources))
        if cgroups_path:
            linux["cgroupsPath"] = cgroups_path
        b.write()
        return b.path

    return make


@pytest.fixture
def cgroup_dirs():
    """Parent cgroups a test names in cgroupsPath; removed afterwards (the runtime removes the leaf)."""
    made: list[str] = []
    yield made
    for d in sorted(made, key=len, reverse=True):
        try:
            os.rmdir(os.path.join(CG, d.strip("/")))
        except FileNotFoundError:
            pass


def _sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def _files(names: tuple[str, ...]) -> list[str]:
    return _sh(f'cd {CG} && for f in {" ".join(names)}; do echo "$f=$(cat $f 2>/dev/null || echo absent)"; done')


def _parse(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def _vda() -> tuple[int, int] | None:
    try:
        st = os.stat("/dev/vda")
    except FileNotFoundError:
        return None
    return os.major(st.st_rdev), os.minor(st.st_rdev)


# -- the tests ------------------------------------------------------------------------------------

def test_the_vm_is_a_pure_cgroup_v2_host():
    from dockyard import host
    from dockyard.runtime import cgroups

    info = host.cgroup_info()
    assert info.version == "v2" and info.v2_mount == CG
    assert {"cpu", "cpuset", "io", "memory", "pids"} <= set(info.v2_controllers)
    assert cgroups.manager(None, "probe").version == "v2"
    with open("/proc/self/cgroup") as f:
        assert f.read() == "0::/\n"


LIMITS = {"memory": {"limit": 64 * MB, "reservation": 32 * MB, "swap": 96 * MB},
          "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1", "mems": "0"},
          "pids": {"limit": 42}}
LIMIT_FILES = ("memory.max", "memory.low", "memory.swap.max", "cpu.max", "cpu.weight", "cpuset.cpus",
               "cpuset.mems", "pids.max")


def test_limits_are_the_ones_runc_writes(tmp_path, bundle, rootfs):
    """memory limit/reservation/swap, cpu shares/quota/period/cpus/mems, pids limit: one config.json,
    every runtime, the values the container reads from its own cgroup must be runc's."""
    seen: dict[str, dict[str, str]] = {}
    for which in RUNTIMES:
        r = Runtime(which, tmp_path / f"{which}-state")
        try:
            p = r.run(bundle(_files(LIMIT_FILES), LIMITS))
            assert p.returncode == 0, f"{which}: {p.stderr}"
            seen[which] = _parse(p.stdout)
        finally:
            r.cleanup()
    assert seen["runc"] == {"memory.max": str(64 * MB), "memory.low": str(32 * MB),
                            "memory.swap.max": str(32 * MB), "cpu.max": "50000 100000", "cpu.weight": "20",
                            "cpuset.cpus": "1", "cpuset.mems": "0", "pids.max": "42"}
    assert seen["dockyard"] == seen["runc"]
    assert seen["crun"] == seen["runc"]


MORE = {
    # memory+swap equal to memory: no swap at all, memory.swap.max 0 (docker run -m X --memory-swap X)
    "swap-off": ({"memory": {"limit": 48 * MB, "swap": 48 * MB}}, ("memory.max", "memory.swap.max")),
    "hugetlb": ({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MB}]}, ("hugetlb.2MB.max",)),
    "unified": ({"unified": {"memory.high": str(40 * MB), "pids.max": "17"}}, ("memory.high", "pids.max")),
    "idle": ({"cpu": {"idle": 1}}, ("cpu.idle",)),
}
# runc 1.1 (Debian 12) predates cpu.idle, which crun applies.
REFERENCE = {"idle": "crun"}


@pytest.mark.parametrize("case", sorted(MORE))
def test_more_limits_are_the_ones_runc_writes(case, tmp_path, bundle):
    res, files = MORE[case]
    seen: dict[str, dict[str, str] | str] = {}
    for which in RUNTIMES:
        r = Runtime(which, tmp_path / f"{which}-state")
        try:
            p = r.run(bundle(_files(files), res))
            seen[which] = _parse(p.stdout) if p.returncode == 0 else f"exit {p.returncode}: {p.stderr.strip()}"
        finally:
            r.cleanup()
    ref = REFERENCE.get(case, "runc")
    assert isinstance(seen[ref], dict), seen
    assert seen["dockyard"] == seen[ref], seen
    if ref == "runc":
        assert seen["crun"] == seen["runc"], seen


def test_cpu_burst(rt, bundle):
    if rt.which != "dockyard":
        pytest.skip(f"{rt.which} (Debian 12) ignores cpu.burst")
    res = {"cpu": {"quota": 50000, "period": 100000, "burst": 20000}}
    p = rt.run(bundle(_files(("cpu.max", "cpu.max.burst")), res))
    assert p.returncode == 0, p.stderr
    assert _parse(p.stdout) == {"cpu.max": "50000 100000", "cpu.max.burst": "20000"}


def test_unlimited_values_read_back_as_max(rt, bundle):
    res = {"memory": {"limit": -1, "swap": -1}, "cpu": {"quota": -1, "period": 250000}, "pids": {"limit": -1}}
    p = rt.run(bundle(_files(("memory.max", "memory.swap.max", "cpu.max", "pids.max")), res))
    assert p.returncode == 0, p.stderr
    assert _parse(p.stdout) == {"memory.max": "max", "memory.swap.max": "max", "cpu.max": "max 250000",
                                "pids.max": "max"}


@pytest.mark.parametrize("shares", [2, 1024, 262144])
def test_cpu_shares_become_runcs_weight(shares, tmp_path, bundle):
    weights = {}
    for which in ("dockyard", "runc"):
        r = Runtime(which, tmp_path / f"{which}-state")
        try:
            p = r.run(bundle(_files(("cpu.weight",)), {"cpu": {"shares": shares}}))
            assert p.returncode == 0, p.stderr
            weights[which] = _parse(p.stdout)["cpu.weight"]
        finally:
            r.cleanup()
    assert weights["dockyard"] == weights["runc"]


def test_io_limits_on_a_real_block_device(tmp_path, bundle):
    """blockIO weight and throttles land in io.bfq.weight / io.max, as runc puts them."""
    dev = _vda()
    if dev is None:
        pytest.skip("the VM has no /dev/vda")
    major, minor = dev
    res = {"blockIO": {"weight": 300,
                       "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": MB}],
                       "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 120}]}}
    seen = {}
    for which in ("dockyard", "runc"):
        r = Runtime(which, tmp_path / f"{which}-state")
        try:
            p = r.run(bundle(_files(("io.max", "io.bfq.weight", "io.weight")), res))
            assert p.returncode == 0, f"{which}: {p.stderr}"
            seen[which] = _parse(p.stdout)
        finally:
            r.cleanup()
    assert seen["dockyard"]["io.max"] == f"{major}:{minor} rbps={MB} wbps=max riops=max wiops=120"
    assert seen["dockyard"] == seen["runc"]


def test_memory_limit_oom_kills_and_memory_events_count_it(rt, bundle):
    """The process that allocates past memory.max is killed (137); memory.events counts the kill."""
    res = {"memory": {"limit": 32 * MB, "swap": 32 * MB}}
    p = rt.run(bundle(_sh(f"dd if=/dev/zero of=/dev/null bs={96 * MB} count=1; echo dd=$?; "
                          f"cat {CG}/memory.events"), res))
    assert p.returncode == 0, p.stderr
    assert "dd=137" in p.stdout, p.stdout
    events = dict(line.split() for line in p.stdout.splitlines() if line.count(" ") == 1)
    assert int(events["oom_kill"]) >= 1 and int(events["oom"]) >= 1


def test_oom_killed_init_is_exit_137(rt, bundle):
    p = rt.run(bundle(["dd", "if=/dev/zero", "of=/dev/null", f"bs={96 * MB}", "count=1"],
                      {"memory": {"limit": 32 * MB, "swap": 32 * MB}}))
    assert p.returncode == 137, (p.returncode, p.stderr)


def test_pids_limit_caps_a_fork_bomb(rt, bundle):
    # The bomb runs in a subshell: ash exits when a fork fails.  The rest reads with shell builtins,
    # as the cgroup may still be full.
    script = (f"(while :; do sleep 120 & done) 2>/dev/null; "
              f"read cur < {CG}/pids.current; read max < {CG}/pids.max; echo current=$cur; echo max=$max; "
              f"while read k v; do [ $k = max ] && echo refused=$v; done < {CG}/pids.events; kill -9 -1; wait")
    p = rt.run(bundle(_sh(script), {"pids": {"limit": 10}}))
    out = _parse(p.stdout)
    assert out.get("max") == "10", p.stdout + p.stderr
    # this shell and the sleeps the subshell started before its fork failed
    assert 8 <= int(out["current"]) <= 10 and int(out["refused"]) >= 1, p.stdout


@pytest.mark.parametrize("style", ["absolute", "relative", "systemd"])
def test_cgroups_path_places_the_container(style, rt, bundle, cgroup_dirs):
    """cgroupsPath /a/b is below the hierarchy root, a/b below the runtime's own cgroup (the root
    here), slice:prefix:name the systemd layout (dockyard maps it without systemd; runc and crun
    only accept it with their systemd driver)."""
    if style == "systemd" and rt.which != "dockyard":
        pytest.skip(f"{rt.which} takes slice:prefix:name only with its systemd cgroup driver")
    cid = rt.new_id()
    parent = f"dyvm{style}"  # no dash: in a slice name a dash means nesting
    cgroups_path, want = {"absolute": (f"/{parent}/{cid}", f"/{parent}/{cid}"),
                          "relative": (f"{parent}/{cid}", f"/{parent}/{cid}"),
                          "systemd": (f"{parent}.slice:dy:{cid}", f"/{parent}.slice/dy-{cid}.scope")}[style]
    cgroup_dirs.append(os.path.dirname(want))
    p = rt.run(bundle(["cat", "/proc/self/cgroup"], {"pids": {"limit": 50}}, cgroups_path, cgroupns=False), cid)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"0::{want}\n"
    assert not os.path.exists(CG + want), "delete must remove the container's cgroup"


def test_cgroup_namespace_shows_the_container_cgroup_as_root(rt, bundle):
    p = rt.run(bundle(_sh(f"cat /proc/self/cgroup; grep ' {CG} ' /proc/self/mountinfo; ls {CG}"), {}))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "0::/"
    assert " - cgroup2 " in lines[1]
    assert "memory.max" in lines and "cgroup.procs" in lines


def _host_cgroup(rt: Runtime, cid: str) -> str:
    pid = rt.state(cid)["pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        return CG + f.read().strip().split("::", 1)[1]


def test_update_changes_a_running_container(rt, bundle):
    cid = rt.create_started(bundle(["sleep", "600"], {"memory": {"limit": 64 * MB}, "pids": {"limit": 20}}))
    d = _host_cgroup(rt, cid)
    p = rt("update", "--memory", str(128 * MB), "--memory-swap", str(256 * MB), "--pids-limit", "50",
           "--cpu-quota", "20000", "--cpu-period", "100000", "--cpu-share", "1024", "--cpuset-cpus", "0", cid)
    assert p.returncode == 0, p.stderr
    got = {f: open(f"{d}/{f}").read().strip() for f in
           ("memory.max", "memory.swap.max", "pids.max", "cpu.max", "cpu.weight", "cpuset.cpus")}
    assert got == {"memory.max": str(128 * MB), "memory.swap.max": str(128 * MB), "pids.max": "50",
                   "cpu.max": "20000 100000", "cpu.weight": "39", "cpuset.cpus": "0"}
    p = rt("update", "-r", "-", cid, input=json.dumps({"memory": {"reservation": 16 * MB}, "pids": {"limit": -1}}))
    assert p.returncode == 0, p.stderr
    assert open(f"{d}/memory.low").read().strip() == str(16 * MB)
    assert open(f"{d}/pids.max").read().strip() == "max"


def test_exec_joins_the_container_cgroup(rt, bundle, cgroup_dirs):
    cid = rt.new_id()
    cgroup_dirs.append("/dyvmexec")
    p = subprocess.run(_cmd(rt.which, rt.root) + ["create", "-b", str(bundle(
        ["sleep", "600"], {"pids": {"limit": 30}}, f"/dyvmexec/{cid}", cgroupns=False)), cid],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=240, env=rt.env)
    assert p.returncode == 0
    assert rt("start", cid).returncode == 0
    p = rt("exec", cid, "cat", "/proc/self/cgroup")
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"0::/dyvmexec/{cid}\n"
    init = rt.state(cid)["pid"]
    assert open(f"{CG}/dyvmexec/{cid}/cgroup.procs").read().split() == [str(init)]


def test_ps_and_kill_all_follow_the_cgroup(rt, bundle):
    cid = rt.create_started(bundle(["sh", "-c", "sleep 600 & sleep 600 & wait"]))
    d = _host_cgroup(rt, cid)
    wait_for(lambda: len(open(f"{d}/cgroup.procs").read().split()) == 3, timeout=60, what="two children")
    p = rt("ps", "--format", "json", cid)
    assert p.returncode == 0, p.stderr
    assert sorted(json.loads(p.stdout)) == sorted(int(x) for x in open(f"{d}/cgroup.procs").read().split())
    p = rt("kill", "--all", cid, "KILL")
    assert p.returncode == 0, p.stderr
    wait_for(lambda: open(f"{d}/cgroup.procs").read() == "", timeout=60, what="every process to die")
    wait_for(lambda: rt.state(cid)["status"] == "stopped", timeout=60, what="the container to stop")


UPDATE_STEPS = (("--memory", str(96 * MB)), ("--cpu-period", "50000"), ("--cpu-quota", "20000"),
                ("--memory-swap", "-1"), ("--memory", str(80 * MB), "--memory-swap", str(80 * MB)),
                ("--cpu-share", "2048"), ("--cpuset-cpus", "0"))
UPDATE_FILES = ("memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "cpuset.cpus", "pids.max")


def test_partial_updates_keep_the_other_limits_like_runc(tmp_path, bundle):
    """`update` with one or two flags leaves the cgroup files exactly as runc leaves them (runc 1.1
    even resets the quota to max when only the period is given; dockyard does the same)."""
    res = {"memory": {"limit": 64 * MB, "swap": 128 * MB}, "cpu": {"quota": 50000, "period": 100000},
           "pids": {"limit": 20}}
    seen: dict[str, list] = {}
    for which in ("dockyard", "runc"):
        r = Runtime(which, tmp_path / f"{which}-state")
        try:
            cid = r.create_started(bundle(["sleep", "600"], res))
            d = _host_cgroup(r, cid)
            steps = seen[which] = []
            for flags in UPDATE_STEPS:
                p = r("update", *flags, cid)
                steps.append((flags, p.returncode, {f: open(f"{d}/{f}").read().strip() for f in UPDATE_FILES}))
        finally:
            r.cleanup()
    assert all(rc == 0 for _flags, rc, _files in seen["runc"]), seen["runc"]
    for mine, theirs in zip(seen["dockyard"], seen["runc"], strict=True):
        assert mine == theirs


def test_pause_and_resume_use_cgroup_freeze(rt, bundle):
    cid = rt.create_started(bundle(["sleep", "600"]))
    d = _host_cgroup(rt, cid)
    p = rt("pause", cid)
    assert p.returncode == 0, p.stderr
    assert rt.state(cid)["status"] == "paused"
    assert open(f"{d}/cgroup.freeze").read().strip() == "1"
    assert "frozen 1" in open(f"{d}/cgroup.events").read()
    p = rt("resume", cid)
    assert p.returncode == 0, p.stderr
    assert rt.state(cid)["status"] == "running"
    assert open(f"{d}/cgroup.freeze").read().strip() == "0"
    wait_for(lambda: "frozen 0" in open(f"{d}/cgroup.events").read(), timeout=30, what="thaw")
    p = rt("kill", cid, "KILL")
    assert p.returncode == 0, p.stderr
    wait_for(lambda: rt.state(cid)["status"] == "stopped", timeout=60, what="the container to stop")
    p = rt("delete", cid)
    assert p.returncode == 0, p.stderr
    assert not os.path.exists(d)


def test_rootless_limits_in_a_delegated_subtree(tmp_path, rootfs):
    """An unprivileged user owning a cgroup v2 subtree (as systemd delegates one) gets its limits:
    the runtime creates the container's cgroup beside its own, inside the delegated parent."""
    uid = 4321
    base = tempfile.mkdtemp(prefix="dy-rootless-", dir="/tmp")
    os.chmod(base, 0o755)
    shutil.copytree(rootfs, f"{base}/rootfs", symlinks=True)
    from dockyard.runtime.spec import default_spec

    cfg = default_spec(rootless=True)
    cfg["root"]["path"] = f"{base}/rootfs"
    cfg["process"].update(terminal=False, args=["sleep", "600"])
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
    cfg["linux"]["resources"] = {"memory": {"limit": 64 * MB}, "pids": {"limit": 12}, "cpu": {"quota": 30000}}
    with open(f"{base}/config.json", "w") as f:
        json.dump(cfg, f)
    subprocess.run(["chown", "-R", f"{uid}:{uid}", base], check=True)
    deleg = f"{CG}/{unique_name('dyvm-user')}"
    os.mkdir(deleg)
    os.mkdir(f"{deleg}/shell")
    for path in (deleg, f"{deleg}/cgroup.procs", f"{deleg}/cgroup.subtree_control", f"{deleg}/cgroup.threads",
                 f"{deleg}/shell", f"{deleg}/shell/cgroup.procs"):
        os.chown(path, uid, uid)
    as_user = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
               "env", f"HOME={base}", f"XDG_RUNTIME_DIR={base}", f"PYTHONPATH={REPO}",
               "/usr/bin/python3", "-m", "dockyard", "runtime", "--root", f"{base}/state"]
    # The user's shell sits in a leaf of the delegated subtree, as a systemd user session would.
    enter = f"echo $$ > {deleg}/shell/cgroup.procs && exec \"$@\""

    def user(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", enter, "sh", *as_user, *args], capture_output=True, text=True,
                              timeout=240, cwd=base, stdin=subprocess.DEVNULL)

    try:
        with open(f"{base}/out", "w") as out:
            p = subprocess.run(["sh", "-c", enter, "sh", *as_user, "create", "-b", base, "rl"], stdout=out,
                               stderr=out, stdin=subprocess.DEVNULL, timeout=240, cwd=base)
        assert p.returncode == 0, open(f"{base}/out").read()
        p = user("start", "rl")
        assert p.returncode == 0, p.stderr
        pid = json.loads(user("state", "rl").stdout)["pid"]
        with open(f"/proc/{pid}/cgroup") as f:
            d = CG + f.read().strip().split("::", 1)[1]
        assert os.path.dirname(d) == deleg, d
        got = {f: open(f"{d}/{f}").read().strip() for f in ("memory.max", "pids.max", "cpu.max")}
        assert got == {"memory.max": str(64 * MB), "pids.max": "12", "cpu.max": "30000 100000"}
    finally:
        user("delete", "--force", "rl")
        for leaf in (f"{deleg}/shell", deleg):
            wait_for(lambda leaf=leaf: _try_rmdir(leaf), timeout=30, what=f"removing {leaf}")
        shutil.rmtree(base, ignore_errors=True)


def _try_rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True
