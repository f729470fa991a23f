"""Root's user-namespaced containers: --uidmap/--gidmap and --userns=auto (Podman's flags)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.helpers import run_cli, unique_name

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture
def busybox():
    """A private root below a directory others may search: the container's root, an unprivileged id
    outside, must reach the rootfs (pytest's tmp directories are 0700)."""
    top = Path(tempfile.mkdtemp(prefix="dy-userns-", dir="/tmp"))
    os.chmod(top, 0o711)

    def dy(*args: str, **kw):
        return run_cli(*args, root=top / "root", **kw)

    try:
        p = dy("image", "bootstrap", "busybox")
        assert p.returncode == 0, p.stderr
        yield dy
    finally:
        ids = dy("ps", "-aq").stdout.split()
        if ids:
            dy("rm", "-f", *ids)
        shutil.rmtree(top, ignore_errors=True)


def test_unreachable_store_is_a_clear_error(dy):
    assert dy("image", "bootstrap", "busybox").returncode == 0
    p = dy("run", "--rm", "--uidmap", "0:400000:65536", "busybox", "true")
    assert p.returncode == 125
    assert "the container's user namespace cannot reach its root filesystem" in p.stderr
    assert "is not searchable by others" in p.stderr


def _status_ids(pid: int) -> tuple[int, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["Uid"].split()[0]), int(fields["Gid"].split()[0])


def test_uidmap_gives_a_user_namespaced_container_with_image_owners_kept(busybox):
    dy = busybox
    base = 400000 + int.from_bytes(os.urandom(2), "big") * 16
    p = dy("run", "--rm", "--uidmap", f"0:{base}:65536", "--gidmap", f"0:{base}:65536", "busybox", "sh", "-c",
           "id; cat /proc/self/uid_map; stat -c '%u:%g' /etc/passwd /; touch /etc/new && echo writable")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1].split() == ["0", str(base), "65536"]
    assert lines[2:] == ["0:0", "0:0", "writable"]

    name = unique_name("ns", 20)
    p = dy("run", "-d", "--name", name, "--uidmap", f"0:{base}:65536", "--gidmap", f"0:{base}:65536", "busybox",
           "sleep", "600")
    assert p.returncode == 0, p.stderr
    try:
        info = json.loads(dy("inspect", name).stdout)[0]
        assert info["HostConfig"]["UsernsMode"] == "private"
        assert _status_ids(info["State"]["Pid"]) == (base, base)  # root inside is nobody special outside
        shifted = Path(info["GraphDriver"]["Data"]["MergedDir"]).parents[2] / "idmapped-layers"
        copies = list(shifted.glob("*/*/etc/passwd"))
        assert copies and all(p.lstat().st_uid == base for p in copies)
    finally:
        dy("rm", "-f", name)
    assert list(shifted.iterdir()) == []


def test_userns_host_is_the_default(busybox):
    dy = busybox
    name = unique_name("ns", 20)
    assert dy("create", "--name", name, "busybox", "true").returncode == 0
    assert json.loads(dy("inspect", name).stdout)[0]["HostConfig"]["UsernsMode"] == ""
    p = dy("run", "--rm", "--userns=host", "busybox", "cat", "/proc/self/uid_map")
    assert p.stdout.split() == ["0", "0", "4294967295"]


@pytest.mark.parametrize("args, message", [
    (["--userns=keep-id"], "--userns=keep-id is only supported in rootless mode"),
    (["--userns=bogus"], "invalid --userns 'bogus': expected host, keep-id, nomap or auto"),
    (["--uidmap", "0:100000"], "invalid --uidmap '0:100000': expected CONTAINER_ID:HOST_ID:SIZE"),
    (["--userns=auto", "--uidmap", "0:100000:10"], "--userns and --uidmap/--gidmap cannot be combined"),
])
def test_bad_userns_flags_are_refused_at_create(busybox, args, message):
    p = busybox("create", *args, "busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip() == f"Error: {message}"
    assert busybox("ps", "-aq").stdout == ""


def test_userns_auto_takes_a_free_range_of_the_containers_user(busybox):
    with open("/etc/subuid") as f:
        if not any(line.startswith("containers:") for line in f):
            pytest.skip("no ranges for the user \"containers\" in /etc/subuid (Podman's --userns=auto pool)")
    dy = busybox
    names = [unique_name("ns", 20) for _ in range(2)]
    try:
        for n in names:
            p = dy("run", "-d", "--name", n, "--userns=auto:size=1000", "busybox", "sleep", "600")
            assert p.returncode == 0, p.stderr
        pids = [json.loads(dy("inspect", n).stdout)[0]["State"]["Pid"] for n in names]
        starts = [int(Path(f"/proc/{pid}/uid_map").read_text().split()[1]) for pid in pids]
        assert abs(starts[0] - starts[1]) >= 1000
    finally:
        dy("rm", "-f", *names)
