"""Shared setup of the container benchmarks: a private dockyard root with busybox, and the same image
loaded into podman (private --root) and docker (when its daemon runs), so every engine runs the same bits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from bench.harness import REPO


def dy(workdir: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "dockyard", "--root", os.path.join(workdir, "dy"), "--runroot",
            os.path.join(workdir, "dy", "run"), *args]


def run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run(argv, capture_output=True, text=True, check=True, env=env, **kw)  # type: ignore[call-overload]


def podman(workdir: str, *args: str) -> list[str]:
    # A private --tmpdir too: the default /run/libpod is shared by every podman on the host, and
    # another benchmark's `system reset` removes it under our feet.
    return ["podman", "--root", os.path.join(workdir, "podman", "root"), "--runroot",
            os.path.join(workdir, "podman", "run"), "--tmpdir", os.path.join(workdir, "podman", "tmp"), *args]


def docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def setup_images(workdir: str) -> dict[str, bool]:
    """busybox as localhost/busybox:latest in dockyard, podman and docker; returns which peers have it."""
    # .pyc files let dockyard start as an installed package would (the test env may forbid writing them)
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(REPO, "dockyard")], check=False)
    run(dy(workdir, "image", "bootstrap", "busybox"))
    tar = os.path.join(workdir, "busybox.tar")
    run(dy(workdir, "save", "-o", tar, "localhost/busybox:latest"))
    have = {"podman": False, "docker": False}
    if shutil.which("podman"):
        # Podman's defaults raise RLIMIT_NOFILE/NPROC (needs CAP_SYS_RESOURCE) and pick crun (which
        # refuses hybrid cgroup hosts): give it runc and the host's limits, as dockyard runs.
        conf = os.path.join(workdir, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = []\n[engine]\nruntime = "runc"\n')
        os.environ["CONTAINERS_CONF"] = conf
        p = subprocess.run(podman(workdir, "load", "-i", tar), capture_output=True, text=True)
        have["podman"] = p.returncode == 0
        if not have["podman"]:
            print(f"  skip podman: cannot load the image: {p.stderr.strip()[-200:]}")
    if docker_available():
        have["docker"] = subprocess.run(["docker", "load", "-i", tar], capture_output=True).returncode == 0
    else:
        print("  skip docker: no docker daemon running")
    return have


def cleanup_podman(workdir: str) -> None:
    if shutil.which("podman"):
        subprocess.run(podman(workdir, "rm", "-af"), capture_output=True)
        subprocess.run(podman(workdir, "system", "reset", "-f"), capture_output=True)
        # Its overlay driver mounts its own directory on itself; a reset on a loaded machine has left
        # that mount behind, which then fails the removal of the work directory.
        # (os.path.ismount cannot see a bind mount within one filesystem: just try.)
        subprocess.run(["umount", os.path.join(workdir, "podman", "root", "overlay")], capture_output=True)
