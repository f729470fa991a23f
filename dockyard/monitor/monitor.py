"""Per-container monitor: one small process per running container, no daemon.

Run as ``python -S -I -c "...import monitor; monitor.main()" fd:N``, reading its config file's path
from descriptor N (see protocol.monitor_command).  It imports only C-level standard modules (no
json, no subprocess) so an idle monitor stays near the interpreter's own footprint; the one exception
is dockyard's own runtime, which it runs in forked children (fork_runtime) rather than as new
interpreters, and so imports while the engine prepares the container.

What it does, in order:
  1. forks once more and lets the engine reap the parent (so it is nobody's child), becomes a
     child subreaper (so the container's init, orphaned by ``runtime create``, is its child and
     its exit status can be collected), and starts its own session;
  2. reports "ready" on the sync pipe (a foreground client connects now), runs ``runtime run
     --detach`` with the container's stdio: pipes it owns, or a pty received on the console socket;
     reports "started PID" or "error CODE MSG";
  3. copies the container's output into the log (json-file with rotation, k8s-file, or none) and to
     clients on the attach socket, and client input to the container;
  4. runs health checks through ``runtime exec`` and records State.Health;
  5. on exit records exit code, OOM kill and finish time, applies the restart policy with back-off,
     and at the end runs the exit command (``dockyard container cleanup ID``) and tells attached
     clients the exit code.
"""

import _sqlite3
import ctypes
import fcntl
import os
import select
import signal
import socket
import sys
import time

# Kept equal to dockyard/monitor/protocol.py by tests/containers/test_monitor_protocol.py.
F_STDIN, F_STDOUT, F_STDERR, F_EXIT, F_STDIN_EOF, F_RESIZE, F_SIGNAL, F_CLAIM_CLEANUP = 0, 1, 2, 3, 1, 2, 4, 5
HEADER = 5
PR_SET_CHILD_SUBREAPER = 36
LINE_MAX = 16 * 1024  # Docker splits longer lines into partial log entries
HEALTH_OUTPUT_MAX = 4096  # Docker keeps this much of a health check's output
HEALTH_LOG_KEEP = 5

_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_JSON_ESCAPES.update({ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t",
                      0x7F: "\\u007f"})


def json_str(b):
    return '"' + b.decode("utf-8", "replace").translate(_JSON_ESCAPES) + '"'


def rfc3339(ts, utc_suffix="Z"):
    ns = int(ts * 1e9) % 1_000_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{ns:09d}" + utc_suffix


def read_config(path):
    cfg = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            cfg.setdefault(k, []).append(v.encode("ascii").decode("unicode_escape"))
    return cfg


class Config:
    def __init__(self, raw):
        self.raw = raw

    def get(self, key, default=""):
        v = self.raw.get(key)
        return v[0] if v else default

    def int(self, key, default=0):
        v = self.get(key)
        return int(v) if v else default

    def float(self, key, default=0.0):
        v = self.get(key)
        return float(v) if v else default

    def list(self, key):
        return list(self.raw.get(key, []))


# --------------------------------------------------------------------------------------------
class Store:
    """State updates in the engine's SQLite store, taking the engine's writer lock like it does."""

    def __init__(self, db, lock, cid):
        self.db, self.lock_path, self.cid = db, lock, cid
        self.conn = None

    def _conn(self):
        if self.conn is None:
            self.conn = _sqlite3.connect(self.db, timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA cache_size=-256")
            self.conn.execute("PRAGMA foreign_keys=ON")
            # As the engine's connections: in WAL mode a commit then needs no fsync and the store
            # stays consistent through crashes (a power loss may drop only the newest commits).
            self.conn.execute("PRAGMA synchronous=NORMAL")
        return self.conn

    def write(self, *statements):
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            c = self._conn()
            c.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    c.execute(sql, params)
            except BaseException:
                c.execute("ROLLBACK")
                raise
            c.execute("COMMIT")
        finally:
            os.close(fd)

    def read(self, sql, params=()):
        return self._conn().execute(sql, params).fetchone()

    def update(self, **cols):
        sets = ", ".join(k + "=?" for k in cols)
        self.write(("UPDATE containers SET " + sets + " WHERE id=?", (*cols.values(), self.cid)))

    def stopped_by_user(self):
        row = self.read("SELECT stopped_by_user FROM containers WHERE id=?", (self.cid,))
        return row is None or bool(row[0])


# --------------------------------------------------------------------------------------------
class Log:
    """The container's log: json-file (rotated by size), k8s-file, or none."""

    def __init__(self, driver, path, max_size, max_file):
        self.driver, self.path = driver, path
        self.max_size, self.max_file = max_size, max(1, max_file)
        self.fd = -1
        self.size = 0
        self.partial = {F_STDOUT: b"", F_STDERR: b""}
        if driver != "none" and path:
            self._open()

    def _open(self):
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size

    def _rotate(self):
        os.close(self.fd)
        if self.max_file <= 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i}")
        self._open()

    def _entry(self, stream, line, partial):
        now = time.time()
        name = "stdout" if stream == F_STDOUT else "stderr"
        if self.driver == "k8s-file":
            body = line[:-1] if line.endswith(b"\n") else line
            return (rfc3339(now, "+00:00") + " " + name + (" P " if partial else " F ")).encode() + body + b"\n"
        return ('{"log":' + json_str(line) + ',"stream":"' + name + '","time":"' + rfc3339(now) + '"}\n').encode()

    def _write(self, data):
        if self.max_size and self.size + len(data) > self.max_size and self.size > 0:
            self._rotate()
        os.write(self.fd, data)
        self.size += len(data)

    def feed(self, stream, data, eof=False):
        if self.fd < 0:
            return
        buf = self.partial[stream] + data
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            self._write(self._entry(stream, buf[: nl + 1], False))
            buf = buf[nl + 1:]
        while len(buf) >= LINE_MAX:
            self._write(self._entry(stream, buf[:LINE_MAX], True))
            buf = buf[LINE_MAX:]
        if eof and buf:
            self._write(self._entry(stream, buf, False))
            buf = b""
        self.partial[stream] = buf

    def flush(self):
        for s in (F_STDOUT, F_STDERR):
            self.feed(s, b"", eof=True)


# --------------------------------------------------------------------------------------------
def spawn(argv, stdin=None, stdout=None, stderr=None):
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_DUP2, stdin if stdin is not None else devnull, 0),
               (os.POSIX_SPAWN_DUP2, stdout if stdout is not None else devnull, 1),
               (os.POSIX_SPAWN_DUP2, stderr if stderr is not None else devnull, 2)]
    try:
        return os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    finally:
        os.close(devnull)


def fork_runtime(argv, stdin=None, stdout=None, stderr=None):
    """dockyard's own runtime (``runtime_inproc``) in a forked child instead of a new interpreter.

    The child starts as the exec'd runtime would: stdio as given, only inheritable descriptors,
    default handlers for the signals we catch (ignored ones stay ignored, as across exec); it is
    our child like a spawned runtime, so reaping and reparenting of the container are unchanged.
    Safe because the monitor never starts a thread.
    """
    devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                for fd, target in ((0, stdin), (1, stdout), (2, stderr)):
                    os.dup2(devnull if target is None else target, fd)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for name in os.listdir("/proc/self/fd"):
                    fd = int(name)
                    if fd > 2:
                        try:
                            if not os.get_inheritable(fd):
                                os.close(fd)
                        except OSError:
                            pass  # the listing's own descriptor, closed by now
                from dockyard.runtime.cli import main_forked

                main_forked(argv)
            finally:
                os._exit(1)
        return pid
    finally:
        os.close(devnull)


def preload_runtime():
    """Import dockyard's runtime ahead (forked runs then skip the imports); False when it cannot be."""
    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if top not in sys.path:
        sys.path.insert(0, top)
    try:
        # the entry, and what `run` and `delete` import once they parsed their arguments
        import dockyard.runtime.cli  # noqa: F401
        from dockyard import host  # noqa: F401
        from dockyard.runtime import _libc, capabilities, container, init, rlimits, rootfs, seccomp, spec  # noqa: F401
        from dockyard.runtime.cgroups import v1, v2  # noqa: F401
    except ImportError:
        return False
    return True


def wait_exit(pid):
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)
        except ChildProcessError:
            return -1
        except InterruptedError:
            continue


def exit_code_of(status):
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def proc_start_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def read_runtime_error(log_path, fallback):
    msg = ""
    try:
        with open(log_path, "rb") as f:
            for line in f:
                line = line.strip().replace(b'": "', b'":"')
                if b'"level":"error"' in line or b'"level":"fatal"' in line:
                    i = line.find(b'"msg":"')
                    if i >= 0:
                        rest = line[i + 7:]
                        # the message ends at the first unescaped quote
                        out, j = bytearray(), 0
                        while j < len(rest):
                            ch = rest[j]
                            if ch == 0x5C and j + 1 < len(rest):
                                out.append(rest[j + 1])
                                j += 2
                                continue
                            if ch == 0x22:
                                break
                            out.append(ch)
                            j += 1
                        msg = out.decode("utf-8", "replace")
    except OSError:
        pass
    if not msg:
        lines = [ln for ln in fallback.decode("utf-8", "replace").splitlines() if ln.strip()]
        msg = lines[-1].strip() if lines else "the OCI runtime failed without a message"
        if ' msg="' in msg:  # runc's logrus text format: time="..." level=error msg="..."
            msg = msg.split(' msg="', 1)[1].rstrip('"').replace('\\"', '"')
    return msg


def classify(msg):
    low = msg.lower()
    if "executable file not found" in low or ("no such file or directory" in low and "exec" in low):
        return 127
    if ("permission denied" in low and "exec" in low) or "is a directory" in low:
        return 126
    return 125


# --------------------------------------------------------------------------------------------
class Monitor:
    def __init__(self, cfg):
        self.cfg = cfg
        self.cid = cfg.get("id")
        self.rundir = cfg.get("rundir")
        self.runtime = cfg.list("runtime")
        self.runtime_inproc = cfg.list("runtime_inproc") if "runtime_inproc" in cfg.raw else None
        self.tty = cfg.int("tty") == 1
        self.open_stdin = cfg.int("stdin") == 1
        self.store = Store(cfg.get("db"), cfg.get("lock"), self.cid)
        self.log = Log(cfg.get("log_driver", "json-file"), cfg.get("log_path"),
                       cfg.int("log_max_size"), cfg.int("log_max_file", 1))
        self.sync_fd = cfg.int("sync_fd", -1)
        self.clients = []
        self.claimer = None  # the client that cleans up after the exit itself (foreground `run`)
        self.pid = 0
        self.stdin_w = -1
        self.outputs = {}  # fd -> stream
        self.master = -1
        self.health_test = cfg.list("health")
        self.health_proc = None
        self.health_next = 0.0
        self.started_at = 0.0
        self.restart_count = 0
        self.failed_code = 125
        self.poller = None

    # -- reporting ----------------------------------------------------------------------------
    def report(self, line):
        if self.sync_fd >= 0:
            try:
                os.write(self.sync_fd, (line + "\n").encode())
            except OSError:
                pass

    def close_sync(self):
        if self.sync_fd >= 0:
            os.close(self.sync_fd)
            self.sync_fd = -1

    # -- clients ------------------------------------------------------------------------------
    def send_all(self, kind, payload):
        data = bytes([kind]) + len(payload).to_bytes(4, "big") + payload
        for c in list(self.clients):
            try:
                c[0].sendall(data)
            except OSError:
                self.drop_client(c)

    def drop_client(self, c):
        if c is self.claimer:
            self.claimer = None
        if c in self.clients:
            self.clients.remove(c)
            c[0].close()

    def accept(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        conn.settimeout(10)
        c = [conn, b""]
        self.clients.append(c)
        return c

    def on_client_data(self, c):
        try:
            data = c[0].recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop_client(c)
            return
        c[1] += data
        while len(c[1]) >= HEADER:
            kind, n = c[1][0], int.from_bytes(c[1][1:5], "big")
            if len(c[1]) < HEADER + n:
                break
            payload, c[1] = c[1][HEADER:HEADER + n], c[1][HEADER + n:]
            self.on_frame(c, kind, payload)

    def on_frame(self, c, kind, payload):
        if kind == F_STDIN:
            fd = self.master if self.tty else self.stdin_w
            if fd >= 0:
                try:
                    os.write(fd, payload)
                except OSError:
                    pass
        elif kind == F_STDIN_EOF:
            if self.tty:
                if self.master >= 0:
                    try:
                        os.write(self.master, b"\x04")
                    except OSError:
                        pass
            elif self.stdin_w >= 0:
                os.close(self.stdin_w)
                self.stdin_w = -1
        elif kind == F_RESIZE and self.master >= 0:
            rows, cols = (int(x) for x in payload.split())
            import termios
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, rows.to_bytes(2, "little") + cols.to_bytes(2, "little")
                        + b"\0\0\0\0")
        elif kind == F_SIGNAL and self.pid:
            try:
                os.kill(self.pid, int(payload))
            except (OSError, ValueError):
                pass
        elif kind == F_CLAIM_CLEANUP:
            self.claimer = c

    # -- container lifecycle --------------------------------------------------------------------
    def spawn_runtime(self, args, stdin=None, stdout=None, stderr=None):
        if self.runtime_inproc is not None:
            return fork_runtime(self.runtime_inproc + args, stdin, stdout, stderr)
        return spawn(self.runtime + args, stdin, stdout, stderr)

    def create(self):
        """runtime create with our stdio; returns (ok, message)."""
        bundle = self.cfg.get("bundle")
        pid_file = os.path.join(self.rundir, "pidfile")
        log_file = os.path.join(self.rundir, "runtime.log")
        for p in (pid_file, log_file):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        pre = ["--log", log_file, "--log-format", "json"]
        # `run --detach` is create + start in one runtime invocation (one process start less).
        args = pre + ["run", "--detach", "--bundle", bundle, "--pid-file", pid_file]
        child_fds = []
        errbuf = b""
        if self.tty:
            # The socket lives in the bundle: runc resolves a relative --console-socket there (it
            # chdirs into the bundle), which keeps long roots within unix sockets' 107 bytes.
            sock_path = os.path.join(bundle, "console.sock")
            try:
                os.unlink(sock_path)
            except FileNotFoundError:
                pass
            csock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            os.chdir(bundle)
            try:
                csock.bind("console.sock")
                csock.listen(1)
                arg = sock_path if len(sock_path) < 100 else "console.sock"
                # started in the bundle, like runc runs itself, for any runtime that does not chdir
                pid = self.spawn_runtime(args + ["--console-socket", arg, self.cid])
            finally:
                os.chdir(self.rundir)
            csock.settimeout(0.1)
            master = -1
            while master < 0:
                try:
                    conn, _ = csock.accept()
                except TimeoutError:
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done:
                        csock.close()
                        return False, read_runtime_error(log_file, b"")
                    continue
                conn.settimeout(30)
                msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(4))
                for level, typ, data in anc:
                    if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                        master = int.from_bytes(data[:4], sys.byteorder)
                conn.close()
                if master < 0:
                    break
            csock.close()
            os.unlink(sock_path)
            code = wait_exit(pid)
            if code != 0 or master < 0:
                if master >= 0:
                    os.close(master)
                return False, read_runtime_error(log_file, b"")
            self.master = master
            self.outputs = {master: F_STDOUT}
        else:
            if self.open_stdin:
                in_r, self.stdin_w = os.pipe()
                child_fds.append(in_r)
            else:
                in_r = None
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            child_fds += [out_w, err_w]
            pid = self.spawn_runtime(args + [self.cid], stdin=in_r, stdout=out_w, stderr=err_w)
            for fd in child_fds:
                os.close(fd)
            code = wait_exit(pid)
            if code != 0:
                # The runtime's own error went to its log; anything on stderr is a fallback.
                os.set_blocking(err_r, False)
                try:
                    errbuf = os.read(err_r, 65536)
                except OSError:
                    pass
                for fd in (out_r, err_r):
                    os.close(fd)
                if self.stdin_w >= 0:
                    os.close(self.stdin_w)
                    self.stdin_w = -1
                return False, read_runtime_error(log_file, errbuf)
            self.outputs = {out_r: F_STDOUT, err_r: F_STDERR}
        with open(pid_file) as f:
            self.pid = int(f.read().strip())
        return True, ""

    def runtime_run(self, *args):
        err_path = os.path.join(self.rundir, "runtime.err")
        fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            pid = self.spawn_runtime(list(args), stderr=fd)
        finally:
            os.close(fd)
        code = wait_exit(pid)
        if code != 0:
            with open(err_path, "rb") as f:
                return code, read_runtime_error("/nonexistent", f.read())
        return 0, ""

    def start_once(self, first):
        if first:
            self.report("ready")
            if self.cfg.int("wait_attach") == 1:
                # The foreground client connects before the process exists, so it misses no output.
                self.listener.settimeout(60)
                c = self.accept()
                if c is not None:
                    c[0].settimeout(10)
                self.listener.settimeout(None)
        ok, msg = self.create()
        if not ok:
            code = self.failed_code = classify(msg)
            self.store.update(status="created" if first else "exited", error=msg, exit_code=code, pid=0,
                              finished_at=time.time() if not first else 0)
            self.report(f"error {code} {msg}")
            return False
        self.started_at = time.time()
        cols = dict(status="running", pid=self.pid, pid_start=proc_start_ticks(self.pid),
                    monitor_pid=os.getpid(), started_at=self.started_at, exit_code=0, error="", oom_killed=0,
                    restart_count=self.restart_count)
        if self.health_test:
            cols.update(health_status="starting", failing_streak=0)
            self.health_next = self.started_at + self.cfg.float("health_interval", 30.0)
        self.store.update(**cols)
        self.report(f"started {self.pid}")
        return True

    def oom_kills(self):
        path = self.cfg.get("oom_file")
        if not path:
            return 0
        try:
            with open(path) as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k == "oom_kill":
                        return int(v)
        except (OSError, ValueError):
            pass
        return 0

    # -- the loop while the container runs --------------------------------------------------------
    def run_loop(self):
        """Pump stdio, serve clients, run health checks until init exits; returns its exit code."""
        poller = self.poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        poller.register(self.listener.fileno(), select.POLLIN)
        for fd in self.outputs:
            poller.register(fd, select.POLLIN)
        by_fd = {}
        for c in self.clients:
            poller.register(c[0].fileno(), select.POLLIN)
            by_fd[c[0].fileno()] = c
        exit_code = None
        while exit_code is None or self.outputs:
            timeout = None
            now = time.time()
            if exit_code is not None:
                timeout = 1000  # draining: the pipes close once every process of the container is gone
            elif self.health_test:
                due = self.health_proc["deadline"] if self.health_proc else self.health_next
                timeout = max(0, int((due - now) * 1000) + 1)
            events = poller.poll(timeout)
            if not events and exit_code is not None:
                break
            for fd, _ev in events:
                if fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 512)
                    except OSError:
                        pass
                    code = self.reap()
                    if code is not None:
                        exit_code = code
                elif fd == self.listener.fileno():
                    c = self.accept()
                    if c is not None:
                        poller.register(c[0].fileno(), select.POLLIN)
                        by_fd[c[0].fileno()] = c
                elif fd in self.outputs:
                    try:
                        data = os.read(fd, 65536)
                    except OSError:
                        data = b""
                    stream = self.outputs[fd]
                    if data:
                        self.log.feed(stream, data)
                        self.send_all(stream, data)
                    else:
                        poller.unregister(fd)
                        del self.outputs[fd]
                        os.close(fd)
                        if fd == self.master:
                            self.master = -1
                elif self.health_proc and fd == self.health_proc["fd"]:
                    self.health_read()
                elif fd in by_fd:
                    c = by_fd[fd]
                    self.on_client_data(c)
                    if c not in self.clients:
                        poller.unregister(fd)
                        del by_fd[fd]
            if exit_code is None and self.health_test:
                self.health_tick()
        for fd in list(self.outputs):
            os.close(fd)
        self.outputs = {}
        if self.master >= 0:
            self.master = -1
        if self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1
        self.log.flush()
        if self.health_proc:
            self.health_kill()
        return exit_code

    def reap(self):
        code = None
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.pid:
                code = exit_code_of(status)
            elif self.health_proc and pid == self.health_proc["pid"]:
                self.health_done(exit_code_of(status))
        return code

    # -- health checks ----------------------------------------------------------------------------
    def health_tick(self):
        now = time.time()
        if self.health_proc:
            if now >= self.health_proc["deadline"]:
                timeout = self.cfg.float("health_timeout", 30.0)
                hp = self.health_kill()
                self.health_result(-1, (f"Health check exceeded timeout ({timeout:g}s)").encode(), hp["start"])
            return
        if now < self.health_next:
            return
        test = self.health_test
        if test[0] == "CMD-SHELL":
            args = ["/bin/sh", "-c", test[1]]
        else:
            args = test[1:]
        pid_file = os.path.join(self.rundir, "health.pid")
        try:
            os.unlink(pid_file)
        except FileNotFoundError:
            pass
        r, w = os.pipe()
        pid = self.spawn_runtime(["exec", "--pid-file", pid_file, self.cid] + args, stdout=w, stderr=w)
        os.close(w)
        os.set_blocking(r, False)
        self.health_proc = {"pid": pid, "fd": r, "out": b"", "eof": False, "start": now, "pid_file": pid_file,
                            "deadline": now + self.cfg.float("health_timeout", 30.0)}
        self.poller.register(r, select.POLLIN)

    def health_read(self):
        hp = self.health_proc
        if hp["eof"]:
            return
        try:
            while True:
                data = os.read(hp["fd"], 65536)
                if not data:
                    hp["eof"] = True
                    self.poller.unregister(hp["fd"])
                    break
                if len(hp["out"]) < HEALTH_OUTPUT_MAX:
                    hp["out"] += data
        except BlockingIOError:
            pass

    def health_close(self):
        hp = self.health_proc
        if not hp["eof"]:
            self.poller.unregister(hp["fd"])
        os.close(hp["fd"])
        self.health_proc = None
        return hp

    def health_done(self, code):
        self.health_read()
        hp = self.health_close()
        self.health_result(code, hp["out"], hp["start"])

    def health_kill(self):
        hp = self.health_proc
        try:
            with open(hp["pid_file"]) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        try:
            os.kill(hp["pid"], signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(hp["pid"], 0)
        except ChildProcessError:
            pass
        return self.health_close()

    def health_result(self, code, output, start):
        end = time.time()
        self.health_next = end + self.cfg.float("health_interval", 30.0)
        row = self.store.read("SELECT health_status, failing_streak FROM containers WHERE id=?", (self.cid,))
        status, streak = (row[0], row[1]) if row else ("starting", 0)
        in_start_period = end < self.started_at + self.cfg.float("health_start_period", 0.0)
        if code == 0:
            status, streak = "healthy", 0
        elif not (in_start_period and status == "starting"):
            streak += 1
            if streak >= self.cfg.int("health_retries", 3):
                status = "unhealthy"
        text = output[:HEALTH_OUTPUT_MAX].decode("utf-8", "replace")
        self.store.write(
            ("UPDATE containers SET health_status=?, failing_streak=? WHERE id=?", (status, streak, self.cid)),
            ("INSERT INTO container_health_log (container_id, start, end, exit_code, output) VALUES (?,?,?,?,?)",
             (self.cid, start, end, code, text)),
            ("DELETE FROM container_health_log WHERE container_id=? AND rowid NOT IN (SELECT rowid FROM "
             "container_health_log WHERE container_id=? ORDER BY start DESC LIMIT ?)",
             (self.cid, self.cid, HEALTH_LOG_KEEP)))

    # -- restart policy ---------------------------------------------------------------------------
    def should_restart(self, code):
        policy = self.cfg.get("restart", "no")
        if policy in ("", "no") or self.store.stopped_by_user():
            return False
        if policy in ("always", "unless-stopped"):
            return True
        if policy == "on-failure" and code != 0:
            limit = self.cfg.int("restart_max")
            return limit <= 0 or self.restart_count < limit
        return False

    def backoff(self, delay):
        """Sleep ``delay`` seconds, ending early when the user stops the container."""
        deadline = time.time() + delay
        while time.time() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.time())))
            if self.store.stopped_by_user():
                return False
        return True

    # -- main ---------------------------------------------------------------------------------------
    def main(self):
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        for s in (signal.SIGHUP, signal.SIGINT, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)
        sock_path = "attach"  # relative to the rundir (our cwd): unix socket paths are short
        try:
            os.unlink(sock_path)
        except FileNotFoundError:
            pass
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(sock_path)
        self.listener.listen(8)
        with open(os.path.join(self.rundir, "monitor.pid"), "w") as f:
            f.write(str(os.getpid()))

        delay = 0.1
        first = True
        final_code = 0
        while True:
            if not self.start_once(first):
                final_code = self.failed_code
                break
            if first:
                self.close_sync()
                first = False
            code = self.run_loop()
            finished = time.time()
            oom = self.oom_kills() > 0
            restart = self.should_restart(code)
            self.store.update(status="restarting" if restart else "exited", pid=0, exit_code=code,
                              oom_killed=int(oom), finished_at=finished,
                              health_status="unhealthy" if self.health_test and not restart else "")
            final_code = code
            if not restart:
                break
            if finished - self.started_at >= 10:
                delay = 0.1
            self.runtime_run("delete", "--force", self.cid)
            if not self.backoff(delay):
                self.store.update(status="exited")
                break
            delay = min(delay * 2, 60.0)
            self.restart_count += 1
        self.close_sync()
        exit_cmd = self.cfg.list("exit_command")
        claimer = self.claimer
        if claimer is not None:
            # The foreground `run` cleans up in its own process (saving a start of the CLI): it gets
            # the exit code first and unmounts, deletes rows and files while the runtime releases its
            # state and cgroup here; the end of our stream tells it that the runtime is done.
            self.send_all(F_EXIT, str(final_code).encode())
        self.runtime_run("delete", "--force", self.cid)
        if claimer is None:
            if exit_cmd:
                wait_exit(spawn(exit_cmd))
            self.send_all(F_EXIT, str(final_code).encode())
        elif claimer in self.clients:
            try:
                claimer[0].shutdown(socket.SHUT_WR)
            except OSError:
                pass
            # Once it hangs up, clean up ourselves if it did not get to it.
            claimer[0].settimeout(120)
            try:
                while claimer[0].recv(4096):
                    pass
            except OSError:
                pass
            if exit_cmd and os.path.ismount(os.path.join(self.cfg.get("bundle"), "rootfs")):
                wait_exit(spawn(exit_cmd))
        for c in list(self.clients):
            self.drop_client(c)
        self.listener.close()
        for name in ("attach", "monitor.pid"):
            try:
                os.unlink(os.path.join(self.rundir, name))
            except FileNotFoundError:
                pass


def read_config_path(fd):
    """The engine starts us early and writes our config's path once the container is ready."""
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data.decode()


def main():
    # While the engine prepares the container: its runtime is most likely dockyard's own, whose modules
    # the forked runtime runs need (the config says for sure; a wrong guess costs only memory).
    preloaded = (os.environ.get("DOCKYARD_RUNTIME", "dockyard") == "dockyard"
                 and os.environ.get("DOCKYARD_RUNTIME_EXEC") != "1" and preload_runtime())
    path = read_config_path(int(sys.argv[1].removeprefix("fd:")))
    if not path:
        return  # the start was given up before the container was ready
    cfg = Config(read_config(path))
    if "runtime_inproc" in cfg.raw and not preloaded and not preload_runtime():
        del cfg.raw["runtime_inproc"]  # not importable from here: exec'd like any runtime
    # Detach: the engine reaps this first process at once; the monitor runs in the grandchild.
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    os.chdir(cfg.get("rundir"))
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    log_fd = os.open(os.path.join(cfg.get("rundir"), "monitor.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    try:
        Monitor(cfg).main()
    except BaseException as e:
        sys.stderr.write(f"monitor failed: {e!r}\n")
        raise


if __name__ == "__main__":
    main()
