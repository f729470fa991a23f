"""Content-addressed files: ``<root>/sha256/<hex>``.

A blob appears under its name only complete and verified: it is written to a temp file on the
same filesystem, fsynced, its digest checked, then renamed into place (and the directory fsynced).
A crash leaves at worst a stray temp file, which ``clean_tmp`` removes; never a wrong blob.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from dockyard.errors import InvalidArgument, NotFound, StoreError

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new content, never a mix."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


class DigestMismatch(StoreError):
    pass


class BlobStore:
    def __init__(self, root: str | os.PathLike[str], tmp: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root)
        self.tmp = Path(tmp) if tmp else self.root / ".tmp"

    def path(self, digest: str) -> Path:
        check_digest(digest)
        algo, hexd = digest.split(":", 1)
        return self.root / algo / hexd

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected and expected != digest:
            raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
        if self.has(digest):
            return digest
        return self._commit_stream(iter([data]), digest)

    def put_stream(self, src: BinaryIO, expected: str | None = None, expected_size: int | None = None) -> str:
        def chunks() -> Iterator[bytes]:
            while True:
                b = src.read(CHUNK)
                if not b:
                    return
                yield b
        return self._commit_stream(chunks(), expected, expected_size)

    def _commit_stream(self, chunks: Iterator[bytes], expected: str | None,
                       expected_size: int | None = None) -> str:
        # hashlib and tempfile only when writing: reading blobs is on every `run`'s path.
        import hashlib
        import tempfile

        if expected:
            check_digest(expected)
        self.tmp.mkdir(parents=True, exist_ok=True)
        h = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.tmp, prefix="blob-")
        try:
            with os.fdopen(fd, "wb") as f:
                for b in chunks:
                    h.update(b)
                    size += len(b)
                    if expected_size is not None and size > expected_size:
                        raise DigestMismatch(f"blob larger than its declared size {expected_size}")
                    f.write(b)
                f.flush()
                os.fsync(f.fileno())
            digest = "sha256:" + h.hexdigest()
            if expected_size is not None and size != expected_size:
                raise DigestMismatch(f"size mismatch for {expected or digest}: "
                                     f"expected {expected_size} bytes, got {size}")
            if expected and digest != expected:
                raise DigestMismatch(f"digest mismatch: expected {expected}, got {digest}")
            dest = self.path(digest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
            return digest
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def delete(self, digest: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path(digest))

    def digests(self) -> Iterator[str]:
        d = self.root / "sha256"
        if d.is_dir():
            for name in os.listdir(d):
                yield "sha256:" + name

    def clean_tmp(self, older_than: float = 3600.0) -> int:
        """Remove temp files left by writers that died; only old ones, so live writers keep theirs."""
        n = 0
        if not self.tmp.is_dir():
            return 0
        cutoff = time.time() - older_than
        for entry in os.scandir(self.tmp):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    n += 1
        return n
