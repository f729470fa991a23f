"""--cgroupns: Docker's default is a private cgroup namespace on cgroup v2 hosts and the host's on v1
and hybrid ones (tests/vm/guest/test_engine_v2.py checks the v2 default in a pure v2 VM)."""

from __future__ import annotations

from dockyard import host
from tests.containers.conftest import needs_runtime
from tests.helpers import unique_name

pytestmark = needs_runtime


def _paths(out: str) -> set[str]:
    return {line.split(":", 2)[2] for line in out.splitlines() if line.count(":") >= 2}


def test_private_cgroupns_shows_its_cgroup_as_root(ctr):
    p = ctr("run", "--rm", "--network", "none", "--cgroupns", "private", ctr.image, "cat", "/proc/self/cgroup",
            check=True)
    assert _paths(p.stdout) == {"/"}
    p = ctr("run", "--rm", "--network", "none", "--cgroupns", "host", ctr.image, "cat", "/proc/self/cgroup",
            check=True)
    paths = _paths(p.stdout) - {"/"}  # the v2 line of a hybrid host stays at the root
    assert paths and all(path.startswith("/dockyard/") for path in paths), p.stdout


def test_default_mode_follows_the_host_and_shows_in_inspect(ctr):
    name = unique_name("cgns")
    ctr("create", "--name", name, ctr.image, "true", check=True)
    want = "private" if host.cgroup_info().version == "v2" else "host"
    assert ctr("inspect", "--format", "{{.HostConfig.CgroupnsMode}}", name, check=True).stdout.strip() == want


def test_bad_cgroupns_value_is_refused(ctr):
    p = ctr("run", "--rm", "--cgroupns", "shared", ctr.image, "true")
    assert p.returncode == 125 and "--cgroupns" in p.stderr
