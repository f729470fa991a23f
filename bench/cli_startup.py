"""Start-up tax: `dockyard version` against the peers' `version`, and bare Python as the floor."""

from __future__ import annotations

import sys

from bench.harness import Case, dockyard


def prepare(workdir: str) -> list[Case]:
    from dockyard.runtime.cli import command

    return [
        Case("dockyard --version", dockyard("--version")),
        Case("python -c pass (floor)", [sys.executable, "-c", "pass"]),
        # The OCI runtime as the engine starts it (python -I -S): no site-packages processing.
        Case("dockyard runtime (engine) --version", command() + ["--version"]),
        Case("python -I -S -c pass (its floor)", [sys.executable, "-I", "-S", "-c", "pass"]),
        Case("runc --version", ["runc", "--version"], needs="runc"),
        Case("podman --version", ["podman", "--version"], needs="podman"),
    ]
