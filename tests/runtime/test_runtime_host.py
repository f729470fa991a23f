"""Where dockyard adapts to the host instead of failing (and where runc 1.1 differs on purpose)."""

from __future__ import annotations

import glob
import resource

import pytest

from dockyard import host
from tests.runtime.conftest import needs_root
from tests.runtime.oci import make_bundle

pytestmark = needs_root


@pytest.mark.skipif(host.can_raise_rlimits(), reason="this host can raise rlimits; nothing to clamp")
def test_rlimit_above_hard_limit_is_clamped_with_a_warning(rt, runc, tmp_path, busybox_rootfs):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = hard * 4
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "ulimit -Hn; ulimit -n"])
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": want, "hard": want}]
    b.write()
    p = rt.run(b)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(hard), str(hard)]
    assert "rlimit RLIMIT_NOFILE: cannot raise hard limit" in p.stderr
    import shutil

    if shutil.which("runc"):
        # The reason for clamping: runc refuses the same bundle on this host.
        assert runc.run(b).returncode != 0


def test_domainname(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"])
    b.config["hostname"] = "box1"
    b.config["domainname"] = "example.test"
    b.write()
    p = rt.run(b)
    assert (p.returncode, p.stdout.split()) == (0, ["box1", "example.test"])


def test_hostname_needs_uts_namespace(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"] if ns["type"] != "uts"]
    b.write()
    p = rt.run(b)
    assert p.returncode == 1
    assert p.stderr.strip() == "Error: unable to set hostname without a private UTS namespace"


def test_missing_cgroup_controller_is_one_clear_line(rt, tmp_path, busybox_rootfs):
    if "hugetlb" in host.cgroup_info().controllers:
        pytest.skip("this host has the hugetlb controller")
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["linux"]["resources"]["hugepageLimits"] = [{"pageSize": "2MB", "limit": 1 << 21}]
    b.write()
    cid = rt.new_id()
    p = rt.create(b, cid)
    assert p.returncode == 1
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "hugetlb" in lines[0] and "not available" in lines[0]
    assert glob.glob(f"/sys/fs/cgroup/*/dockyard/{cid}") == []
    assert not (rt.root / cid).exists()


@pytest.mark.skipif(host.can_raise_rlimits(), reason="this host may lower oom_score_adj")
def test_negative_oom_score_adj_is_kept_with_a_warning(rt, tmp_path, busybox_rootfs):
    with open("/proc/self/oom_score_adj") as f:
        current = f.read().strip()
    b = make_bundle(tmp_path, busybox_rootfs, ["cat", "/proc/self/oom_score_adj"])
    b.config["process"]["oomScoreAdj"] = -500
    b.write()
    p = rt.run(b)
    assert (p.returncode, p.stdout.strip()) == (0, current), p.stderr
    assert "cannot lower oom_score_adj to -500" in p.stderr
