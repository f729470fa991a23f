"""`dockyard runtime` / `dockyard-runtime`: a runc-compatible command line.

Hand-parsed on purpose: this is the hot path of every container start (the engine, Podman and
conmon call it as a binary), and click alone costs more than half of runc's whole `run`.
Flags and output follow runc 1.1 so it can stand in for runc.
"""

from __future__ import annotations

import sys

# Only this before main() runs: it starts the cgroup warm-up, and every millisecond of import
# before that is a millisecond added to each container start (`os` is imported in main, after it).
from dockyard.runtime import attach_warmup

USAGE = """usage: dockyard runtime [--root DIR] [--log FILE] [--log-format text|json] COMMAND [OPTIONS] ...

A runc-compatible low-level OCI runtime.

commands:
  spec [--rootless] [-b DIR]                  write a default config.json
  create [-b DIR] [--pid-file F] [--console-socket SOCK] [--no-pivot] ID
  start ID                                    run the user process of a created container
  run [-b DIR] [-d] [--pid-file F] [--console-socket SOCK] [--no-pivot] ID
  state ID                                    print the OCI state JSON
  kill [--all] ID [SIGNAL]
  delete [--force] ID
  list [--format table|json] [-q]
  ps [--format table|json] ID [PS-ARGS...]
  exec [-t] [-d] [--process FILE] [--pid-file F] [--console-socket SOCK] [--cwd DIR] [-e K=V]
       [-u UID[:GID]] [--cap CAP] ID [COMMAND ARGS...]
  pause ID / resume ID                        freeze / thaw every process (cgroup freezer)
  update [-r FILE|-] [--memory N] [--pids-limit N] [--cpu-share N] ... ID   change resource limits
"""

# flag spellings -> (destination, takes a value, repeatable)
_GLOBAL = {"--root": ("root", True, False), "--log": ("log", True, False),
           "--log-format": ("log_format", True, False), "--debug": ("debug", False, False),
           "--systemd-cgroup": ("systemd_cgroup", False, False), "--rootless": ("rootless", True, False),
           "--criu": ("criu", True, False)}
_CREATE = {"-b": ("bundle", True, False), "--bundle": ("bundle", True, False),
           "--pid-file": ("pid_file", True, False), "--console-socket": ("console_socket", True, False),
           "--no-pivot": ("no_pivot", False, False), "--no-new-keyring": ("no_new_keyring", False, False),
           "--preserve-fds": ("preserve_fds", True, False)}
_COMMANDS: dict[str, dict[str, tuple[str, bool, bool]]] = {
    "spec": {"--rootless": ("rootless", False, False), "-b": ("bundle", True, False),
             "--bundle": ("bundle", True, False)},
    "create": _CREATE,
    "run": {**_CREATE, "-d": ("detach", False, False), "--detach": ("detach", False, False),
            "--keep": ("keep", False, False)},
    "start": {},
    "state": {},
    "kill": {"-a": ("all", False, False), "--all": ("all", False, False)},
    "delete": {"-f": ("force", False, False), "--force": ("force", False, False)},
    "list": {"-f": ("format", True, False), "--format": ("format", True, False), "-q": ("quiet", False, False),
             "--quiet": ("quiet", False, False)},
    "ps": {"-f": ("format", True, False), "--format": ("format", True, False)},
    "exec": {"-t": ("tty", False, False), "--tty": ("tty", False, False), "-p": ("process", True, False),
             "--process": ("process", True, False), "-d": ("detach", False, False),
             "--detach": ("detach", False, False), "--pid-file": ("pid_file", True, False),
             "--console-socket": ("console_socket", True, False), "--cwd": ("cwd", True, False),
             "-e": ("env", True, True), "--env": ("env", True, True), "-u": ("user", True, False),
             "--user": ("user", True, False), "-c": ("cap", True, True), "--cap": ("cap", True, True),
             "--no-new-privs": ("no_new_privs", False, False), "-g": ("additional_gids", True, True),
             "--additional-gids": ("additional_gids", True, True),
             "--preserve-fds": ("preserve_fds", True, False), "--process-label": ("label", True, False),
             "--apparmor": ("apparmor", True, False)},
    "pause": {},
    "resume": {},
    "update": {"-r": ("resources", True, False), "--resources": ("resources", True, False),
               **{f"--{name}": (name, True, False) for name in (
                   "blkio-weight", "cpu-period", "cpu-quota", "cpu-share", "cpu-rt-period", "cpu-rt-runtime",
                   "cpuset-cpus", "cpuset-mems", "memory", "memory-reservation", "memory-swap", "pids-limit")}},
}
_ALIASES = {"ls": "list", "rm": "delete"}

_log_file: str | None = None
_log_format = "text"


class UsageError(Exception):
    pass


def log(level: str, msg: str) -> None:
    """A runc-style log line: to --log in --log-format, else warnings to stderr."""
    import time

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if _log_file:
        import json

        if _log_format == "json":
            line = json.dumps({"level": level, "msg": msg, "time": now})
        else:
            line = f'time="{now}" level={level} msg={json.dumps(msg)}'
        try:
            with open(_log_file, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass
    if level != "error" and not _log_file:
        print(f"WARN: {msg}", file=sys.stderr, flush=True)


def _parse(args: list[str], table: dict[str, tuple[str, bool, bool]], stop_at_positional: bool,
           ) -> tuple[dict, list[str]]:
    opts: dict = {}
    pos: list[str] = []
    i = 0
    val: str | bool
    while i < len(args):
        a = args[i]
        if a == "--":
            pos += args[i + 1:]
            break
        if a.startswith("-") and len(a) > 1 and not (stop_at_positional and pos):
            name, eq, text = a.partition("=")
            val = text
            if name not in table:
                if a in ("-h", "--help"):
                    raise UsageError("help")
                raise UsageError(f"flag provided but not defined: {name}")
            dest, takes, many = table[name]
            if takes:
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise UsageError(f"flag needs an argument: {name}")
                    val = args[i]
            else:
                val = True if not eq else text.lower() in ("1", "true", "yes")
            if many:
                opts.setdefault(dest, []).append(val)
            else:
                opts[dest] = val
        else:
            pos.append(a)
        i += 1
    return opts, pos


def _need_id(cmd: str, pos: list[str], maxn: int = 1) -> str:
    if not pos:
        raise UsageError(f'"{cmd}" requires a container id')
    if len(pos) > maxn:
        raise UsageError(f'"{cmd}" takes at most {maxn} argument(s), got {len(pos)}')
    return pos[0]


def _exec_process(opts: dict, pos: list[str], spec: dict) -> dict:
    from dockyard.runtime import spec as spec_mod

    if opts.get("process"):
        proc = spec_mod.load_process(opts["process"])
        if "tty" in opts:  # as runc: an explicit --tty overrides the file's terminal
            proc["terminal"] = bool(opts["tty"])
        return proc
    if len(pos) < 2:
        raise UsageError("exec needs a command to run (or --process FILE)")
    from dockyard.runtime import jsonfast

    proc = jsonfast.loads(jsonfast.dumps(spec["process"]))
    proc["args"] = pos[1:]
    proc["terminal"] = bool(opts.get("tty"))
    env = [e for e in proc.get("env") or []]
    for e in opts.get("env") or []:
        key = e.split("=", 1)[0]
        env = [x for x in env if x.split("=", 1)[0] != key] + [e]
    proc["env"] = env
    if opts.get("cwd"):
        proc["cwd"] = opts["cwd"]
    if opts.get("user"):
        u, _, g = opts["user"].partition(":")
        try:
            proc["user"] = dict(proc.get("user") or {}, uid=int(u))
            if g:
                proc["user"]["gid"] = int(g)
        except ValueError:
            raise UsageError(f"--user takes UID[:GID] numbers, got {opts['user']!r}") from None
    if opts.get("additional_gids"):
        proc.setdefault("user", {})["additionalGids"] = [int(g) for g in opts["additional_gids"]]
    if opts.get("cap"):
        caps = proc.setdefault("capabilities", {})
        for k in ("bounding", "effective", "permitted", "ambient", "inheritable"):
            if k == "inheritable" and k not in caps:
                continue
            caps[k] = list(dict.fromkeys((caps.get(k) or []) + opts["cap"]))
    if opts.get("no_new_privs"):
        proc["noNewPrivileges"] = True
    return proc


# runc update flag -> (resources section, field, is a string)
_UPDATE_FLAGS = {
    "blkio-weight": ("blockIO", "weight", False), "cpu-period": ("cpu", "period", False),
    "cpu-quota": ("cpu", "quota", False), "cpu-share": ("cpu", "shares", False),
    "cpu-rt-period": ("cpu", "realtimePeriod", False), "cpu-rt-runtime": ("cpu", "realtimeRuntime", False),
    "cpuset-cpus": ("cpu", "cpus", True), "cpuset-mems": ("cpu", "mems", True),
    "memory": ("memory", "limit", False), "memory-reservation": ("memory", "reservation", False),
    "memory-swap": ("memory", "swap", False), "pids-limit": ("pids", "limit", False),
}


def _update_resources(opts: dict) -> dict:
    """`update`'s new limits: an OCI linux.resources object from -r FILE (or - for stdin), else from flags."""
    src = opts.get("resources")
    if src:
        import json

        try:
            text = sys.stdin.read() if src == "-" else open(src).read()
            loaded = json.loads(text)
        except OSError as e:
            raise UsageError(f"cannot read {src}: {e.strerror}") from None
        except ValueError as e:
            raise UsageError(f"resources in {src} are not valid JSON: {e}") from None
        if not isinstance(loaded, dict):
            raise UsageError("resources must be a JSON object")
        return loaded
    res: dict = {}
    for flag, (section, field, is_str) in _UPDATE_FLAGS.items():
        if flag in opts:
            raw = opts[flag]
            if is_str:
                value: object = raw
            else:
                from dockyard.errors import DockyardError
                from dockyard.runtime.cgroups import parse_memory

                try:
                    value = parse_memory(raw) if flag.startswith("memory") else int(raw)
                except (ValueError, DockyardError):
                    raise UsageError(f"invalid value for --{flag}: {raw!r}") from None
            res.setdefault(section, {})[field] = value
    if not res:
        raise UsageError("update needs --resources or at least one limit flag")
    return res


def _preserve(opts: dict) -> int:
    raw = opts.get("preserve_fds", "0")
    if not str(raw).isdigit():
        raise UsageError(f"--preserve-fds takes a number, got {raw!r}")
    return int(raw)


def _table(rows: list[list[str]]) -> str:
    """Columns as runc's Go tabwriter (minwidth 12, padding 3) lays them out."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)] + [0]
    return "\n".join("".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def dispatch(argv: list[str]) -> int:  # noqa: C901 - one branch per runc command
    global _log_file, _log_format
    gopts, rest = _parse_globals(argv)
    _log_file = gopts.get("log")
    _log_format = gopts.get("log_format", "text")
    if _log_format not in ("text", "json"):
        raise UsageError(f"invalid log-format: {_log_format} (want text or json)")
    if not rest:
        print(USAGE, end="")
        return 0
    cmd = _ALIASES.get(rest[0], rest[0])
    if cmd in ("-v", "--version", "version"):
        from dockyard import __version__
        from dockyard.runtime.spec import OCI_VERSION

        print(f"dockyard-runtime version {__version__}\nspec: {OCI_VERSION}")
        return 0
    if cmd in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if cmd not in _COMMANDS:
        raise UsageError(f"no such command: {rest[0]}")
    opts, pos = _parse(rest[1:], _COMMANDS[cmd], stop_at_positional=cmd in ("exec", "ps", "kill"))
    import os

    from dockyard.runtime import state as st

    root = os.path.abspath(gopts.get("root") or st.default_root())
    from dockyard.runtime import container as ct

    if cmd == "spec":
        from dockyard.runtime.spec import default_spec, dumps_spec

        if pos:
            raise UsageError('"spec" takes no arguments')
        bundle = opts.get("bundle") or "."
        path = os.path.join(bundle, "config.json")
        if os.path.exists(path):
            raise ct.RuntimeFailure(f"File {path} exists. Remove it first")
        try:
            with open(path, "x") as f:
                f.write(dumps_spec(default_spec(bool(opts.get("rootless")))))
        except OSError as e:
            raise ct.RuntimeFailure(f"cannot write {path}: {e.strerror}") from None
        return 0
    if cmd == "create":
        cid = _need_id(cmd, pos)
        ct.create(root, cid, ct.Options(bundle=opts.get("bundle"), pid_file=opts.get("pid_file"),
                                        console_socket=opts.get("console_socket"),
                                        no_pivot=bool(opts.get("no_pivot")), preserve_fds=_preserve(opts)))
        return 0
    if cmd == "run":
        cid = _need_id(cmd, pos)
        return ct.run(root, cid, ct.Options(bundle=opts.get("bundle"), pid_file=opts.get("pid_file"),
                                            console_socket=opts.get("console_socket"),
                                            no_pivot=bool(opts.get("no_pivot")), detach=bool(opts.get("detach")),
                                            preserve_fds=_preserve(opts)))
    if cmd == "start":
        ct.start(root, _need_id(cmd, pos))
        return 0
    if cmd in ("state", "list", "ps"):
        import json
    if cmd == "state":
        c = st.Container.load(root, _need_id(cmd, pos))
        print(json.dumps(c.runc_state(), indent=2))
        return 0
    if cmd == "kill":
        cid = _need_id(cmd, pos, 2)
        ct.kill(root, cid, pos[1] if len(pos) > 1 else None, bool(opts.get("all")))
        return 0
    if cmd == "delete":
        if not pos:
            raise UsageError('"delete" requires a container id')
        for cid in pos:
            ct.delete(root, cid, bool(opts.get("force")))
        return 0
    if cmd == "list":
        fmt = opts.get("format", "table")
        states = []
        for cid in st.list_ids(root):
            try:
                states.append(st.Container.load(root, cid).runc_state())
            except Exception:  # noqa: BLE001,S112 - a container being deleted right now
                continue
        if opts.get("quiet"):
            for s in states:
                print(s["id"])
        elif fmt == "json":
            print(json.dumps(states))
        elif fmt == "table":
            rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
            rows += [[s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"] or "root"]
                     for s in states]
            print(_table(rows))
        else:
            raise UsageError(f"invalid format option: {fmt}")
        return 0
    if cmd == "ps":
        cid = _need_id(cmd, pos, 10**6)
        c = st.Container.load(root, cid)
        pids = ct.container_pids(c)
        fmt = opts.get("format", "table")
        if fmt == "json":
            print(json.dumps(pids))
            return 0
        if fmt != "table":
            raise UsageError(f"invalid format option: {fmt}")
        import subprocess

        out = subprocess.run(["ps"] + (pos[1:] or ["-ef"]), capture_output=True, text=True)
        if out.returncode != 0:
            raise ct.RuntimeFailure(f"ps: {out.stderr.strip()}")
        lines = out.stdout.splitlines()
        if not lines:
            return 0
        header = lines[0].split()
        try:
            col = header.index("PID")
        except ValueError:
            raise ct.RuntimeFailure("couldn't find PID field in ps output") from None
        print(lines[0])
        wanted = set(pids)
        for line in lines[1:]:
            fields = line.split()
            if len(fields) > col and fields[col].isdigit() and int(fields[col]) in wanted:
                print(line)
        return 0
    if cmd == "exec":
        cid = _need_id(cmd, pos[:1])
        c = st.Container.load(root, cid)
        proc = _exec_process(opts, pos, c.config)
        return ct.exec_(root, cid, proc, ct.Options(pid_file=opts.get("pid_file"),
                                                    console_socket=opts.get("console_socket"),
                                                    detach=bool(opts.get("detach")), preserve_fds=_preserve(opts)))
    if cmd == "pause":
        ct.pause(root, _need_id(cmd, pos))
        return 0
    if cmd == "update":
        ct.update(root, _need_id(cmd, pos), _update_resources(opts))
        return 0
    if cmd == "resume":
        ct.resume(root, _need_id(cmd, pos))
        return 0
    raise UsageError(f"no such command: {cmd}")


def _parse_globals(argv: list[str]) -> tuple[dict, list[str]]:
    opts: dict = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--") and argv[i] not in ("--help", "--version"):
        name, eq, val = argv[i].partition("=")
        if name not in _GLOBAL:
            raise UsageError(f"flag provided but not defined: {name}")
        dest, takes, _ = _GLOBAL[name]
        if takes and not eq:
            i += 1
            if i >= len(argv):
                raise UsageError(f"flag needs an argument: {name}")
            val = argv[i]
        opts[dest] = val if takes else True
        i += 1
    return opts, argv[i:]


def command() -> list[str]:
    """The argv prefix a caller (dockyard's engine, a benchmark) should use to run this runtime fastest.

    ``python -S`` skips site-packages processing (and an editable install's import hook), which is
    a third of the interpreter's start-up; the runtime needs only the standard library and dockyard,
    whose parent directory is put on ``sys.path`` explicitly.  ``-I`` keeps the working directory and
    PYTHON* variables out of a root process's imports (and lets it cache its own bytecode).
    """
    import os

    import dockyard

    top = os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__)))
    boot = f"import sys;sys.path.insert(0,{top!r});from dockyard.runtime.cli import main;main()"
    return [sys.executable, "-I", "-S", "-c", boot]


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # First of all, so the kernel's cgroup-migration wait overlaps everything below (attach_warmup).
    attach_warmup.start_for(args)
    import gc
    import os

    # A short-lived process that makes no garbage cycles worth collecting: the collector's passes
    # over every imported module's objects cost more than they free, and dirty pages the forked
    # container processes would then have to copy.
    gc.disable()
    from dockyard.errors import DockyardError

    try:
        code = dispatch(args)
    except UsageError as e:
        if str(e) == "help":
            print(USAGE, end="")
            sys.exit(0)
        _error(str(e))
        code = 1
    except DockyardError as e:
        _error(str(e))
        code = 1
    except OSError as e:
        _error(f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e)))
        code = 1
    except KeyboardInterrupt:
        code = 130
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    # Skip interpreter teardown (module GC, atexit): it costs several ms on every container start and
    # the runtime holds nothing that needs it once its output is flushed.
    os._exit(code)


def main_forked(argv: list[str]) -> None:
    """main() in a process forked from a Python process of dockyard (the container monitor) instead of a
    new interpreter: what would end an interpreter (SystemExit, an uncaught exception) ends it alike."""
    import os

    code = 1
    try:
        main(argv)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported like the interpreter reports it, then exit 1
        import traceback

        traceback.print_exc()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


def _error(msg: str) -> None:
    log("error", msg)
    print(f"Error: {msg}", file=sys.stderr, flush=True)
