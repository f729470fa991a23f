"""dockyard's own runtime forked from the monitor (the default) behaves as the exec'd one (DOCKYARD_RUNTIME_EXEC=1)."""

from __future__ import annotations

import json

import pytest

from tests.containers.conftest import IMAGE, RUNTIME, needs_runtime
from tests.helpers import wait_for

pytestmark = [needs_runtime, pytest.mark.skipif(RUNTIME != "dockyard", reason="only dockyard's own runtime is forked")]

MODES = [pytest.param({}, id="forked"), pytest.param({"DOCKYARD_RUNTIME_EXEC": "1"}, id="execd")]


def _conf_keys(ctr, cid: str) -> set[str]:
    text = (ctr.runroot / "containers" / cid / "monitor.conf").read_text()
    return {line.split("\t", 1)[0] for line in text.splitlines()}


@pytest.mark.parametrize("env", MODES)
def test_run_output_exit_codes_and_errors(ctr, env):
    p = ctr("run", "--rm", "--network", "none", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3", env=env)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    p = ctr("run", "--rm", "--network", "none", IMAGE, "nosuchcmd", env=env)
    assert p.returncode == 127 and "nosuchcmd" in p.stderr and "not found" in p.stderr, p.stderr
    assert ctr("ps", "-aq").stdout == ""


@pytest.mark.parametrize("env", MODES)
def test_detached_health_check_and_stop(ctr, env):
    cid = ctr("run", "-d", "--network", "none", "--health-cmd", "echo ok", "--health-interval", "1s", IMAGE,
              "sleep", "600", env=env, check=True).stdout.strip()
    assert ("runtime_inproc" in _conf_keys(ctr, cid)) == (not env)

    def healthy() -> bool:
        st = json.loads(ctr("inspect", cid).stdout)[0]["State"]
        return st["Health"]["Status"] == "healthy"

    wait_for(healthy, timeout=60)
    log = json.loads(ctr("inspect", cid).stdout)[0]["State"]["Health"]["Log"]
    assert log[-1]["ExitCode"] == 0 and log[-1]["Output"] == "ok\n"
    assert ctr("stop", "-t", "0", cid, env=env).returncode == 0
    assert json.loads(ctr("inspect", cid).stdout)[0]["State"]["ExitCode"] == 137
    assert ctr("rm", cid).returncode == 0
