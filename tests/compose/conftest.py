"""Fixtures for compose tests: a private root and runroot with busybox bootstrapped, a project
directory to write compose files into, and a teardown that removes whatever a test left and then
checks that no container, monitor, mount, project network or volume remains."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.containers.conftest import _monitor_pids
from tests.helpers import unique_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (bridge networks)")


@pytest.fixture
def cdy(dy):
    """``dockyard`` on a private root and runroot, with localhost/busybox present."""
    dy("image", "bootstrap", "busybox", check=True)

    def call(*args: str, **kw):
        return dy("--runroot", str(dy.root / "run"), *args, **kw)

    call.root = dy.root  # type: ignore[attr-defined]
    try:
        yield call
    finally:
        ids = call("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            call("rm", "-f", *ids)
        nets = [n for n in call("network", "ls", "--format", "{{.Name}}").stdout.split()
                if n not in ("bridge", "host", "none")]
        for n in nets:
            call("network", "rm", n)
        left = _monitor_pids(dy.root)
        mounts = [ln for ln in open("/proc/self/mounts").read().splitlines() if str(dy.root) in ln]
        for pid in left:
            os.kill(pid, 9)
        for m in mounts:
            subprocess.run(["umount", "-l", m.split()[1]], check=False)
        assert not ids, f"containers left behind: {ids}"
        assert not nets, f"networks left behind: {nets}"
        assert not left, f"monitor processes left behind: {left}"
        assert not mounts, f"mounts left behind: {mounts}"


@pytest.fixture
def proj(tmp_path):
    """A project directory with a unique name (the default project name)."""
    d = tmp_path / unique_name("proj")
    d.mkdir()
    return d
