"""`run` of an image that is not local pulls it first (quietly: the container's output stays clean)."""

from __future__ import annotations

import pytest

from tests.containers.conftest import IMAGE, needs_runtime
from tests.registry_peer import registry  # noqa: F401  (fixture)

pytestmark = [needs_runtime, pytest.mark.peer("docker-registry")]


def test_run_pulls_a_missing_image(ctr, registry):  # noqa: F811
    reg = registry(tls=True)
    env = reg.env()
    assert ctr("push", IMAGE, f"{reg.host}/bb/busybox:1", env=env).returncode == 0
    p = ctr("run", "--rm", "--progress", "plain", "--network", "none", f"{reg.host}/bb/busybox:1", "echo",
            "pulled and ran", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "pulled and ran\n"  # pull progress goes to stderr
    assert p.stderr.strip(), "plain progress shows the pull"
    assert f"{reg.host}/bb/busybox" in ctr("images").stdout
    p = ctr("run", "--rm", "--pull", "never", f"{reg.host}/bb/other:1", "true", env=env)
    assert p.returncode == 125 and "No such image" in p.stderr
