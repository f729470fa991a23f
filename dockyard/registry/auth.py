"""Registry credentials, stored compatibly with Podman's auth.json and read from Docker's config.json.

Written to (like Podman): ``$REGISTRY_AUTH_FILE``, else ``$XDG_RUNTIME_DIR/containers/auth.json``,
else (root) ``/run/containers/<uid>/auth.json``.  Read in order from that file,
``$XDG_CONFIG_HOME/containers/auth.json``, and ``$DOCKER_CONFIG/config.json`` (default
``~/.docker/config.json``); the first file with an entry for the registry wins.  Within a file a key
naming the repository (``host/ns/repo``) beats one naming the namespace, which beats the host.
Credential helpers (``credsStore``) are not supported.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.store.blobs import atomic_write


class NotLoggedIn(DockyardError):
    pass


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    source: Path | None = None


def auth_file() -> Path:
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "containers" / "auth.json"
    return Path(f"/run/containers/{os.geteuid()}/auth.json")


def docker_config() -> Path:
    d = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(d) / "config.json"


def read_files() -> list[Path]:
    cfg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    files = [auth_file()]
    if not os.environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(cfg) / "containers" / "auth.json")
    files.append(docker_config())
    return files


def _normalize_key(key: str) -> str:
    # Docker writes Docker Hub as "https://index.docker.io/v1/", others sometimes with a scheme.
    for scheme in ("https://", "http://"):
        if key.startswith(scheme):
            key = key[len(scheme):].split("/", 1)[0]
    if key in ("index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return key.rstrip("/")


def _load(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"reading credentials from {path}: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"reading credentials from {path}: not a JSON object")
    return data


def _decode(entry: Any, path: Path) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    raw = entry.get("auth")
    if not raw:
        return None
    try:
        user, sep, password = base64.b64decode(raw, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(f"invalid credentials in {path}") from None
    if not sep:
        raise InvalidArgument(f"invalid credentials in {path}")
    return Credentials(user, password, path)


def _keys_for(domain: str, repo: str | None) -> list[str]:
    """Most specific first: host/ns/repo, host/ns, host."""
    keys = []
    if repo:
        parts = repo.split("/")
        for i in range(len(parts), 0, -1):
            keys.append(domain + "/" + "/".join(parts[:i]))
    keys.append(domain)
    return keys


def lookup(domain: str, repo: str | None = None) -> Credentials | None:
    for path in read_files():
        auths = _load(path).get("auths") or {}
        if not isinstance(auths, dict):
            continue
        norm = {_normalize_key(k): v for k, v in auths.items()}
        for key in _keys_for(domain, repo):
            if key in norm:
                c = _decode(norm[key], path)
                if c:
                    return c
    return None


def store(key: str, username: str, password: str) -> Path:
    path = auth_file()
    data = _load(path)
    auths = data.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise InvalidArgument(f"{path}: \"auths\" is not an object")
    auths[key] = {"auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, json.dumps(data, indent="\t") + "\n", mode=0o600)
    return path


def remove(key: str) -> None:
    path = auth_file()
    data = _load(path)
    auths = data.get("auths") or {}
    found = [k for k in auths if _normalize_key(k) == key]
    if not found:
        other = lookup(key.split("/", 1)[0], key.split("/", 1)[1] if "/" in key else None)
        if other and other.source == docker_config():
            raise NotLoggedIn(f"not logged into {key} with dockyard. Existing credentials were "
                              f"established via docker login. Please use docker logout instead.")
        raise NotLoggedIn(f"not logged into {key}")
    for k in found:
        del auths[k]
    atomic_write(path, json.dumps(data, indent="\t") + "\n", mode=0o600)


def remove_all() -> None:
    path = auth_file()
    if path.exists():
        path.unlink()
