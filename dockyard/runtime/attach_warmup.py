"""Hide the kernel's grace-period wait of a cgroup migration by pid behind the runtime's own start-up.

Moving a process between cgroups by pid (a write to ``cgroup.procs``) takes the global
``cgroup_threadgroup_rwsem`` for writing.  Its writer side first waits for an RCU grace period unless a
writer passed through within the last grace period (``rcu_sync``), so the first attach of a container
costs 6-20 ms of pure waiting, and later ones within a few milliseconds cost microseconds (the
kernel's ``favordynmods`` mount option removes the wait, but that is the host's choice).  While it
waits, the writer holds ``cgroup_mutex``: every mkdir and rmdir in cgroupfs waits with it.  runc pays
this wait on every start.

On cgroup v1 and hybrid hosts the runtime needs no such migration (CgroupManager.self_attach: clone3
into the unified cgroup, and a thread may move itself between v1 cgroups without the global lock),
so this module only serves hosts where a pid is still moved, i.e. cgroup v2 hosts.  There `start`
performs, in a thread, one no-op migration of the runtime process into the cgroup it is already in,
as soon as the command is known to create a process in a container; the grace period then elapses
while the main thread imports and parses the bundle (the GIL is released during the write).  `join`,
called right before the fork, waits for it.  The real attach comes a few milliseconds later, well
inside the next grace period, and finds the lock warm.  A thread rather than a helper process: it
costs no fork, and it is joined before the runtime forks, so the fork always happens single-threaded.
The write changes no cgroup membership; when it is refused (rootless, no cgroupfs) nothing is gained
and nothing lost.
"""

import _thread
import posix  # not `os`: this runs before anything else, while importing os would delay it by a millisecond

_pending = None  # the warm-up thread's lock, released when its write is done
# Commands that move a new process into a container's cgroup.
_ATTACHING = frozenset({"create", "run", "exec"})
# The runtime's global flags that take a separate value (cli._GLOBAL; a test keeps the two in step).
VALUE_FLAGS = frozenset({"--root", "--log", "--log-format", "--rootless", "--criu"})


def _own_procs_file() -> str | None:
    """cgroup.procs of a cgroup this process is in (moving into it again is a no-op)."""
    try:
        fd = posix.open("/proc/self/cgroup", posix.O_RDONLY | posix.O_CLOEXEC)
        try:
            lines = posix.read(fd, 65536).decode().splitlines()
        finally:
            posix.close(fd)
    except OSError:
        return None
    for line in lines:
        hid, _, rest = line.partition(":")
        ctrls, _, path = rest.partition(":")
        if hid == "0":
            dirs = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        else:
            dirs = ["/sys/fs/cgroup/" + c.removeprefix("name=") for c in (ctrls, ctrls.split(",")[0])]
        for d in dirs:
            cand = d + path.rstrip("/") + "/cgroup.procs"
            if posix.access(cand, posix.W_OK):
                return cand
    return None


def _migrate(path: str, pid: bytes, done) -> None:  # noqa: ANN001 - _thread locks have no public type
    try:
        fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
        try:
            posix.write(fd, pid)
        finally:
            posix.close(fd)
    except OSError:
        pass
    finally:
        done.release()


def start() -> None:
    """Begin warming (root only: others cannot write their own cgroup.procs on most hosts)."""
    global _pending
    if _pending is not None or posix.geteuid() != 0:
        return
    path = _own_procs_file()
    if path is None:
        return
    _pending = _thread.allocate_lock()
    _pending.acquire()
    _thread.start_new_thread(_migrate, (path, str(posix.getpid()).encode(), _pending))


def start_for(argv: list[str]) -> None:
    """`start` if the runtime command line ``argv`` (global flags first, as runc's) creates a process
    in a container.  A cheap look at the command word only: the real parsing comes later."""
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a.startswith("-"):
            skip = a in VALUE_FLAGS
        else:
            # On v1 and hybrid hosts nothing is moved by pid (CgroupManager.self_attach);
            # /sys/fs/cgroup/cgroup.controllers exists only where the whole tree is cgroup v2.
            if a in _ATTACHING and posix.access("/sys/fs/cgroup/cgroup.controllers", posix.F_OK):
                start()
            return


def join() -> None:
    """Wait for the warm-up write (call before forking)."""
    global _pending
    if _pending is not None:
        _pending.acquire()
        _pending = None
