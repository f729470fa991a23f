"""Run a command on a real pseudo-terminal (as a user at a terminal would) and collect what it prints."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time


def run_on_pty(argv: list[str], send: bytes, rows: int = 24, cols: int = 80, timeout: float = 60.0,
               env: dict[str, str] | None = None) -> tuple[int, bytes]:
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        os.execvpe(argv[0], argv, {**os.environ, **(env or {})})
    out = b""
    sent = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                out += data
            # type once the shell prompt is up
            if not sent and (b"# " in out or b"$ " in out):
                os.write(fd, send)
                sent = True
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out
