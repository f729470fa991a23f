"""Hide the kernel's grace-period wait of the first cgroup migration behind the runtime's own start-up.

Moving a process between cgroups (a write to ``cgroup.procs``) takes the global
``cgroup_threadgroup_rwsem`` for writing.  Its writer side first waits for an RCU grace period unless a
writer passed through within the last grace period (``rcu_sync``), so the first attach of a container
costs 10-20 ms of pure waiting on a quiet host, and later ones within a few milliseconds cost
microseconds (the kernel's ``favordynmods`` mount option removes the wait, but that is the host's choice).
runc pays the same wait; it hides part of it behind ``runc init``'s exec.

`start` performs, in a thread, one no-op migration of the runtime process into the cgroup it is
already in, as soon as the command is known to create a container; the grace period then elapses
while the main thread imports and parses the bundle (the GIL is released during the write).  `join`,
called right before the fork, waits for it if it is still going.  The real attach comes a few
milliseconds later, well inside the next grace period, and finds the lock warm.  A thread rather
than a helper process: it costs no fork, and it is joined before the runtime forks, so the fork
always happens single-threaded.  The write changes no cgroup membership; when it is refused
(rootless, no cgroupfs) nothing is gained and nothing lost.
"""

from __future__ import annotations

import _thread
import os

_pending = None  # the warm-up thread's lock, released when its write is done


def _own_procs_file() -> str | None:
    """cgroup.procs of a cgroup this process is in (moving into it again is a no-op)."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        hid, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if hid == "0":
            dirs = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        else:
            dirs = [os.path.join("/sys/fs/cgroup", c.removeprefix("name=")) for c in (ctrls, ctrls.split(",")[0])]
        for d in dirs:
            cand = d + path.rstrip("/") + "/cgroup.procs"
            if os.access(cand, os.W_OK):
                return cand
    return None


def _migrate(path: str, pid: bytes, done) -> None:  # noqa: ANN001 - _thread locks have no public type
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, pid)
        finally:
            os.close(fd)
    except OSError:
        pass
    finally:
        done.release()


def start() -> None:
    """Begin warming (root only: others cannot write their own cgroup.procs on most hosts)."""
    global _pending
    if _pending is not None or os.geteuid() != 0:
        return
    path = _own_procs_file()
    if path is None:
        return
    _pending = _thread.allocate_lock()
    _pending.acquire()
    _thread.start_new_thread(_migrate, (path, str(os.getpid()).encode(), _pending))


def join() -> None:
    """Wait for the warm-up write (call before forking)."""
    global _pending
    if _pending is not None:
        _pending.acquire()
        _pending = None
