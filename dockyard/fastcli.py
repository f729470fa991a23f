"""`ps` answered before click is imported.

`ps` is the command people and scripts run most, and importing click is a third of its time.  A
plain invocation (the global --root/--runroot, then `ps` with flags among -a -q -s -l -n
--no-trunc) is parsed here; anything else (--format, --filter, --help, an unknown or odd-looking
argument) returns to click, which stays the one full definition of the command line.  Both paths
print through ``ps_text``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_FLAGS = {"-a": "all_", "--all": "all_", "-q": "quiet", "--quiet": "quiet", "--no-trunc": "no_trunc",
          "-s": "size", "--size": "size", "-l": "latest", "--latest": "latest"}


def ps_text(engine: Any, *, all_: bool = False, filters: list[str] | None = None, fmt: str | None = None,
            last: int = 0, latest: bool = False, no_trunc: bool = False, quiet: bool = False,
            size: bool = False) -> str:
    """What `ps` prints."""
    rows = engine.containers.list_containers(all_=all_, filters=filters or [], last=1 if latest else last,
                                             size=size or bool(fmt and "Size" in fmt))
    if quiet and not fmt:
        return "".join((r["Id"] if no_trunc else r["Id"][:12]) + "\n" for r in rows)
    from dockyard.formatting.containers import ContainerRow

    table = [ContainerRow(r, trunc=not no_trunc) for r in rows]
    if fmt in (None, "", "table") and not quiet:
        from dockyard.formatting.containers import default_table

        return default_table(table, size)
    from dockyard.formatting import render_list
    from dockyard.formatting.containers import DEFAULT_TABLE, HEADERS, ps_format

    return render_list(ps_format(fmt, quiet, size), table, DEFAULT_TABLE, HEADERS)


def _parse(argv: list[str]) -> tuple[str | None, str | None, dict[str, Any]] | None:
    """(root, runroot, ps options) of a plain `ps` command line, else None."""
    root = os.environ.get("DOCKYARD_ROOT") or None
    runroot = os.environ.get("DOCKYARD_RUNROOT") or None
    i = 0
    while i < len(argv) and argv[i] in ("--root", "--runroot"):
        if i + 1 >= len(argv) or argv[i + 1].startswith("-") or not argv[i + 1]:
            return None
        if argv[i] == "--root":
            root = argv[i + 1]
        else:
            runroot = argv[i + 1]
        i += 2
    if argv[i:i + 1] != ["ps"]:
        return None
    opts: dict[str, Any] = {}
    args = argv[i + 1:]
    j = 0
    while j < len(args):
        a = args[j]
        if a in _FLAGS:
            opts[_FLAGS[a]] = True
        elif a in ("-n", "--last") and j + 1 < len(args) and args[j + 1].isdigit():
            opts["last"] = int(args[j + 1])
            j += 1
        elif len(a) > 2 and a[0] == "-" and a[1] != "-" and all("-" + c in _FLAGS for c in a[1:]):
            for c in a[1:]:
                opts[_FLAGS["-" + c]] = True
        else:
            return None
        j += 1
    return root, runroot, opts


def fast_exit(code: object, engines: list[Any]) -> None:
    """``sys.exit(code)`` without the interpreter's teardown of every module and object, which
    costs a short command ~10 ms and does nothing a finished command needs.  What matters still
    happens: exit handlers run, ``engines`` close their store (its WAL checkpoint), stdio is
    flushed.  With another thread alive (a normal exit would join it), a normal exit."""
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:
        sys.stderr.write(f"{code}\n")
        status = 1
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        sys.exit(status)
    import atexit

    atexit._run_exitfuncs()
    for engine in engines:
        engine.close()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):
            pass
    os._exit(status)


def try_ps(argv: list[str]) -> None:
    """Run a plain `ps` and exit; return (doing nothing) for any other command line."""
    parsed = _parse(argv)
    if parsed is None:
        return
    root, runroot, opts = parsed
    from dockyard.engine import Engine
    from dockyard.errors import DockyardError

    engine = Engine(root, runroot)
    code = 0
    try:
        sys.stdout.write(ps_text(engine, **opts))
        sys.stdout.flush()
    except DockyardError as e:
        sys.stderr.write(f"Error: {e}\n")
        code = e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        code = 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    fast_exit(code, [engine])
