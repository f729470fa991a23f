"""Persistent state: SQLite metadata (store.db) next to content-addressed files (store.blobs)."""

from dockyard.store.blobs import BlobStore, atomic_write
from dockyard.store.db import Database

__all__ = ["BlobStore", "Database", "atomic_write"]
