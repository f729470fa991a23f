"""--cpuset-cpus / --cpuset-mems: the container may run only on the CPUs it was given (Docker's flags
and error for CPUs the host does not offer)."""

from __future__ import annotations

import os

from tests.containers.conftest import needs_runtime
from tests.helpers import unique_name

pytestmark = needs_runtime


def test_cpuset_limits_where_the_container_runs(ctr):
    cpu = max(os.sched_getaffinity(0))
    p = ctr("run", "--rm", "--network", "none", "--cpuset-cpus", str(cpu), "--cpuset-mems", "0", ctr.image,
            "grep", "-E", "^(Cpus|Mems)_allowed_list", "/proc/self/status", check=True)
    assert p.stdout.split() == ["Cpus_allowed_list:", str(cpu), "Mems_allowed_list:", "0"]
    name = unique_name("cpuset")
    ctr("create", "--name", name, "--cpuset-cpus", str(cpu), ctr.image, "true", check=True)
    got = ctr("inspect", "--format", "{{.HostConfig.CpusetCpus}} {{.HostConfig.CpusetMems}}", name, check=True)
    assert got.stdout.strip() == str(cpu)


def test_unavailable_or_malformed_cpus_are_refused(ctr):
    p = ctr("run", "--rm", "--cpuset-cpus", "0-4095", ctr.image, "true")
    assert p.returncode == 125 and "Requested CPUs are not available" in p.stderr
    p = ctr("run", "--rm", "--cpuset-cpus", "1-0", ctr.image, "true")
    assert p.returncode == 125 and "--cpuset-cpus" in p.stderr
    assert ctr("ps", "-aq", check=True).stdout == ""
