"""The runtime's start-up fast path: the cgroup warm-up must begin for every command that attaches a
process to a container's cgroup, whatever global flags come first."""

from __future__ import annotations

import os

import pytest

from dockyard.runtime import attach_warmup, cli


def test_warmup_knows_which_global_flags_take_a_value():
    assert attach_warmup.VALUE_FLAGS == {f for f, (_d, takes, _m) in cli._GLOBAL.items() if takes}


V2_HOST = os.path.exists("/sys/fs/cgroup/cgroup.controllers")


@pytest.mark.skipif(os.geteuid() != 0, reason="the warm-up only runs as root")
@pytest.mark.parametrize("argv, starts", [
    # nothing is moved by pid on v1 and hybrid hosts (CgroupManager.self_attach)
    (["--root", "/tmp/x", "--log-format", "json", "run", "-b", "b", "id"], V2_HOST),
    (["--root=/tmp/x", "exec", "id", "true"], V2_HOST),
    (["--debug", "create", "id"], V2_HOST),
    (["--root", "exec", "state", "id"], False),  # "exec" is --root's value here
    (["state", "id"], False),
    (["delete", "exec"], False),
])
def test_warmup_starts_for_commands_that_attach_to_a_cgroup(argv, starts):
    attach_warmup.join()
    attach_warmup.start_for(argv)
    try:
        assert (attach_warmup._pending is not None) == starts
    finally:
        attach_warmup.join()


def test_fork_child_falls_back_to_fork_when_clone3_refuses_the_directory():
    """A directory clone3 cannot start a child in (here not a cgroup at all): a plain fork instead."""
    from dockyard.runtime.container import _fork_child

    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pid, placed = _fork_child(False, fd)
        if pid == 0:
            os._exit(7)
    finally:
        os.close(fd)
    assert not placed
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_init_and_exec_land_in_every_cgroup_of_the_container(rt, tmp_path, busybox_rootfs):
    """Whether they are cloned into the cgroup and join the v1 hierarchies themselves or are moved by
    pid, the init and an exec'd process see the same cgroup in every hierarchy, named after the id."""
    from tests.runtime.oci import make_bundle

    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    pid_file = tmp_path / "pid"
    assert rt.create(b, cid, "--pid-file", str(pid_file), command="run -d").returncode == 0
    with open(f"/proc/{int(pid_file.read_text())}/cgroup") as f:
        init_cgroups = f.read().splitlines()
    assert init_cgroups and all(line.endswith("/" + cid) for line in init_cgroups), init_cgroups
    p = rt("exec", cid, "cat", "/proc/self/cgroup")
    assert p.returncode == 0, p.stderr
    # the container has no cgroup namespace: its processes see the host's paths
    assert p.stdout.splitlines() == init_cgroups
