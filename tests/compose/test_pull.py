"""`compose pull` and `up` of a missing image fetch it from a real registry (Debian's docker-registry)."""

from __future__ import annotations

import pytest

from tests.registry_peer import registry  # noqa: F401  (fixture)

pytestmark = pytest.mark.peer("docker-registry")


def test_pull_and_up_pull_missing(cdy, proj, registry):  # noqa: F811
    reg = registry(tls=True)
    env = reg.env()
    cdy("push", "localhost/busybox", f"{reg.host}/bb/busybox:1", env=env, check=True)
    (proj / "compose.yaml").write_text(
        f"services:\n  a:\n    image: {reg.host}/bb/busybox:1\n    command: sleep 3600\n"
        "    stop_signal: SIGKILL\n"
        f"  b:\n    image: {reg.host}/bb/busybox:2\n    command: echo never\n    pull_policy: never\n")
    base = ["compose", "--project-directory", str(proj)]
    try:
        cdy(*base, "pull", "a", env=env, check=True)
        assert f"{reg.host}/bb/busybox" in cdy("images", check=True).stdout
        cdy("rmi", f"{reg.host}/bb/busybox:1", check=True)
        # a's missing image is pulled; b's may not be: every image is settled before any container
        # is created, so the failed up leaves no container and no network
        p = cdy(*base, "up", "-d", env=env)
        assert p.returncode == 125 and "No such image" in p.stderr and "a Pulled" in p.stderr
        assert f"{reg.host}/bb/busybox" in cdy("images", check=True).stdout
        assert cdy("ps", "-aq", check=True).stdout == ""
        assert f"{proj.name}_default" not in cdy("network", "ls", check=True).stdout
        cdy(*base, "up", "-d", "a", env=env, check=True)
        assert len(cdy("ps", "-q", check=True).stdout.split()) == 1
    finally:
        cdy(*base, "down", check=False)
