"""The local volume driver: directories under ROOT/volumes, options mounted with mount(2).

Layout as Docker's: ``ROOT/volumes/<name>/_data`` is what containers see.  A volume created with
``-o type=... -o o=... -o device=...`` gets that mount on its ``_data`` when a container first uses
it (so ``type=nfs`` reaches a real NFS server, ``type=tmpfs`` gives a fresh tmpfs, ``type=none,o=bind``
a host directory) and loses it when the last user stops, like Docker's local driver.  No database
here: the engine's VolumeService records who uses what.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path

from dockyard.errors import DockyardError, InvalidArgument

VALID_OPTS = ("type", "o", "device", "size")
# Docker: naming one of these needs the others (a device without a type cannot be mounted).
_MANDATORY = {"device": ("type",), "type": ("device",), "o": ("device", "type")}

# mount(2) flags, and which words of the ``o`` option set (False) or clear (True) them; the words
# moby/sys/mount knows.  Everything else is filesystem data (addr=, size=, nfsvers= ...).
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK = 1, 2, 4, 8, 16, 32, 64
MS_DIRSYNC, MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 128, 1024, 2048, 4096, 16384
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_STRICTATIME = 1 << 21, 1 << 24
MNT_DETACH = 2
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (False, MS_RDONLY), "rw": (True, MS_RDONLY),
    "suid": (True, MS_NOSUID), "nosuid": (False, MS_NOSUID), "dev": (True, MS_NODEV), "nodev": (False, MS_NODEV),
    "exec": (True, MS_NOEXEC), "noexec": (False, MS_NOEXEC), "sync": (False, MS_SYNCHRONOUS),
    "async": (True, MS_SYNCHRONOUS), "dirsync": (False, MS_DIRSYNC), "remount": (False, MS_REMOUNT),
    "mand": (False, MS_MANDLOCK), "nomand": (True, MS_MANDLOCK), "atime": (True, MS_NOATIME),
    "noatime": (False, MS_NOATIME), "diratime": (True, MS_NODIRATIME), "nodiratime": (False, MS_NODIRATIME),
    "bind": (False, MS_BIND), "rbind": (False, MS_BIND | MS_REC), "relatime": (False, MS_RELATIME),
    "norelatime": (True, MS_RELATIME), "strictatime": (False, MS_STRICTATIME),
    "nostrictatime": (True, MS_STRICTATIME),
}
_PROPAGATION = {"unbindable": MS_UNBINDABLE, "runbindable": MS_UNBINDABLE | MS_REC, "private": MS_PRIVATE,
                "rprivate": MS_PRIVATE | MS_REC, "shared": MS_SHARED, "rshared": MS_SHARED | MS_REC,
                "slave": MS_SLAVE, "rslave": MS_SLAVE | MS_REC}


def check_options(opts: dict[str, str]) -> None:
    """Docker's local driver rules for ``-o``; raises InvalidArgument with its messages."""
    for k in opts:
        if k not in VALID_OPTS:
            raise InvalidArgument(f'invalid option: "{k}"')
    if "size" in opts:
        raise InvalidArgument("quota size requested but no quota support")
    for opt, needs in _MANDATORY.items():
        if opt in opts:
            for n in needs:
                if n not in opts:
                    raise InvalidArgument(f'missing required option: "{n}"')


def volume_dir(root: Path, name: str) -> Path:
    return root / "volumes" / name


def data_dir(root: Path, name: str) -> Path:
    return volume_dir(root, name) / "_data"


def create_dirs(root: Path, name: str) -> Path:
    """Make the volume's directories; returns ``_data``.  An existing directory is reused."""
    base = root / "volumes"
    base.mkdir(parents=True, exist_ok=True)
    # Others may pass through (containers running as other users reach _data via the bind mount
    # anyway) but not list the volume names.
    os.chmod(base, 0o701)
    d = data_dir(root, name)
    d.parent.mkdir(exist_ok=True, mode=0o700)
    d.mkdir(exist_ok=True, mode=0o755)
    return d


def remove_dirs(root: Path, name: str) -> None:
    vd = volume_dir(root, name)
    if is_mounted(vd / "_data"):
        unmount(vd / "_data")
    if vd.exists():
        from dockyard.image.layers import remove_tree

        remove_tree(vd)


def parse_mount_options(o: str) -> tuple[int, int, str]:
    """``o`` -> (flags, propagation flags, data), as moby/sys/mount splits it."""
    flags, prop, data = 0, 0, []
    for word in (o.split(",") if o else []):
        if word in _FLAGS:
            clear, f = _FLAGS[word]
            flags = flags & ~f if clear else flags | f
        elif word in _PROPAGATION:
            prop |= _PROPAGATION[word]
        else:
            data.append(word)
    return flags, prop, ",".join(data)


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    from dockyard.runtime._libc import libc

    rv = libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                    data.encode() if data else None)
    if rv != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def mount_options(opts: dict[str, str], target: Path) -> None:
    """Mount a volume's ``type``/``o``/``device`` on ``target``; errors read like Docker's."""
    device, fstype = opts.get("device", ""), opts.get("type", "")
    if not device:
        raise DockyardError("missing device in volume options")
    flags, prop, data = parse_mount_options(opts.get("o", ""))
    if fstype == "nfs":
        data = _resolve_nfs_addr(data)
    try:
        if flags & MS_BIND:
            # A bind mount ignores other flags on the first call: bind, then remount with them.
            _mount(device, str(target), fstype or None, flags & (MS_BIND | MS_REC), None)
            rest = flags & ~(MS_BIND | MS_REC)
            if rest:
                _mount("", str(target), None, rest | MS_BIND | MS_REMOUNT, None)
        else:
            _mount(device, str(target), fstype or None, flags, data or None)
        if prop:
            _mount("", str(target), None, prop, None)
    except OSError as e:
        pw = next((w[9:] for w in opts.get("o", "").split(",") if w.startswith("password=")), "")
        msg = f"failed to mount local volume: mount {device}:{target}, flags: {hex(flags)}, data: {data}: {e.strerror}"
        raise DockyardError(msg.replace(pw, "********") if pw else msg) from None


def _resolve_nfs_addr(data: str) -> str:
    """The kernel's nfs wants an IP in addr=; resolve a host name as Docker does."""
    import socket

    words = data.split(",") if data else []
    for i, w in enumerate(words):
        if w.startswith("addr="):
            host = w[5:]
            try:
                socket.inet_pton(socket.AF_INET, host)
            except OSError:
                try:
                    words[i] = "addr=" + socket.gethostbyname(host)
                except OSError as e:
                    raise DockyardError(f"error resolving passed in network volume address: {e}") from None
    return ",".join(words)


def is_mounted(path: Path) -> bool:
    real = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp == real:
                    return True
    except OSError:
        pass
    return False


def unmount(path: Path) -> None:
    from dockyard.runtime._libc import libc

    while is_mounted(path):
        if libc.umount2(str(path).encode(), 0) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOENT):
                return
            if err != errno.EBUSY or libc.umount2(str(path).encode(), MNT_DETACH) != 0:
                raise DockyardError(f"unmount volume {path}: {os.strerror(ctypes.get_errno())}")


def disk_size(path: Path) -> int:
    """Docker's directory.Size: bytes of everything but directories, each hard-linked inode once."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [str(path)]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(e.path)
                    continue
                key = (st.st_dev, st.st_ino)
                if st.st_size == 0 or key in seen:
                    continue
                seen.add(key)
                total += st.st_size
    return total
