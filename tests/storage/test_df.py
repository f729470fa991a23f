"""`system df` (sizes agree with du on the store) and `system prune`."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import requires_root
from tests.storage.conftest import files_du

pytestmark = [requires_root, pytest.mark.peer("runc")]


def _summary(cli) -> dict[str, dict]:
    rows = [json.loads(x) for x in cli("system", "df", "--format", "json", check=True).stdout.splitlines()]
    return {r["Type"]: r for r in rows}


def test_df_matches_du(cli):
    root = cli.root
    cli("volume", "create", "data1", check=True)
    data = root / "volumes" / "data1" / "_data"
    (data / "a").write_bytes(os.urandom(12345))
    (data / "sub").mkdir()
    (data / "sub" / "b").write_bytes(b"x" * 700)
    os.link(data / "a", data / "sub" / "a-again")  # counted once, like du
    os.symlink("a", data / "link")
    cli("volume", "create", "empty1", check=True)
    cli("run", "--name", "writer", "localhost/busybox", "sh", "-c", "head -c 54321 /dev/zero > /blob", check=True)

    raw = json.loads(cli("system", "df", "-v", "--format", "json", check=True).stdout)
    vols = {v["Name"]: v for v in raw["Volumes"]}
    assert vols["data1"]["UsageData"] == {"Size": files_du(data), "RefCount": 0}
    assert files_du(data) == 12345 + 700 + 1
    assert vols["empty1"]["UsageData"]["Size"] == 0
    (ctr,) = raw["Containers"]
    upper = root / "containers" / ctr["Id"] / "upper"
    assert ctr["SizeRw"] == files_du(upper) and ctr["SizeRw"] >= 54321
    (img,) = raw["Images"]
    layer_dirs = list((root / "layers").iterdir())
    assert raw["LayersSize"] == img["Size"] == sum(files_du(d) for d in layer_dirs)
    assert img["Containers"] == 1

    s = _summary(cli)
    assert s["Images"]["TotalCount"] == "1" and s["Images"]["Active"] == "1"
    assert s["Containers"]["TotalCount"] == "1" and s["Containers"]["Active"] == "0"
    assert s["Containers"]["Reclaimable"].endswith("(100%)")
    assert s["Local Volumes"]["TotalCount"] == "2" and s["Local Volumes"]["Active"] == "0"
    assert s["Local Volumes"]["Size"] == "13.05kB" and s["Local Volumes"]["Reclaimable"] == "13.05kB (100%)"
    assert s["Build Cache"] == {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B",
                                "Reclaimable": "0B"}

    table = cli("system", "df", check=True).stdout.splitlines()
    assert table[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert [line[:16].strip() for line in table[1:]] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    verbose = cli("system", "df", "-v", check=True).stdout
    for title in ("Images space usage:", "Containers space usage:", "Local Volumes space usage:",
                  "Build cache usage: 0B"):
        assert title in verbose
    assert "writer" in verbose and "data1" in verbose


def test_system_prune(cli):
    cli("volume", "create", "unused-vol", check=True)
    cli("run", "--name", "stopped", "localhost/busybox", "true", check=True)
    p = cli("system", "prune", input="n\n")
    assert "WARNING! This will remove:\n  - all stopped containers\n" in p.stdout
    assert cli("ps", "-aq").stdout.strip()
    p = cli("system", "prune", "-f", check=True)
    assert "Deleted Containers:" in p.stdout and "Total reclaimed space:" in p.stdout
    assert cli("ps", "-aq").stdout.strip() == ""
    # volumes only with --volumes; images are kept without -a (tagged, so not dangling)
    assert cli("volume", "ls", "-q").stdout == "unused-vol\n"
    assert "localhost/busybox" in cli("images").stdout
    p = cli("system", "prune", "-f", "--volumes", check=True)
    assert "Deleted Volumes:\nunused-vol\n" in p.stdout
    p = cli("system", "prune", "-f", "-a", check=True)
    assert "Deleted Images:\nuntagged: localhost/busybox:latest\ndeleted: sha256:" in p.stdout
    p = cli("system", "prune", "-f", "--filter", "colour=red")
    assert p.returncode == 125 and "invalid filter 'colour'" in p.stderr
