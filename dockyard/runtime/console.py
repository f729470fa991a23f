"""Terminals: a pty whose master goes to the caller over a unix socket (SCM_RIGHTS), as runc does."""

from __future__ import annotations

import fcntl
import os
import socket
import termios

TIOCSCTTY = 0x540E


def connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        s.close()
        raise OSError(e.errno, f"cannot connect to console socket {path}: {e.strerror}") from None
    return s


def send_fd(sock_fd: int, fd: int, name: str = "/dev/ptmx") -> None:
    s = socket.socket(fileno=os.dup(sock_fd))
    try:
        socket.send_fds(s, [name.encode()], [fd])
    finally:
        s.close()


def recv_fd(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("no file descriptor received on the console socket")
    return fds[0]


def setup_pty(sock_fd: int) -> str:
    """In the container (after pivot_root): open a pty from its devpts, send the master, make the
    slave our controlling terminal and stdio.  Returns the slave's path."""
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        send_fd(sock_fd, master)
    finally:
        os.close(master)
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    return path


def copy_winsize(src_fd: int, dst_fd: int) -> None:
    try:
        ws = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, ws)
    except OSError:
        pass


def proxy(master: int, done) -> None:
    """Attach the current terminal to a container pty until ``done()`` is true and output is drained."""
    import select
    import signal
    import tty

    stdin_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_tty else None
    if stdin_tty:
        tty.setraw(0, termios.TCSANOW)  # TCSAFLUSH would drop input typed ahead
        copy_winsize(0, master)
        signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(0, master))
    fds = [master, 0]
    try:
        while True:
            r, _, _ = select.select(fds, [], [], 0.1)
            if master in r:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                os.write(1, data)
            if 0 in r:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    fds.remove(0)
            if not r and done():
                break
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
