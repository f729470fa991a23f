"""What the monitor does on its own: restart policies, health checks, OOM kills, bounded logs."""

from __future__ import annotations

import json
import os
import signal

from tests.containers.conftest import IMAGE, needs_runtime
from tests.helpers import wait_for

pytestmark = [needs_runtime]


def _state(ctr, name):
    return json.loads(ctr("inspect", name).stdout)[0]


def test_on_failure_3_restarts_exactly_three_times(ctr):
    ctr("run", "-d", "--name", "of", "--restart", "on-failure:3", IMAGE, "sh", "-c", "echo run; exit 1", check=True)
    wait_for(lambda: _state(ctr, "of")["State"]["Status"] == "exited" and _state(ctr, "of")["RestartCount"] == 3,
             timeout=30, what="three restarts then exited")
    insp = _state(ctr, "of")
    assert insp["RestartCount"] == 3 and insp["State"]["ExitCode"] == 1
    assert insp["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert ctr("logs", "of").stdout.count("run\n") == 4


def test_on_failure_does_not_restart_success(ctr):
    ctr("run", "-d", "--name", "ok", "--restart", "on-failure", IMAGE, "true", check=True)
    assert ctr("wait", "ok").stdout.strip() == "0"
    assert _state(ctr, "ok")["RestartCount"] == 0


def test_always_restarts_until_stopped(ctr):
    ctr("run", "-d", "--name", "al", "--restart", "always", IMAGE, "sh", "-c", "sleep 0.2", check=True)
    wait_for(lambda: _state(ctr, "al")["RestartCount"] >= 2, timeout=30, what="restarts")
    assert ctr("stop", "-t", "1", "al").returncode == 0
    st = _state(ctr, "al")["State"]
    assert st["Status"] == "exited"
    n = _state(ctr, "al")["RestartCount"]
    # stopped by the user: the policy no longer applies
    import time

    time.sleep(1.5)
    assert _state(ctr, "al")["RestartCount"] == n and not _state(ctr, "al")["State"]["Running"]


def test_restore_restarts_always_containers_after_their_processes_vanish(ctr):
    """What a reboot does: container and monitor gone, DB says running.  `container restore` brings it back."""
    ctr("run", "-d", "--name", "boot", "--restart", "always", IMAGE, "sleep", "600", check=True)
    ctr("run", "-d", "--name", "manual", "--restart", "unless-stopped", IMAGE, "sleep", "600", check=True)
    ctr("stop", "-t", "0", "manual", check=True)
    ctr("run", "-d", "--name", "plain", IMAGE, "sleep", "600", check=True)
    victims = []
    for name in ("boot", "plain"):
        cid = _state(ctr, name)["Id"]
        mon = int(open(os.path.join(ctr.root, "run", "containers", cid, "monitor.pid")).read())
        victims += [mon, _state(ctr, name)["State"]["Pid"]]
    for pid in victims:  # the monitor first, so it cannot restart the container
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _state(ctr, "boot")["State"]["Running"], timeout=10, what="processes gone")
    assert "Exited (255)" in ctr("ps", "-a", "--filter", "name=plain").stdout
    p = ctr("container", "restore")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [_state(ctr, "boot")["Id"]]
    assert _state(ctr, "boot")["State"]["Running"]
    assert not _state(ctr, "manual")["State"]["Running"]
    assert not _state(ctr, "plain")["State"]["Running"]


def test_health_status_transitions(ctr):
    ctr("run", "-d", "--name", "hc", "--health-cmd", "test -f /tmp/ok", "--health-interval", "1s",
        "--health-retries", "2", "--health-timeout", "5s", IMAGE, "sleep", "600", check=True)
    h = _state(ctr, "hc")["State"]["Health"]
    assert h["Status"] == "starting" and h["FailingStreak"] == 0
    wait_for(lambda: _state(ctr, "hc")["State"]["Health"]["Status"] == "unhealthy", timeout=30, what="unhealthy")
    h = _state(ctr, "hc")["State"]["Health"]
    assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
    assert "(unhealthy)" in ctr("ps").stdout
    ctr("exec", "hc", "touch", "/tmp/ok", check=True)
    wait_for(lambda: _state(ctr, "hc")["State"]["Health"]["Status"] == "healthy", timeout=30, what="healthy")
    h = _state(ctr, "hc")["State"]["Health"]
    assert h["FailingStreak"] == 0 and h["Log"][-1]["ExitCode"] == 0
    assert len(h["Log"]) <= 5
    assert ctr("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout.strip() == "hc"
    out = ctr("inspect", "hc", "--format", "{{json .State.Health }}").stdout
    assert json.loads(out)["Status"] == "healthy"


def test_health_timeout_and_output(ctr):
    ctr("run", "-d", "--name", "ht", "--health-cmd", "echo probing; sleep 10", "--health-interval", "1s",
        "--health-timeout", "1s", "--health-retries", "1", IMAGE, "sleep", "600", check=True)
    wait_for(lambda: _state(ctr, "ht")["State"]["Health"]["Status"] == "unhealthy", timeout=30, what="unhealthy")
    last = _state(ctr, "ht")["State"]["Health"]["Log"][-1]
    assert last["ExitCode"] == -1 and "timeout" in last["Output"]


def test_no_healthcheck(ctr):
    ctr("run", "-d", "--name", "nh", "--no-healthcheck", IMAGE, "sleep", "600", check=True)
    assert "Health" not in _state(ctr, "nh")["State"]


def test_memory_limit_exceeded_sets_oomkilled(ctr):
    p = ctr("run", "--name", "oom", "--memory", "10m", IMAGE, "sh", "-c",
            'a=$(head -c 50000000 /dev/zero | tr "\\0" a); echo ${#a}')
    assert p.returncode == 137
    st = _state(ctr, "oom")["State"]
    assert st["OOMKilled"] is True and st["ExitCode"] == 137
    assert _state(ctr, "oom")["HostConfig"]["Memory"] == 10 * 1024 * 1024


def test_json_file_rotation_keeps_max_file_of_max_size(ctr):
    ctr("run", "--name", "lg", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", IMAGE, "sh", "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done", check=True)
    path = _state(ctr, "lg")["LogPath"]
    assert path.endswith("-json.log")
    d = os.path.dirname(path)
    files = sorted(f for f in os.listdir(d) if f.startswith(os.path.basename(path)))
    assert 1 < len(files) <= 3, files
    for f in files:
        assert os.path.getsize(os.path.join(d, f)) <= 1024
    lines = ctr("logs", "lg").stdout.splitlines()
    assert lines[-1] == "line-399"
    assert lines == [f"line-{i}" for i in range(400 - len(lines), 400)]
    entry = json.loads(open(path).readline())
    assert set(entry) == {"log", "stream", "time"} and entry["stream"] == "stdout"


def test_json_file_default_is_bounded(ctr):
    ctr("create", "--name", "lb", IMAGE, "true", check=True)
    assert _state(ctr, "lb")["HostConfig"]["LogConfig"]["Type"] == "json-file"
    # the default bound is applied by the monitor; Docker's unbounded default is not reproduced
    ctr("start", "-a", "lb", check=True)


def test_k8s_file_and_none_drivers(ctr):
    ctr("run", "--name", "k8", "--log-driver", "k8s-file", IMAGE, "sh", "-c", "echo a; echo b >&2", check=True)
    raw = open(_state(ctr, "k8")["LogPath"]).read().splitlines()
    assert raw[0].split(" ", 3)[1:] == ["stdout", "F", "a"] or raw[1].split(" ", 3)[1:] == ["stdout", "F", "a"]
    p = ctr("logs", "k8")
    assert p.stdout == "a\n" and p.stderr == "b\n"
    ctr("run", "--name", "nl", "--log-driver", "none", IMAGE, "echo", "x", check=True)
    p = ctr("logs", "nl")
    assert p.returncode == 125 and "does not support reading" in p.stderr


def test_logs_tail_timestamps_since_follow(ctr):
    ctr("run", "--name", "lt", IMAGE, "sh", "-c", "echo one; echo two; echo three", check=True)
    assert ctr("logs", "--tail", "2", "lt").stdout == "two\nthree\n"
    assert ctr("logs", "-n", "0", "lt").stdout == ""
    ts = ctr("logs", "-t", "lt").stdout.splitlines()
    assert ts[0].endswith(" one") and ts[0][:4].isdigit() and "T" in ts[0].split()[0]
    assert ctr("logs", "--since", "1h", "lt").stdout == "one\ntwo\nthree\n"
    assert ctr("logs", "--until", "2000-01-01T00:00:00Z", "lt").stdout == ""
    ctr("run", "-d", "--name", "lf", IMAGE, "sh", "-c", "echo a; sleep 1; echo b", check=True)
    p = ctr("logs", "-f", "lf", timeout=30)
    assert p.stdout == "a\nb\n"
