from __future__ import annotations

import os

import pytest

from tests.runtime.oci import Runtime


@pytest.fixture
def rt(tmp_path):
    """`dockyard runtime` with a private --root; deletes its containers afterwards."""
    r = Runtime("dockyard", tmp_path / "dy-state")
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def runc(tmp_path):
    r = Runtime("runc", tmp_path / "runc-state")
    try:
        yield r
    finally:
        r.cleanup()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
