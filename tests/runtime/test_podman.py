"""Podman (through conmon) drives `dockyard runtime` exactly as it drives runc: --runtime PATH."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.runtime.conftest import needs_root

pytestmark = [needs_root, pytest.mark.peer("podman", "conmon")]


@pytest.fixture
def podman(tmp_path, busybox_rootfs):
    import shutil
    import tempfile
    from pathlib import Path

    short = Path(tempfile.mkdtemp(prefix="dypm-", dir="/tmp"))  # podman refuses runroots over 50 chars
    wrapper = tmp_path / "dockyard-runtime"
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m dockyard runtime \"$@\"\n")
    wrapper.chmod(0o755)
    base = ["podman", "--root", str(tmp_path / "pm-root"), "--runroot", str(short / "run"),
            "--tmpdir", str(tmp_path / "pm-tmp"), "--runtime", str(wrapper), "--cgroup-manager", "cgroupfs",
            "--events-backend", "file"]

    def call(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    call.rootfs = str(busybox_rootfs)  # type: ignore[attr-defined]
    import glob
    import os

    # With the cgroupfs manager podman puts conmon in libpod_parent/conmon; remove it again if we caused it.
    before = set(glob.glob("/sys/fs/cgroup/*/libpod_parent"))
    try:
        yield call
    finally:
        call("rm", "--all", "--force", "--time", "0")
        subprocess.run(["umount", "-R", str(tmp_path / "pm-root")], capture_output=True)
        shutil.rmtree(short, ignore_errors=True)
        for parent in set(glob.glob("/sys/fs/cgroup/*/libpod_parent")) - before:
            for d in (os.path.join(parent, "conmon"), parent):
                try:
                    os.rmdir(d)
                except OSError:
                    pass


def test_podman_run_exec_stop_rm(podman):
    p = podman("run", "--rm", "--network", "none", "--rootfs", podman.rootfs, "sh", "-c", "echo it works; exit 5")
    assert (p.returncode, p.stdout) == (5, "it works\n"), p.stderr
    p = podman("run", "-d", "--network", "none", "--rootfs", podman.rootfs, "sleep", "1000")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    p = podman("exec", cid, "sh", "-c", "echo $$; cat /proc/1/cmdline")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[1].startswith("sleep")
    assert podman("pause", cid).returncode == 0
    assert podman("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
    assert podman("unpause", cid).returncode == 0
    assert podman("stop", "-t", "1", cid).returncode == 0
    assert podman("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited"
    assert podman("rm", cid).returncode == 0


def test_podman_tty(podman):
    """-t: conmon receives the pty master over --console-socket."""
    p = podman("run", "--rm", "-t", "--network", "none", "--rootfs", podman.rootfs, "sh", "-c", "tty")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().startswith("/dev/pts/")
