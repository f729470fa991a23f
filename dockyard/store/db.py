"""SQLite metadata store.

Why these choices:
- WAL journal: readers (``ps``, ``inspect``) never wait for a writer and never see half a transaction.
- One writer at a time: ``write()`` takes an flock on ``store.lock`` and then ``BEGIN IMMEDIATE``,
  so a multi-step change (files on disk + rows) is serialised across processes and a killed
  writer releases both locks with its death.  SQLite rolls back the unfinished transaction.
- Migrations are SQL files applied once each, tracked by name, so feature areas add their own
  tables without renumbering each other's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from dockyard.errors import StoreError

_MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def _migration_names() -> list[str]:
    # A directory listing, not importlib.resources: every command opens the store, and the SQL is
    # only read when a migration is actually missing.
    return sorted(n[:-4] for n in os.listdir(_MIGRATIONS_DIR) if n.endswith(".sql"))


def _read_migration(name: str) -> str:
    with open(os.path.join(_MIGRATIONS_DIR, name + ".sql"), encoding="utf-8") as f:
        return f.read()


class Database:
    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_path = self.path.with_name("store.lock")
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self.timeout = timeout
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None,
                                        check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            mode = self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"cannot switch {self.path} to WAL mode (got {mode})")
            # NORMAL in WAL mode survives process crashes and keeps the file consistent on power
            # loss (only the newest commits may be lost), at a fraction of FULL's fsync cost.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open the store database {self.path}: {e}") from e
        self._migrate()

    # -- locking ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The store-wide writer lock (re-entrant within this object)."""
        if self._lock_depth == 0:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            deadline = time.monotonic() + self.timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        os.close(fd)
                        raise StoreError(f"timed out waiting for the store lock {self._lock_path}") from None
                    time.sleep(0.005)
            self._lock_fd = fd
        self._lock_depth += 1
        try:
            yield
        finally:
            self._lock_depth -= 1
            if self._lock_depth == 0 and self._lock_fd is not None:
                os.close(self._lock_fd)  # closing drops the flock
                self._lock_fd = None

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction under the writer lock; commits on success, rolls back on error."""
        with self.lock():
            if self.conn.in_transaction:
                # Nested use joins the outer transaction.
                yield self.conn
                return
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            else:
                self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def close(self) -> None:
        self.conn.close()

    # -- schema ------------------------------------------------------------------------------
    def _migrate(self) -> None:
        known = _migration_names()
        names = set(known)
        try:
            applied = {r[0] for r in self.conn.execute("SELECT id FROM schema_migrations")}
        except sqlite3.OperationalError:
            applied = set()
        newer = applied - names
        if newer:
            raise StoreError(f"the store at {self.path.parent} was written by a newer dockyard "
                             f"(unknown schema migrations: {', '.join(sorted(newer))})")
        if names <= applied:
            return
        with self.write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at REAL)")
            applied = {r[0] for r in c.execute("SELECT id FROM schema_migrations")}
            for name in known:
                if name in applied:
                    continue
                for stmt in _split_sql(_read_migration(name)):
                    c.execute(stmt)
                c.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, time.time()))


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript() would commit our transaction)."""
    out, buf = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        joined = "\n".join(buf)
        if sqlite3.complete_statement(joined):
            if joined.strip():
                out.append(joined.strip())
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        out.append(rest)
    return out
