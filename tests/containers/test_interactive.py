"""exec -it / run -it through a real pty, exec flags, attach."""

from __future__ import annotations

import json

from tests.containers.conftest import IMAGE, RUNTIME, needs_runtime
from tests.containers.ptyrun import run_on_pty
from tests.helpers import dockyard_cmd, wait_for

pytestmark = [needs_runtime]


def _env(ctr):
    import os

    from tests.helpers import REPO

    return {"DOCKYARD_RUNTIME": RUNTIME, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_exec_it_through_a_real_pty(ctr):
    ctr("run", "-d", "--name", "ex", IMAGE, "sleep", "600", check=True)
    code, out = run_on_pty(dockyard_cmd(ctr.root) + ["--runroot", str(ctr.runroot), "exec", "-it", "ex", "/bin/sh"],
                           b"tty; echo TERM=$TERM; stty size; exit 3\n", rows=33, cols=101, env=_env(ctr))
    assert code == 3, out
    assert b"/dev/pts/" in out
    assert b"TERM=xterm" in out
    assert b"33 101" in out


def test_run_it_through_a_real_pty(ctr):
    code, out = run_on_pty(dockyard_cmd(ctr.root) + ["--runroot", str(ctr.runroot), "run", "-it", "--rm", IMAGE, "sh"],
                           b"tty; stty size; exit 5\n", rows=40, cols=120, env=_env(ctr))
    assert code == 5, out
    assert b"/dev/pts/0" in out
    assert b"40 120" in out
    assert ctr("ps", "-aq").stdout == ""


def test_run_i_pipes_stdin(ctr):
    p = ctr("run", "-i", "--rm", IMAGE, "sh", "-c", "tr a-z A-Z", input="hello stdin\n")
    assert p.returncode == 0 and p.stdout == "HELLO STDIN\n", p.stderr


def test_exec_flags_env_user_workdir_detach(ctr):
    ctr("run", "-d", "--name", "ef", "-e", "FROM_RUN=1", IMAGE, "sleep", "600", check=True)
    p = ctr("exec", "-e", "A=b", "-u", "nobody", "-w", "/tmp", "ef", "sh", "-c", 'echo "$A $FROM_RUN $(id -u) $PWD"')
    assert p.returncode == 0 and p.stdout == "b 1 65534 /tmp\n", p.stderr
    assert ctr("exec", "-d", "ef", "sh", "-c", "echo detached > /tmp/d").returncode == 0
    wait_for(lambda: ctr("exec", "ef", "cat", "/tmp/d").stdout == "detached\n", timeout=10, what="detached exec")
    p = ctr("exec", "-i", "ef", "cat", input="through stdin")
    assert p.stdout == "through stdin"
    assert ctr("exec", "ef", "sh", "-c", "exit 9").returncode == 9
    assert ctr("exec", "ef", "nosuch").returncode == 127
    assert ctr("exec", "ef", "/etc/passwd").returncode == 126


def test_exec_in_stopped_container_fails(ctr):
    ctr("create", "--name", "es", IMAGE, "true", check=True)
    p = ctr("exec", "es", "true")
    assert p.returncode == 125 and "is not running" in p.stderr


def test_attach_to_running_container(ctr):
    ctr("run", "-d", "--name", "at", IMAGE, "sh", "-c", "sleep 1; echo late; exit 6", check=True)
    p = ctr("attach", "at")
    assert p.returncode == 6
    assert "late" in p.stdout
    insp = json.loads(ctr("inspect", "at").stdout)[0]
    assert insp["State"]["ExitCode"] == 6


def test_detach_keys_leave_the_container_running(ctr):
    code, out = run_on_pty(dockyard_cmd(ctr.root) + ["--runroot", str(ctr.runroot), "run", "-it", "--name", "dk",
                                                     IMAGE, "sh"], b"\x10\x11", env=_env(ctr))
    assert code == 0, out
    assert json.loads(ctr("inspect", "dk").stdout)[0]["State"]["Running"]
    ctr("rm", "-f", "dk", check=True)
    assert ctr("ps", "-aq").stdout == ""
