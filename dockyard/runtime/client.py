"""Drive an OCI runtime binary (dockyard's own, runc or crun) the way Podman's libpod drives runc.

The engine uses this for every container: the runtime is a separate process per operation, so a
runtime crash never takes the engine down and any runc-compatible binary can be swapped in.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from dockyard.errors import Conflict, DockyardError, NotFound


class RuntimeCallError(DockyardError):
    """The runtime binary reported a failure; the message is its one error line."""


def _error_line(stderr: str) -> str:
    """The runtime's error in one line: dockyard prints ``Error: msg``, runc/crun log ``level=error msg="..."``."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("Error: "):
            return ln[7:]
        if "level=error" in ln and 'msg="' in ln:
            msg = ln.split('msg="', 1)[1]
            return msg[:-1] if msg.endswith('"') else msg
    return lines[-1] if lines else "runtime failed without a message"


class RuntimeClient:
    """One OCI runtime binary with one state root (``--root``)."""

    def __init__(self, root: str | os.PathLike[str], argv: list[str] | None = None, name: str = "dockyard") -> None:
        if argv is None:
            from dockyard.runtime.cli import command

            argv = command()
        self.argv = list(argv)
        self.root = str(root)
        self.name = name

    @classmethod
    def for_runtime(cls, name_or_path: str, root: str | os.PathLike[str]) -> RuntimeClient:
        """``dockyard`` (built in), ``runc``, ``crun``, or a path to a runc-compatible binary."""
        if name_or_path in ("dockyard", "", None):
            return cls(root)
        import shutil

        path = name_or_path if os.sep in name_or_path else shutil.which(name_or_path)
        if not path or not os.access(path, os.X_OK):
            raise NotFound(f"OCI runtime {name_or_path!r} not found")
        return cls(root, [path], os.path.basename(path))

    def _cmd(self, *args: str) -> list[str]:
        return [*self.argv, "--root", self.root, *args]

    def call(self, *args: str, timeout: float | None = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run one runtime command; raise RuntimeCallError with the runtime's message on failure."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.run(self._cmd(*args), text=True, timeout=timeout, **kw)
        if p.returncode != 0:
            msg = _error_line(p.stderr or "")
            if "does not exist" in msg or "not found" in msg:
                raise NotFound(msg)
            if "exists" in msg or "not stopped" in msg or "already" in msg:
                raise Conflict(msg)
            raise RuntimeCallError(msg)
        return p

    def create(self, cid: str, bundle: str, pid_file: str | None = None, console_socket: str | None = None,
               stdin: int | None = None, stdout: int | None = None, stderr: int | None = None) -> None:
        """`create`.  The container's init inherits stdio: pass file descriptors (files, a pty, conmon's
        pipes) — a pipe read until EOF would block until the container exits."""
        args = ["create", "--bundle", bundle]
        if pid_file:
            args += ["--pid-file", pid_file]
        if console_socket:
            args += ["--console-socket", console_socket]
        import tempfile

        # The runtime's errors go to a log file, as with conmon: its stderr is the container's.
        with tempfile.NamedTemporaryFile("r", suffix=".log", prefix="runtime-") as log:
            p = subprocess.run([*self.argv, "--root", self.root, "--log", log.name, "--log-format", "json", *args, cid],
                               timeout=120, stdin=subprocess.DEVNULL if stdin is None else stdin,
                               stdout=subprocess.DEVNULL if stdout is None else stdout,
                               stderr=subprocess.DEVNULL if stderr is None else stderr)
            if p.returncode == 0:
                return
            errors = []
            for line in log.read().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("error", "fatal"):
                    errors.append(str(entry.get("msg", "")))
        msg = errors[-1] if errors else f"{self.name} create failed (exit status {p.returncode})"
        if "exists" in msg:
            raise Conflict(msg)
        raise RuntimeCallError(msg)

    def start(self, cid: str) -> None:
        self.call("start", cid)

    def state(self, cid: str) -> dict:
        return json.loads(self.call("state", cid).stdout)

    def kill(self, cid: str, signal: str | int = "TERM", all_processes: bool = False) -> None:
        self.call("kill", *(["--all"] if all_processes else []), cid, str(signal))

    def delete(self, cid: str, force: bool = False) -> None:
        self.call("delete", *(["--force"] if force else []), cid)

    def list_containers(self) -> list[dict]:
        return json.loads(self.call("list", "--format", "json").stdout or "[]") or []

    def ps(self, cid: str) -> list[int]:
        return json.loads(self.call("ps", "--format", "json", cid).stdout)

    def update(self, cid: str, resources: dict) -> None:
        """New OCI ``linux.resources`` for a live container (`docker update`)."""
        self.call("update", "-r", "-", cid, input=json.dumps(resources), stdin=None)

    def pause(self, cid: str) -> None:
        self.call("pause", cid)

    def resume(self, cid: str) -> None:
        self.call("resume", cid)

    def exec(self, cid: str, process: dict, detach: bool = False, pid_file: str | None = None,
             console_socket: str | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        """`exec --process FILE`: run ``process`` (an OCI process object) in the container."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="process-") as f:
            json.dump(process, f)
            f.flush()
            args = ["exec", "--process", f.name]
            if detach:
                args.append("--detach")
            if pid_file:
                args += ["--pid-file", pid_file]
            if console_socket:
                args += ["--console-socket", console_socket]
            if detach:
                return self.call(*args, cid, **kw)
            # A foreground exec's failure is the process's exit status, not a runtime error.
            kw.setdefault("stdout", subprocess.PIPE)
            kw.setdefault("stderr", subprocess.PIPE)
            kw.setdefault("stdin", subprocess.DEVNULL)
            return subprocess.run(self._cmd(*args, cid), text=True, **kw)
