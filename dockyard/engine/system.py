"""Host and engine facts: ``version`` and ``info``."""

from __future__ import annotations

import os
import platform
import sys
from typing import TYPE_CHECKING, Any

from dockyard import API_VERSION, __version__, host

if TYPE_CHECKING:
    from dockyard.engine import Engine


class SystemService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def version(self) -> dict[str, Any]:
        return {
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "PythonVersion": platform.python_version(),
            "Os": "linux",
            "Arch": host.go_arch(),
            "KernelVersion": host.kernel(),
        }

    def info(self) -> dict[str, Any]:
        cg = host.cgroup_info()
        rel = host.os_release()
        runtimes = {"dockyard": sys.executable + " -m dockyard runtime"}
        runtimes.update(host.external_runtimes())
        can_raise = host.can_raise_rlimits()
        return {
            "host": {
                "kernel": host.kernel(),
                "os": rel.get("PRETTY_NAME", "linux"),
                "arch": host.go_arch(),
                "cpus": os.cpu_count(),
                "memTotal": host.mem_total(),
                "rootless": _rootless(),
                **_id_mappings(),
                "cgroupVersion": cg.version,
                "cgroupControllers": cg.controllers,
                "cgroupV1Mounts": cg.v1_mounts,
                "cgroupV2Mount": cg.v2_mount,
                "overlay": host.overlay_supported(),
                "canRaiseRlimits": can_raise,
                "capSysResource": can_raise,
                "capSysAdmin": host.has_cap(host.CAP_SYS_ADMIN),
            },
            "store": {
                "root": str(self.engine.roots.root),
                "runRoot": str(self.engine.roots.runroot),
                "database": str(self.engine.roots.db_path),
                "graphDriver": "overlay" if host.overlay_supported() else "vfs",
            },
            "runtimes": runtimes,
            "defaultRuntime": "dockyard",
            "version": self.version(),
        }


def _rootless() -> bool:
    from dockyard.paths import is_rootless

    return is_rootless()


def _id_mappings() -> dict[str, Any]:
    """Podman's host.idMappings: the ranges of the (rootless) user namespace the engine runs in."""
    from dockyard.paths import is_rootless

    if not is_rootless():
        return {}
    out = {}
    for key, name in (("uidmap", "uid_map"), ("gidmap", "gid_map")):
        with open(f"/proc/self/{name}") as f:
            out[key] = [{"container_id": int(c), "host_id": int(h), "size": int(s)}
                        for c, h, s in (line.split() for line in f if line.strip())]
    return {"idMappings": out}
