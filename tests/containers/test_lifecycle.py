"""Container lifecycle against a real OCI runtime: run, create/start, stop, kill, rm, ps, logs, wait, exit codes."""

from __future__ import annotations

import json
import time

import pytest

from tests.containers.conftest import IMAGE, needs_runtime
from tests.helpers import wait_for

pytestmark = [needs_runtime]


def test_run_foreground_streams_output_and_returns_exit_code(ctr):
    p = ctr("run", "--name", "fg", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert p.returncode == 3, p.stderr
    assert p.stdout == "out\n"
    assert p.stderr == "err\n"
    ps = ctr("ps", "-a", "--format", "{{.Names}} {{.State}}").stdout.split("\n")
    assert "fg exited" in ps
    logs = ctr("logs", "fg")
    assert logs.stdout == "out\n" and logs.stderr == "err\n"
    insp = json.loads(ctr("inspect", "fg").stdout)[0]
    assert insp["State"]["ExitCode"] == 3 and insp["State"]["Status"] == "exited"
    assert insp["State"]["FinishedAt"] != "0001-01-01T00:00:00Z"
    assert ctr("rm", "fg").returncode == 0
    assert ctr("ps", "-aq").stdout == ""


def test_run_rm_removes_container(ctr):
    p = ctr("run", "--rm", "--network", "none", IMAGE, "echo", "hello")
    assert p.returncode == 0 and p.stdout == "hello\n", p.stderr
    assert ctr("ps", "-aq").stdout == ""


def test_detached_run_ps_stop_and_rm(ctr):
    p = ctr("run", "-d", "--name", "bg", IMAGE, "sleep", "600")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    assert len(cid) == 64
    ps = ctr("ps")
    assert cid[:12] in ps.stdout and "Up " in ps.stdout and "bg" in ps.stdout
    assert ctr("container", "ls", "--filter", "name=bg", "--quiet").stdout.strip() == cid[:12]
    assert ctr("ps", "-lq").stdout.strip() == cid[:12]
    # rm without -f refuses, with Docker's message
    p = ctr("container", "rm", "bg")
    assert p.returncode != 0
    assert p.stderr.strip() == ('Error: cannot remove container "/bg": container is running: stop the container '
                                "before removing or force remove")
    # busybox sleep as PID 1 ignores SIGTERM: stop -t 2 kills it after 2 s
    t0 = time.monotonic()
    p = ctr("stop", "-t", "2", "bg")
    took = time.monotonic() - t0
    assert p.returncode == 0 and p.stdout.strip() == "bg"
    assert 2 <= took < 15
    insp = json.loads(ctr("inspect", "bg").stdout)[0]
    assert insp["State"]["Status"] == "exited" and insp["State"]["ExitCode"] == 137
    assert ctr("rm", "bg").returncode == 0


def test_create_then_start_and_wait(ctr):
    p = ctr("create", "--name", "cw", IMAGE, "sh", "-c", "sleep 1; exit 5")
    assert p.returncode == 0, p.stderr
    assert "Created" in ctr("ps", "-a").stdout
    assert json.loads(ctr("inspect", "cw").stdout)[0]["State"]["Status"] == "created"
    assert ctr("start", "cw").stdout.strip() == "cw"
    w = ctr("wait", "cw")
    assert w.stdout.strip() == "5"


def test_start_attach_returns_exit_code(ctr):
    ctr("create", "--name", "sa", IMAGE, "sh", "-c", "echo attached; exit 4", check=True)
    p = ctr("start", "-a", "sa")
    assert p.returncode == 4 and p.stdout == "attached\n"


def test_rm_force_kills_running(ctr):
    ctr("run", "-d", "--name", "rf", IMAGE, "sleep", "600", check=True)
    p = ctr("rm", "-f", "rf")
    assert p.returncode == 0
    assert ctr("ps", "-aq").stdout == ""


def test_kill_with_signal(ctr):
    ctr("run", "-d", "--name", "ks", IMAGE, "sh", "-c", "trap 'exit 42' USR1; echo ready; while :; do sleep 0.1; done",
        check=True)
    wait_for(lambda: ctr("logs", "ks").stdout == "ready\n", timeout=20, what="trap installed")
    assert ctr("kill", "-s", "USR1", "ks").returncode == 0
    assert ctr("wait", "ks").stdout.strip() == "42"
    p = ctr("kill", "ks")
    assert p.returncode != 0 and "is not running" in p.stderr


def test_restart_verb(ctr):
    ctr("run", "-d", "--name", "rs", IMAGE, "sh", "-c", "echo started; sleep 600", check=True)
    pid1 = json.loads(ctr("inspect", "rs").stdout)[0]["State"]["Pid"]
    assert ctr("restart", "-t", "1", "rs").returncode == 0
    st = json.loads(ctr("inspect", "rs").stdout)[0]["State"]
    assert st["Running"] and st["Pid"] != pid1
    wait_for(lambda: ctr("logs", "rs").stdout.count("started") == 2, timeout=10, what="second start in log")


def test_exit_codes_125_126_127(ctr):
    before = ctr("ps", "-aq").stdout
    p = ctr("run", "--rm", "localhost/nosuchimage:1")
    assert p.returncode == 125 and p.stderr.startswith("Error: ") and len(p.stderr.splitlines()) == 1
    p = ctr("run", "--rm", IMAGE, "/etc/passwd")
    assert p.returncode == 126, p.stderr
    p = ctr("run", "--rm", IMAGE, "nosuchcommand")
    assert p.returncode == 127, p.stderr
    assert "nosuchcommand" in p.stderr
    assert ctr("ps", "-aq").stdout == before


@pytest.mark.parametrize("args,needle", [
    (["--memory", "lots"], "invalid memory size"),
    (["--memory", "1k"], "Minimum memory limit"),
    (["--rm", "--restart", "always"], "conflicting options"),
    (["--restart", "sometimes"], "invalid restart policy"),
    (["--cap-add", "NOT_A_CAP"], "unknown capability"),
    (["--ulimit", "nofile"], "invalid ulimit"),
    (["--log-driver", "syslog"], "unknown log driver"),
    (["--health-interval", "soon", "--health-cmd", "true"], "invalid duration"),
    (["--name", "bad name!"], "Invalid container name"),
    (["--stop-signal", "SIGNOPE"], "invalid signal"),
    (["--runtime", "nosuchruntime"], "unknown runtime"),
    (["--network", "none", "-p", "8080:80"], "conflicting options"),
])
def test_bad_input_creates_nothing(ctr, args, needle):
    p = ctr("run", "-d", *args, IMAGE, "true")
    assert p.returncode == 125
    assert p.stderr.startswith("Error: ") and needle in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert ctr("ps", "-aq").stdout == ""


def test_name_in_use(ctr):
    ctr("create", "--name", "dup", IMAGE, "true", check=True)
    p = ctr("create", "--name", "dup", IMAGE, "true")
    assert p.returncode == 125
    assert 'the container name "/dup" is already in use' in p.stderr
    assert len(ctr("ps", "-aq").stdout.split()) == 1


def test_generated_names_are_docker_style(ctr):
    ctr("create", IMAGE, "true", check=True)
    name = ctr("ps", "-a", "--format", "{{.Names}}").stdout.strip()
    adj, _, surname = name.partition("_")
    assert adj.isalpha() and surname.isalpha()


def test_ps_filters_and_format(ctr):
    a = ctr("run", "-d", "--name", "web1", "-l", "tier=front", IMAGE, "sleep", "600", check=True).stdout.strip()
    b = ctr("run", "--name", "job1", "-l", "tier=back", IMAGE, "sh", "-c", "exit 2").returncode
    assert b == 2
    assert ctr("ps", "-q").stdout.split() == [a[:12]]
    assert len(ctr("ps", "-aq").stdout.split()) == 2
    assert ctr("ps", "-a", "--filter", "label=tier=back", "--format", "{{.Names}}").stdout.strip() == "job1"
    assert ctr("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}").stdout.strip() == "job1"
    assert ctr("ps", "-a", "--filter", "exited=2", "--format", "{{.Names}}").stdout.strip() == "job1"
    assert ctr("ps", "-a", "--filter", f"id={a[:6]}", "--format", "{{.Names}}").stdout.strip() == "web1"
    assert ctr("ps", "-a", "--filter", f"ancestor={IMAGE}", "-q").stdout.split().__len__() == 2
    assert ctr("ps", "-n", "1", "--format", "{{.Names}}").stdout.strip() == "job1"
    assert ctr("ps", "-aq", "--no-trunc").stdout.split()[1] == a
    out = ctr("container", "ls", "--format", "table {{.ID}}\t{{.Names}}").stdout.splitlines()
    assert out[0].split() == ["CONTAINER", "ID", "NAMES"]
    assert out[1].split() == [a[:12], "web1"]
    assert ctr("container", "ls", "--format", "{{.ID}}: {{.Names}}").stdout.strip() == f"{a[:12]}: web1"
    p = ctr("ps", "--filter", "bogus=1")
    assert p.returncode == 125 and "invalid filter" in p.stderr
    p = ctr("ps", "-a", "--size", "--format", "table {{.ID}}\t{{.Names}}\t{{.State}}\t{{.Status}}\t{{.Size}}")
    assert p.returncode == 0 and "SIZE" in p.stdout.splitlines()[0]
