"""Capabilities applied in a real child process, read back from /proc/self/status after execve."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from dockyard.errors import InvalidArgument
from dockyard.runtime import capabilities as caps
from tests.helpers import BUSYBOX, REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="changing capability sets needs root")


def mask(names: list[str]) -> int:
    m = 0
    for n in names:
        m |= 1 << caps.parse(n)
    return m


def run_child(body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh Python child (it ends by exec'ing busybox to print its status)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = "import os\nfrom dockyard.runtime import capabilities as caps\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


def status_caps(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        if line.startswith("Cap"):
            k, v = line.split(":")
            out[k] = int(v.strip(), 16)
    return out


def test_names_cover_the_kernel():
    assert caps.CAP_NAMES[0] == "CAP_CHOWN"
    assert caps.CAP_NAMES[21] == "CAP_SYS_ADMIN"
    assert caps.CAP_NAMES[40] == "CAP_CHECKPOINT_RESTORE"
    with open("/proc/sys/kernel/cap_last_cap") as f:
        assert caps.last_cap() == int(f.read())
    assert len(caps.all_caps()) == caps.last_cap() + 1


def test_parse_accepts_any_spelling_and_rejects_unknown():
    assert caps.parse("CAP_NET_ADMIN") == 12
    assert caps.parse("net_admin") == 12
    assert caps.parse("Sys_Admin") == 21
    with pytest.raises(InvalidArgument, match="unknown capability: 'CAP_FLY'"):
        caps.parse("CAP_FLY")


def test_resolve_caps_follows_docker_rules():
    assert caps.resolve_caps([], [], False) == caps.DEFAULT_CAPS
    got = caps.resolve_caps(["net_admin"], ["CAP_MKNOD", "chown"], False)
    assert "CAP_NET_ADMIN" in got and "CAP_MKNOD" not in got and "CAP_CHOWN" not in got
    assert caps.resolve_caps(["NET_BIND_SERVICE"], ["ALL"], False) == ["CAP_NET_BIND_SERVICE"]
    all_but = caps.resolve_caps(["ALL"], ["SYS_ADMIN"], False)
    assert "CAP_SYS_ADMIN" not in all_but and len(all_but) == caps.last_cap()
    assert caps.resolve_caps([], ["ALL"], True) == caps.all_caps()
    with pytest.raises(InvalidArgument):
        caps.resolve_caps(["CAP_NOPE"], [], False)


def test_bounding_set_is_dropped_before_exec():
    p = run_child(f"""
        caps.drop_bounding({{"bounding": caps.DEFAULT_CAPS}})
        os.execv({BUSYBOX!r}, ["cat", "/proc/self/status"])
    """)
    assert p.returncode == 0, p.stderr
    got = status_caps(p.stdout)
    assert got["CapBnd"] == mask(caps.DEFAULT_CAPS)
    # root's execve: permitted = bounding, so the drop is what a root container process ends up with
    assert got["CapPrm"] == mask(caps.DEFAULT_CAPS)


def test_none_is_a_no_op():
    p = run_child(f"""
        caps.drop_bounding(None)
        caps.apply(None)
        os.execv({BUSYBOX!r}, ["cat", "/proc/self/status"])
    """)
    with open("/proc/self/status") as f:
        mine = status_caps(f.read())
    assert status_caps(p.stdout)["CapBnd"] == mine["CapBnd"]


def test_root_process_gets_exactly_the_requested_sets():
    want = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    spec = {"bounding": want, "effective": want, "permitted": want, "inheritable": want, "ambient": want}
    p = run_child(f"""
        spec = {spec!r}
        caps.drop_bounding(spec)
        caps.apply(spec)
        os.execv({BUSYBOX!r}, ["cat", "/proc/self/status"])
    """)
    assert p.returncode == 0, p.stderr
    got = status_caps(p.stdout)
    for key in ("CapBnd", "CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert got[key] == mask(want), key


def test_non_root_user_keeps_ambient_caps_across_exec():
    # A non-root process loses its permitted set on execve unless the caps are ambient: this is how
    # `--user 1000 --cap-add NET_BIND_SERVICE` works.
    spec = {"bounding": caps.DEFAULT_CAPS, "effective": ["CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"], "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]}
    p = run_child(f"""
        spec = {spec!r}
        caps.drop_bounding(spec)
        caps.keep_caps_on_setuid()
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        warnings = caps.apply(spec)
        assert warnings == [], warnings
        print(open("/proc/self/status").read(), flush=True)
        print("--after-exec--", flush=True)
        os.execv({BUSYBOX!r}, ["cat", "/proc/self/status"])
    """)
    assert p.returncode == 0, p.stderr
    before, after = p.stdout.split("--after-exec--")
    b, a = status_caps(before), status_caps(after)
    assert b["CapEff"] == mask(["CAP_NET_BIND_SERVICE"])
    assert b["CapPrm"] == mask(["CAP_NET_BIND_SERVICE", "CAP_CHOWN"])
    assert a["CapAmb"] == a["CapEff"] == a["CapPrm"] == a["CapInh"] == mask(["CAP_NET_BIND_SERVICE"])
    assert a["CapBnd"] == mask(caps.DEFAULT_CAPS)
    assert "Uid:\t65534" in after


def test_without_keepcaps_setuid_clears_the_permitted_set():
    p = run_child("""
        os.setuid(65534)
        try:
            caps.apply({"effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]})
        except OSError as e:
            print("errno", e.errno)
    """)
    assert "errno 1" in p.stdout, p.stdout + p.stderr


def test_ambient_cap_not_inheritable_is_reported_not_fatal():
    p = run_child("""
        w = caps.apply({"effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"], "ambient": ["CAP_CHOWN"]})
        print(w)
    """)
    assert p.returncode == 0, p.stderr
    assert "ambient capability CAP_CHOWN" in p.stdout
