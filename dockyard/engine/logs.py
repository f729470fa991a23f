"""Reading a container's log files (json-file and k8s-file drivers) for any front end.

The monitor writes the files; ``ContainerService.logs_files`` says which they are.  ``read``
yields entries oldest first and, with ``follow``, keeps reading (across rotation) until the
container has stopped and nothing new arrived.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dockyard.errors import DockyardError

if TYPE_CHECKING:
    from dockyard.engine import Engine


@dataclass
class LogEntry:
    time: str  # RFC 3339 with nanoseconds, as the monitor wrote it
    stream: str  # "stdout" or "stderr"
    data: bytes


def entries(driver: str, path: str, offset: int = 0) -> tuple[list[LogEntry], int]:
    """Entries of one log file from ``offset``; returns them and the new offset (whole lines only)."""
    out: list[LogEntry] = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return out, offset
    end = data.rfind(b"\n") + 1
    for line in data[:end].splitlines():
        if not line:
            continue
        if driver == "json-file":
            try:
                e = json.loads(line)
            except ValueError:
                continue
            out.append(LogEntry(e.get("time", ""), e.get("stream", "stdout"), e.get("log", "").encode()))
        else:
            parts = line.split(b" ", 3)
            if len(parts) < 3:
                continue
            text = parts[3] if len(parts) > 3 else b""
            if parts[2] == b"F":
                text += b"\n"
            out.append(LogEntry(parts[0].decode(), parts[1].decode(), text))
    return out, offset + end


def read(engine: Engine, ref: str, *, follow: bool = False, tail: int | None = None,
         keep_going: Callable[[], bool] = lambda: True, poll: float = 0.1) -> Iterator[LogEntry]:
    """A container's log entries, the last ``tail`` only if given; ``follow`` waits for more while it
    runs (and while ``keep_going()``, so a caller whose reader left can stop it)."""
    svc = engine.containers
    driver, path, files = svc.logs_files(ref)
    cid = svc.resolve(ref)
    got: list[LogEntry] = []
    offset = 0
    for f in files:
        part, off = entries(driver, f)
        got += part
        if f == path:
            offset = off
    if tail is not None:
        got = got[-tail:] if tail > 0 else []
    yield from got
    if not follow:
        return
    try:
        ino = os.stat(path).st_ino
    except OSError:
        ino = 0
    while keep_going():
        try:
            running = svc.output_open(cid)
        except DockyardError:  # removed meanwhile (--rm): what was written is all there is
            running = False
        part, offset = entries(driver, path, offset)
        yield from part
        try:
            st = os.stat(path)
            if st.st_ino != ino or st.st_size < offset:
                ino, offset = st.st_ino, 0  # rotated
                continue
        except OSError:
            pass
        if not running and not part:
            return
        time.sleep(poll)
