"""Helpers shared by the tests: run the CLI, build a busybox rootfs, track peer processes."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUSYBOX = shutil.which("busybox") or "/bin/busybox"


def unique_name(prefix: str = "dy", length: int = 15) -> str:
    """A name unique enough for kernel objects; interface names must stay within 15 chars."""
    suffix = secrets.token_hex(4)
    return (prefix[: max(1, length - len(suffix) - 1)] + "-" + suffix)[:length]


def dockyard_cmd(root: str | os.PathLike[str] | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "dockyard"]
    if root is not None:
        cmd += ["--root", str(root)]
    return cmd


def run_cli(*args: str, root: str | os.PathLike[str] | None = None, input: str | bytes | None = None,
            timeout: float = 120, check: bool = False, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if env:
        full_env.update(env)
    text_input = input.decode() if isinstance(input, bytes) else input
    p = subprocess.run(dockyard_cmd(root) + list(args), input=text_input, capture_output=True,
                       text=True, timeout=timeout, env=full_env)
    if check and p.returncode != 0:
        raise AssertionError(f"dockyard {' '.join(args)} exited {p.returncode}\n"
                             f"stdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def make_busybox_rootfs(dest: Path) -> Path:
    """A minimal root filesystem from Debian's busybox-static: /bin/busybox plus applet links."""
    if not os.path.exists(BUSYBOX):
        raise RuntimeError("busybox-static is not installed (hack/setup.sh installs it)")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "var/www", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list-full"], capture_output=True, text=True, check=True).stdout
    for rel in applets.split():
        link = dest / rel
        if link.name == "busybox" or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/bin/busybox", link)
    (dest / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnobody:x:65534:\n")
    return dest


class ProcessTracker:
    """Starts peer processes for a test and always ends them (by pid, never by name)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], **kw: object) -> subprocess.Popen[bytes]:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p = subprocess.Popen(args, start_new_session=True, **kw)  # type: ignore[call-overload]
        self.procs.append(p)
        return p

    def stop_all(self, grace: float = 5.0) -> None:
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        self.procs.clear()


def wait_for(pred, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
