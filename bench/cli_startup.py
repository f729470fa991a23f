"""Start-up tax: `dockyard version` against the peers' `version`, and bare Python as the floor."""

from __future__ import annotations

import sys

from bench.harness import Case, dockyard


def prepare(workdir: str) -> list[Case]:
    return [
        Case("dockyard --version", dockyard("--version")),
        Case("python -c pass (floor)", [sys.executable, "-c", "pass"]),
        Case("runc --version", ["runc", "--version"], needs="runc"),
        Case("podman --version", ["podman", "--version"], needs="podman"),
    ]
