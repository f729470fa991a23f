"""Run flags that shape the container: capabilities, seccomp, read-only root, NNP, limits, user, env..."""

from __future__ import annotations

import json
import os

import pytest

from tests.containers.conftest import IMAGE, needs_runtime

pytestmark = [needs_runtime]

DOCKER_DEFAULT_CAPS = 0x00000000a80425fb  # Docker's 14 default capabilities as a CapEff mask


def _status_field(ctr, field, *args):
    p = ctr("run", "--rm", *args, IMAGE, "grep", f"^{field}:", "/proc/self/status")
    assert p.returncode == 0 and p.stdout, (p.returncode, p.stdout, p.stderr)
    return p.stdout.split()[1]


def test_default_caps_match_docker(ctr):
    assert int(_status_field(ctr, "CapEff"), 16) == DOCKER_DEFAULT_CAPS
    assert int(_status_field(ctr, "CapBnd"), 16) == DOCKER_DEFAULT_CAPS


def test_cap_drop_all_and_add(ctr):
    assert int(_status_field(ctr, "CapEff", "--cap-drop=ALL"), 16) == 0
    caps = int(_status_field(ctr, "CapEff", "--cap-drop=ALL", "--cap-add=setuid", "--cap-add=setgid"), 16)
    assert caps == (1 << 6) | (1 << 7)
    caps = int(_status_field(ctr, "CapEff", "--cap-add=NET_ADMIN"), 16)
    assert caps == DOCKER_DEFAULT_CAPS | (1 << 12)
    caps = int(_status_field(ctr, "CapEff", "--cap-drop=NET_RAW"), 16)
    assert caps == DOCKER_DEFAULT_CAPS & ~(1 << 13)


def test_privileged_has_all_caps_and_no_seccomp(ctr):
    own = next(int(ln.split()[1], 16) for ln in open("/proc/self/status") if ln.startswith("CapBnd:"))
    assert int(_status_field(ctr, "CapEff", "--privileged"), 16) == own
    assert _status_field(ctr, "Seccomp", "--privileged") == "0"


def test_seccomp_default_and_unconfined(ctr):
    assert _status_field(ctr, "Seccomp") == "2"
    assert _status_field(ctr, "Seccomp", "--security-opt", "seccomp=unconfined") == "0"
    # Docker's default profile refuses unshare of a user namespace... via the syscall filter (EPERM)
    p = ctr("run", "--rm", IMAGE, "unshare", "-U", "true")
    assert p.returncode != 0


def test_seccomp_profile_file(ctr, tmp_path):
    prof = tmp_path / "deny-mkdir.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    p = ctr("run", "--rm", "--security-opt", f"seccomp={prof}", IMAGE, "mkdir", "/tmp/x")
    assert p.returncode != 0 and "not permitted" in p.stderr
    p = ctr("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", IMAGE, "true")
    assert p.returncode == 125 and "seccomp" in p.stderr


def test_no_new_privileges(ctr):
    assert _status_field(ctr, "NoNewPrivs") == "0"
    assert _status_field(ctr, "NoNewPrivs", "--security-opt", "no-new-privileges") == "1"
    assert _status_field(ctr, "NoNewPrivs", "--security-opt", "no-new-privileges:true") == "1"


def test_read_only_root(ctr):
    p = ctr("run", "--rm", "--read-only", IMAGE, "touch", "/x")
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    assert ctr("run", "--rm", "--read-only", IMAGE, "touch", "/dev/shm/x").returncode == 0


def test_masked_and_readonly_paths(ctr):
    p = ctr("run", "--rm", IMAGE, "sh", "-c", "cat /proc/kcore | head -c 1 | wc -c; echo 1 > /proc/sys/vm/drop_caches")
    assert p.stdout.split()[0] == "0"
    assert p.returncode != 0


def test_ulimit(ctr):
    p = ctr("run", "--rm", "--ulimit", "nofile=256:512", IMAGE, "sh", "-c", "ulimit -n; ulimit -Hn")
    assert p.stdout.split() == ["256", "512"], p.stderr


def test_resource_limits_reach_the_cgroup(ctr):
    from dockyard import host

    cg = host.cgroup_info()
    if cg.version == "v2":
        pytest.skip("checks v1 controller files")
    cid = ctr("run", "-d", "--memory", "64m", "--memory-reservation", "32m", "--cpus", "0.5", "--cpu-shares", "512",
              "--pids-limit", "50", IMAGE, "sleep", "600", check=True).stdout.strip()

    def read(ctrl, name):
        with open(os.path.join(cg.v1_mounts[ctrl], "dockyard", cid, name)) as f:
            return f.read().strip()

    assert read("memory", "memory.limit_in_bytes") == str(64 * 1024 * 1024)
    assert read("memory", "memory.soft_limit_in_bytes") == str(32 * 1024 * 1024)
    assert read("cpu", "cpu.cfs_quota_us") == "50000" and read("cpu", "cpu.cfs_period_us") == "100000"
    assert read("cpu", "cpu.shares") == "512"
    assert read("pids", "pids.max") == "50"
    hc = json.loads(ctr("inspect", cid).stdout)[0]["HostConfig"]
    assert hc["Memory"] == 64 * 1024 * 1024 and hc["NanoCpus"] == 500_000_000 and hc["PidsLimit"] == 50
    assert hc["CpuShares"] == 512 and hc["MemoryReservation"] == 32 * 1024 * 1024


def test_user_workdir_env_entrypoint_hostname_labels(ctr, tmp_path):
    envf = tmp_path / "env"
    envf.write_text("# comment\nFROM_FILE=yes\nOVERRIDE=file\n")
    p = ctr("run", "--rm", "-u", "nobody:nogroup", "-w", "/tmp", "--env-file", str(envf), "-e", "OVERRIDE=flag",
            "--hostname", "box1", "--entrypoint", "sh", IMAGE, "-c",
            'echo "$(id -u):$(id -g) $PWD $FROM_FILE $OVERRIDE $(hostname) $HOSTNAME"')
    assert p.stdout == "65534:65534 /tmp yes flag box1 box1\n", p.stderr
    p = ctr("run", "--rm", "-u", "nosuchuser", IMAGE, "true")
    assert p.returncode != 0 and "nosuchuser" in p.stderr
    cid = ctr("create", "-l", "a=1", "--label", "b=two", IMAGE, "true", check=True).stdout.strip()
    assert json.loads(ctr("inspect", cid).stdout)[0]["Config"]["Labels"] == {"a": "1", "b": "two"}


def test_init_reaps_and_forwards(ctr):
    p = ctr("run", "--rm", "--init", IMAGE, "ps", "-o", "pid,comm")
    lines = p.stdout.split("\n")
    assert any(ln.split()[:2] == ["1", "dockyard-init"] or ln.split()[:2] == ["1", "catatonit"] for ln in lines if ln), p.stdout


def test_stop_signal_and_timeout_flags(ctr):
    ctr("run", "-d", "--name", "ss", "--stop-signal", "USR1", "--stop-timeout", "30", IMAGE, "sh", "-c",
        "trap 'exit 11' USR1; echo ready; while :; do sleep 0.1; done", check=True)
    import time

    from tests.helpers import wait_for

    wait_for(lambda: ctr("logs", "ss").stdout == "ready\n", timeout=20, what="trap installed")
    insp = json.loads(ctr("inspect", "ss").stdout)[0]
    assert insp["Config"]["StopSignal"] == "USR1" and insp["Config"]["StopTimeout"] == 30
    t0 = time.monotonic()
    ctr("stop", "ss", check=True)
    assert time.monotonic() - t0 < 10
    assert json.loads(ctr("inspect", "ss").stdout)[0]["State"]["ExitCode"] == 11


def test_network_none_and_host(ctr):
    p = ctr("run", "--rm", "--network", "none", IMAGE, "ip", "-o", "link")
    names = [ln.split(":")[1].strip() for ln in p.stdout.splitlines()]
    assert names == ["lo"], p.stdout
    p = ctr("run", "--rm", "--network", "host", IMAGE, "hostname")
    assert p.stdout.strip() == os.uname().nodename


def test_runtime_flag_crun(ctr):
    import shutil

    from dockyard import host

    if not shutil.which("crun"):
        pytest.skip("crun not installed")
    if host.cgroup_info().version == "hybrid":
        pytest.skip("crun refuses hybrid cgroup hosts")
    p = ctr("run", "--rm", "--runtime", "crun", IMAGE, "echo", "crun works")
    assert p.stdout == "crun works\n", p.stderr


def test_platform_mismatch_is_refused(ctr):
    p = ctr("run", "--rm", "--platform", "linux/s390x", IMAGE, "true")
    assert p.returncode == 125 and "platform" in p.stderr
    from dockyard.host import go_arch

    assert ctr("run", "--rm", "--platform", f"linux/{go_arch()}", IMAGE, "true").returncode == 0
