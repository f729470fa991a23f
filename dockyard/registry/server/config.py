"""Configuration in the reference registry's shape: a YAML file and ``REGISTRY_*`` environment variables.

``REGISTRY_A_B_C=value`` sets key ``a.b.c`` of the YAML document, overriding the file, as the
reference does; ``REGISTRY_AUTH=htpasswd`` names the section itself.  Only the keys dockyard acts
on are read; sections the reference has but dockyard does not need (log, health, cache, headers)
are accepted and ignored, while an auth or storage backend dockyard lacks is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.errors import InvalidArgument, Unsupported

DEFAULT_ROOT = "/var/lib/registry"
DEFAULT_ADDR = ":5000"
# Sections whose value may be given as a bare backend name (REGISTRY_AUTH=htpasswd).
_NAMED_SECTIONS = {("auth",), ("storage",)}
_IGNORED_STORAGE = {"delete", "cache", "maintenance", "redirect", "tag"}


@dataclass
class RegistryConfig:
    root: str = DEFAULT_ROOT
    addr: str = DEFAULT_ADDR
    tls_certificate: str | None = None
    tls_key: str | None = None
    htpasswd_path: str | None = None
    htpasswd_realm: str = "Registry Realm"
    delete_enabled: bool = False

    @property
    def host_port(self) -> tuple[str | None, int]:
        host, sep, port = self.addr.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidArgument(f"invalid listen address {self.addr!r}: expected [HOST]:PORT")
        host = host.strip("[]")
        return (host or None), int(port)

    @property
    def tls(self) -> bool:
        return bool(self.tls_certificate)


def _set(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = doc
    for i, key in enumerate(path[:-1]):
        nxt = node.get(key)
        if isinstance(nxt, str) and path[: i + 1] in _NAMED_SECTIONS:
            nxt = {nxt: {}}
        if not isinstance(nxt, dict):
            nxt = {}
        node[key] = nxt
        node = nxt
    last = path[-1]
    if path in _NAMED_SECTIONS and isinstance(value, str):
        existing = node.get(last)
        # The bare name selects a backend; keys set for it by longer variables survive.
        node[last] = {value: existing.get(value, {}) if isinstance(existing, dict) else {}}
    else:
        node[last] = value


def _bool(v: Any, what: str) -> bool:
    if isinstance(v, bool):
        return v
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "on"):
        return True
    if s in ("false", "0", "no", "off", ""):
        return False
    raise InvalidArgument(f"invalid boolean {v!r} for {what}")


def _str(v: Any, what: str) -> str:
    if isinstance(v, dict | list):
        raise InvalidArgument(f"{what} must be a string")
    return str(v)


def load_config(path: str | None = None, env: Mapping[str, str] | None = None,
                addr: str | None = None) -> RegistryConfig:
    import yaml

    env = os.environ if env is None else env
    doc: dict[str, Any] = {}
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                loaded = yaml.safe_load(f)
        except OSError as e:
            raise InvalidArgument(f"cannot read registry config {path}: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise InvalidArgument(f"registry config {path} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidArgument(f"registry config {path} must be a YAML mapping")
        doc = loaded or {}
    # Shorter keys first so REGISTRY_AUTH=htpasswd does not erase REGISTRY_AUTH_HTPASSWD_PATH.
    # REGISTRY_AUTH_FILE is Podman's credentials file, not registry configuration.
    overrides = sorted((k for k in env if k.startswith("REGISTRY_") and len(k) > 9
                        and k != "REGISTRY_AUTH_FILE"), key=len)
    for key in overrides:
        _set(doc, tuple(key[9:].lower().split("_")), env[key])

    cfg = RegistryConfig()
    http = doc.get("http") or {}
    if not isinstance(http, dict):
        raise InvalidArgument("registry config: http must be a mapping")
    if http.get("addr"):
        cfg.addr = _str(http["addr"], "http.addr")
    tls = http.get("tls") or {}
    if isinstance(tls, dict):
        cfg.tls_certificate = _str(tls["certificate"], "http.tls.certificate") if tls.get("certificate") else None
        cfg.tls_key = _str(tls["key"], "http.tls.key") if tls.get("key") else None
    if bool(cfg.tls_certificate) != bool(cfg.tls_key):
        raise InvalidArgument("TLS needs both http.tls.certificate and http.tls.key "
                              "(REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY)")

    storage = doc.get("storage") or {}
    if isinstance(storage, str):
        storage = {storage: {}}
    drivers = [k for k in storage if k not in _IGNORED_STORAGE]
    if drivers and drivers != ["filesystem"]:
        raise Unsupported(f"storage driver {drivers[0]!r} is not supported: dockyard's registry stores on "
                          f"the filesystem only")
    fs = storage.get("filesystem") or {}
    if isinstance(fs, dict) and fs.get("rootdirectory"):
        cfg.root = _str(fs["rootdirectory"], "storage.filesystem.rootdirectory")
    delete = storage.get("delete") or {}
    if isinstance(delete, dict) and "enabled" in delete:
        cfg.delete_enabled = _bool(delete["enabled"], "storage.delete.enabled")

    auth = doc.get("auth") or {}
    if isinstance(auth, str):
        auth = {auth: {}}
    if not isinstance(auth, dict):
        raise InvalidArgument("registry config: auth must be a mapping")
    for backend in auth:
        if backend != "htpasswd":
            raise Unsupported(f"auth backend {backend!r} is not supported: use htpasswd")
    if "htpasswd" in auth:
        ht = auth["htpasswd"] or {}
        if not isinstance(ht, dict) or not ht.get("path"):
            raise InvalidArgument("htpasswd auth needs a password file: set auth.htpasswd.path "
                                  "(REGISTRY_AUTH_HTPASSWD_PATH)")
        cfg.htpasswd_path = _str(ht["path"], "auth.htpasswd.path")
        if ht.get("realm"):
            cfg.htpasswd_realm = _str(ht["realm"], "auth.htpasswd.realm")

    if addr:
        cfg.addr = addr
    cfg.host_port  # noqa: B018 - validate the address now, not when binding
    if cfg.htpasswd_path and not cfg.tls:
        raise InvalidArgument("htpasswd authentication requires TLS, or passwords would cross the network in "
                              "clear: set REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY")
    return cfg
