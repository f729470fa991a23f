"""OCI hooks: each gets the container state JSON on stdin and may have a timeout."""

from __future__ import annotations

import subprocess

from dockyard.errors import DockyardError
from dockyard.runtime import jsonfast


class HookError(DockyardError):
    pass


def run(stage: str, hooks: list[dict] | None, state: dict) -> None:
    """Run the hooks of one stage in order; the first failure raises a one-line HookError."""
    if not hooks:
        return
    payload = jsonfast.dumps(state).encode()
    for h in hooks:
        argv = h.get("args") or [h["path"]]
        env = list(h.get("env") or [])
        try:
            p = subprocess.run(argv, executable=h["path"], input=payload, capture_output=True,
                               env=dict(e.split("=", 1) for e in env if "=" in e), timeout=h.get("timeout"))
        except subprocess.TimeoutExpired:
            raise HookError(f"{stage} hook {h['path']} timed out after {h['timeout']}s") from None
        except OSError as e:
            raise HookError(f"{stage} hook {h['path']}: {e.strerror}") from None
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip().splitlines()
            detail = f": {err[-1]}" if err else ""
            how = f"exit status {p.returncode}" if p.returncode > 0 else f"signal {-p.returncode}"
            raise HookError(f"{stage} hook {h['path']} failed ({how}){detail}")
