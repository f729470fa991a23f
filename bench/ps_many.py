"""`ps -a` with 100 containers: one SQL query and no runtime calls, against podman's `ps -a`."""

from __future__ import annotations

from bench._containers import cleanup_podman, dy, podman, run, setup_images
from bench.harness import Case

N = 100


def prepare(workdir: str) -> list[Case]:
    have = setup_images(workdir)
    for i in range(N):
        run(dy(workdir, "create", "--network", "none", "--name", f"c{i}", "localhost/busybox", "true"))
    cases = [Case(f"dockyard ps -a ({N} containers)", dy(workdir, "ps", "-a"))]
    if have["podman"]:
        for i in range(N):
            run(podman(workdir, "create", "--network", "none", "--name", f"c{i}", "localhost/busybox", "true"))
        cases.append(Case(f"podman ps -a ({N} containers)", podman(workdir, "ps", "-a")))
    return cases


def cleanup(workdir: str) -> None:
    run(dy(workdir, "container", "prune", "-f"))
    cleanup_podman(workdir)
