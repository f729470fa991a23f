"""The one ctypes handle on libc the runtime's kernel modules share.

Python 3.11 lacks unshare/setns/prctl/capset, so the runtime calls them through libc.  Every call
goes through ``check`` so a failure surfaces as an ``OSError`` carrying the real errno instead of a
silent -1.
"""

from __future__ import annotations

import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.prctl.restype = ctypes.c_int
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

# System call numbers the runtime needs that libc has no wrapper for (or only a newer one).
_SYSCALLS = {
    "x86_64": {"capget": 125, "capset": 126, "pivot_root": 155, "setns": 308, "unshare": 272,
               "clone3": 435, "pidfd_open": 434, "mount_setattr": 442, "seccomp": 317, "bpf": 321},
    "aarch64": {"capget": 90, "capset": 91, "pivot_root": 41, "setns": 268, "unshare": 97,
                "clone3": 435, "pidfd_open": 434, "mount_setattr": 442, "seccomp": 277, "bpf": 280},
}


def check(rv: int, what: str = "") -> int:
    """Return ``rv``; raise ``OSError(errno)`` when a libc call reported failure with -1."""
    if rv == -1:
        err = ctypes.get_errno()
        msg = os.strerror(err)
        raise OSError(err, f"{what}: {msg}" if what else msg)
    return rv


def syscall_number(name: str) -> int:
    try:
        return _SYSCALLS[os.uname().machine][name]
    except KeyError:
        raise OSError(38, f"syscall {name} is not known on {os.uname().machine}") from None


def syscall(name: str, *args: object) -> int:
    """Invoke a raw system call by name, errno-checked."""
    return check(libc.syscall(ctypes.c_long(syscall_number(name)), *args), name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(libc.prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")
