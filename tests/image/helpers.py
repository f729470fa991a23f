"""Shared checks for the image tests."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path


def bootstrap(dy) -> str:
    p = dy("image", "bootstrap", "busybox", check=True)
    return p.stdout.strip()


def store_state(root: Path) -> dict[str, list[str]]:
    """What the store holds: image rows, layer dirs, blobs (for 'nothing half-written' checks)."""
    out: dict[str, list[str]] = {"images": [], "layers": [], "blobs": []}
    db = root / "dockyard.db"
    if db.exists():
        c = sqlite3.connect(db)
        try:
            out["images"] = sorted(r[0] for r in c.execute("SELECT id FROM images"))
        except sqlite3.OperationalError:
            pass
        c.close()
    layers = root / "layers"
    if layers.is_dir():
        out["layers"] = sorted(os.listdir(layers))
    blobs = root / "blobs" / "sha256"
    if blobs.is_dir():
        out["blobs"] = sorted(os.listdir(blobs))
    return out


def inspect(dy, name: str) -> dict:
    return json.loads(dy("image", "inspect", name, check=True).stdout)[0]


def dy_binary(dy, *args: str, input: bytes, check: bool = True):
    """Run the CLI with binary stdin (run_cli only does text); returns (returncode, stdout bytes, stderr)."""
    import subprocess

    from tests.helpers import REPO, dockyard_cmd

    p = subprocess.run([*dockyard_cmd(dy.root), *args], input=input, capture_output=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    if check and p.returncode != 0:
        raise AssertionError(f"dockyard {' '.join(args)} exited {p.returncode}: {p.stderr.decode()}")
    return p.returncode, p.stdout, p.stderr.decode()
