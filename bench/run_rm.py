"""`run --rm --network none busybox true`: the whole life of a container, from the command line.

dockyard with its own runtime and with runc, against podman (and docker when its daemon runs), all
on the same busybox image.  Target: at most a third of docker's time.
"""

from __future__ import annotations

import shutil

from bench._containers import cleanup_podman, dy, podman, setup_images
from bench.harness import Case


def prepare(workdir: str) -> list[Case]:
    have = setup_images(workdir)
    args = ["run", "--rm", "--network", "none", "localhost/busybox", "true"]
    cases = [Case("dockyard run --rm (dockyard runtime)", dy(workdir, *args), env={"DOCKYARD_RUNTIME": "dockyard"}),
             # The same runtime exec'd as a new interpreter per call instead of forked from the monitor.
             Case("dockyard run --rm (dockyard runtime, exec'd)", dy(workdir, *args),
                  env={"DOCKYARD_RUNTIME": "dockyard", "DOCKYARD_RUNTIME_EXEC": "1"}),
             Case("dockyard run --rm (runc)", dy(workdir, *args), env={"DOCKYARD_RUNTIME": "runc"})]
    if have["podman"]:
        cases.append(Case("podman run --rm (crun/runc)", podman(workdir, *args)))
    if have["docker"]:
        cases.append(Case("docker run --rm", ["docker", *args]))
    return cases


def cleanup(workdir: str) -> None:
    cleanup_podman(workdir)
    if shutil.which("docker"):
        import subprocess

        subprocess.run(["docker", "rmi", "localhost/busybox:latest"], capture_output=True)
