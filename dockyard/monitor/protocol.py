"""What the engine, the CLI and the monitor process agree on: config file format and attach frames.

The monitor cannot import this module (it imports nothing from dockyard to stay small), so
monitor.py repeats these constants; tests/containers/test_monitor_protocol.py keeps them equal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

# Attach socket frames: 1 byte type, 4 bytes big-endian length, payload.
# client -> monitor
F_STDIN = 0
F_STDIN_EOF = 1
F_RESIZE = 2  # payload b"ROWS COLS"
F_SIGNAL = 4  # payload b"SIGNUM": forwarded to the container's init (docker's sig-proxy)
F_CLAIM_CLEANUP = 5  # the foreground `run` cleans up itself; the monitor skips its exit command
# monitor -> client
F_STDOUT = 1
F_STDERR = 2
F_EXIT = 3  # payload b"EXITCODE"; the last frame

HEADER = 5


def encode_config(items: Iterable[tuple[str, str | int | float | bool | None]]) -> str:
    """One ``key<TAB>value`` per line, values escaped so any string survives; keys may repeat (lists)."""
    out = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, bool):
            v = int(v)
        out.append(k + "\t" + str(v).encode("unicode_escape").decode("ascii"))
    return "\n".join(out) + "\n"


def frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(4, "big") + payload


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return buf
        buf += chunk
    return buf


def monitor_command(config_fd: int) -> list[str]:
    """How the engine starts a monitor: ``python -S -I`` importing monitor.py as a top-level module.

    Imported rather than run as a script so its byte code is cached like any module's (a script is
    compiled again at every start); -S -I keep site-packages and the environment out of it.  The
    monitor reads its config file's path from ``config_fd`` up to EOF (no path: exit at once), so
    it can be started before the engine has written that file.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    boot = f"import sys;sys.path.insert(0,{here!r});import monitor;monitor.main()"
    return [sys.executable, "-S", "-I", "-c", boot, f"fd:{config_fd}"]


def connect(path: str | os.PathLike[str]) -> socket.socket:
    """Connect to a unix socket however long its path (sun_path holds 107 bytes)."""
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    p = os.fspath(path)
    if len(p.encode()) < 100:
        s.connect(p)
        return s
    fd = os.open(os.path.dirname(p), os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        s.connect(f"/proc/self/fd/{fd}/{os.path.basename(p)}")
    finally:
        os.close(fd)
    return s
