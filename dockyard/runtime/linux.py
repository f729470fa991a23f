"""Thin, errno-checked wrappers for the namespace and mount system calls Python 3.11 lacks."""

from __future__ import annotations

import ctypes
import os

from dockyard.runtime._libc import check, libc, syscall, syscall_number

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
CLONE_INTO_CGROUP = 0x200000000
_SIGCHLD = 17

# OCI namespace type -> (clone flag, /proc/PID/ns entry)
NAMESPACES: dict[str, tuple[int, str]] = {
    "pid": (CLONE_NEWPID, "pid"),
    "network": (CLONE_NEWNET, "net"),
    "mount": (CLONE_NEWNS, "mnt"),
    "ipc": (CLONE_NEWIPC, "ipc"),
    "uts": (CLONE_NEWUTS, "uts"),
    "user": (CLONE_NEWUSER, "user"),
    "cgroup": (CLONE_NEWCGROUP, "cgroup"),
}

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def unshare(flags: int) -> None:
    syscall("unshare", ctypes.c_int(flags))


def setns(fd: int, nstype: int = 0) -> None:
    syscall("setns", ctypes.c_int(fd), ctypes.c_int(nstype))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    if libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data) if data else None) == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or fstype or ''} to {target}: {os.strerror(err)}")


def umount(target: str, flags: int = 0) -> None:
    check(libc.umount2(_b(target), flags), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    syscall("pivot_root", _b(new_root), _b(put_old))


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(libc.setdomainname(raw, len(raw)), "setdomainname")


def sethostname(name: str) -> None:
    raw = name.encode()
    check(libc.sethostname(raw, len(raw)), "sethostname")


def loopback_up() -> None:
    """Bring ``lo`` up in the current network namespace, as runc does for every namespace it creates
    (Docker's ``--network none`` is loopback-only, not no network at all).  One ioctl on a throwaway
    socket: cheaper than a netlink round trip and needs no import on the container's start path."""
    fd = libc.socket(2, 2, 0)  # AF_INET, SOCK_DGRAM
    check(fd, "socket for lo")
    try:
        # struct ifreq: 16-byte name, then ifr_flags (short) in a 24-byte union
        req = ctypes.create_string_buffer(b"lo".ljust(16, b"\0") + (0x1 | 0x40).to_bytes(2, "little") + bytes(22))
        check(libc.ioctl(fd, 0x8914, req), "bring lo up")  # SIOCSIFFLAGS: IFF_UP | IFF_RUNNING
    finally:
        os.close(fd)


# libc through the Python-API calling convention: the GIL stays held across the call, as os.fork
# holds it across fork().
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long


def fork_into_cgroup(cgroup_fd: int, flags: int = 0) -> int:
    """os.fork() through clone3(CLONE_INTO_CGROUP): the child starts in the cgroup2 directory open as
    ``cgroup_fd``, so nobody has to migrate it there (a migration waits for an RCU grace period of
    the kernel's global cgroup lock, ~10 ms).  ``flags`` adds CLONE_NEW* namespaces to create the
    child in.  Returns 0 in the child and its pid in the parent, like os.fork, whose before/after
    steps for the interpreter (import lock, thread state, at-fork hooks) it takes through the C API.
    Only for a single-threaded caller.  OSError (ENOSYS before Linux 5.7, EBADF for a cgroup v1
    directory) means nothing was forked."""
    # struct clone_args (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid, parent_tid, exit_signal,
    # stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    args = (ctypes.c_uint64 * 11)(flags | CLONE_INTO_CGROUP, 0, 0, 0, _SIGCHLD, 0, 0, 0, 0, 0, cgroup_fd)
    api = ctypes.pythonapi
    api.PyOS_BeforeFork()
    pid = _pylibc.syscall(ctypes.c_long(syscall_number("clone3")), args, ctypes.c_size_t(ctypes.sizeof(args)))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = ctypes.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid
