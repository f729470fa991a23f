from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import leftovers
from tests.helpers import ProcessTracker, make_busybox_rootfs, run_cli

_LEFT_BEHIND: list[str] = []


def pytest_collection_modifyitems(config, items):
    # Tests marked peer("runc", ...) skip cleanly where that program is missing, so a developer
    # without every peer still gets a meaningful run; CI installs them all.
    for item in items:
        for m in item.iter_markers("peer"):
            for prog in m.args:
                if not shutil.which(prog):
                    item.add_marker(pytest.mark.skip(reason=f"{prog} is not installed"))


@pytest.fixture(scope="session", autouse=True)
def _leftover_watch(tmp_path_factory) -> Iterator[None]:
    """Notes what the session leaves on the host (see tests/leftovers.py); set up first, so torn
    down after every other session fixture."""
    tmp_root = str(tmp_path_factory.getbasetemp()) + "/"
    before = leftovers.snapshot(tmp_root)
    yield
    _LEFT_BEHIND[:] = leftovers.left_behind(before, tmp_root)


def pytest_terminal_summary(terminalreporter):
    # A warning, not a failure: one area's leftover must not block every other area's CI.
    if _LEFT_BEHIND:
        terminalreporter.section("left behind on the host (tests must clean up)", yellow=True, bold=True)
        for item in _LEFT_BEHIND:
            terminalreporter.line(item)


@pytest.fixture(scope="session")
def session_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dockyard-root")


@pytest.fixture
def dy_root(tmp_path) -> Path:
    """A fresh, private dockyard root for one test."""
    root = tmp_path / "root"
    root.mkdir()
    return root


@pytest.fixture
def dy(dy_root):
    """Call the dockyard CLI against this test's private root."""

    def call(*args: str, **kw):
        return run_cli(*args, root=dy_root, **kw)

    call.root = dy_root  # type: ignore[attr-defined]
    return call


@pytest.fixture(scope="session")
def busybox_rootfs_template(tmp_path_factory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("busybox") / "rootfs")


@pytest.fixture
def busybox_rootfs(tmp_path, busybox_rootfs_template) -> Path:
    """A private copy of the busybox rootfs the test may change."""
    dest = tmp_path / "rootfs"
    shutil.copytree(busybox_rootfs_template, dest, symlinks=True)
    return dest


@pytest.fixture
def procs() -> Iterator[ProcessTracker]:
    t = ProcessTracker()
    try:
        yield t
    finally:
        t.stop_all()


requires_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
