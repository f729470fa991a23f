"""The shortcuts `run --rm` and `ps` take for speed must not change what they do.

- a plain `ps` is answered before click is imported (dockyard/fastcli.py): same output as the
  full command line parser's path;
- `run --rm`: the exit status reaches the CLI before the runtime has released the container, and
  the CLI cleans up meanwhile; when it returns the container is gone (row, name, files, runtime
  state, mounts), as Docker's --rm promises;
- an --rm container's writable layer is mounted volatile (never synced: it is thrown away).
"""

from __future__ import annotations

import os
import re

from tests.containers.conftest import needs_runtime
from tests.helpers import unique_name, wait_for

pytestmark = needs_runtime


def _cells(out: str) -> list[list[str]]:
    # CREATED/STATUS durations may tick between two calls: compare them as words, columns by content.
    out = re.sub(r"(Less than a second|About an? \w+|\d+ \w+) ago", "T ago", out)
    out = re.sub(r"Up (Less than a second|About an? \w+|\d+ \w+)", "Up T", out)
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def test_plain_ps_prints_what_the_full_parser_prints(ctr):
    name = unique_name("fast")
    ctr("create", "--name", name, ctr.image, "true", check=True)
    ctr("run", "-d", "--name", name + "r", ctr.image, "sleep", "60", check=True)
    for args in (["-a"], [], ["-aq"], ["-a", "--no-trunc"], ["-as"], ["-l"], ["-n", "1"], ["-a", "-q", "--no-trunc"]):
        fast = ctr("ps", *args, check=True).stdout
        # --log-level on the command line sends it through click; --format table is the default table
        full = ctr("--log-level", "warn", "ps", *args, check=True).stdout
        assert _cells(fast) == _cells(full), args
    assert _cells(ctr("ps", "-a", check=True).stdout) == _cells(ctr("ps", "-a", "--format", "table", check=True).stdout)
    assert name in ctr("ps", "-a").stdout and name + "r" in ctr("ps").stdout


def test_plain_ps_errors_like_the_cli(ctr, tmp_path):
    (tmp_path / "dockyard.db").write_bytes(b"not a database, " * 512)
    fast = ctr("--root", str(tmp_path), "ps")
    full = ctr("--root", str(tmp_path), "--log-level", "warn", "ps")
    assert fast.returncode == full.returncode == 125
    assert fast.stderr == full.stderr and fast.stderr.startswith("Error: ") and "Traceback" not in fast.stderr
    p = ctr("ps", "--bogus")
    assert p.returncode == 125 and "bogus" in p.stderr


def test_run_rm_returns_with_the_container_gone(ctr):
    name = unique_name("rmgone")
    p = ctr("run", "--rm", "--network", "none", "--name", name, ctr.image, "sh", "-c", "echo out; exit 3")
    assert p.returncode == 3 and p.stdout == "out\n"
    # Everything is gone the moment run returns: the name is free at once, as with Docker.
    assert name not in ctr("ps", "-a").stdout
    for base in (ctr.root / "containers", ctr.runroot / "containers"):
        assert not base.exists() or os.listdir(base) == []
    state = ctr.runroot / "runtime"  # the runtime's per-container state; "@..." are its own caches
    assert not state.exists() or [n for n in os.listdir(state) if not n.startswith("@")] == []
    with open("/proc/self/mounts") as f:
        assert str(ctr.root) not in f.read()
    p = ctr("run", "--rm", "--network", "none", "--name", name, ctr.image, "true")
    assert p.returncode == 0, p.stderr


def _rootfs_mount_options(root, cid: str) -> str:
    target = str(root / "containers" / cid / "rootfs")
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[1] == target:
                return fields[3]
    return ""


def test_only_rm_containers_get_a_volatile_layer(ctr):
    keep = ctr("run", "-d", "--network", "none", ctr.image, "sleep", "60", check=True).stdout.strip()
    gone = ctr("run", "-d", "--rm", "--network", "none", ctr.image, "sleep", "60", check=True).stdout.strip()
    assert "volatile" not in _rootfs_mount_options(ctr.root, keep)
    assert "volatile" in _rootfs_mount_options(ctr.root, gone)
    ctr("stop", "-t", "0", gone, check=True)
    wait_for(lambda: gone not in ctr("ps", "-aq", "--no-trunc").stdout, timeout=30)
