"""Persistent state: SQLite metadata (store.db) next to content-addressed files (store.blobs)."""

from __future__ import annotations

from typing import Any

__all__ = ["BlobStore", "Database", "atomic_write"]


def __getattr__(name: str) -> Any:
    # Lazy: `ps` needs only the database, and blobs pulls in tempfile/hashlib.
    if name == "Database":
        from dockyard.store.db import Database

        return Database
    if name in ("BlobStore", "atomic_write"):
        from dockyard.store import blobs

        return getattr(blobs, name)
    raise AttributeError(name)
