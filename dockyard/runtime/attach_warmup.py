"""Hide the kernel's grace-period wait of the first cgroup migration behind the runtime's own start-up.

Moving a process between cgroups (a write to ``cgroup.procs``) takes the global
``cgroup_threadgroup_rwsem`` for writing.  Its writer side first waits for an RCU grace period unless a
writer passed through within the last grace period (``rcu_sync``), so the first attach of a container
costs 10-20 ms of pure waiting on a quiet host, and later ones within a few milliseconds cost
microseconds (the kernel's ``favordynmods`` mount option removes the wait, but that is the host's choice).
runc pays the same wait; it hides part of it behind ``runc init``'s exec.

`start` forks a small helper that repeats no-op migrations of the runtime process into the cgroup it
is already in, every few milliseconds, while the runtime imports, parses the bundle and makes the
container's cgroups; the container's real attach then finds the lock warm, and `finish` (called
right after that attach) ends the helper.  A process rather than a thread: a thread would have to
take the GIL back from the importing main thread for every write.  The writes change no cgroup
membership; when they are refused (rootless, no cgroupfs) nothing is gained and nothing lost.
"""

from __future__ import annotations

import os
import time

_REPEAT_S = 0.003  # well inside one grace period, so the warm state never lapses
_GIVE_UP_S = 2.0  # never outlive a stuck `create` by much

_helper: tuple[int, int] | None = None  # (pid, write end of its stop pipe)
_stopped: int | None = None  # told to stop, not yet reaped


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


def _loop(path: str, target: int, stop: int) -> None:
    me = str(target).encode()
    for _ in range(int(_GIVE_UP_S / _REPEAT_S)):
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, me)
        finally:
            os.close(fd)
        time.sleep(_REPEAT_S)
        try:
            os.read(stop, 1)
            return  # a byte or EOF: the runtime is done (or gone)
        except BlockingIOError:
            pass
        if os.getppid() != target:
            return


def start() -> None:
    """Begin warming (root only: others cannot write their own cgroup.procs on most hosts)."""
    global _helper
    if _helper is not None or os.geteuid() != 0:
        return
    path = _own_procs_file()
    if path is None:
        return
    me = os.getpid()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(w)
            os.set_blocking(r, False)
            _loop(path, me, r)
        except BaseException:  # noqa: BLE001,S110 - a failed warm-up only loses the speed-up
            pass
        finally:
            os._exit(0)
    os.close(r)
    _helper = (pid, w)


def finish() -> None:
    """Tell the helper to stop (after the container's attach, or when `create` fails); `reap` collects it."""
    global _helper, _stopped
    if _helper is None:
        return
    pid, w = _helper
    _helper = None
    try:
        os.write(w, b"x")
    except OSError:
        pass
    os.close(w)
    _stopped = pid


def reap() -> None:
    """Wait for a stopped helper (it exits within one repeat interval of `finish`)."""
    global _stopped
    finish()
    if _stopped is None:
        return
    pid, _stopped = _stopped, None
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
