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
    else:
        cases += _private_docker(workdir, args)
    return cases


STATE: dict = {}


def _private_docker(workdir: str, args: list[str]) -> list[Case]:
    """The issue's yardstick is Docker's time on this machine: without a running daemon, start a
    private one (bench/_dockerd.py) so both are measured side by side."""
    import contextlib
    import os

    from bench import _dockerd

    why = _dockerd.unavailable()
    if why:
        print(f"  skip private dockerd: {why}")
        return []
    stack = STATE["stack"] = contextlib.ExitStack()
    try:
        d = stack.enter_context(_dockerd.private_dockerd(workdir, os.path.join(workdir, "busybox.tar")))
    except RuntimeError as e:
        stack.close()
        print(f"  skip private dockerd: {e}")
        return []
    return [Case("docker run --rm (private dockerd)", d.argv(*args))]


def cleanup(workdir: str) -> None:
    stack = STATE.pop("stack", None)
    if stack is not None:
        stack.close()
    cleanup_podman(workdir)
    if shutil.which("docker"):
        import subprocess

        subprocess.run(["docker", "rmi", "localhost/busybox:latest"], capture_output=True)
