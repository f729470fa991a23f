"""Commands run in a running container (``exec``): the process handling every front end shares.

``ContainerService.exec_command`` builds the runtime's ``exec`` command line; this module runs it,
with the caller's stdio (the CLI) or with pipes (the API server, which copies them to its client),
and turns the runtime's own failures into Docker's exit codes (126 cannot invoke, 127 not found).

``ExecSessions`` keeps what Docker's daemon keeps between ``POST /containers/{id}/exec`` and
``POST /exec/{id}/start``: the configuration, then the running process and its exit code.  Sessions
live as long as the process holding them (the API service), as Docker's do with its daemon.
"""

from __future__ import annotations

import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, NotFound

if TYPE_CHECKING:
    from dockyard.engine import Engine


@dataclass
class ExecConfig:
    container: str
    cmd: list[str]
    tty: bool = False
    stdin: bool = False  # keep the command's stdin open for the caller
    env: list[str] = field(default_factory=list)
    user: str | None = None
    workdir: str | None = None
    privileged: bool = False
    detach: bool = False


class ExecProcess:
    """A started runtime ``exec``; ``wait`` returns the exit code as Docker reports it."""

    def __init__(self, proc: subprocess.Popen[bytes], pfile: Path, logf: Path) -> None:
        self.proc = proc
        self.pfile = pfile
        self.logf = logf

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait(self) -> int:
        try:
            code = self.proc.wait()
            if code != 0:
                runtime_code = self._runtime_error_code()
                if runtime_code is not None:
                    return runtime_code
            return code
        finally:
            for f in (self.pfile, self.logf):
                try:
                    f.unlink()
                except OSError:
                    pass

    def _runtime_error_code(self) -> int | None:
        from dockyard.engine.oci import classify_start_error, clean_error

        try:
            text = self.logf.read_text()
        except OSError:
            return None
        errors = [ln for ln in text.replace('": "', '":"').splitlines()
                  if '"level":"error"' in ln or '"level":"fatal"' in ln]
        if not errors:
            return None
        # The runtime printed the error itself on the stderr it shares with the process;
        # only Docker's exit code (126/127/125) is left to give.
        return classify_start_error(clean_error(errors[-1])).exit_code


def spawn(engine: Engine, cfg: ExecConfig, *, stdio: str = "inherit") -> ExecProcess:
    """Start the runtime's exec.  ``stdio``: "inherit" shares the caller's (stdin only when
    ``cfg.stdin``); "pipe" lets the caller read ``proc.stdout``/``proc.stderr`` (one stream under a
    tty: the runtime copies the terminal to its stdout) and write ``proc.stdin``; "null" for a
    detached command nobody reads (it keeps the runtime's stdio for its whole life)."""
    argv, pfile, logf = engine.containers.exec_command(
        cfg.container, cfg.cmd, interactive=cfg.stdin, tty=cfg.tty, env=cfg.env, user=cfg.user,
        workdir=cfg.workdir, detach=cfg.detach, privileged=cfg.privileged)
    try:
        if stdio == "null":
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
        elif stdio == "pipe":
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE if cfg.stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT if cfg.tty else subprocess.PIPE)
        else:
            proc = subprocess.Popen(argv, stdin=None if cfg.stdin else subprocess.DEVNULL)
    except OSError:
        for f in (pfile, logf):
            if f.exists():
                f.unlink()
        raise
    return ExecProcess(proc, pfile, logf)


def run(engine: Engine, cfg: ExecConfig) -> int:
    """Run with the caller's stdio until the command ends (or, detached, until it started)."""
    return spawn(engine, cfg).wait()


@dataclass
class ExecSession:
    id: str
    container_id: str
    config: ExecConfig
    running: bool = False
    exit_code: int | None = None
    pid: int = 0

    def inspect(self) -> dict[str, Any]:
        """Docker's ``GET /exec/{id}/json``."""
        c = self.config
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {"tty": c.tty, "entrypoint": c.cmd[0] if c.cmd else "", "arguments": c.cmd[1:],
                              "privileged": c.privileged, "user": c.user or ""},
            "OpenStdin": c.stdin,
            "OpenStderr": True,
            "OpenStdout": True,
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": "",
            "Pid": self.pid,
        }


class ExecSessions:
    """Exec sessions created and not yet forgotten, by ID (thread-safe: API handlers run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, ExecSession] = {}

    def create(self, engine: Engine, cfg: ExecConfig) -> str:
        svc = engine.containers
        r = svc.inspect(cfg.container)
        state = r["State"]
        if state["Paused"]:
            raise Conflict(f"container {r['Id']} is paused, unpause the container before exec")
        if not state["Running"]:
            raise Conflict(f"container {r['Id']} is not running")
        if not cfg.cmd:
            from dockyard.errors import InvalidArgument

            raise InvalidArgument("no exec command specified")
        sid = os.urandom(32).hex()
        cfg.container = r["Id"]
        with self._lock:
            self._sessions[sid] = ExecSession(sid, r["Id"], cfg)
        return sid

    def get(self, sid: str) -> ExecSession:
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                matches = [v for k, v in self._sessions.items() if k.startswith(sid)] if sid else []
                s = matches[0] if len(matches) == 1 else None
        if s is None:
            raise NotFound(f"No such exec instance: {sid}")
        return s

    def start(self, engine: Engine, sid: str, *, detach: bool = False) -> ExecProcess:
        s = self.get(sid)
        with self._lock:
            if s.running or s.exit_code is not None:
                raise Conflict(f"exec session {sid} has already run")
            s.running = True
        s.config.detach = detach
        try:
            proc = spawn(engine, s.config, stdio="null" if detach else "pipe")
        except BaseException:
            with self._lock:
                s.running = False
            raise
        s.pid = proc.pid
        return proc

    def finished(self, sid: str, code: int) -> None:
        s = self.get(sid)
        with self._lock:
            s.running = False
            s.exit_code = code

    def forget_container(self, container_id: str) -> None:
        with self._lock:
            for k in [k for k, v in self._sessions.items() if v.container_id == container_id]:
                del self._sessions[k]
