"""Persistent network namespaces for containers (``/run/netns/dy-<container id>``).

The namespace is made before the container's process, as Podman does: networks are attached and
ports published first, the OCI runtime then joins it by path, and it outlives the process so
teardown (and `network disconnect`) can still find the veths after the container exits.
"""

from __future__ import annotations

import contextlib
import os

NETNS_DIR = "/run/netns"


def name_for(container_id: str) -> str:
    return "dy-" + container_id


def path_for(container_id: str) -> str:
    return os.path.join(NETNS_DIR, name_for(container_id))


def create(container_id: str, lo_up: bool = True) -> str:
    """Create the container's namespace, with loopback up unless the caller (attaching a network,
    which brings it up anyway) says so; returns its path."""
    from dockyard.network import nl

    path = path_for(container_id)
    if not os.path.exists(path):
        os.makedirs(NETNS_DIR, exist_ok=True)
        nl.create_netns(path)
    if lo_up:
        with nl.open_in(path) as rt:
            rt.call(rt.set_up(1))
    return path


def remove(container_id: str) -> bool:
    """Unmount and delete the namespace file; idempotent.  Returns whether there was one.

    Plain umount2 + unlink through libc: teardown runs in every container's cleanup, and this
    keeps it from loading pyroute2 just for that."""
    import ctypes

    from dockyard.network import nl

    path = path_for(container_id)
    nl.forget(path)
    if not os.path.exists(path):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    libc.umount2(path.encode(), mnt_detach)  # EINVAL (not a mount point) is fine: unlink below
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True
