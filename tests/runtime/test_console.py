"""process.terminal: the pty master arrives over --console-socket (SCM_RIGHTS), as with runc."""

from __future__ import annotations

import os
import select
import socket
import time

import pytest

from tests.runtime.conftest import needs_root
from tests.runtime.oci import make_bundle

pytestmark = needs_root


def _read_all(fd: int, timeout: float = 20) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the slave side closed
                break
            if not chunk:
                break
            out += chunk
    return out


def _run_with_console(runtime, tmp_path, bundle) -> tuple[str, str]:
    sock_path = tmp_path / f"console-{runtime.which}.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    cid = runtime.new_id()
    try:
        p = runtime.create(bundle, cid, "--console-socket", str(sock_path))
        assert p.returncode == 0, p.stderr
        conn, _ = srv.accept()
        msg, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        conn.close()
        assert len(fds) == 1
        master = fds[0]
        assert runtime("start", cid).returncode == 0
        out = _read_all(master).decode().replace("\r\n", "\n")
        os.close(master)
        return msg.decode(), out
    finally:
        srv.close()
        runtime("delete", "--force", cid)


ARGS = ["sh", "-c", "tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-tty; ls -l /dev/console | cut -c1; ps -o tty | tail -1"]


@pytest.mark.peer("runc")
def test_console_socket_like_runc(rt, runc, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ARGS)
    b.config["process"]["terminal"] = True
    b.write()
    ours = _run_with_console(rt, tmp_path, b)
    theirs = _run_with_console(runc, tmp_path, b)
    assert ours == theirs
    assert "/dev/pts/0" in ours[1] and "stdio-is-tty" in ours[1]


def test_terminal_needs_console_socket_when_detached(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["true"])
    b.config["process"]["terminal"] = True
    b.write()
    cid = rt.new_id()
    p = rt.create(b, cid)
    assert p.returncode == 1 and "console socket" in p.stderr
    assert not (rt.root / cid).exists()


def test_exec_with_tty_over_console_socket(rt, tmp_path, busybox_rootfs):
    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt.create(b, cid).returncode == 0
    assert rt("start", cid).returncode == 0
    sock_path = tmp_path / "exec.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(sock_path))
    srv.listen(1)
    try:
        p = rt("exec", "-t", "-d", "--console-socket", str(sock_path), cid, "sh", "-c", "tty; sleep 0.5")
        assert p.returncode == 0, p.stderr
        conn, _ = srv.accept()
        _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        conn.close()
        out = _read_all(fds[0]).decode()
        os.close(fds[0])
        assert out.startswith("/dev/pts/")
    finally:
        srv.close()


def test_run_attaches_the_current_terminal(rt, tmp_path, busybox_rootfs):
    import subprocess

    from tests.runtime.oci import env, runtime_cmd

    b = make_bundle(tmp_path, busybox_rootfs, ["sh", "-c", "read line; echo got:$line; tty; exit 4"])
    b.config["process"]["terminal"] = True
    b.write()
    master, slave = os.openpty()
    cid = rt.new_id()
    p = subprocess.Popen(runtime_cmd("dockyard", rt.root) + ["run", "-b", str(b.path), cid],
                         stdin=slave, stdout=slave, stderr=slave, env=env(), start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"hello\r")
        out = _read_all(master).decode()
        assert p.wait(timeout=30) == 4
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert "got:hello" in out and "/dev/pts/0" in out


def test_exec_tty_attaches_the_current_terminal(rt, tmp_path, busybox_rootfs):
    import subprocess

    from tests.runtime.oci import env, runtime_cmd

    b = make_bundle(tmp_path, busybox_rootfs, ["sleep", "1000"])
    cid = rt.new_id()
    assert rt.create(b, cid).returncode == 0
    assert rt("start", cid).returncode == 0
    master, slave = os.openpty()
    p = subprocess.Popen(runtime_cmd("dockyard", rt.root) + ["exec", "-t", cid, "sh", "-c", "tty; exit 6"],
                         stdin=slave, stdout=slave, stderr=slave, env=env(), start_new_session=True)
    os.close(slave)
    try:
        out = _read_all(master).decode()
        assert p.wait(timeout=30) == 6
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    assert "/dev/pts/" in out
