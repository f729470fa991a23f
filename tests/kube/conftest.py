"""Pod tests run on the container fixtures (private root and runroot, busybox bootstrapped) and remove
every pod before those fixtures check that no container, monitor, mount or cgroup is left."""

from __future__ import annotations

import pytest

from tests.containers.conftest import busybox_image, ctr  # noqa: F401 - fixtures used by these tests


@pytest.fixture
def pod_ctr(ctr):  # noqa: F811
    try:
        yield ctr
    finally:
        ids = ctr("pod", "ps", "-q", "--no-trunc").stdout.split()
        if ids:
            ctr("pod", "rm", "-f", *ids)
        vols = ctr("volume", "ls", "-q").stdout.split()
        if vols:
            ctr("volume", "rm", "-f", *vols)
