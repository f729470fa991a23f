"""The pipe protocol between `create`/`exec` and the processes they fork: short text lines.

Its own module so the runtime's parent side needs none of init.py's imports (ctypes, via linux.py).
"""

from __future__ import annotations

import os


class Channel:
    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd = rfd
        self.wfd = wfd
        self._buf = b""

    def send(self, msg: str) -> None:
        os.write(self.wfd, msg.replace("\n", " ").encode(errors="replace") + b"\n")

    def report(self, e: BaseException) -> None:
        """Send an error home; if the parent is already gone there is nobody left to tell."""
        try:
            self.send(f"error {_describe(e)}")
        except OSError:
            pass

    def recv(self) -> str | None:
        while b"\n" not in self._buf:
            chunk = os.read(self.rfd, 4096)
            if not chunk:
                return None
            self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return line.decode(errors="replace")

    def expect(self, what: str) -> None:
        msg = self.recv()
        if msg != what:
            raise RuntimeError(f"expected {what!r} from the runtime, got {msg!r}")

    def close(self) -> None:
        for fd in (self.rfd, self.wfd):
            try:
                os.close(fd)
            except OSError:
                pass


def _describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        text = e.strerror if not e.filename else f"{e.filename}: {e.strerror}"
        return text
    return str(e) or type(e).__name__
