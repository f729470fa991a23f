"""htpasswd users with bcrypt hashes, as the reference registry and Apache's ``htpasswd -B`` write them.

bcrypt is slow on purpose (tens of milliseconds per check) and clients send credentials with every
request, so a successful check is remembered, keyed by an HMAC of the password under a per-process
random key (no password or fast hash of one is ever kept).  Editing the file drops the cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading

from dockyard.errors import InvalidArgument

BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
DEFAULT_COST = 10  # Apache's default is 5; the cost only matters for stolen files, so err high


def make_entry(user: str, password: str, cost: int = DEFAULT_COST) -> str:
    """``user:$2y$...`` like ``htpasswd -Bbn``."""
    import bcrypt

    if not user or ":" in user:
        raise InvalidArgument(f"invalid user name {user!r}: must be non-empty and contain no ':'")
    if not 4 <= cost <= 17:
        raise InvalidArgument(f"bcrypt cost {cost} out of range 4-17")
    h = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    # $2b$ and $2y$ are the same algorithm; $2y$ is what Apache writes and every reader accepts.
    return f"{user}:$2y${h[4:]}"


class Htpasswd:
    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, bytes] = {}
        self._ok: set[tuple[str, bytes]] = set()
        self._key = secrets.token_bytes(32)
        self._load()

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as e:
            raise InvalidArgument(f"cannot read htpasswd file {self.path}: {e.strerror}") from None
        users = {}
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, h = line.partition(":")
            if not sep or not h.startswith(BCRYPT_PREFIXES):
                raise InvalidArgument(f"{self.path}:{n}: not a bcrypt htpasswd entry (make one with "
                                      f"`dockyard registry htpasswd -Bbn USER PASSWORD`)")
            users[user] = h.encode()
        self._users = users
        self._ok = set()
        self._stamp = (st.st_mtime_ns, st.st_size)

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return  # keep the users we have rather than lock everyone out on a transient error
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            self._load()

    def check(self, user: str, password: str) -> bool:
        """Blocking (bcrypt): call on a worker thread."""
        import bcrypt

        with self._lock:
            self._refresh()
            stored = self._users.get(user)
            key = (user, hmac.new(self._key, password.encode(), hashlib.sha256).digest())
            if stored is not None and key in self._ok:
                return True
        if stored is None:
            return False
        try:
            ok = bcrypt.checkpw(password.encode(), stored)
        except ValueError:
            return False
        if ok:
            with self._lock:
                self._ok.add(key)
        return ok


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def update_file(path: str, entry: str, create: bool = False) -> bool:
    """Add or replace the entry's user in an htpasswd file, atomically (``htpasswd -B [-c] FILE``).

    Returns whether the user was already there."""
    from dockyard.store.blobs import atomic_write

    user = entry.split(":", 1)[0]
    lines: list[str] = []
    if not create:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            raise InvalidArgument(f"cannot modify {path}: it does not exist (use -c to create it)") from None
        except OSError as e:
            raise InvalidArgument(f"cannot read htpasswd file {path}: {e.strerror}") from None
    kept = [ln for ln in lines if ln.split(":", 1)[0] != user]
    atomic_write(path, "\n".join([*kept, entry]) + "\n", mode=0o640)
    return len(kept) != len(lines)
