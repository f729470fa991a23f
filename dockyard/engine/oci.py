"""Drive an OCI runtime binary through its runc-compatible command line.

The engine never links a runtime: dockyard's own (``dockyard runtime``), runc, crun or any
runc-compatible binary named by path are all called the same way, with ``--root`` under the
engine's runroot so their state never mixes with another engine's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from dockyard.errors import CannotInvoke, CommandNotFound, DockyardError, InvalidArgument, NotFound

DEFAULT_RUNTIME = "dockyard"


def runtime_argv(name: str) -> list[str]:
    """The command that invokes runtime ``name`` (``dockyard``, ``runc``, ``crun`` or an absolute path)."""
    if name == "dockyard":
        from dockyard.runtime.cli import command

        return command()
    if os.path.isabs(name):
        if not os.access(name, os.X_OK):
            raise InvalidArgument(f"runtime {name} is not an executable file")
        return [name]
    path = shutil.which(name)
    if path is None:
        raise InvalidArgument(f"unknown runtime {name!r}: not found in $PATH (known: dockyard, runc, crun)")
    return [path]


def classify_start_error(message: str) -> DockyardError:
    """Docker's exit codes for a failed start: 127 command not found, 126 not executable, else 125."""
    low = message.lower()
    if "executable file not found" in low or "no such file or directory" in low and "exec" in low:
        return CommandNotFound(message)
    if "permission denied" in low and "exec" in low or "is a directory" in low:
        return CannotInvoke(message)
    return DockyardError(message)


def clean_error(stderr: str) -> str:
    """The meaningful last line of a runtime's stderr, without runc's logrus decoration."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    if not lines:
        return "the OCI runtime failed without a message"
    line = lines[-1]
    if line.startswith("{"):
        try:
            line = str(json.loads(line).get("msg", line))
        except ValueError:
            pass
    for marker in ('msg="', "level=error msg="):
        if marker in line:
            line = line.split(marker, 1)[1].rstrip('"')
    return line.replace('\\"', '"')


class OCIRuntime:
    def __init__(self, name: str, state_root: Path) -> None:
        self.name = name
        self.argv = runtime_argv(name)
        self.state_root = state_root

    def command(self, *args: str) -> list[str]:
        return [*self.argv, "--root", str(self.state_root), *args]

    def in_process_args(self) -> list[str] | None:
        """For dockyard's own runtime, its arguments after the interpreter's: the container monitor, a
        Python process of ours, then runs it in a forked child rather than starting an interpreter per
        call (tens of ms off each container's start and removal).  None for any other runtime, and when
        DOCKYARD_RUNTIME_EXEC=1 asks for the exec'd runtime (a comparison, a suspected difference)."""
        if self.name != DEFAULT_RUNTIME or os.environ.get("DOCKYARD_RUNTIME_EXEC") == "1":
            return None
        return ["--root", str(self.state_root)]

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        p = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            msg = clean_error(p.stderr)
            if "does not exist" in msg or "not found" in msg and "container" in msg:
                raise NotFound(msg)
            raise DockyardError(f"{self.name} {args[0]}: {msg}")
        return p

    def create_command(self, cid: str, bundle: Path, pid_file: Path, console_socket: Path | None = None,
                       log_file: Path | None = None) -> list[str]:
        pre = ["--log", str(log_file), "--log-format", "json"] if log_file else []
        args = [*pre, "create", "--bundle", str(bundle), "--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        return self.command(*args, cid)

    def start(self, cid: str) -> None:
        self._run("start", cid)

    def state(self, cid: str) -> dict[str, Any] | None:
        p = self._run("state", cid, check=False)
        if p.returncode != 0:
            return None
        try:
            out: dict[str, Any] = json.loads(p.stdout)
        except ValueError:
            return None
        return out

    def kill(self, cid: str, signal: str | int, all_processes: bool = False) -> None:
        args = ["kill"] + (["--all"] if all_processes else []) + [cid, str(signal)]
        self._run(*args)

    def delete(self, cid: str, force: bool = False) -> None:
        args = ["delete"] + (["--force"] if force else []) + [cid]
        p = self._run(*args, check=False)
        if p.returncode != 0 and "does not exist" not in p.stderr and "not exist" not in p.stderr:
            raise DockyardError(f"{self.name} delete: {clean_error(p.stderr)}")

    def pause(self, cid: str) -> None:
        self._run("pause", cid)

    def resume(self, cid: str) -> None:
        self._run("resume", cid)

    def ps(self, cid: str) -> list[int]:
        p = self._run("ps", "--format", "json", cid)
        return [int(x) for x in json.loads(p.stdout or "[]") or []]

    def exec_command(self, cid: str, process_file: Path, *, detach: bool = False, tty: bool = False,
                     console_socket: Path | None = None, pid_file: Path | None = None) -> list[str]:
        args = ["exec", "--process", str(process_file)]
        if detach:
            args.append("--detach")
        if tty:
            args.append("--tty")
            if console_socket is not None:
                args += ["--console-socket", str(console_socket)]
        if pid_file is not None:
            args += ["--pid-file", str(pid_file)]
        return self.command(*args, cid)
