"""Helpers for the OCI runtime tests: bundles from the busybox rootfs, and the same command line
for `dockyard runtime` and runc so a test can run one bundle under both."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, unique_name

RUNTIMES = ("dockyard", "runc")


def runtime_cmd(which: str, root: Path) -> list[str]:
    if which == "runc":
        return ["runc", "--root", str(root)]
    return [sys.executable, "-m", "dockyard", "runtime", "--root", str(root)]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class Bundle:
    def __init__(self, path: Path, rootfs: Path, config: dict) -> None:
        self.path = path
        self.rootfs = rootfs
        self.config = config

    def write(self) -> Bundle:
        (self.path / "config.json").write_text(json.dumps(self.config, indent=2))
        return self


def make_bundle(tmp_path: Path, rootfs: Path, args: list[str], **top: object) -> Bundle:
    """A bundle with `runc spec`'s config (no terminal), running ``args``."""
    from dockyard.runtime.spec import default_spec

    path = tmp_path / unique_name("bundle")
    path.mkdir()
    (path / "rootfs").symlink_to(rootfs)
    cfg = default_spec()
    cfg["root"]["path"] = str(rootfs)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = args
    cfg.update(top)
    return Bundle(path, rootfs, cfg).write()


class Runtime:
    """One runtime (dockyard or runc) with a private --root; cleans up every container it made."""

    def __init__(self, which: str, root: Path) -> None:
        self.which = which
        self.root = root
        self.ids: list[str] = []

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None,
                 cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(runtime_cmd(self.which, self.root) + list(args), capture_output=True, text=True,
                              timeout=timeout, env=env(), input=input, cwd=cwd)

    def new_id(self, prefix: str = "t") -> str:
        cid = unique_name(prefix, 30)
        self.ids.append(cid)
        return cid

    def run(self, bundle: Bundle, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cid = self.new_id()
        return self("run", "-b", str(bundle.path), *extra, cid, timeout=timeout)

    def create(self, bundle: Bundle, cid: str, *extra: str, log: Path | None = None, command: str = "create",
               ) -> subprocess.CompletedProcess[str]:
        """`create` with the container's stdio going to a file: the init inherits it, so a pipe would
        stay open until the container exits (the same is true of runc)."""
        out_path = log or (bundle.path / f"{cid}.out")
        err_path = out_path.with_name(out_path.name + ".err")
        with open(out_path, "w") as out, open(err_path, "w") as err:
            p = subprocess.run(runtime_cmd(self.which, self.root) + [*command.split(), "-b", str(bundle.path), *extra, cid],
                               stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True, timeout=60, env=env())
        p.stderr = err_path.read_text()
        return p

    def state(self, cid: str) -> dict:
        p = self("state", cid)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def cleanup(self) -> None:
        for cid in self.ids:
            self("delete", "--force", cid)


MOUNTINFO_RE = re.compile(r"^\d+ \d+ \d+:\d+ ")


def normalize_mountinfo(text: str) -> list[str]:
    """Mount table without the ids that differ between any two containers."""
    return [MOUNTINFO_RE.sub("", line) for line in text.splitlines() if line.strip()]
