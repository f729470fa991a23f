"""Where dockyard keeps its state, chosen like Podman does.

root (persistent): images, containers' metadata, volumes.  runroot (volatile, tmpfs-backed
when possible): runtime state, locks, sockets, things that must vanish on reboot.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def is_rootless() -> bool:
    """An unprivileged user, also once inside the rootless user namespace (where euid is 0)."""
    global _rootless
    if _rootless is None:
        _rootless = os.geteuid() != 0 or _in_userns()
    return _rootless


_rootless: bool | None = None


def _in_userns() -> bool:
    try:
        with open("/proc/self/uid_map") as f:
            return " ".join(f.read().split()) != "0 0 4294967295"
    except OSError:
        return False


def default_root() -> Path:
    env = os.environ.get("DOCKYARD_ROOT")
    if env:
        return Path(env)
    if not is_rootless():
        return Path("/var/lib/dockyard")
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "dockyard"


def default_runroot(root: Path | None = None) -> Path:
    env = os.environ.get("DOCKYARD_RUNROOT")
    if env:
        return Path(env)
    if os.environ.get("DOCKYARD_ROOT") and root is not None:
        # A private root (tests, CI) gets a private runroot too, so two roots never share
        # runtime state by accident.
        return root / "run"
    if not is_rootless():
        return Path("/run/dockyard")
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return Path(xdg) / "dockyard"
    return Path(f"/tmp/dockyard-run-{os.geteuid()}")


@dataclass(frozen=True)
class Roots:
    root: Path
    runroot: Path

    @classmethod
    def resolve(cls, root: str | os.PathLike[str] | None = None,
                runroot: str | os.PathLike[str] | None = None) -> Roots:
        r = Path(root) if root else default_root()
        rr = Path(runroot) if runroot else default_runroot(r)
        return cls(r.absolute(), rr.absolute())

    @property
    def db_path(self) -> Path:
        return self.root / "dockyard.db"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def tmp(self) -> Path:
        # Same filesystem as the blobs, so a finished temp file can be renamed into place.
        return self.root / "tmp"

    @property
    def runtime_state(self) -> Path:
        """Root directory handed to the OCI runtime (`--root` of runc)."""
        return self.runroot / "runtime"
