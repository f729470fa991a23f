"""Ending the helper processes networking starts (slirp4netns, the DNS servers) for good.

A process's cmdline empties as it starts to exit, before its files close; whoever waits on that sees
it gone while its sockets (a published port, the DNS server's address) are still bound.  Only a
zombie, or no process at all, has released them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time


def exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def wait_exited(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaps it when this process started it
        if exited(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def terminate(pid: int, timeout: float) -> None:
    """SIGTERM, SIGKILL after ``timeout``; returns once the process holds nothing any more."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_exited(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_exited(pid, timeout)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
