"""Fixtures for build tests: a private root and runroot with busybox bootstrapped, and a check that a
build leaves no mounts, build containers or temp directories behind.

RUN steps use the runtime named by DOCKYARD_TEST_RUNTIME (default dockyard's own, the engine's default).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

RUNTIME = os.environ.get("DOCKYARD_TEST_RUNTIME", "dockyard")


def leftovers(root: Path) -> list[str]:
    out = [ln.split()[1] for ln in Path("/proc/self/mounts").read_text().splitlines() if str(root) in ln]
    tmp = root / "tmp"
    if tmp.is_dir():
        out += [f"tmp/{n}" for n in os.listdir(tmp)]
    state = root / "run" / "build-runtime"
    if state.is_dir():
        out += [f"runtime state {n}" for n in os.listdir(state) if not n.startswith("@")]
    steps = root / "run" / "build"
    if steps.is_dir():
        out += [f"step dir (bundle, secrets) {n}" for n in os.listdir(steps)]
    return out


@pytest.fixture
def dyb(dy):
    """The CLI on a private root/runroot with localhost/busybox; fails the test if a build left anything."""

    def call(*args: str, **kw):
        env = dict(kw.pop("env", None) or {})
        env.setdefault("DOCKYARD_RUNTIME", RUNTIME)
        return dy("--runroot", str(dy.root / "run"), *args, env=env, **kw)

    call.root = dy.root  # type: ignore[attr-defined]
    call("image", "bootstrap", "busybox", check=True)
    try:
        yield call
    finally:
        ids = call("ps", "-aq", "--no-trunc").stdout.split()
        if ids:
            call("rm", "-f", *ids)
        left = leftovers(dy.root)
        for m in [x for x in left if x.startswith("/")]:
            subprocess.run(["umount", "-l", m], check=False)
        assert not left, f"left behind: {left}"


def write(ctx: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = ctx / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return ctx
