"""registries.conf, read like Podman's containers/image (sysregistriesv2).

Files: ``$CONTAINERS_REGISTRIES_CONF`` if set, else ``~/.config/containers/registries.conf`` when it
exists (any user), else ``/etc/containers/registries.conf``; then every ``*.conf`` in the matching
``.d`` directory (``<file>.d``; for the defaults also ``~/.config/containers/registries.conf.d``) in
name order, later files overriding earlier ones key by key.

Supported keys: ``unqualified-search-registries``, ``short-name-mode``, ``[aliases]``, and
``[[registry]]`` tables with ``prefix``, ``location``, ``insecure``, ``blocked``; the version 1 form
(``[registries.search]``, ``[registries.insecure]``, ``[registries.block]``) too.  ``[[registry.mirror]]``
entries (``location``, ``insecure``, ``pull-from-mirror``) are tried before the registry on pull.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.image.reference import DEFAULT_DOMAIN, Reference, parse_any


class RegistryBlocked(DockyardError):
    pass


@dataclass
class Mirror:
    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"  # "all" | "digest-only" | "tag-only"


@dataclass
class RegistryEntry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: list[Mirror] = field(default_factory=list)


@dataclass
class RegistriesConf:
    search: list[str] | None = None
    short_name_mode: str = "enforcing"
    aliases: dict[str, str] = field(default_factory=dict)
    registries: dict[str, RegistryEntry] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def match(self, name: str) -> RegistryEntry | None:
        """The [[registry]] entry with the longest prefix matching ``name`` (domain/path)."""
        best: RegistryEntry | None = None
        best_len = -1
        for e in self.registries.values():
            p = e.prefix
            if p.startswith("*."):
                host = name.split("/", 1)[0]
                ok = host.endswith(p[1:])
            else:
                ok = name == p or name.startswith(p + "/") or (
                    # A prefix that is a host matches every repository of it.
                    "/" not in p and name.split("/", 1)[0] == p)
            if ok and len(p) > best_len:
                best, best_len = e, len(p)
        return best

    def is_insecure(self, domain: str) -> bool:
        e = self.match(domain)
        return bool(e and e.insecure)

    def check_blocked(self, ref: Reference) -> None:
        e = self.match(ref.name)
        if e and e.blocked:
            raise RegistryBlocked(f"registry {e.prefix} is blocked in registries.conf")

    def rewrite(self, ref: Reference, location: str | None = None) -> Reference:
        """Apply a [[registry]] ``location`` (or a mirror's) that differs from its prefix."""
        e = self.match(ref.name)
        if not e or e.prefix.startswith("*."):
            return ref
        location = location or e.location
        if not location or location == e.prefix:
            return ref
        rest = ref.name[len(e.prefix):] if ref.name.startswith(e.prefix) else ""
        domain, _, path = (location + rest).partition("/")
        return Reference(domain, path, ref.tag, ref.digest)

    def sources(self, ref: Reference) -> list[tuple[Reference, bool]]:
        """Where to pull ``ref`` from, in order, with each source's ``insecure`` flag: the mirrors
        of its [[registry]] entry (as their ``pull-from-mirror`` allows), then the registry itself."""
        e = self.match(ref.name)
        out: list[tuple[Reference, bool]] = []
        if e and not e.prefix.startswith("*."):
            for m in e.mirrors:
                if m.pull_from_mirror == "digest-only" and not ref.digest:
                    continue
                if m.pull_from_mirror == "tag-only" and ref.digest:
                    continue
                out.append((self.rewrite(ref, m.location), m.insecure))
        primary = self.rewrite(ref)
        out.append((primary, self.is_insecure(primary.domain) or bool(e and e.insecure)))
        return out

    def candidates(self, ref: Reference) -> list[Reference]:
        """Fully qualified references to try for ``ref``, in order.

        A qualified name is itself.  A short name resolves through an alias first, then through the
        unqualified-search registries; without either, Docker's rule (docker.io) applies.
        """
        if not ref.is_short:
            return [ref]
        assert ref.short_name is not None
        alias = self.aliases.get(ref.short_name)
        if alias:
            target = parse_any(alias)
            return [Reference(target.domain, target.path, ref.tag, ref.digest)]
        if not self.search:
            return [ref.with_domain(DEFAULT_DOMAIN)]
        return [ref.with_domain(d) for d in self.search]


def _home() -> Path:
    return Path(os.environ.get("HOME") or os.path.expanduser("~"))


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config")


def config_files() -> list[Path]:
    env = os.environ.get("CONTAINERS_REGISTRIES_CONF")
    if env:
        main = Path(env)
        dirs = [Path(env + ".d")]
    else:
        user = _config_home() / "containers" / "registries.conf"
        main = user if user.is_file() else Path("/etc/containers/registries.conf")
        dirs = [Path("/etc/containers/registries.conf.d"), _config_home() / "containers" / "registries.conf.d"]
    files = [main] if main.is_file() else []
    for d in dirs:
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.suffix == ".conf" and p.is_file())
    return files


def _merge(conf: RegistriesConf, data: dict[str, Any], path: Path) -> None:
    def bad(msg: str) -> InvalidArgument:
        return InvalidArgument(f"{path}: {msg}")

    if "unqualified-search-registries" in data:
        v = data["unqualified-search-registries"]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise bad("unqualified-search-registries must be a list of strings")
        conf.search = list(v)
    if "short-name-mode" in data:
        mode = data["short-name-mode"]
        if mode not in ("enforcing", "permissive", "disabled"):
            raise bad(f"invalid short-name-mode {mode!r}")
        conf.short_name_mode = mode
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict):
        raise bad("[aliases] must be a table")
    for k, v in aliases.items():
        if not isinstance(v, str):
            raise bad(f"alias {k!r} must be a string")
        conf.aliases[k] = v
    regs = data.get("registry", [])
    if not isinstance(regs, list):
        raise bad("[[registry]] must be an array of tables")
    for r in regs:
        if not isinstance(r, dict):
            raise bad("[[registry]] entries must be tables")
        location = str(r.get("location", "")).rstrip("/")
        prefix = str(r.get("prefix", "") or location).rstrip("/")
        if not prefix:
            raise bad("[[registry]] needs a prefix or a location")
        mirrors = []
        for m in r.get("mirror", []) or []:
            if not isinstance(m, dict) or not m.get("location"):
                raise bad(f"[[registry.mirror]] of {prefix!r} needs a location")
            mode = m.get("pull-from-mirror", "all")
            if mode not in ("all", "digest-only", "tag-only"):
                raise bad(f"invalid pull-from-mirror {mode!r}")
            mirrors.append(Mirror(str(m["location"]).rstrip("/"), bool(m.get("insecure", False)), mode))
        conf.registries[prefix] = RegistryEntry(prefix, location or prefix, bool(r.get("insecure", False)),
                                                bool(r.get("blocked", False)), mirrors)
    v1 = data.get("registries")
    if isinstance(v1, dict):
        search = v1.get("search", {}).get("registries")
        if search:
            conf.search = list(search)
        for key, attr in (("insecure", "insecure"), ("block", "blocked")):
            for host in v1.get(key, {}).get("registries", []) or []:
                e = conf.registries.setdefault(host, RegistryEntry(host, host))
                setattr(e, attr, True)


def load(files: list[Path] | None = None) -> RegistriesConf:
    conf = RegistriesConf()
    for path in config_files() if files is None else files:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise InvalidArgument(f"loading registries configuration {str(path)!r}: {e}") from None
        except OSError as e:
            raise InvalidArgument(f"loading registries configuration {str(path)!r}: {e.strerror}") from None
        _merge(conf, data, path)
        conf.files.append(path)
    return conf
