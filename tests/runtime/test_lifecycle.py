"""The OCI lifecycle through `dockyard runtime`: spec, create, start, state, kill, delete, list, ps,
exec, pause/resume, run."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from dockyard.runtime.state import proc_start_time
from tests.helpers import wait_for
from tests.runtime.conftest import needs_root
from tests.runtime.oci import make_bundle, runtime_cmd

pytestmark = needs_root


@pytest.mark.peer("runc")
@pytest.mark.parametrize("rootless", [False, True])
def test_spec_writes_what_runc_writes(tmp_path, rootless):
    from tests.runtime.oci import env

    flags = ["--rootless"] if rootless else []
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    subprocess.run(runtime_cmd("dockyard", tmp_path / "s") + ["spec", "-b", str(ours)] + flags, check=True, env=env())
    subprocess.run(["runc", "spec", "-b", str(theirs)] + flags, check=True)
    assert json.loads((ours / "config.json").read_text()) == json.loads((theirs / "config.json").read_text())


def test_spec_refuses_to_overwrite(rt, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    p = rt("spec", "-b", str(tmp_path))
    assert p.returncode == 1
    assert "exists" in p.stderr
    assert (tmp_path / "config.json").read_text() == "{}"


def test_create_waits_until_start_then_kill_and_delete(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "echo hello from $$; exec sleep 1000"])
    cid = rt.new_id()
    out = tmp_path / "out"
    p = rt.create(b, cid, log=out)
    assert p.returncode == 0, p.stderr
    s = rt.state(cid)
    assert s["status"] == "created" and s["id"] == cid and s["bundle"] == str(b.path)
    pid = s["pid"]
    assert proc_start_time(pid) is not None
    assert out.read_text() == ""  # the user process has not run yet
    listed = json.loads(rt("list", "--format", "json").stdout)
    assert [(c["id"], c["status"]) for c in listed] == [(cid, "created")]

    p = rt("start", cid)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: "hello from 1" in out.read_text(), what="container output")
    assert rt.state(cid)["status"] == "running"
    assert rt.state(cid)["pid"] == pid
    assert cid in rt("list").stdout

    p = rt("start", cid)
    assert p.returncode == 1 and "running" in p.stderr

    p = rt("delete", cid)
    assert p.returncode == 1 and "not stopped" in p.stderr
    assert rt.state(cid)["status"] == "running"

    assert rt("kill", cid, "KILL").returncode == 0
    wait_for(lambda: rt.state(cid)["status"] == "stopped", what="stopped")
    assert rt.state(cid)["pid"] == 0
    p = rt("kill", cid)
    assert p.returncode == 1 and "not running" in p.stderr
    assert rt("delete", cid).returncode == 0
    p = rt("state", cid)
    assert p.returncode == 1 and "does not exist" in p.stderr
    assert not (rt.root / cid).exists()
    assert not os.path.exists(f"/sys/fs/cgroup/pids/dockyard/{cid}")


def test_delete_of_created_container_stops_its_init(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    cid = rt.new_id()
    assert rt.create(b, cid).returncode == 0
    pid = rt.state(cid)["pid"]
    start = proc_start_time(pid)
    assert rt("delete", cid).returncode == 0
    assert proc_start_time(pid) != start


def test_run_returns_exit_code_and_signal(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    p = rt.run(b)
    assert (p.returncode, p.stdout, p.stderr) == (7, "out\n", "err\n")
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "kill -KILL $$"])
    # PID 1 of a PID namespace cannot be killed from inside it; without one the shell can kill itself.
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "pid"]
    b.write()
    assert rt.run(b).returncode == 128 + signal.SIGKILL
    # `run` removes the container afterwards, as runc does
    assert json.loads(rt("list", "--format", "json").stdout) == []


def test_run_detached_pid_file_exec_ps_pause_resume(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    pid_file = tmp_path / "pid"
    p = rt.create(b, cid, "--pid-file", str(pid_file), command="run -d")
    assert p.returncode == 0, p.stderr
    pid = int(pid_file.read_text())
    assert rt.state(cid)["pid"] == pid
    assert rt.state(cid)["status"] == "running"

    p = rt("exec", cid, "sh", "-c", "echo $$ $(hostname); exit 3")
    assert p.returncode == 3
    n, host = p.stdout.split()
    assert host == "runc" and int(n) > 1  # in the container's PID namespace, not its init

    p = rt("ps", "--format", "json", cid)
    assert json.loads(p.stdout) == [pid]
    p = rt("ps", cid)
    assert p.returncode == 0 and "PID" in p.stdout.splitlines()[0] and str(pid) in p.stdout

    assert rt("pause", cid).returncode == 0
    assert rt.state(cid)["status"] == "paused"
    p = rt("exec", cid, "true")
    assert p.returncode == 1 and "paused" in p.stderr
    p = rt("delete", cid)
    assert p.returncode == 1 and "paused" in p.stderr
    assert rt("resume", cid).returncode == 0
    assert rt.state(cid)["status"] == "running"
    p = rt("resume", cid)
    assert p.returncode == 1 and "not paused" in p.stderr

    assert rt("kill", "--all", cid, "9").returncode == 0
    wait_for(lambda: rt.state(cid)["status"] == "stopped", what="stopped")
    assert rt("delete", cid).returncode == 0


def test_exec_with_process_file_and_user(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt.create(b, cid).returncode == 0
    assert rt("start", cid).returncode == 0
    proc = dict(b.config["process"], args=["sh", "-c", "id; pwd; echo $FOO; umask"], cwd="/tmp",
                env=["PATH=/bin:/usr/bin", "FOO=bar"],
                user={"uid": 65534, "gid": 65534, "additionalGids": [10], "umask": 0o027})
    pf = tmp_path / "process.json"
    pf.write_text(json.dumps(proc))
    p = rt("exec", "--process", str(pf), cid)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["uid=65534(nobody) gid=65534(nobody) groups=10", "/tmp", "bar", "0027"]
    p = rt("exec", "-u", "1000:1000", "--cwd", "/tmp", "-e", "X=1", cid, "sh", "-c", "id -u; id -g; pwd; echo $X")
    assert p.stdout.split() == ["1000", "1000", "/tmp", "1"]
    p = rt("exec", cid, "no-such-program")
    assert p.returncode == 1 and "executable file not found" in p.stderr
    assert rt("delete", "--force", cid).returncode == 0


def test_no_pivot(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "ls /bin/busybox && test ! -e /work"])
    p = rt.run(b, "--no-pivot")
    assert p.returncode == 0, p.stderr


def test_delete_force_of_missing_is_quiet_and_plain_delete_errors(rt):
    assert rt("delete", "--force", "nope").returncode == 0
    p = rt("delete", "nope")
    assert p.returncode == 1 and "does not exist" in p.stderr


def test_log_file_in_json_for_conmon(tmp_path, busybox_rootfs):
    """conmon passes --log FILE --log-format json and reads the error from there."""
    from tests.runtime.oci import env

    log = tmp_path / "runtime.log"
    b = make_bundle(tmp_path, busybox_rootfs, ["no-such-program"])
    p = subprocess.run(runtime_cmd("dockyard", tmp_path / "state")[:-2] + ["--root", str(tmp_path / "state"),
                       "--log", str(log), "--log-format", "json", "create", "-b", str(b.path), "logtest"],
                       capture_output=True, text=True, env=env(), stdin=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 1
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["level"] for e in entries] == ["error"]
    assert 'exec: "no-such-program": executable file not found in $PATH' == entries[0]["msg"]
    assert entries[0]["time"].endswith("Z")


def test_fast_command_runs_the_runtime(tmp_path, busybox_rootfs):
    """cli.command(): the argv the engine uses (python -S, no site-packages) runs containers too."""
    from dockyard.runtime.cli import command

    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "echo fast"])
    p = subprocess.run(command() + ["--root", str(tmp_path / "s"), "run", "-b", str(b.path), "fastcmd"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (p.returncode, p.stdout) == (0, "fast\n"), p.stderr


def test_second_container_joins_the_first_ones_pid_and_ipc_namespaces(rt, tmp_path, busybox_rootfs):
    a = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt.create(a, cid).returncode == 0
    assert rt("start", cid).returncode == 0
    pid = rt.state(cid)["pid"]
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "ps -o pid,args | grep -v ps"])
    b.config["linux"]["namespaces"] = [
        {"type": t, "path": f"/proc/{pid}/ns/{e}"} if t in ("pid", "ipc") else {"type": t}
        for t, e in (("pid", "pid"), ("ipc", "ipc"), ("mount", "mnt"), ("uts", "uts"), ("network", "net"))]
    b.write()
    p = rt.run(b)
    assert p.returncode == 0, p.stderr
    assert "1 sleep 1000" in " ".join(p.stdout.split())


def test_preserve_fds(rt, tmp_path, busybox_rootfs):
    """--preserve-fds N hands fds 3..3+N-1 to the container's process (socket activation, conmon)."""
    from tests.runtime.oci import env

    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    data = tmp_path / "fd3"
    data.write_text("through fd 3\n")
    cmd = runtime_cmd("dockyard", rt.root) + ["run", "--preserve-fds", "1", "-b", str(b.path), rt.new_id()]
    # The shell opens the file as fd 3 of the runtime, as conmon does with its preserved fds.
    p = subprocess.run(["sh", "-c", 'exec "$@" 3<"$0"', str(data), *cmd], capture_output=True, text=True,
                       env=env(), timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["through fd 3", "0 1 2 3 4 "]  # 4: the directory ls is reading
    b.config["process"]["args"] = ["sh", "-c", "ls /proc/self/fd | sort -n | tr '\\n' ' '"]
    b.write()
    cmd = runtime_cmd("dockyard", rt.root) + ["run", "-b", str(b.path), rt.new_id()]
    p = subprocess.run(["sh", "-c", 'exec "$@" 3<"$0"', str(data), *cmd], capture_output=True, text=True,
                       env=env(), timeout=60, stdin=subprocess.DEVNULL)
    assert (p.returncode, p.stdout) == (0, "0 1 2 3 "), p.stderr  # without the flag fd 3 stays outside


@pytest.mark.peer("runc")
def test_list_table_is_laid_out_like_runcs(rt, runc, tmp_path, busybox_rootfs):
    assert rt("list").stdout == runc("list").stdout
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    for r in (rt, runc):
        assert r.create(b, "same-id-for-both").returncode == 0
        r.ids.append("same-id-for-both")
    ours, theirs = rt("list").stdout.splitlines(), runc("list").stdout.splitlines()
    # The CREATED column's width follows each runtime's timestamp (Go drops trailing zeros).
    assert ours[0].split("CREATED")[0] == theirs[0].split("CREATED")[0]
    assert ours[1].index("created") == theirs[1].index("created")  # the column positions match
    assert ours[1].split()[2:4] == theirs[1].split()[2:4] == ["created", str(b.path)]


def test_missing_cwd_is_created(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["pwd"])
    b.config["process"]["cwd"] = "/work/dir"  # the root stays read-only: created before the remount
    b.write()
    p = rt.run(b)
    assert (p.returncode, p.stdout) == (0, "/work/dir\n"), p.stderr
    assert (busybox_rootfs / "work" / "dir").is_dir()
