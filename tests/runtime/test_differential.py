"""The same bundle under runc and under `dockyard runtime`: what the container sees must match.

Each case edits `runc spec`'s config; the probe prints identity, capabilities, rlimits, the mount
table, hostname, devices ... and both runtimes must produce the same output and exit code.  Cases
runc itself cannot run on this host (rlimits above the hard limit without CAP_SYS_RESOURCE) are in
test_runtime_host.py instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.helpers import unique_name, wait_for
from tests.runtime.conftest import needs_root
from tests.runtime.oci import env, make_bundle, normalize_mountinfo, runtime_cmd

pytestmark = [needs_root, pytest.mark.peer("runc")]

PROBE = r"""
echo "id: $(id)"
echo "host: $(hostname) $(cat /proc/sys/kernel/domainname)"
grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status
echo "umask: $(umask) cwd: $(pwd)"
echo "oom: $(cat /proc/self/oom_score_adj)"
ulimit -a
ls -ln /dev | awk '{print $1, $3, $4, $5, $6, $NF}'
ip -o link show lo | awk '{print $2, $3}'
cat /proc/self/mountinfo
touch /probe-root 2>/dev/null && echo "root writable" || echo "root read-only"
"""


def _diff_config(cfg: dict, cgpath: str) -> dict:
    cfg = json.loads(json.dumps(cfg))
    cfg["linux"]["cgroupsPath"] = cgpath
    return cfg


def _run(which: str, root, bundle, *extra: str) -> tuple[int, list[str], str]:
    cid = unique_name("d", 30)
    try:
        p = subprocess.run(runtime_cmd(which, root) + ["run", "-b", str(bundle.path), *extra, cid],
                           capture_output=True, text=True, timeout=120, env=env(), stdin=subprocess.DEVNULL)
    finally:
        subprocess.run(runtime_cmd(which, root) + ["delete", "--force", cid], capture_output=True, env=env())
    return p.returncode, normalize_mountinfo(p.stdout), p.stderr.strip()


def compare(tmp_path, bundle, *extra: str) -> tuple[int, list[str]]:
    """Run under runc then dockyard (same cgroup path, so even cgroup mounts compare equal)."""
    bundle.config = _diff_config(bundle.config, "/" + unique_name("dydiff", 30))
    bundle.write()
    theirs = _run("runc", tmp_path / "runc-root", bundle, *extra)
    ours = _run("dockyard", tmp_path / "dy-root", bundle, *extra)
    if ours[:2] != theirs[:2]:
        import difflib

        diff = "\n".join(difflib.unified_diff(theirs[1], ours[1], "runc", "dockyard", lineterm="", n=1))
        pytest.fail(f"exit codes runc={theirs[0]} dockyard={ours[0]}\n{diff}\n"
                    f"runc stderr: {theirs[2]}\ndockyard stderr: {ours[2]}", pytrace=False)
    return ours[0], ours[1]


def _probe_bundle(tmp_path, rootfs, script: str = PROBE):
    return make_bundle(tmp_path, rootfs, ["sh", "-c", script])


def _ns(cfg: dict, drop: str | None = None, add: dict | None = None) -> None:
    nss = [ns for ns in cfg["linux"]["namespaces"] if ns["type"] != drop]
    if add:
        nss.append(add)
    cfg["linux"]["namespaces"] = nss


def case_default(cfg: dict) -> None:
    pass


def case_no_network_ns(cfg: dict) -> None:
    _ns(cfg, "network")


def case_no_ipc_ns(cfg: dict) -> None:
    _ns(cfg, "ipc")


def case_no_uts_ns(cfg: dict) -> None:
    _ns(cfg, "uts")
    cfg.pop("hostname", None)


def case_no_pid_ns(cfg: dict) -> None:
    _ns(cfg, "pid")


def case_cgroup_ns(cfg: dict) -> None:
    _ns(cfg, add={"type": "cgroup"})


def case_hostname_domainname_sysctl(cfg: dict) -> None:
    cfg["hostname"] = "box1"  # (runc 1.1 ignores domainname: see test_runtime_host.py)
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"}
    cfg["process"]["args"][-1] += "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced\n"


def case_mount_types(cfg: dict) -> None:
    cfg["mounts"] += [
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700", "nosuid"]},
        {"destination": "/ro", "type": "bind", "source": "/etc", "options": ["rbind", "ro", "nosuid", "nodev",
                                                                            "noexec", "rprivate"]},
        {"destination": "/rw", "type": "none", "source": "/tmp", "options": ["bind", "relatime", "rslave"]},
        {"destination": "/etc/hostname-copy", "type": "bind", "source": "/etc/hostname", "options": ["bind", "ro"]},
        {"destination": "/mq2", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/ptsnew", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0600"]},
    ]
    cfg["process"]["args"][-1] += "stat -c '%a' /data; touch /ro/x 2>&1 | cut -d: -f3-\n"


def case_missing_cwd_is_created(cfg: dict) -> None:
    cfg["process"]["cwd"] = "/work/dir"
    cfg["process"]["args"][-1] += "ls -ld /work/dir | awk '{print $1, $3}'\n"


def case_read_write_root(cfg: dict) -> None:
    cfg["root"]["readonly"] = False


def case_user_groups_umask_cwd_env(cfg: dict) -> None:
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 30], "umask": 0o077}
    cfg["process"]["cwd"] = "/tmp"
    cfg["process"]["env"] = ["PATH=/bin", "HELLO=world"]
    cfg["process"]["args"][-1] += "echo $HELLO; env | sort\n"


def case_caps_docker_default(cfg: dict) -> None:
    from dockyard.runtime import capabilities

    caps = list(capabilities.DEFAULT_CAPS)
    cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}


def case_caps_empty(cfg: dict) -> None:
    cfg["process"]["capabilities"] = {}


def case_caps_all_nonroot_ambient(cfg: dict) -> None:
    caps = ["CAP_NET_RAW", "CAP_CHOWN", "CAP_SYS_ADMIN"]
    cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
    cfg["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted", "inheritable",
                                                        "ambient")}


def case_rlimits(cfg: dict) -> None:
    cfg["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 256, "hard": 512},
                                 {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                                 {"type": "RLIMIT_NPROC", "soft": 100, "hard": 200},
                                 {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608}]
    cfg["process"]["args"][-1] += "ulimit -Hn; ulimit -Hu\n"


def case_no_new_privileges_off(cfg: dict) -> None:
    cfg["process"]["noNewPrivileges"] = False


def case_seccomp_eperm(cfg: dict) -> None:
    cfg["root"]["readonly"] = False
    cfg["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                               "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                             "errnoRet": 1}]}
    cfg["process"]["args"][-1] += "mkdir /newdir; echo mkdir=$?\n"


def case_seccomp_eperm_without_nnp(cfg: dict) -> None:
    case_seccomp_eperm(cfg)
    cfg["process"]["noNewPrivileges"] = False


def case_seccomp_docker_default(cfg: dict) -> None:
    from dockyard.runtime import seccomp

    caps = cfg["process"]["capabilities"]["bounding"]
    cfg["linux"]["seccomp"] = seccomp.default_profile(caps)
    cfg["process"]["args"][-1] += ("unshare -U true 2>&1 | cut -d: -f2-; echo unshare=$?; "
                                   "mount -t tmpfs t /mnt 2>&1 | cut -d: -f2-; date >/dev/null; echo date=$?\n")


def case_masked_readonly_paths(cfg: dict) -> None:
    cfg["linux"]["maskedPaths"] += ["/etc/group", "/usr/sbin", "/does/not/exist"]
    cfg["linux"]["readonlyPaths"] += ["/tmp"]
    cfg["root"]["readonly"] = False
    cfg["process"]["args"][-1] += "cat /etc/group; ls /usr/sbin | wc -l; touch /tmp/x 2>&1 | cut -d: -f3-\n"


def case_devices(cfg: dict) -> None:
    cfg["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640,
                                "uid": 0, "gid": 0},
                               {"path": "/dev/custom/loopx", "type": "b", "major": 7, "minor": 200,
                                "fileMode": 0o600}]
    cfg["linux"]["resources"]["devices"].append({"allow": True, "type": "c", "major": 10, "minor": 229,
                                                 "access": "rwm"})
    cfg["process"]["args"][-1] += "ls -ln /dev/custom | awk '{print $1, $5, $6}'; head -c 0 /dev/fuse; echo fuse=$?\n"


def case_oom_score_adj(cfg: dict) -> None:
    cfg["process"]["oomScoreAdj"] = 500


def case_pids_limit(cfg: dict) -> None:
    cfg["linux"]["resources"]["pids"] = {"limit": 6}
    cfg["process"]["args"] = ["sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; ok=0; for i in 1 2 3 4 5 6 7 8 9 10; "
                              "do sleep 3 2>/dev/null & [ $? = 0 ] && ok=$((ok+1)); done 2>/dev/null; "
                              "n=$(ls /proc | grep -c '^[0-9]'); wait; echo procs<=$((n <= 7))"]


def case_memory_oom_kill(cfg: dict) -> None:
    cfg["linux"]["resources"]["memory"] = {"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024}
    cfg["process"]["args"] = ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
                              "dd if=/dev/zero of=/dev/null bs=128M count=1 2>/dev/null; echo dd=$?"]


def case_cpu_resources(cfg: dict) -> None:
    cfg["linux"]["resources"]["cpu"] = {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"}
    cfg["process"]["args"] = ["sh", "-c", "cd /sys/fs/cgroup; cat cpu/cpu.shares cpu/cpu.cfs_quota_us "
                              "cpu/cpu.cfs_period_us cpuset/cpuset.cpus cpuset/cpuset.mems"]


CASES = [case_default, case_no_network_ns, case_no_ipc_ns, case_no_uts_ns, case_no_pid_ns, case_cgroup_ns,
         case_hostname_domainname_sysctl, case_mount_types, case_missing_cwd_is_created, case_read_write_root, case_user_groups_umask_cwd_env,
         case_caps_docker_default, case_caps_empty, case_caps_all_nonroot_ambient, case_rlimits,
         case_no_new_privileges_off, case_seccomp_eperm, case_seccomp_eperm_without_nnp, case_seccomp_docker_default,
         case_masked_readonly_paths, case_devices, case_oom_score_adj, case_pids_limit, case_memory_oom_kill,
         case_cpu_resources]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_same_view_as_runc(case, tmp_path, busybox_rootfs):
    b = _probe_bundle(tmp_path, busybox_rootfs)
    case(b.config)
    b.write()
    code, out = compare(tmp_path, b)
    if case is case_seccomp_eperm:
        assert "mkdir=1" in out
    if case is case_memory_oom_kill:
        assert "dd=137" in out  # dd was OOM-killed under both runtimes
    if case is case_pids_limit:
        assert out[0] == "6"
    if case is case_seccomp_docker_default:
        assert "Seccomp:\t2" in out and any("Operation not permitted" in line for line in out)


def test_join_namespaces_by_path(tmp_path, busybox_rootfs, procs):
    """A network and a UTS namespace held by another process, joined via /proc/PID/ns/*."""
    holder = procs.start(["unshare", "--net", "--uts", "sh", "-c", "hostname held-ns; ip link set lo up; "
                          "exec sleep 1000"])
    wait_for(lambda: os.path.exists(f"/proc/{holder.pid}/ns/net") and
             os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"), what="netns")
    time.sleep(0.2)
    b = _probe_bundle(tmp_path, busybox_rootfs, "hostname; ip link show lo | grep -o 'LOOPBACK,UP'")
    _ns(b.config, "network", {"type": "network", "path": f"/proc/{holder.pid}/ns/net"})
    _ns(b.config, "uts", {"type": "uts", "path": f"/proc/{holder.pid}/ns/uts"})
    del b.config["hostname"]
    code, out = compare(tmp_path, b)
    assert (code, out) == (0, ["held-ns", "LOOPBACK,UP"])


def test_user_namespace_with_id_maps(tmp_path, busybox_rootfs):
    """uidMappings/gidMappings as root: the container's root is host uid 100000."""
    import tempfile
    from pathlib import Path

    # Outside pytest's private (0700) tmp dir: the container's root (host uid 100000) must reach the rootfs.
    top = Path(tempfile.mkdtemp(prefix="dy-userns-", dir="/tmp"))
    try:
        os.chmod(top, 0o755)
        rootfs = top / "rootfs"
        shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
        subprocess.run(["chown", "-R", "100000:100000", str(rootfs)], check=True)
        b = make_bundle(top, rootfs, ["sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map; "
                                      "grep Cap /proc/self/status; ls -ln /dev/null | awk '{print $3,$4}'; "
                                      "cat /proc/self/mountinfo"])
        _ns(b.config, add={"type": "user"})
        b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.write()
        code, out = compare(top, b)
        assert code == 0, out
        assert out[0].startswith("uid=0(root)")
        assert "0     100000      65536" in " ".join(out[1].split()) or out[1].split() == ["0", "100000", "65536"]
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_signal_forwarded_by_run(tmp_path, busybox_rootfs):
    """SIGTERM to a foreground `run` reaches the container's process under both runtimes."""
    script = "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done"
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", script])
    results = []
    for which in ("runc", "dockyard"):
        cid = unique_name("sig", 30)
        root = tmp_path / f"{which}-sig"
        p = subprocess.Popen(runtime_cmd(which, root) + ["run", "-b", str(b.path), cid], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env(), stdin=subprocess.DEVNULL)
        try:
            assert p.stdout.readline() == "ready\n"
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=30)
            results.append((p.returncode, out))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            subprocess.run(runtime_cmd(which, root) + ["delete", "--force", cid], capture_output=True, env=env())
    assert results[0] == results[1] == (3, "got TERM\n")


@pytest.mark.parametrize("case", [case_default, case_user_groups_umask_cwd_env, case_seccomp_eperm,
                                  case_caps_all_nonroot_ambient],
                         ids=["default", "user_groups", "seccomp", "caps_ambient"])
def test_exec_sees_what_runc_exec_sees(case, tmp_path, busybox_rootfs):
    """`exec` of the probe in a running container: same process view under both runtimes."""
    b = _probe_bundle(tmp_path, busybox_rootfs)
    case(b.config)
    # runc 1.1 ignores process.user.umask for exec (its setns path never sets it); dockyard applies it
    # as the spec says (test_lifecycle.py::test_exec_with_process_file_and_user).
    b.config["process"].get("user", {}).pop("umask", None)
    probe = b.config["process"]["args"]
    b.config["process"]["args"] = ["sleep", "1000"]
    b.config = _diff_config(b.config, "/" + unique_name("dyexec", 30))
    b.write()
    proc_file = tmp_path / "process.json"
    proc_file.write_text(json.dumps(dict(b.config["process"], args=probe)))
    results = []
    for which in ("runc", "dockyard"):
        root, cid = tmp_path / f"{which}-exec", unique_name("x", 30)
        try:
            with open(tmp_path / f"{which}.out", "w") as out:
                p = subprocess.run(runtime_cmd(which, root) + ["run", "-d", "-b", str(b.path), cid], stdout=out,
                                   stderr=out, stdin=subprocess.DEVNULL, env=env(), timeout=60)
            assert p.returncode == 0, (tmp_path / f"{which}.out").read_text()
            p = subprocess.run(runtime_cmd(which, root) + ["exec", "--process", str(proc_file), cid],
                               capture_output=True, text=True, env=env(), timeout=60, stdin=subprocess.DEVNULL)
            results.append((p.returncode, normalize_mountinfo(p.stdout), p.stderr.strip()))
        finally:
            subprocess.run(runtime_cmd(which, root) + ["delete", "--force", cid], capture_output=True, env=env())
    if results[0][:2] != results[1][:2]:
        import difflib

        diff = "\n".join(difflib.unified_diff(results[0][1], results[1][1], "runc", "dockyard", lineterm="", n=1))
        pytest.fail(f"exit codes runc={results[0][0]} dockyard={results[1][0]}\n{diff}\n"
                    f"runc stderr: {results[0][2]}\ndockyard stderr: {results[1][2]}", pytrace=False)


def test_update_like_runc(tmp_path, busybox_rootfs):
    """`update` flags and `update -r FILE` change the same cgroup files runc's do."""
    script = ("cd /sys/fs/cgroup; cat memory/memory.limit_in_bytes pids/pids.max cpu/cpu.shares "
              "cpu/cpu.cfs_quota_us")
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    b.config = _diff_config(b.config, "/" + unique_name("dyupd", 30))
    b.write()
    res_file = tmp_path / "res.json"
    res_file.write_text(json.dumps({"cpu": {"quota": 20000, "period": 100000}}))
    results = []
    for which in ("runc", "dockyard"):
        root, cid = tmp_path / f"{which}-upd", unique_name("u", 30)
        rt = runtime_cmd(which, root)
        try:
            with open(tmp_path / f"{which}.out", "w") as out:
                assert subprocess.run(rt + ["run", "-d", "-b", str(b.path), cid], stdout=out, stderr=out,
                                      stdin=subprocess.DEVNULL, env=env(), timeout=60).returncode == 0
            for args in (["--memory", "67108864", "--pids-limit", "20", "--cpu-share", "256"],
                         ["-r", str(res_file)]):
                p = subprocess.run(rt + ["update", *args, cid], capture_output=True, text=True, env=env())
                assert p.returncode == 0, p.stderr
            p = subprocess.run(rt + ["exec", cid, "sh", "-c", script], capture_output=True, text=True, env=env())
            results.append((p.returncode, p.stdout.split()))
        finally:
            subprocess.run(rt + ["delete", "--force", cid], capture_output=True, env=env())
    assert results[0] == results[1] == (0, ["67108864", "20", "256", "20000"])
