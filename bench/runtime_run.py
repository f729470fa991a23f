"""`run` of a busybox bundle executing `true`: dockyard's OCI runtime against runc and crun.

dockyard is timed in each way it is started: as the engine runs it (cli.command(): python -I -S),
as `python -m dockyard runtime`, and through the `dockyard` and `dockyard-runtime` console scripts,
which pay for site-packages processing first (and, for `dockyard`, its click CLI).

Each runtime gets its own --root and reuses one container id (`run` deletes the container when the
process exits).  The bundle is `runc spec`'s config with terminal off, so all three do the same work:
pid/net/ipc/uts/mount namespaces, the default mounts, masked paths, cgroups, capabilities.  A second
pair runs the same bundle with Docker's default seccomp profile, which every engine container gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from bench.harness import REPO, Case


def _bundle(workdir: str) -> str:
    sys.path.insert(0, REPO)
    from pathlib import Path

    from dockyard.runtime.spec import default_spec
    from tests.helpers import make_busybox_rootfs

    bundle = os.path.join(workdir, "bundle")
    make_busybox_rootfs(Path(bundle) / "rootfs")
    cfg = default_spec()
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["true"]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    return bundle


def _seccomp_bundle(workdir: str, bundle: str) -> str:
    """The same bundle with Docker's default seccomp profile, as the engine's containers get it."""
    from dockyard.runtime import seccomp

    out = os.path.join(workdir, "bundle-seccomp")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(bundle, "config.json")) as f:
        cfg = json.load(f)
    cfg["root"]["path"] = os.path.join(bundle, "rootfs")
    cfg["linux"]["seccomp"] = seccomp.default_profile()
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f)
    return out


def _fresh_bytecode() -> None:
    """Compile what the forms below import: with PYTHONDONTWRITEBYTECODE set (as in the dev shell), a
    stale .pyc would otherwise be recompiled in every timed run of the forms that honour it."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "dockyard")], check=True,
                   stdout=subprocess.DEVNULL)


def prepare(workdir: str) -> list[Case]:
    _fresh_bytecode()
    bundle = _bundle(workdir)
    # runc first: the report's ratios are against the first case, and runc is the target.
    cases = [Case("runc run true", ["runc", "--root", os.path.join(workdir, "runc"), "run", "-b", bundle,
                                    "bench-runc"], needs="runc")]
    from dockyard.runtime.cli import command

    # How the engine runs it (python -I -S, see cli.command()).
    cases.append(Case("dockyard runtime (engine) run true",
                      command() + ["--root", os.path.join(workdir, "dyS"), "run", "-b", bundle, "bench-dyS"]))
    cases += [Case("python -m dockyard runtime run true",
                  [sys.executable, "-m", "dockyard", "runtime", "--root", os.path.join(workdir, "dy"), "run", "-b",
                   bundle, "bench-dy"])]
    main_script = shutil.which("dockyard", path=os.path.dirname(sys.executable))
    if main_script:
        # What a user types: the `dockyard` console script, then its runtime subcommand.
        cases.append(Case("dockyard runtime run (main script)",
                          [main_script, "runtime", "--root", os.path.join(workdir, "dyu"), "run", "-b", bundle,
                           "bench-dyu"]))
    sbundle = _seccomp_bundle(workdir, bundle)
    cases.append(Case("runc run true, default seccomp", ["runc", "--root", os.path.join(workdir, "runc"), "run",
                                                         "-b", sbundle, "bench-runc-sc"], needs="runc"))
    cases.append(Case("dockyard (engine) true, default seccomp",
                      command() + ["--root", os.path.join(workdir, "dyS"), "run", "-b", sbundle, "bench-dyS-sc"]))
    script = shutil.which("dockyard-runtime", path=os.path.dirname(sys.executable))
    if script:
        cases.append(Case("dockyard-runtime run (script)",
                          [script, "--root", os.path.join(workdir, "dys"), "run", "-b", bundle, "bench-dys"]))
    why = _crun_problem(workdir, bundle) if shutil.which("crun") else "not installed"
    if why is None:
        cases.append(Case("crun run true", ["crun", "--root", os.path.join(workdir, "crun"), "run", "-b", bundle,
                                            "bench-crun"]))
    else:
        print(f"  skip crun: {why}")
    return cases


def _crun_problem(workdir: str, bundle: str) -> str | None:
    """Why crun cannot run the bundle here (e.g. it refuses hybrid cgroup hosts), or None."""
    p = subprocess.run(["crun", "--root", os.path.join(workdir, "crun"), "run", "-b", bundle, "bench-crun-probe"],
                       capture_output=True, text=True)
    subprocess.run(["crun", "--root", os.path.join(workdir, "crun"), "delete", "-f", "bench-crun-probe"],
                   capture_output=True)
    return None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["failed"])[-1]


def cleanup(workdir: str) -> None:
    for which, root in (("dy", "dy"), ("dys", "dys"), ("dyS", "dyS"), ("dyS-sc", "dyS"), ("dyu", "dyu")):
        subprocess.run([sys.executable, "-m", "dockyard", "runtime", "--root", os.path.join(workdir, root),
                        "delete", "--force", f"bench-{which}"], capture_output=True,
                       env=dict(os.environ, PYTHONPATH=REPO))
    if shutil.which("runc"):
        for cid in ("bench-runc", "bench-runc-sc"):
            subprocess.run(["runc", "--root", os.path.join(workdir, "runc"), "delete", "--force", cid],
                           capture_output=True)
    if shutil.which("crun"):
        subprocess.run(["crun", "--root", os.path.join(workdir, "crun"), "delete", "-f", "bench-crun"],
                       capture_output=True)
