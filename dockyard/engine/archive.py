"""Facts about a path inside a container, as Docker's archive endpoints report them.

``docker cp`` asks for them first (``HEAD /containers/{id}/archive``) to resolve symbolic links and
to name what it copies; the answer is Docker's ``PathStat`` with Go ``os.FileMode`` bits.
"""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING, Any

from dockyard.errors import NotFound

if TYPE_CHECKING:
    from dockyard.engine import Engine

# Go's os.FileMode type bits, which Docker's PathStat.Mode carries above the permission bits.
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


def go_file_mode(mode: int) -> int:
    out = mode & 0o777
    fmt = stat.S_IFMT(mode)
    out |= {stat.S_IFDIR: _GO_DIR, stat.S_IFLNK: _GO_SYMLINK, stat.S_IFIFO: _GO_PIPE, stat.S_IFSOCK: _GO_SOCKET,
            stat.S_IFBLK: _GO_DEVICE, stat.S_IFCHR: _GO_DEVICE | _GO_CHARDEV}.get(fmt, 0)
    for bit, go in ((stat.S_ISUID, _GO_SETUID), (stat.S_ISGID, _GO_SETGID), (stat.S_ISVTX, _GO_STICKY)):
        if mode & bit:
            out |= go
    return out


def stat_path(engine: Engine, ref: str, path: str) -> dict[str, Any]:
    """Docker's PathStat of ``path`` in the container (its root mounted for the look if it is stopped)."""
    from datetime import UTC, datetime

    from dockyard.engine.containers import _resolve_in_root

    svc = engine.containers
    with svc.mounted_rootfs(ref) as root:
        target = _resolve_in_root(root, path, follow_last=False)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {path} in container {ref}") from None
        link = ""
        if stat.S_ISLNK(st.st_mode):
            resolved = _resolve_in_root(root, path, follow_last=True)
            link = "/" + os.path.relpath(resolved, root) if str(resolved) != str(root) else "/"
    mtime = datetime.fromtimestamp(st.st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size,
            "mode": go_file_mode(st.st_mode), "mtime": mtime, "linkTarget": link}
