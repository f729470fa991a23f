"""Docker's copy-up: an empty volume mounted over a directory of the image starts with its content.

Only into an empty volume, so data a volume holds is never overwritten; the source path is
resolved inside the container's root filesystem (an image's symlink cannot point the copy at the
host), and owners, modes, times, xattrs, hard links, symlinks and device nodes come along.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from dockyard.osutil import copy_metadata

_MAX_LINKS = 40


def resolve_in_root(root: Path, path: str) -> Path | None:
    """``path`` inside ``root`` with every symlink resolved as if ``root`` were ``/``; None if missing."""
    parts = [p for p in path.split("/") if p and p != "."]
    cur: list[str] = []
    hops = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if cur:
                cur.pop()
            continue
        candidate = root.joinpath(*cur, p)
        try:
            st = os.lstat(candidate)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                cur = []
            parts = [x for x in target.split("/") if x and x != "."] + parts
            continue
        cur.append(p)
    return root.joinpath(*cur)


def _copy_tree(src: str, dst: str, links: dict[tuple[int, int], str]) -> None:
    with os.scandir(src) as it:
        entries = list(it)
    for e in entries:
        st = e.stat(follow_symlinks=False)
        d = os.path.join(dst, e.name)
        key = (st.st_dev, st.st_ino)
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1 and key in links:
            os.link(links[key], d, follow_symlinks=False)
            continue
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(d, 0o700)
            _copy_tree(e.path, d, links)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(e.path, d, follow_symlinks=False)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(e.path), d)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(d, 0o600)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            if st.st_rdev == 0 and stat.S_ISCHR(st.st_mode):
                continue  # an overlay whiteout: nothing there from the container's view
            os.mknod(d, st.st_mode, st.st_rdev)
        else:
            continue  # sockets belong to a process, not to content
        if st.st_nlink > 1:
            links[key] = d
        copy_metadata(e.path, d, st)


def copy_up(rootfs: Path, target: str, volume_data: Path) -> bool:
    """Copy what the image has at ``target`` into ``volume_data`` if that is empty; True if copied."""
    src = resolve_in_root(rootfs, target)
    if src is None or not src.is_dir() or src.is_symlink():
        return False
    if any(os.scandir(volume_data)):
        return False
    _copy_tree(str(src), str(volume_data), {})
    # The volume's root takes the directory's owner and mode, so a service that owns it still does.
    copy_metadata(str(src), str(volume_data), os.lstat(src))
    return True
