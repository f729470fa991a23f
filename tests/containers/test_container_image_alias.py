"""`container image ...` is the image group, as the tutorial's `$CR container image prune -a -f` needs."""

from __future__ import annotations

from tests.containers.conftest import IMAGE, needs_runtime

pytestmark = [needs_runtime]


def test_container_image_prune_reaches_the_image_group(ctr):
    assert IMAGE in ctr("container", "image", "ls", check=True).stdout
    ctr("create", "--name", "keeper", IMAGE, "true", check=True)
    # an image a container uses survives prune -a
    ctr("container", "image", "prune", "-a", "-f", check=True)
    assert ctr("images", "-q").stdout.strip() != ""
    ctr("rm", "keeper", check=True)
    p = ctr("container", "image", "prune", "-a", "-f", check=True)
    assert "Deleted" in p.stdout or "deleted" in p.stdout.lower(), p.stdout
    assert ctr("images", "-q").stdout.strip() == ""


def test_unknown_container_subcommand_is_still_refused(ctr):
    p = ctr("container", "no-such-thing")
    assert p.returncode != 0 and "no-such-thing" in p.stderr
