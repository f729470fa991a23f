"""Rootless: a `spec --rootless` bundle run by an unprivileged user the test creates.

The user runs the system Python 3 (the venv lives under /root, which other users cannot read); the
runtime's hot path needs only the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.helpers import REPO, unique_name, wait_for
from tests.runtime.conftest import needs_root
from tests.runtime.oci import normalize_mountinfo

SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [needs_root, pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON) or not shutil.which("useradd"),
                                             reason="needs /usr/bin/python3 and useradd")]


class User:
    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.home = home

    def run(self, *argv: str, timeout: float = 60, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", self.name, "--", "env", f"PYTHONPATH={REPO}", *argv],
                              stdout=stdout, stderr=stderr, text=True, timeout=timeout, cwd=self.home,
                              stdin=subprocess.DEVNULL)

    def dockyard(self, *args: str, **kw) -> subprocess.CompletedProcess[str]:
        return self.run(SYSTEM_PYTHON, "-m", "dockyard", "runtime", "--root", str(self.home / "state"), *args, **kw)


@pytest.fixture
def user(busybox_rootfs_template):
    name = unique_name("dyrl", 20)
    home = Path(tempfile.mkdtemp(prefix="dy-rootless-", dir="/tmp"))
    os.chmod(home, 0o755)
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/sh", name], check=True)
    try:
        shutil.copytree(busybox_rootfs_template, home / "rootfs", symlinks=True)
        subprocess.run(["chown", "-R", f"{name}:", str(home)], check=True)
        yield User(name, home)
    finally:
        for root in ("state", "runc-state"):
            for cid in (os.listdir(home / root) if (home / root).is_dir() else []):
                cmd = ["runc", "--root", str(home / root)] if root == "runc-state" else \
                      [SYSTEM_PYTHON, "-m", "dockyard", "runtime", "--root", str(home / root)]
                subprocess.run(["runuser", "-u", name, "--", "env", f"PYTHONPATH={REPO}", *cmd, "delete", "--force",
                                cid], capture_output=True)
        subprocess.run(["userdel", name], check=True)
        shutil.rmtree(home, ignore_errors=True)


def _bundle(user: User, args: list[str]) -> None:
    p = user.dockyard("spec", "--rootless")
    assert p.returncode == 0, p.stderr
    cfg = json.loads((user.home / "config.json").read_text())
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    (user.home / "config.json").write_text(json.dumps(cfg))


@pytest.mark.peer("runc")
def test_rootless_run_like_runc(user):
    _bundle(user, ["sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map; hostname; "
                   "grep -E '^Cap|NoNewPrivs' /proc/self/status; ulimit -n; cat /proc/self/mountinfo; "
                   "touch /x 2>&1 | cut -d: -f3-"])
    ours = user.dockyard("run", unique_name("rl", 30))
    theirs = user.run("runc", "--root", str(user.home / "runc-state"), "run", unique_name("rl", 30))
    assert ours.returncode == theirs.returncode == 0, ours.stderr + theirs.stderr
    assert normalize_mountinfo(ours.stdout) == normalize_mountinfo(theirs.stdout)
    uid = int(subprocess.run(["id", "-u", user.name], capture_output=True, text=True).stdout)
    assert ours.stdout.splitlines()[0].startswith("uid=0(root)")
    assert ours.stdout.splitlines()[1].split() == ["0", str(uid), "1"]


def test_rootless_lifecycle(user):
    """The tutorial's flow (spec --rootless, create, start, delete) as an unprivileged user."""
    _bundle(user, ["sh", "-c", "echo hello from the container; sleep 1000"])
    out = user.home / "out"
    # The init inherits create's stdio (as with runc), so it goes to a file rather than a pipe we would wait on.
    with open(out, "w") as f:
        p = user.dockyard("create", "helloworld-container", stdout=f, stderr=f)
    assert p.returncode == 0, out.read_text()
    state = json.loads(user.dockyard("state", "helloworld-container").stdout)
    assert state["status"] == "created" and state["owner"] == user.name
    assert user.dockyard("start", "helloworld-container").returncode == 0
    wait_for(lambda: "hello from the container" in out.read_text(), what="container output")
    assert json.loads(user.dockyard("state", "helloworld-container").stdout)["status"] == "running"
    assert user.dockyard("exec", "helloworld-container", "id", "-u").stdout == "0\n"
    assert user.dockyard("kill", "helloworld-container", "KILL").returncode == 0
    wait_for(lambda: json.loads(user.dockyard("state", "helloworld-container").stdout)["status"] == "stopped",
             what="stopped")
    assert user.dockyard("delete", "helloworld-container").returncode == 0
    assert user.dockyard("list", "-q").stdout == ""


def _subid(path: str, name: str) -> int:
    with open(path) as f:
        for line in f:
            user, start, _count = line.strip().split(":")
            if user == name:
                return int(start)
    pytest.skip(f"useradd gave {name} no range in {path}")


@pytest.mark.skipif(not shutil.which("newuidmap"), reason="needs newuidmap/newgidmap (uidmap package)")
def test_rootless_multi_id_maps_use_newuidmap(user):
    """More than one's own id mapped (from /etc/subuid) goes through the setuid newuidmap/newgidmap helpers."""
    _bundle(user, ["sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f && chown 1000:1000 /tmp/f && "
                   "ls -ln /tmp/f | awk '{print $3, $4}'"])
    cfg = json.loads((user.home / "config.json").read_text())
    uid = int(subprocess.run(["id", "-u", user.name], capture_output=True, text=True).stdout)
    gid = int(subprocess.run(["id", "-g", user.name], capture_output=True, text=True).stdout)
    sub_u, sub_g = _subid("/etc/subuid", user.name), _subid("/etc/subgid", user.name)
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1},
                                   {"containerID": 1, "hostID": sub_u, "size": 65536}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1},
                                   {"containerID": 1, "hostID": sub_g, "size": 65536}]
    cfg["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]})
    for kind in ("bounding", "effective", "permitted"):
        cfg["process"]["capabilities"][kind].append("CAP_CHOWN")
    (user.home / "config.json").write_text(json.dumps(cfg))
    p = user.dockyard("run", unique_name("rl", 30))
    assert p.returncode == 0, p.stderr
    lines = [ln.split() for ln in p.stdout.splitlines()]
    assert lines == [["0", str(uid), "1"], ["1", str(sub_u), "65536"], ["0", str(gid), "1"],
                     ["1", str(sub_g), "65536"], ["1000", "1000"]]
