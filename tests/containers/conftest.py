"""Fixtures for container tests: a private root with busybox bootstrapped, and guaranteed cleanup.

Tests run against the runtime named by DOCKYARD_TEST_RUNTIME (default: dockyard's own, the engine's
default), so the same suite checks runc (`DOCKYARD_TEST_RUNTIME=runc`) and crun.
"""

from __future__ import annotations

import os
import subprocess

import pytest

RUNTIME = os.environ.get("DOCKYARD_TEST_RUNTIME", "dockyard")
IMAGE = "localhost/busybox"
# dockyard's own runtime (the engine's default) needs no peer; runc/crun runs skip where absent
needs_runtime = pytest.mark.peer(RUNTIME) if RUNTIME != "dockyard" else pytest.mark.peer()


def _monitor_pids(root) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if any(b"import monitor" in c for c in cmd) and any(str(root).encode() in c for c in cmd):
            out.append(int(pid))
    return out


@pytest.fixture
def busybox_image(dy):
    p = dy("image", "bootstrap", "busybox", check=True)
    return p.stdout.strip()


@pytest.fixture
def ctr(dy, busybox_image):
    """Call dockyard with the test runtime; afterwards remove every container and check nothing is left."""

    def call(*args: str, **kw):
        env = dict(kw.pop("env", None) or {})
        env.setdefault("DOCKYARD_RUNTIME", RUNTIME)
        # a private runroot too, so monitors, sockets and runtime state are this test's alone
        return dy("--runroot", str(dy.root / "run"), *args, env=env, **kw)

    call.root = dy.root  # type: ignore[attr-defined]
    call.runroot = dy.root / "run"  # type: ignore[attr-defined]
    call.image = IMAGE  # type: ignore[attr-defined]
    try:
        yield call
    finally:
        ids = call("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            call("rm", "-f", *ids)
        left = _monitor_pids(dy.root)
        mounts = [ln for ln in open("/proc/self/mounts").read().splitlines() if str(dy.root) in ln]
        for pid in left:
            os.kill(pid, 9)
        for m in mounts:
            subprocess.run(["umount", "-l", m.split()[1]], check=False)
        assert not left, f"monitor processes left behind: {left}"
        assert not mounts, f"mounts left behind: {mounts}"
        from dockyard import host

        cg = host.cgroup_info()
        base = os.path.join(cg.v1_mounts["memory"], "dockyard") if "memory" in cg.v1_mounts else \
            os.path.join(cg.v2_mount or "/sys/fs/cgroup", "dockyard")
        for cid in ids:
            assert not os.path.exists(os.path.join(base, cid)), f"cgroup left behind for {cid}"


