"""Bad input: one clear error line, exit status 1 (as runc), and nothing left behind."""

from __future__ import annotations

import glob
import os

import pytest

from tests.runtime.conftest import needs_root
from tests.runtime.oci import make_bundle

pytestmark = needs_root


def _leftovers(rt, cid: str, bundle) -> list[str]:
    found = []
    if (rt.root / cid).exists():
        found.append(f"state dir {rt.root / cid}")
    found += glob.glob(f"/sys/fs/cgroup/*/dockyard/{cid}") + glob.glob(f"/sys/fs/cgroup/*/{cid}")
    with open("/proc/self/mountinfo") as f:
        found += [ln for ln in f if str(bundle.path) in ln or str(bundle.rootfs) in ln]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if cid.encode() in f.read():
                    found.append(f"process {pid}")
        except OSError:
            pass
    return found


def _fails_cleanly(rt, b, expect: str) -> str:
    cid = rt.new_id()
    p = rt.create(b, cid)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), p.stderr
    assert expect in lines[0], lines[0]
    assert _leftovers(rt, cid, b) == []
    return lines[0]


BAD_CONFIGS = {
    "not json": ("{ this is not json", "config.json is not valid JSON"),
    "array at top": ("[]", "the top level must be an object"),
    "args not a list": ({"process": {"args": "sh"}}, "process.args must be an array"),
    "args empty": ({"process": {"args": []}}, "process.args must name the program to run"),
    "relative cwd": ({"process": {"cwd": "tmp"}}, "process.cwd must be an absolute path"),
    "uid is text": ({"process": {"user": {"uid": "0", "gid": 0}}}, "process.user.uid must be an integer"),
    "unknown namespace": ({"linux": {"namespaces": [{"type": "mount"}, {"type": "bogus"}]}},
                          "unknown namespace type 'bogus'"),
    "namespace twice": ({"linux": {"namespaces": [{"type": "mount"}, {"type": "mount"}]}}, "listed twice"),
    "maps without userns": ({"linux": {"namespaces": [{"type": "mount"}],
                                       "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}},
                            "need a user namespace"),
    "relative mount destination": ({"mounts": [{"destination": "data", "type": "tmpfs"}]},
                                   "mounts[0].destination must be an absolute path"),
    "no root": ({"root": None}, "root must be an object"),
    "bad device type": ({"linux": {"namespaces": [{"type": "mount"}], "devices": [{"path": "/dev/x", "type": "x"}]}},
                        "linux.devices[0].type must be one of"),
}


def _merge(base: dict, patch: dict) -> dict:
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_invalid_config(rt, tmp_path, busybox_rootfs, name):
    patch, expect = BAD_CONFIGS[name]
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    if isinstance(patch, str):
        (b.path / "config.json").write_text(patch)
    else:
        _merge(b.config, patch)
        b.write()
    _fails_cleanly(rt, b, expect)


def test_missing_rootfs(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["root"]["path"] = "no-such-rootfs"
    b.write()
    _fails_cleanly(rt, b, "rootfs (")


def test_missing_config(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    (b.path / "config.json").unlink()
    _fails_cleanly(rt, b, "no config.json in bundle")


def test_missing_program_fails_at_create(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["no-such-program"])
    _fails_cleanly(rt, b, 'exec: "no-such-program": executable file not found in $PATH')


def test_missing_bind_source(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["mounts"].append({"destination": "/x", "type": "bind", "source": "/no/such/dir", "options": ["bind"]})
    b.write()
    _fails_cleanly(rt, b, "/no/such/dir")


def test_bad_namespace_path(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "network"]
    b.config["linux"]["namespaces"].append({"type": "network", "path": "/proc/999999999/ns/net"})
    b.write()
    _fails_cleanly(rt, b, "cannot open network namespace /proc/999999999/ns/net")


def test_duplicate_id_keeps_the_first(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt.create(b, cid).returncode == 0
    first = rt.state(cid)
    p = rt.create(b, cid)
    assert p.returncode == 1 and p.stderr.strip() == f"Error: container with id exists: {cid}"
    assert rt.state(cid) == first
    assert rt("start", cid).returncode == 0
    p = rt("start", cid)
    assert p.returncode == 1 and p.stderr.strip() == "Error: cannot start an already running container"


@pytest.mark.parametrize("argv,expect", [
    (["create", "../evil"], "invalid container id"),
    (["frobnicate"], "no such command: frobnicate"),
    (["create", "--bogus", "x"], "flag provided but not defined: --bogus"),
    (["state"], '"state" requires a container id'),
    (["kill", "nope"], "container nope does not exist"),
])
def test_bad_command_lines(rt, tmp_path, argv, expect):
    p = rt(*argv)
    assert p.returncode == 1
    assert p.stderr.strip() == f"Error: {expect}" or expect in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_unknown_signal(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt.create(b, cid).returncode == 0
    p = rt("kill", cid, "SIGNOPE")
    assert p.returncode == 1 and p.stderr.strip() == "Error: unknown signal 'SIGNOPE'"
    assert rt.state(cid)["status"] == "created"


def test_killed_create_is_swept_by_delete_force(rt, tmp_path, busybox_rootfs):
    """A `create` killed half-way (here: while a prestart hook runs) leaves state that delete --force
    removes completely: cgroup, processes, state directory."""
    import subprocess
    import time

    from tests.helpers import wait_for
    from tests.runtime.oci import env, runtime_cmd

    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    marker = tmp_path / "hook-started"
    b.config["hooks"] = {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", f"touch {marker}; sleep 60"]}]}
    b.write()
    cid = rt.new_id()
    p = subprocess.Popen(runtime_cmd("dockyard", rt.root) + ["create", "-b", str(b.path), cid],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env(),
                         start_new_session=True)
    try:
        wait_for(marker.exists, timeout=30, what="prestart hook")
        assert rt.state(cid)["status"] == "creating"
        assert rt("delete", cid).returncode == 1
    finally:
        os.killpg(p.pid, 9)
        p.wait()
    time.sleep(0.1)
    assert rt.state(cid)["status"] == "stopped"
    assert rt("delete", "--force", cid).returncode == 0
    wait_for(lambda: _leftovers(rt, cid, b) == [], timeout=10, what="no leftovers")


def test_invalid_seccomp_profile(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_BOGUS", "syscalls": []}
    b.write()
    line = _fails_cleanly(rt, b, "SCMP_ACT_BOGUS")
    assert "seccomp" in line.lower() or "action" in line.lower()


def test_rootfs_cannot_be_host_root(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["root"]["path"] = "/"
    b.write()
    _fails_cleanly(rt, b, "rootfs cannot be the host's /")
