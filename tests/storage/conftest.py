from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from dockyard.engine import Engine
from tests.helpers import unique_name


def mounts_below(path: Path) -> list[str]:
    real = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == real or mp.startswith(real + "/"):
                out.append(mp)
    return out


@pytest.fixture
def engine(tmp_path):
    """An engine on a private root; afterwards nothing may stay mounted below the test's directory."""
    e = Engine(tmp_path / "root", tmp_path / "run")
    try:
        yield e
    finally:
        e.close()
        left = mounts_below(tmp_path)
        for mp in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
        assert not left, f"test left mounts behind: {left}"


def run_in_runc(tmp_path: Path, rootfs: Path, mounts: list[dict], script: str) -> subprocess.CompletedProcess[str]:
    """Run ``sh -c script`` in a runc container on ``rootfs`` with ``mounts`` appended to runc's
    default spec: the mounts a real runtime makes from what VolumeService.prepare returned."""
    bundle = tmp_path / unique_name("bundle")
    bundle.mkdir()
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    cfg = json.loads((bundle / "config.json").read_text())
    cfg["root"] = {"path": str(rootfs), "readonly": False}
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/sh", "-c", script]
    cfg["mounts"] += mounts
    (bundle / "config.json").write_text(json.dumps(cfg))
    state = tmp_path / "runc-state"
    cid = unique_name("vol")
    try:
        return subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle), cid],
                              capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["runc", "--root", str(state), "delete", "-f", cid], capture_output=True, check=False)


@pytest.fixture
def cli(dy):
    """The CLI on a private root and runroot with busybox bootstrapped; afterwards every container is
    removed and nothing may stay mounted below the root."""
    dy("image", "bootstrap", "busybox", check=True)

    def call(*args: str, **kw):
        env = dict(kw.pop("env", None) or {})
        env.setdefault("DOCKYARD_RUNTIME", os.environ.get("DOCKYARD_TEST_RUNTIME", "runc"))
        return dy("--runroot", str(dy.root / "run"), *args, env=env, **kw)

    call.root = dy.root  # type: ignore[attr-defined]
    try:
        yield call
    finally:
        ids = call("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            call("rm", "-f", "-v", *ids)
        left = mounts_below(dy.root)
        for mp in sorted(left, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], check=False)
        assert not left, f"mounts left behind: {left}"


def files_du(path: Path) -> int:
    """du's byte count of everything below ``path`` but directories (hard links once), which is
    what Docker's directory.Size measures."""
    find = subprocess.run(["find", str(path), "-mindepth", "1", "!", "-type", "d", "-print0"],
                          capture_output=True, check=True)
    if not find.stdout:
        return 0
    du = subprocess.run(["du", "-cb", "--files0-from=-"], input=find.stdout, capture_output=True, check=True)
    return int(du.stdout.decode().splitlines()[-1].split()[0])
