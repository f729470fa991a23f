"""An overlay upper directory as an OCI diff layer tar.

The upper directory of a build step's overlay mount holds exactly what the step changed, in
overlayfs' format: a 0/0 character device where a lower path was deleted, and
``trusted.overlay.opaque=y`` on a directory that replaced a lower one.  The OCI layer format says
the same with ``.wh.<name>`` marker files and ``.wh..wh..opq``, so this walk converts one into the
other and otherwise packs the tree like any layer (sorted, PAX, hard links kept, no devices).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from pathlib import Path
from typing import BinaryIO

from dockyard.image.layers import OVERLAY_OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX

# The xattrs an image layer may carry (the same policy as image.layers.pack_directory): overlay's own
# trusted.* metadata and security labels belong to the host.
_KEEP_XATTR_PREFIXES = ("user.",)
_KEEP_XATTRS = ("security.capability",)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _marker(name: str, mtime: float) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.REGTYPE
    ti.size = 0
    ti.mode = 0o600
    ti.mtime = int(mtime)
    return ti


def pack_upper(upper: Path, out: BinaryIO) -> int:
    """Write the changes in ``upper`` as a layer tar to ``out``; returns the number of entries (0: no change)."""
    count = 0

    def add(tf: tarfile.TarFile, path: str, arc: str) -> None:
        nonlocal count
        st = os.lstat(path)
        if _is_whiteout(st):
            d, base = os.path.split(arc)
            tf.addfile(_marker(os.path.join(d, WH_PREFIX + base), st.st_mtime))
            count += 1
            return
        ti = tf.gettarinfo(path, arcname=arc)
        if ti is None or ti.ischr() or ti.isblk():
            return  # sockets and devices never belong in an image
        ti.uname = ti.gname = ""
        if not ti.issym():
            pax = dict(ti.pax_headers)
            with contextlib.suppress(OSError):
                for name in os.listxattr(path, follow_symlinks=False):
                    if name.startswith(_KEEP_XATTR_PREFIXES) or name in _KEEP_XATTRS:
                        val = os.getxattr(path, name, follow_symlinks=False)
                        pax["SCHILY.xattr." + name] = val.decode("utf-8", "surrogateescape")
            ti.pax_headers = pax
        if ti.isreg():
            with open(path, "rb") as f:
                tf.addfile(ti, f)
        else:
            tf.addfile(ti)
        count += 1
        if ti.isdir():
            if _opaque(path):
                tf.addfile(_marker(f"{arc}/{WH_OPAQUE}", st.st_mtime))
            for child in sorted(os.listdir(path)):
                add(tf, os.path.join(path, child), f"{arc}/{child}")

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for child in sorted(os.listdir(upper)):
            add(tf, str(upper / child), child)
    return count
