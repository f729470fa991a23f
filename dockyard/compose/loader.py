"""Compose files to a ``Project``: find, read, interpolate, validate, merge, normalise.

The steps follow the compose specification (interpolation, then schema validation of each file,
then merging in the order given, then profiles).  The result holds plain, canonical dicts (one
spelling per key: environment and labels as maps, ports/volumes in long syntax, command as a list)
so that ``compose config`` prints it and the config hash of a service is stable across spellings.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument, NotFound, Unsupported

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


@dataclass
class Project:
    name: str
    working_dir: str
    config_files: list[str]
    services: dict[str, dict[str, Any]]
    networks: dict[str, dict[str, Any]]
    volumes: dict[str, dict[str, Any]]
    secrets: dict[str, dict[str, Any]]
    configs: dict[str, dict[str, Any]]
    environment: dict[str, str]  # what interpolation saw: .env, then the caller's environment
    disabled: dict[str, dict[str, Any]] = field(default_factory=dict)  # services of inactive profiles
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "services": self.services}
        for key in ("networks", "volumes", "secrets", "configs"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out


# -- the .env file and interpolation -----------------------------------------------------------------
def read_dotenv(path: str, environ: dict[str, str]) -> dict[str, str]:
    """KEY=VALUE lines; quotes as in a shell; ``${VAR}`` expanded in unquoted and double-quoted values
    from the lines above and the caller's environment."""
    out: dict[str, str] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise NotFound(f"env file {path} not found") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read env file {path}: {e.strerror}") from None
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not _NAME.fullmatch(key):
            raise InvalidArgument(f"{path}:{n}: invalid variable name {key!r}")
        if not sep:
            if key in environ:
                out[key] = environ[key]
            continue
        value = value.strip()
        if value[:1] == "'" and value.rfind("'") > 0:
            out[key] = value[1:value.rfind("'")]
            continue
        if value[:1] == '"' and value.rfind('"') > 0:
            body = value[1:value.rfind('"')]
            body = re.sub(r"\\([\\\"nt])", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)
        else:
            body = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
        out[key] = Interpolator({**environ, **out}).expand(body, f"{path}:{n}")
    return out


class Interpolator:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``,
    ``${VAR:+alt}``, ``${VAR+alt}`` (nested in defaults), and ``$$`` for a literal ``$``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.unset: set[str] = set()

    def expand(self, s: str, where: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(s):
            c = s[i]
            if c != "$":
                out.append(c)
                i += 1
                continue
            nxt = s[i + 1:i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                depth, j = 1, i + 2
                while j < len(s) and depth:
                    if s.startswith("${", j):
                        depth += 1
                        j += 2
                        continue
                    if s[j] == "}":
                        depth -= 1
                    j += 1
                if depth:
                    raise InvalidArgument(f"invalid interpolation format for {where}: {s!r}")
                out.append(self._braced(s[i + 2:j - 1], s, where))
                i = j
            else:
                m = _NAME.match(s, i + 1)
                if m is None:
                    out.append("$")
                    i += 1
                    continue
                out.append(self._value(m[0]))
                i = m.end()
        return "".join(out)

    def _value(self, name: str) -> str:
        if name not in self.env:
            self.unset.add(name)
            return ""
        return self.env[name]

    def _braced(self, expr: str, whole: str, where: str) -> str:
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", expr, re.S)
        if m is None:
            raise InvalidArgument(f"invalid interpolation format for {where}: {whole!r}")
        name, op, arg = m[1], m[2], m[3] or ""
        if op is None:
            return self._value(name)
        value = self.env.get(name)
        present = value is not None and (value != "" or not op.startswith(":"))
        kind = op[-1]
        if kind == "-":
            return str(value) if present else self.expand(arg, where)
        if kind == "+":
            return self.expand(arg, where) if present else ""
        if not present:
            msg = self.expand(arg, where) or "required variable is missing a value"
            raise InvalidArgument(f"required variable {name} is missing a value: {msg}")
        return str(value)

    def walk(self, node: Any, path: str) -> Any:
        if isinstance(node, str):
            return self.expand(node, path)
        if isinstance(node, dict):
            return {k: self.walk(v, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node


# -- reading and validating ---------------------------------------------------------------------------
def find_files(explicit: list[str], project_dir: str | None, environ: dict[str, str]) -> list[str]:
    if not explicit and environ.get("COMPOSE_FILE"):
        explicit = [f for f in environ["COMPOSE_FILE"].split(environ.get("COMPOSE_PATH_SEPARATOR", os.pathsep)) if f]
    if explicit:
        out = []
        for f in explicit:
            if f == "-":  # the file on stdin
                out.append(f)
                continue
            p = os.path.abspath(f if os.path.isabs(f) or not project_dir else os.path.join(project_dir, f))
            if not os.path.isfile(p):
                raise NotFound(f"open {p}: no such file or directory")
            out.append(p)
        return out
    d = os.path.abspath(project_dir or ".")
    while True:
        for name in DEFAULT_FILES:
            if os.path.isfile(os.path.join(d, name)):
                found = [os.path.join(d, name)]
                stem, ext = os.path.splitext(name)
                override = os.path.join(d, f"{stem}.override{ext}")
                if os.path.isfile(override):
                    found.append(override)
                return found
        if project_dir or d == "/":
            break
        d = os.path.dirname(d)
    raise NotFound("no configuration file provided: not found")


_SCHEMA: Any = None


def _validator() -> Any:
    global _SCHEMA
    if _SCHEMA is None:
        import jsonschema

        from dockyard.compose.schema import SCHEMA

        _SCHEMA = jsonschema.Draft7Validator(SCHEMA)
    return _SCHEMA


def validate(doc: Any, filename: str) -> None:
    from jsonschema.exceptions import best_match

    from dockyard.compose.schema import INTEGER_PATTERN

    err = best_match(_validator().iter_errors(doc))
    if err is None:
        return
    where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    msg = err.message
    if err.validator == "additionalProperties":
        m = re.search(r"\('(.+?)' (was|were) unexpected\)", msg) or re.match(r"'(.+?)' does not match any of the regexes", msg)
        if m:
            msg = f"additional properties {m[1]!r} not allowed"
    elif err.validator == "pattern" and err.validator_value == INTEGER_PATTERN:
        msg = f"{err.instance!r} is not an integer"
    raise InvalidArgument(f"validating {filename}: {where}: {msg}")


def _yaml_loader() -> Any:
    """PyYAML's safe loader, refusing a key given twice in one mapping (as Docker Compose does) instead
    of silently keeping the last."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen = set()
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"mapping key {key!r} already defined",
                                                        key_node.start_mark)
            seen.add(key)
        return loader.construct_mapping(node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def _read_yaml(path: str) -> Any:
    import yaml

    try:
        text = Path(path).read_text() if path != "-" else sys.stdin.read()
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None
    try:
        doc = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InvalidArgument(f"yaml: {path}{where}: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise InvalidArgument(f"validating {path}: top-level object must be a mapping")
    return doc


def load(files: list[str] | None = None, *, project_name: str | None = None, project_dir: str | None = None,
         env_files: list[str] | None = None, profiles: list[str] | None = None,
         environ: dict[str, str] | None = None, services: list[str] | None = None) -> Project:
    environ = dict(os.environ if environ is None else environ)
    paths = find_files(list(files or []), project_dir, environ)
    working_dir = os.path.abspath(project_dir or (os.getcwd() if paths[0] == "-" else os.path.dirname(paths[0])))
    env: dict[str, str] = {}
    dotenvs = [os.path.abspath(p) for p in env_files or []]  # --env-file is relative to the caller's cwd
    if not env_files and os.path.isfile(os.path.join(working_dir, ".env")):
        dotenvs = [os.path.join(working_dir, ".env")]
    for p in dotenvs:
        env.update(read_dotenv(p, {**environ, **env}))
    env.update(environ)  # the shell wins over .env, as in Docker Compose
    interp = Interpolator(env)
    merged: dict[str, Any] = {}
    for p in paths:
        doc = interp.walk(_read_yaml(p), "")
        validate(doc, p)
        merged = _merge_file(merged, _normalise_file(doc, working_dir, p))
    warnings = [f'The "{v}" variable is not set. Defaulting to a blank string.' for v in sorted(interp.unset)]
    if merged.get("version") is not None:
        warnings.append(f"{paths[0]}: the attribute `version` is obsolete, it will be ignored")

    name = project_name or env.get("COMPOSE_PROJECT_NAME") or merged.get("name") or os.path.basename(working_dir)
    name = normalise_project_name(name) if not project_name else name
    if not _PROJECT_NAME.fullmatch(name):
        raise InvalidArgument(f"invalid project name {name!r}: must consist only of lowercase alphanumeric "
                              "characters, hyphens and underscores, and start with a letter or digit")
    active = set(profiles or [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p])
    all_services = merged.get("services") or {}
    wanted = set(services or [])
    unknown = wanted - set(all_services)
    if unknown:
        raise NotFound(f"no such service: {sorted(unknown)[0]}")
    enabled, disabled = {}, {}
    for sname, svc in all_services.items():
        profs = svc.get("profiles") or []
        if not profs or active & set(profs) or "*" in active or sname in wanted:
            enabled[sname] = svc
        else:
            disabled[sname] = svc
    for sname, svc in enabled.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in enabled and cond.get("required", True):
                why = "is disabled by its profiles" if dep in disabled else "is not defined"
                raise InvalidArgument(f"service {sname!r} depends on service {dep!r} which {why}")
    project = Project(
        name=name, working_dir=working_dir, config_files=paths, services=enabled,
        networks=merged.get("networks") or {}, volumes=merged.get("volumes") or {},
        secrets=merged.get("secrets") or {}, configs=merged.get("configs") or {},
        environment=env, disabled=disabled, warnings=warnings)
    _check_references(project)
    return project


def normalise_project_name(name: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


# -- normalisation -----------------------------------------------------------------------------------
def _drop_extensions(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not (isinstance(k, str) and k.startswith("x-"))}


def _kv_map(value: Any, where: str, sep: str = "=") -> dict[str, str | None]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): (None if v is None else _scalar(v)) for k, v in value.items()}
    out: dict[str, str | None] = {}
    for item in value:
        k, s, v = str(item).partition(sep)
        out[k.strip() if sep != "=" else k] = v if s else None
    return out


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        return [str(value)]
    return [str(v) for v in value]


def _command(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def _port_list(value: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(value or []):
        if isinstance(p, dict):
            if p.get("target") in (None, ""):
                raise InvalidArgument(f"{where}[{i}]: target is required")
            d = {"target": str(p["target"]), "protocol": p.get("protocol") or "tcp"}
            if p.get("published") not in (None, ""):
                d["published"] = str(p["published"])
            if p.get("host_ip"):
                d["host_ip"] = p["host_ip"]
            if p.get("mode"):
                d["mode"] = p["mode"]
            out.append(d)
            continue
        text = str(p)
        text, _, proto = text.partition("/")
        parts = text.split(":")
        host_ip = None
        if len(parts) == 1:
            target, published = parts[0], None
        elif len(parts) == 2:
            published, target = parts
        else:
            host_ip, published, target = ":".join(parts[:-2]).strip("[]"), parts[-2], parts[-1]
        d = {"target": target, "protocol": proto or "tcp"}
        if published:
            d["published"] = published
        if host_ip:
            d["host_ip"] = host_ip
        out.append(d)
    return out


def _is_path(src: str) -> bool:
    return src.startswith((".", "/", "~")) or src == "."


def _volume_list(value: Any, working_dir: str) -> list[dict[str, Any]]:
    out = []
    for v in value or []:
        if isinstance(v, dict):
            d = dict(v)
        else:
            parts = str(v).split(":")
            if len(parts) == 1:
                d = {"type": "volume", "target": parts[0]}
            else:
                src, target, mode = parts[0], parts[1], (parts[2] if len(parts) > 2 else "")
                d = {"type": "bind" if _is_path(src) else "volume", "source": src, "target": target}
                opts = [o for o in mode.split(",") if o]
                if "ro" in opts:
                    d["read_only"] = True
                if d["type"] == "bind":
                    d["bind"] = {"create_host_path": True}
                    sel = [o for o in opts if o in ("z", "Z")]
                    if sel:
                        d["bind"]["selinux"] = sel[0]
                elif "nocopy" in opts:
                    d["volume"] = {"nocopy": True}
        if d.get("type") == "bind" and d.get("source"):
            d["source"] = os.path.normpath(os.path.join(working_dir, os.path.expanduser(d["source"])))
        out.append(d)
    return out


def _service(name: str, svc: dict[str, Any], working_dir: str) -> dict[str, Any]:
    s = _drop_extensions(dict(svc))
    if "environment" in s:
        s["environment"] = _kv_map(s["environment"], f"services.{name}.environment")
    if "labels" in s:
        s["labels"] = {k: v or "" for k, v in _kv_map(s["labels"], "labels").items()}
    for key in ("command", "entrypoint"):
        if key in s:
            s[key] = _command(s[key])
    if "ports" in s:
        s["ports"] = _port_list(s["ports"], f"services.{name}.ports")
    if "volumes" in s:
        s["volumes"] = _volume_list(s["volumes"], working_dir)
    if "env_file" in s:
        files = s["env_file"] if isinstance(s["env_file"], list) else [s["env_file"]]
        s["env_file"] = [{"path": os.path.join(working_dir, f if isinstance(f, str) else f["path"]),
                          "required": True if isinstance(f, str) else bool(f.get("required", True))}
                         for f in files]
    if "depends_on" in s:
        dep = s["depends_on"]
        if isinstance(dep, list):
            s["depends_on"] = {d: {"condition": "service_started", "required": True} for d in dep}
        else:
            s["depends_on"] = {d: {"condition": (c or {}).get("condition", "service_started"),
                                   "required": (c or {}).get("required", True),
                                   **({"restart": c["restart"]} if (c or {}).get("restart") is not None else {})}
                               for d, c in dep.items()}
    if "networks" in s and isinstance(s["networks"], list):
        s["networks"] = {n: None for n in s["networks"]}
    for key in ("tmpfs", "dns", "dns_search", "dns_opt", "cap_add", "cap_drop", "security_opt", "expose",
                "profiles", "volumes_from"):
        if key in s:
            s[key] = _str_list(s[key])
    if "extra_hosts" in s:
        eh = s["extra_hosts"]
        if isinstance(eh, dict):
            s["extra_hosts"] = [f"{k}:{v}" if isinstance(v, str) else f"{k}:{v[0]}" for k, v in eh.items()]
        else:
            s["extra_hosts"] = [str(x).replace("=", ":", 1) if "=" in str(x) else str(x) for x in eh]
    if "ulimits" in s:
        s["ulimits"] = {k: ({"soft": int(v), "hard": int(v)} if not isinstance(v, dict) else
                            {"soft": int(v["soft"]), "hard": int(v["hard"])}) for k, v in s["ulimits"].items()}
    for key in ("secrets", "configs"):
        if key in s:
            s[key] = [{"source": x} if isinstance(x, str) else dict(x) for x in s[key]]
    if "build" in s:
        b = s["build"]
        b = {"context": b} if isinstance(b, str) else _drop_extensions(dict(b))
        b["context"] = os.path.normpath(os.path.join(working_dir, b.get("context") or "."))
        if "args" in b:
            b["args"] = _kv_map(b["args"], "build.args")
        if "labels" in b:
            b["labels"] = {k: v or "" for k, v in _kv_map(b["labels"], "build.labels").items()}
        s["build"] = b
    if isinstance(s.get("healthcheck"), dict):
        s["healthcheck"] = _drop_extensions(s["healthcheck"])
    if isinstance(s.get("deploy"), dict):
        s["deploy"] = _drop_extensions(s["deploy"])
    return s


def _normalise_file(doc: dict[str, Any], working_dir: str, path: str) -> dict[str, Any]:
    doc = _drop_extensions(doc)
    for key in doc:
        if key not in ("version", "name", "services", "networks", "volumes", "secrets", "configs"):
            raise Unsupported(f"{path}: top-level {key!r} is not supported by dockyard compose")
    services = doc.get("services") or {}
    out = dict(doc)
    out["services"] = {n: _service(n, s or {}, working_dir) for n, s in services.items()}
    for key in ("networks", "volumes", "secrets", "configs"):
        if key in doc:
            out[key] = {n: _drop_extensions(dict(v or {})) for n, v in (doc[key] or {}).items()}
    for key in ("secrets", "configs"):
        for v in (out.get(key) or {}).values():
            if v.get("file"):
                v["file"] = os.path.normpath(os.path.join(working_dir, os.path.expanduser(v["file"])))
    return out


# -- merging (compose spec "merge": maps merge, most sequences append, a few replace) ----------------
_REPLACE = {"command", "entrypoint", "healthcheck.test"}
_BY_KEY = {"ports": lambda p: (p.get("host_ip"), p.get("published"), p["target"], p["protocol"]),
           "volumes": lambda v: v["target"], "secrets": lambda v: v["source"], "configs": lambda v: v["source"]}


def _merge(base: Any, over: Any, path: str) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            sub = f"{path}.{k}" if path else k
            out[k] = _merge(base[k], v, sub) if k in base else v
        return out
    key = path.rsplit(".", 1)[-1]
    if isinstance(base, list) and isinstance(over, list) and path.split(".", 2)[-1] not in _REPLACE:
        if key in _BY_KEY and path.startswith("services."):
            by = {_BY_KEY[key](x): x for x in base}
            by.update({_BY_KEY[key](x): x for x in over})
            return list(by.values())
        return base + [x for x in over if x not in base]
    return over


def _merge_file(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    if not base:
        return over
    return _merge(base, over, "")


def _check_references(p: Project) -> None:
    for sname, svc in p.services.items():
        for net in svc.get("networks") or {}:
            if net != "default" and net not in p.networks:
                raise InvalidArgument(f"service {sname!r} refers to undefined network {net}: invalid compose project")
        for v in svc.get("volumes") or []:
            if v.get("type") == "volume" and v.get("source") and v["source"] not in p.volumes:
                raise InvalidArgument(f"service {sname!r} refers to undefined volume {v['source']}: "
                                      "invalid compose project")
        for kind in ("secrets", "configs"):
            for ref in svc.get(kind) or []:
                if ref["source"] not in getattr(p, kind):
                    raise InvalidArgument(f"service {sname!r} refers to undefined {kind[:-1]} {ref['source']}: "
                                          "invalid compose project")
        for dep in svc.get("depends_on") or {}:
            if dep not in p.services and dep not in p.disabled:
                raise InvalidArgument(f"service {sname!r} depends on undefined service {dep!r}: "
                                      "invalid compose project")
        if "image" not in svc and "build" not in svc:
            raise InvalidArgument(f"service {sname!r} has neither an image nor a build context specified: "
                                  "invalid compose project")
    order(p.services)  # refuses cycles now


def order(services: dict[str, dict[str, Any]]) -> list[str]:
    """Services with their dependencies first; a cycle is an error naming it."""
    done: list[str] = []
    visiting: list[str] = []

    def visit(n: str) -> None:
        if n in done:
            return
        if n in visiting:
            cycle = visiting[visiting.index(n):] + [n]
            raise InvalidArgument(f"dependency cycle detected: {' -> '.join(cycle)}")
        visiting.append(n)
        for dep in (services[n].get("depends_on") or {}):
            if dep in services:
                visit(dep)
        visiting.pop()
        done.append(n)

    for n in services:
        visit(n)
    return done
