"""dockyard build as an unprivileged user (the engine's rootless mode): steps run in the user's
namespace, the default step network is slirp4netns, layers belong to the user on disk."""

# ruff: noqa: F811 - pytest fixtures imported from tests.rootless are redefined as parameters
from __future__ import annotations

import subprocess

from tests.rootless.test_rootless_engine import pytestmark, registry_image, user  # noqa: F401

__all__ = ["pytestmark"]


def test_build_as_a_user(user):
    ctx = user.home / "ctx"
    ctx.mkdir()
    (ctx / "Containerfile").write_text("FROM busybox\nCOPY hello.txt /hello.txt\n"
                                       "RUN cat /hello.txt > /copied && rm /bin/vi && ls /sys/class/net | sort > /nets\n"
                                       "USER 1000\nCMD [\"sh\", \"-c\", \"cat /copied /nets; ls /bin/vi 2>&1; id -u\"]\n")
    (ctx / "hello.txt").write_text("hello rootless\n")
    subprocess.run(["chown", "-R", f"{user.name}:", str(ctx)], check=True)
    out = user.ok("build", "-t", "rlbuild", str(ctx))
    assert "Successfully tagged localhost/rlbuild:latest" in out
    run = user.ok("run", "--rm", "rlbuild")
    lines = run.splitlines()
    assert lines[0] == "hello rootless"
    assert "tap0" in lines, "the default step network rootless is slirp4netns"
    assert "No such file" in run and lines[-1] == "1000"
    again = user.ok("build", "-t", "rlbuild", str(ctx))
    assert again.count("--> Using cache") == 4
    ranges = (range(user.uid, user.uid + 1), range(user.subuid[0], user.subuid[0] + user.subuid[1]))
    strays = [p for p in (user.root / "layers").rglob("*") if not any(p.lstat().st_uid in r for r in ranges)]
    assert not strays, "layer files owned by ids outside the user's ranges"
