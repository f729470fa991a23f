"""`dockyard run` resource flags on a pure cgroup v2 host (inside the VM): what Docker users see."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.helpers import make_busybox_rootfs, run_cli, unique_name

MB = 1 << 20


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    """A private dockyard root holding one image imported from the busybox rootfs."""
    base = tmp_path_factory.mktemp("engine")
    rootfs = make_busybox_rootfs(base / "rootfs")
    tar = base / "rootfs.tar"
    with tarfile.open(tar, "w") as t:
        t.add(rootfs, arcname=".")
    root = base / "root"
    p = run_cli("import", str(tar), "vmbusybox", root=root)
    assert p.returncode == 0, p.stderr
    names: list[str] = []

    def dy(*args: str, **kw):
        return run_cli(*args, root=root, **kw)

    dy.names = names  # type: ignore[attr-defined]
    yield dy
    if names:
        run_cli("rm", "-f", *names, root=root)


def _name(engine) -> str:
    n = unique_name("vm")
    engine.names.append(n)
    return n


def test_run_resource_flags_land_in_the_v2_cgroup(engine):
    name = _name(engine)
    p = engine("run", "-d", "--name", name, "--network", "none", "-m", "64m", "--memory-reservation", "32m",
               "--cpus", "0.5", "--cpu-shares", "512", "--pids-limit", "42", "vmbusybox", "sleep", "600")
    assert p.returncode == 0, p.stderr
    pid = engine("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
    with open(f"/proc/{pid}/cgroup") as f:
        d = "/sys/fs/cgroup" + f.read().strip().split("::", 1)[1]
    got = {f: open(f"{d}/{f}").read().strip() for f in
           ("memory.max", "memory.low", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max")}
    # memory.swap.max: Docker's default memory+swap is twice the memory limit, so as much swap again
    assert got == {"memory.max": str(64 * MB), "memory.low": str(32 * MB), "memory.swap.max": str(64 * MB),
                   "cpu.max": "50000 100000", "cpu.weight": "20", "pids.max": "42"}


def test_cgroup_namespace_is_private_by_default_on_v2(engine):
    p = engine("run", "--rm", "--network", "none", "vmbusybox", "cat", "/proc/self/cgroup")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0::/\n"


def test_oom_killed_container_is_reported(engine):
    name = _name(engine)
    p = engine("run", "--name", name, "--network", "none", "-m", "32m", "--memory-swap", "32m", "vmbusybox",
               "dd", "if=/dev/zero", "of=/dev/null", f"bs={96 * MB}", "count=1")
    assert p.returncode == 137, p.stderr
    p = engine("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", name)
    assert p.stdout.strip() == "true 137", p.stderr


def test_stats_and_pause_on_v2(engine):
    name = _name(engine)
    p = engine("run", "-d", "--name", name, "--network", "none", "-m", "64m", "--pids-limit", "20",
               "vmbusybox", "sleep", "600")
    assert p.returncode == 0, p.stderr
    p = engine("stats", "--no-stream", "--format", "{{.MemUsage}} {{.PIDs}}", name)
    assert p.returncode == 0, p.stderr
    usage, pids = p.stdout.strip().rsplit(" ", 1)
    assert usage.endswith("/ 64MiB") and pids == "1", p.stdout
    assert engine("pause", name).returncode == 0
    assert engine("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "paused"
    assert engine("unpause", name).returncode == 0
    assert engine("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == "running"


def test_image_is_on_overlay(engine, tmp_path: Path):
    """The engine's storage works in the VM as on a host (overlay, not the copying fallback)."""
    p = engine("run", "--rm", "--network", "none", "vmbusybox", "sh", "-c", "grep ' / ' /proc/self/mountinfo")
    assert p.returncode == 0, p.stderr
    assert " - overlay " in p.stdout
