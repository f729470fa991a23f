"""rlimits applied in a real child, observed with busybox's `ulimit` after execve."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import textwrap

import pytest

from dockyard import host
from dockyard.errors import InvalidArgument
from dockyard.runtime import rlimits
from tests.helpers import BUSYBOX, REPO


def run_child(body: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = "import os, sys\nfrom dockyard.runtime import rlimits\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)


def test_limits_below_the_hard_limit_are_applied():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip("the test needs a NOFILE hard limit of at least 2048")
    p = run_child(f"""
        w = rlimits.apply([{{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}},
                           {{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}}])
        assert w == [], w
        os.execv({BUSYBOX!r}, ["sh", "-c", "ulimit -Sn; ulimit -Hn; ulimit -c"])
    """)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1024", "2048", "0"]


def test_raising_the_hard_limit_without_cap_sys_resource_clamps_with_a_warning():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("NOFILE hard limit is unlimited here")
    want = hard * 4
    p = run_child(f"""
        w = rlimits.apply([{{"type": "RLIMIT_NOFILE", "soft": {want}, "hard": {want}}}])
        print("\\n".join(w), file=sys.stderr, flush=True)
        os.execv({BUSYBOX!r}, ["sh", "-c", "ulimit -Sn; ulimit -Hn"])
    """)
    assert p.returncode == 0, p.stderr
    if host.can_raise_rlimits() and want <= int(open("/proc/sys/fs/nr_open").read()):
        assert p.stdout.split() == [str(want), str(want)]
        assert p.stderr.strip() == ""
    else:
        # never fail the container: clamp to what the kernel allows and say so
        assert p.stdout.split() == [str(hard), str(hard)]
        assert "RLIMIT_NOFILE" in p.stderr and str(want) in p.stderr and str(hard) in p.stderr


def test_unlimited_values_map_to_rlim_infinity():
    p = run_child(f"""
        rlimits.apply([{{"type": "RLIMIT_CORE", "soft": 0, "hard": {rlimits.RLIM_INFINITY_OCI}}}])
        os.execv({BUSYBOX!r}, ["sh", "-c", "ulimit -Hc; ulimit -Sc"])
    """)
    if "cannot raise" in p.stderr:
        pytest.skip("core hard limit is not unlimited here")
    assert p.stdout.split() == ["unlimited", "0"], p.stderr


def test_bad_entries_are_refused():
    with pytest.raises(InvalidArgument, match="unknown rlimit type: 'RLIMIT_WINGS'"):
        rlimits.apply([{"type": "RLIMIT_WINGS", "soft": 1, "hard": 1}])
    with pytest.raises(InvalidArgument, match="soft limit 10 exceeds hard limit 5"):
        rlimits.apply([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}])
    assert rlimits.apply(None) == []


def test_parse_ulimit_docker_syntax():
    assert rlimits.parse_ulimit("nofile=1024:2048") == {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2048}
    assert rlimits.parse_ulimit("nproc=512") == {"type": "RLIMIT_NPROC", "soft": 512, "hard": 512}
    assert rlimits.parse_ulimit("core=-1")["hard"] == rlimits.RLIM_INFINITY_OCI
    for bad, msg in (("nofile", "invalid ulimit argument"), ("wings=1", "invalid ulimit type: wings"),
                     ("nofile=abc", "invalid ulimit value 'abc'"),
                     ("nofile=10:5", "soft limit must be less than or equal to hard limit: 10 > 5")):
        with pytest.raises(InvalidArgument, match=msg):
            rlimits.parse_ulimit(bad)
