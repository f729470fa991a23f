"""The container's filesystem view, built inside its new mount namespace by the init process.

Order follows runc so the container sees the same mount table: root propagation, rootfs bind,
config mounts in order, /dev nodes and links, (hooks), pivot_root, read-only and masked paths,
read-only root.
"""

from __future__ import annotations

import errno
import os
import stat

from dockyard.runtime import linux as L

# option -> (clear?, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, L.MS_SYNCHRONOUS), "atime": (True, L.MS_NOATIME), "bind": (False, L.MS_BIND),
    "defaults": (False, 0), "dev": (True, L.MS_NODEV), "diratime": (True, L.MS_NODIRATIME),
    "dirsync": (False, L.MS_DIRSYNC), "exec": (True, L.MS_NOEXEC), "mand": (False, L.MS_MANDLOCK),
    "noatime": (False, L.MS_NOATIME), "nodev": (False, L.MS_NODEV), "nodiratime": (False, L.MS_NODIRATIME),
    "noexec": (False, L.MS_NOEXEC), "nomand": (True, L.MS_MANDLOCK), "norelatime": (True, L.MS_RELATIME),
    "nostrictatime": (True, L.MS_STRICTATIME), "nosuid": (False, L.MS_NOSUID), "rbind": (False, L.MS_BIND | L.MS_REC),
    "relatime": (False, L.MS_RELATIME), "remount": (False, L.MS_REMOUNT), "ro": (False, L.MS_RDONLY),
    "rw": (True, L.MS_RDONLY), "strictatime": (False, L.MS_STRICTATIME), "suid": (True, L.MS_NOSUID),
    "sync": (False, L.MS_SYNCHRONOUS), "nosymfollow": (False, L.MS_NOSYMFOLLOW),
    "symfollow": (True, L.MS_NOSYMFOLLOW),
}
_PROPAGATION = {
    "private": L.MS_PRIVATE, "rprivate": L.MS_PRIVATE | L.MS_REC, "shared": L.MS_SHARED,
    "rshared": L.MS_SHARED | L.MS_REC, "slave": L.MS_SLAVE, "rslave": L.MS_SLAVE | L.MS_REC,
    "unbindable": L.MS_UNBINDABLE, "runbindable": L.MS_UNBINDABLE | L.MS_REC,
}
# Options runc understands but that are not kernel flags or data; dockyard has no use for them.
_IGNORED = {"tmpcopyup", "rro", "rrw", "rnosuid", "rnodev", "rnoexec", "idmap", "ridmap"}

DEFAULT_DEVICES = [  # path, type, major, minor; in runc's order, so user-namespace bind mounts line up
    ("/dev/null", "c", 1, 3), ("/dev/random", "c", 1, 8), ("/dev/full", "c", 1, 7),
    ("/dev/tty", "c", 5, 0), ("/dev/zero", "c", 1, 5), ("/dev/urandom", "c", 1, 9),
]


def parse_options(options: list[str] | None) -> tuple[int, list[int], str]:
    flags = 0
    prop: list[int] = []
    data: list[str] = []
    for o in options or []:
        if o in _FLAGS:
            clear, f = _FLAGS[o]
            flags = flags & ~f if clear else flags | f
        elif o in _PROPAGATION:
            prop.append(_PROPAGATION[o])
        elif o not in _IGNORED:
            data.append(o)
    return flags, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """``root``/``unsafe`` with every symlink resolved as if ``root`` were ``/``: never escapes root."""
    parts = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        p = parts.pop(0)
        if p == ".":
            continue
        if p == "..":
            if resolved:
                resolved.pop()
            continue
        cand = os.path.join(root, *resolved, p)
        try:
            target = os.readlink(cand)
        except OSError:
            resolved.append(p)
            continue
        links += 1
        if links > 255:
            raise OSError(errno.ELOOP, f"too many symlinks resolving {unsafe}")
        if target.startswith("/"):
            resolved = []
        parts = [x for x in target.split("/") if x] + parts
    return os.path.join(root, *resolved)


def _mkfile(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def _remount_flags(path: str) -> int:
    """Flags already on a mount that a bind-remount must keep (locked ones would fail with EPERM)."""
    f = os.statvfs(path).f_flag
    keep = L.MS_RDONLY | L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC | L.MS_NOATIME | L.MS_NODIRATIME | L.MS_RELATIME
    return f & keep


def _cgroup_v1_binds(dest: str, flags: int, cgroupns: bool) -> None:
    """runc's cgroup mount on a v1/hybrid host: a tmpfs with this container's cgroup of each hierarchy.

    The options (ro ...) apply to the per-hierarchy binds; the tmpfs itself stays writable, as in runc."""
    from dockyard import host

    info = host.cgroup_info()
    L.mount("tmpfs", dest, "tmpfs", L.MS_NOSUID | L.MS_NODEV | L.MS_NOEXEC, "mode=755")
    by_mount: dict[str, list[str]] = {}
    for ctrl, mnt in info.v1_mounts.items():
        by_mount.setdefault(mnt, []).append(ctrl)
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            for c in names.split(","):
                if c:
                    own[c] = path
    for mnt in by_mount:  # host mount order, as runc shows them
        ctrls = by_mount[mnt]
        rel = next((own[c] for c in ctrls if c in own), None)
        if rel is None:
            continue
        target = os.path.join(dest, os.path.basename(mnt))
        os.makedirs(target, exist_ok=True)
        if cgroupns:
            # In its own cgroup namespace the container may mount the hierarchy itself; its root is its cgroup.
            named = [c[5:] for c in ctrls if c.startswith("name=")]
            L.mount(named[0] if named else "cgroup", target, "cgroup", flags & ~L.MS_REC, ",".join(ctrls))
            continue
        src = os.path.join(mnt, rel.lstrip("/"))
        L.mount(src, target, None, L.MS_BIND | L.MS_REC)
        L.mount(None, target, None, L.MS_BIND | L.MS_REMOUNT | L.MS_REC | (flags & ~L.MS_REC) | _remount_flags(target))


def mount_one(rootfs: str, m: dict, bundle: str, cgroupns: bool) -> None:
    typ = m.get("type") or ""
    opts = m.get("options") or []
    flags, prop, data = parse_options(opts)
    dest = secure_join(rootfs, m["destination"])
    source = m.get("source") or typ or "none"
    is_bind = bool(flags & L.MS_BIND) or typ == "bind"
    if is_bind:
        flags |= L.MS_BIND
        if not source.startswith("/"):
            source = os.path.join(bundle, source)
        if not os.path.exists(source):
            raise OSError(errno.ENOENT, f"bind mount source {source} does not exist")
        if os.path.isdir(source):
            os.makedirs(dest, exist_ok=True)
        else:
            _mkfile(dest)
        L.mount(source, dest, None, flags & (L.MS_BIND | L.MS_REC))
        extra = flags & ~(L.MS_BIND | L.MS_REC | L.MS_REMOUNT)
        if extra:
            # A bind mount takes its flags only from a second, remounting call.
            L.mount(None, dest, None, flags | L.MS_REMOUNT | (_remount_flags(dest) & ~L.MS_RDONLY))
    elif typ == "cgroup":
        os.makedirs(dest, exist_ok=True)
        from dockyard import host

        info = host.cgroup_info()
        if info.version == "v2":
            if cgroupns:
                L.mount("cgroup2", dest, "cgroup2", flags, data or None)
            else:
                with open("/proc/self/cgroup") as f:
                    rel = next(ln.split(":", 2)[2].strip() for ln in f if ln.startswith("0::"))
                L.mount(os.path.join(info.v2_mount or "/sys/fs/cgroup", rel.lstrip("/")), dest, None,
                        L.MS_BIND | L.MS_REC)
                L.mount(None, dest, None, L.MS_BIND | L.MS_REMOUNT | flags | _remount_flags(dest))
        else:
            _cgroup_v1_binds(dest, flags, cgroupns)
    else:
        os.makedirs(dest, exist_ok=True)
        L.mount(source, dest, typ or None, flags & ~L.MS_REMOUNT, data or None)
    for p in prop:
        L.mount(None, dest, None, p)


def prepare(rootfs: str, spec: dict, bundle: str, in_userns: bool, cgroupns: bool) -> bool:
    """Mount everything under ``rootfs`` (still seen from the host's root).  Returns whether /dev was set up."""
    linux = spec.get("linux") or {}
    prop = _PROPAGATION.get(linux.get("rootfsPropagation", ""), L.MS_SLAVE | L.MS_REC)
    L.mount(None, "/", None, prop)
    L.mount(rootfs, rootfs, None, L.MS_BIND | L.MS_REC)
    mounts = spec.get("mounts") or []
    for m in mounts:
        mount_one(rootfs, m, bundle, cgroupns)
    cwd = (spec.get("process") or {}).get("cwd") or "/"
    # Like runc: a missing working directory is created (before the root may become read-only).
    os.makedirs(secure_join(rootfs, cwd), mode=0o755, exist_ok=True)
    bind_dev = any(m["destination"].rstrip("/") == "/dev" and "bind" in (m.get("options") or []) + [m.get("type")]
                   or m["destination"].rstrip("/") == "/dev" and "rbind" in (m.get("options") or [])
                   for m in mounts)
    if not bind_dev:
        old = os.umask(0)
        try:
            devices = [{"path": p, "type": t, "major": ma, "minor": mi, "fileMode": 0o666, "uid": 0, "gid": 0}
                       for p, t, ma, mi in DEFAULT_DEVICES]
            devices += linux.get("devices") or []
            for d in devices:
                create_device(rootfs, d, in_userns)
        finally:
            os.umask(old)
        dev = secure_join(rootfs, "/dev")
        links = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                 ("/proc/self/fd/2", "stderr")]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:
                os.symlink(target, os.path.join(dev, name))
            except FileExistsError:
                pass
        ptmx = os.path.join(dev, "ptmx")
        try:
            os.unlink(ptmx)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", ptmx)
    return not bind_dev


def create_device(rootfs: str, d: dict, in_userns: bool) -> None:
    path = secure_join(rootfs, d["path"])
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    typ = d["type"]
    if in_userns:
        # mknod is not allowed in a user namespace: bind the host's node instead, like runc.
        _mkfile(path)
        L.mount(d["path"], path, None, L.MS_BIND)
        return
    mode = d.get("fileMode", 0o666) & 0o7777
    kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[typ]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise OSError(errno.EISDIR, f"device path {d['path']} is a directory in the rootfs") from None
    os.mknod(path, mode | kind, os.makedev(d.get("major", 0), d.get("minor", 0)) if typ != "p" else 0)
    os.chown(path, d.get("uid", 0) or 0, d.get("gid", 0) or 0)


def pivot(rootfs: str, no_pivot: bool) -> None:
    if no_pivot:
        os.chdir(rootfs)
        L.mount(rootfs, "/", None, L.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        L.pivot_root(".", ".")
        os.fchdir(old)
        # The old root is stacked below the new one; make it private to us, then detach it.
        L.mount(None, ".", None, L.MS_SLAVE | L.MS_REC)
        L.umount(".", L.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def readonly_path(p: str) -> None:
    try:
        L.mount(p, p, None, L.MS_BIND | L.MS_REC)
    except FileNotFoundError:
        return
    L.mount(None, p, None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | L.MS_REC | _remount_flags(p))


def mask_path(p: str) -> None:
    try:
        if os.path.isdir(p):
            L.mount("tmpfs", p, "tmpfs", L.MS_RDONLY)
        else:
            L.mount("/dev/null", p, None, L.MS_BIND)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise


def finalize(spec: dict) -> None:
    """After pivot_root: read-only and masked paths, then a read-only root."""
    linux = spec.get("linux") or {}
    for p in linux.get("readonlyPaths") or []:
        readonly_path(p)
    for p in linux.get("maskedPaths") or []:
        mask_path(p)
    if (spec.get("root") or {}).get("readonly"):
        L.mount(None, "/", None, L.MS_BIND | L.MS_REMOUNT | L.MS_RDONLY | _remount_flags("/"))


def write_sysctl(sysctl: dict[str, str]) -> None:
    for key, value in sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as f:
                f.write(str(value))
        except OSError as e:
            raise OSError(e.errno, f"sysctl {key}={value}: {e.strerror}") from None
