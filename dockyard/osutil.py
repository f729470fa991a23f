"""Small OS helpers that image, storage and engine code all need, kept in one place so they cannot drift."""

from __future__ import annotations

import contextlib
import os
import stat

StrPath = str | os.PathLike[str]


def copy_metadata(src: StrPath, dst: StrPath, st: os.stat_result) -> None:
    """Give ``dst`` the owner, mode, xattrs and times that ``src`` had (``st`` is its lstat).

    Ownership only as root (anyone else would fail and keep their own uid anyway); overlayfs' own
    ``trusted.overlay.*`` xattrs are not carried, so a copy never turns into a whiteout or opaque dir;
    symlinks get only owner and times (Linux has no lchmod)."""
    if os.geteuid() == 0:
        os.lchown(dst, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        with contextlib.suppress(OSError):
            for name in os.listxattr(src, follow_symlinks=False):
                if not name.startswith("trusted.overlay."):
                    os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists; EPERM means it does but belongs to someone else.

    Non-positive pids are never a process: kill(0|-n, 0) would probe a whole process group."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
