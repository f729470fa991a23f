"""The state store: migrations, concurrent writers, and survival of kill -9 mid-write."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from dockyard.errors import StoreError
from dockyard.store import BlobStore, Database, atomic_write
from dockyard.store.blobs import DigestMismatch
from tests.helpers import REPO

WRITER = textwrap.dedent("""
    import os, sys
    from dockyard.store import BlobStore, Database
    root, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    db = Database(os.path.join(root, "dockyard.db"))
    blobs = BlobStore(os.path.join(root, "blobs"), os.path.join(root, "tmp"))
    i = 0
    while n < 0 or i < n:
        # A record is a blob plus a row naming it; the blob lands first, so a row never points at
        # a missing blob, whatever instant the process dies.
        data = os.urandom(4096 + i % 7 * 65536)
        with db.write() as c:
            digest = blobs.put_bytes(data)
            c.execute("INSERT INTO meta VALUES (?, ?)", (f"{tag}-{i}", digest))
        i += 1
        if i == 1:
            print("ready", flush=True)
""")


def _spawn(root, tag, n):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(root), tag, str(n)], env=env,
                            stdout=subprocess.PIPE, text=True)


def _check_consistent(root):
    db = Database(root / "dockyard.db")
    assert db.query_one("PRAGMA integrity_check")[0] == "ok"
    blobs = BlobStore(root / "blobs", root / "tmp")
    rows = db.query("SELECT key, value FROM meta WHERE key LIKE 'w%'")
    for r in rows:
        data = blobs.read(r["value"])
        assert "sha256:" + hashlib.sha256(data).hexdigest() == r["value"]
    db.close()
    return len(rows)


def test_migrations_applied_once(tmp_path):
    db = Database(tmp_path / "dockyard.db")
    ids = [r[0] for r in db.query("SELECT id FROM schema_migrations")]
    assert "0001_core" in ids
    assert db.query_one("PRAGMA journal_mode")[0] == "wal"
    db.close()
    db2 = Database(tmp_path / "dockyard.db")
    assert [r[0] for r in db2.query("SELECT id FROM schema_migrations")] == ids
    db2.close()


def test_store_from_newer_dockyard_is_refused(tmp_path):
    db = Database(tmp_path / "dockyard.db")
    with db.write() as c:
        c.execute("INSERT INTO schema_migrations VALUES ('9999_future', 0)")
    db.close()
    with pytest.raises(StoreError, match="newer dockyard"):
        Database(tmp_path / "dockyard.db")


def test_write_rolls_back_on_error(tmp_path):
    db = Database(tmp_path / "dockyard.db")
    with pytest.raises(RuntimeError), db.write() as c:
        c.execute("INSERT INTO meta VALUES ('x', 'y')")
        raise RuntimeError("boom")
    assert db.query_one("SELECT * FROM meta WHERE key='x'") is None


def test_concurrent_writers_lose_nothing(tmp_path):
    ps = [_spawn(tmp_path, f"w{k}", 60) for k in range(3)]
    for p in ps:
        p.communicate(timeout=120)
        assert p.returncode == 0
    assert _check_consistent(tmp_path) == 180


def test_kill_9_mid_write_leaves_store_consistent(tmp_path):
    rng = random.Random(1234)
    for round_ in range(8):
        p = _spawn(tmp_path, f"w{round_}", -1)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 0.3))
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        _check_consistent(tmp_path)
    # Leftover temp files from killed writers are only garbage, and are cleaned.
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    blobs.clean_tmp(older_than=0)
    assert not list((tmp_path / "tmp").iterdir())
    assert _check_consistent(tmp_path) > 0


def test_blob_digest_is_verified(tmp_path):
    blobs = BlobStore(tmp_path / "blobs", tmp_path / "tmp")
    d = blobs.put_bytes(b"hello")
    assert d == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert blobs.read(d) == b"hello"
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch):
        blobs.put_bytes(b"other", expected=wrong)
    assert not blobs.has(wrong)
    assert not list((tmp_path / "tmp").iterdir()), "a rejected blob leaves no temp file"


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "f.json"
    atomic_write(p, "one")
    atomic_write(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in tmp_path.iterdir()] == ["f.json"]


def test_corrupt_database_gives_clear_error(tmp_path):
    (tmp_path / "dockyard.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store database"):
        Database(tmp_path / "dockyard.db")


def test_sqlite_is_wal_for_readers_during_write(tmp_path):
    db = Database(tmp_path / "dockyard.db")
    reader = sqlite3.connect(tmp_path / "dockyard.db", timeout=0.1)
    with db.write() as c:
        c.execute("INSERT INTO meta VALUES ('k', 'v')")
        # A reader is not blocked by the open write transaction and does not see it yet.
        assert reader.execute("SELECT count(*) FROM meta").fetchone()[0] == 0
    assert reader.execute("SELECT count(*) FROM meta").fetchone()[0] == 1
    reader.close()
