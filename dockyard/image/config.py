"""Image configs: building new ones and applying Dockerfile-style ``--change`` instructions."""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from dockyard.errors import InvalidArgument

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What `docker import --change` accepts.
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME",
                       "WORKDIR", "STOPSIGNAL")


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


def new_config(diff_ids: list[str], *, created: float, os_name: str, arch: str, variant: str | None = None,
               container_config: dict[str, Any] | None = None, history: list[dict[str, Any]] | None = None,
               ) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architecture": arch,
        "os": os_name,
        "created": rfc3339(created),
        "config": container_config or {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history or [],
    }
    if variant:
        cfg["variant"] = variant
    return cfg


def config_bytes(cfg: dict[str, Any]) -> bytes:
    return json.dumps(cfg, separators=(",", ":"), sort_keys=True).encode()


def _cmd_form(rest: str) -> list[str]:
    s = rest.strip()
    if s.startswith("["):
        try:
            v = json.loads(s)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
    return ["/bin/sh", "-c", s]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    words = shlex.split(rest)
    if not words:
        raise InvalidArgument(f"{what} requires at least one argument")
    if "=" not in words[0]:
        # Legacy "ENV key value with spaces" form.
        if len(words) < 2:
            raise InvalidArgument(f"{what} requires a value: {rest!r}")
        return [(words[0], rest.strip()[len(words[0]):].strip())]
    out = []
    for w in words:
        k, sep, v = w.partition("=")
        if not sep or not k:
            raise InvalidArgument(f"{what}: expected key=value, got {w!r}")
        out.append((k, v))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply ``docker import --change`` instructions to a container config (the ``config`` object)."""
    cfg = dict(config)
    for change in changes:
        instr, _, rest = change.strip().partition(" ")
        instr = instr.upper()
        if instr not in CHANGE_INSTRUCTIONS:
            raise InvalidArgument(f"{instr or change!r} is not a valid change command "
                                  f"(valid: {', '.join(CHANGE_INSTRUCTIONS)})")
        if not rest.strip():
            raise InvalidArgument(f"{instr} requires an argument")
        if instr in ("CMD", "ENTRYPOINT"):
            cfg["Cmd" if instr == "CMD" else "Entrypoint"] = _cmd_form(rest)
        elif instr == "ENV":
            env = [e for e in cfg.get("Env") or []]
            for k, v in _pairs(rest, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            cfg["Env"] = env
        elif instr == "LABEL":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs(rest, "LABEL"))
            cfg["Labels"] = labels
        elif instr == "EXPOSE":
            ports = dict(cfg.get("ExposedPorts") or {})
            for p in rest.split():
                port, _, proto = p.partition("/")
                if not port.isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                    raise InvalidArgument(f"invalid port in EXPOSE: {p!r}")
                ports[f"{port}/{proto or 'tcp'}"] = {}
            cfg["ExposedPorts"] = ports
        elif instr == "VOLUME":
            vols = dict(cfg.get("Volumes") or {})
            paths = _cmd_form(rest) if rest.strip().startswith("[") else rest.split()
            if paths[:2] == ["/bin/sh", "-c"]:
                paths = rest.split()
            for v in paths:
                vols[v] = {}
            cfg["Volumes"] = vols
        elif instr == "ONBUILD":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest.strip()]
        elif instr == "USER":
            cfg["User"] = rest.strip()
        elif instr == "WORKDIR":
            cfg["WorkingDir"] = rest.strip()
        elif instr == "STOPSIGNAL":
            cfg["StopSignal"] = rest.strip()
    return cfg
