"""OCI runtime-spec config.json: the default bundle config (`spec`) and loading with clear errors.

Validation is structural and hand-written: importing jsonschema costs more than the whole `run` of a
small container, and a hand check can name the exact field that is wrong.
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument
from dockyard.runtime import jsonfast

OCI_VERSION = "1.0.2-dev"

_DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_DEFAULT: dict = {
    "ociVersion": OCI_VERSION,
    "process": {
        "terminal": True,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {k: list(_DEFAULT_CAPS) for k in ("bounding", "effective", "permitted", "ambient")},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": True},
    "hostname": "runc",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ],
    "linux": {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}


def default_spec(rootless: bool = False) -> dict:
    """The config `runc spec` writes, or with ``rootless`` the one `runc spec --rootless` writes."""
    import copy

    spec = copy.deepcopy(_DEFAULT)
    if not rootless:
        return spec
    linux = spec["linux"]
    del linux["resources"]
    # Without a network namespace of its own the container cannot mount sysfs; it gets the host's, read-only.
    linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    # Reorder so the ID maps come first, as runc prints them.
    spec["linux"] = {k: linux[k] for k in ("uidMappings", "gidMappings", "namespaces", "maskedPaths",
                                           "readonlyPaths")}
    for m in spec["mounts"]:
        if m["type"] == "sysfs":
            m.update(type="none", source="/sys", options=["rbind", "nosuid", "noexec", "nodev", "ro"])
        elif m["type"] == "devpts":
            # gid 5 (tty) is not mapped in a one-ID user namespace.
            m["options"] = [o for o in m["options"] if not o.startswith("gid=")]
    return spec


def dumps_spec(spec: dict) -> str:
    import json

    return json.dumps(spec, indent="\t")


KNOWN_NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup")


def _fail(msg: str) -> None:
    raise InvalidArgument(f"invalid config.json: {msg}")


def _expect(obj: object, typ: type | tuple[type, ...], where: str) -> None:
    if not isinstance(obj, typ) or (typ is int and isinstance(obj, bool)):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        human = {"dict": "an object", "list": "an array", "str": "a string", "int": "an integer",
                 "bool": "a boolean"}
        _fail(f"{where} must be {human.get(names, names)}")


def _str_list(obj: object, where: str) -> None:
    _expect(obj, list, where)
    assert isinstance(obj, list)
    for i, v in enumerate(obj):
        _expect(v, str, f"{where}[{i}]")


def validate_process(p: object, where: str = "process") -> None:
    _expect(p, dict, where)
    assert isinstance(p, dict)
    if "args" not in p or not p["args"]:
        _fail(f"{where}.args must name the program to run")
    _str_list(p["args"], f"{where}.args")
    if "env" in p:
        _str_list(p["env"], f"{where}.env")
    cwd = p.get("cwd", "/")
    _expect(cwd, str, f"{where}.cwd")
    if not cwd.startswith("/"):
        _fail(f"{where}.cwd must be an absolute path, got {cwd!r}")
    user = p.get("user", {})
    _expect(user, dict, f"{where}.user")
    for k in ("uid", "gid", "umask"):
        if k in user:
            _expect(user[k], int, f"{where}.user.{k}")
    if "additionalGids" in user:
        _expect(user["additionalGids"], list, f"{where}.user.additionalGids")
        for i, g in enumerate(user["additionalGids"]):
            _expect(g, int, f"{where}.user.additionalGids[{i}]")
    if "terminal" in p:
        _expect(p["terminal"], bool, f"{where}.terminal")
    caps = p.get("capabilities")
    if caps is not None:
        _expect(caps, dict, f"{where}.capabilities")
        for k, v in caps.items():
            _str_list(v, f"{where}.capabilities.{k}")
    for i, r in enumerate(p.get("rlimits") or []):
        _expect(r, dict, f"{where}.rlimits[{i}]")
        _expect(r.get("type"), str, f"{where}.rlimits[{i}].type")
        for k in ("soft", "hard"):
            _expect(r.get(k), int, f"{where}.rlimits[{i}].{k}")
    if "oomScoreAdj" in p:
        _expect(p["oomScoreAdj"], int, f"{where}.oomScoreAdj")


def validate(spec: object) -> dict:
    _expect(spec, dict, "the top level")
    assert isinstance(spec, dict)
    _expect(spec.get("ociVersion"), str, "ociVersion")
    root = spec.get("root")
    _expect(root, dict, "root")
    assert isinstance(root, dict)
    _expect(root.get("path"), str, "root.path")
    if "readonly" in root:
        _expect(root["readonly"], bool, "root.readonly")
    validate_process(spec.get("process"))
    for k in ("hostname", "domainname"):
        if k in spec:
            _expect(spec[k], str, k)
    for i, m in enumerate(spec.get("mounts") or []):
        w = f"mounts[{i}]"
        _expect(m, dict, w)
        _expect(m.get("destination"), str, f"{w}.destination")
        if not m["destination"].startswith("/"):
            _fail(f"{w}.destination must be an absolute path, got {m['destination']!r}")
        for k in ("type", "source"):
            if k in m:
                _expect(m[k], str, f"{w}.{k}")
        if "options" in m:
            _str_list(m["options"], f"{w}.options")
    linux = spec.get("linux", {})
    _expect(linux, dict, "linux")
    seen: set[str] = set()
    for i, ns in enumerate(linux.get("namespaces") or []):
        _expect(ns, dict, f"linux.namespaces[{i}]")
        t = ns.get("type")
        if t not in KNOWN_NAMESPACES:
            _fail(f"unknown namespace type {t!r} in linux.namespaces[{i}] "
                  f"(known: {', '.join(KNOWN_NAMESPACES)})")
        if t in seen:
            _fail(f"namespace {t!r} is listed twice in linux.namespaces")
        seen.add(t)
        if "path" in ns:
            _expect(ns["path"], str, f"linux.namespaces[{i}].path")
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(linux.get(key) or []):
            _expect(m, dict, f"linux.{key}[{i}]")
            for f in ("containerID", "hostID", "size"):
                _expect(m.get(f), int, f"linux.{key}[{i}].{f}")
    if (linux.get("uidMappings") or linux.get("gidMappings")) and "user" not in seen:
        _fail("linux.uidMappings/gidMappings need a user namespace in linux.namespaces")
    if "user" in seen and not any(ns.get("path") for ns in linux["namespaces"] if ns["type"] == "user"):
        if not linux.get("uidMappings") or not linux.get("gidMappings"):
            _fail("a new user namespace needs linux.uidMappings and linux.gidMappings")
    for key in ("maskedPaths", "readonlyPaths"):
        if key in linux:
            _str_list(linux[key], f"linux.{key}")
    if "sysctl" in linux:
        _expect(linux["sysctl"], dict, "linux.sysctl")
    for i, d in enumerate(linux.get("devices") or []):
        _expect(d, dict, f"linux.devices[{i}]")
        _expect(d.get("path"), str, f"linux.devices[{i}].path")
        if d.get("type") not in ("c", "b", "u", "p"):
            _fail(f"linux.devices[{i}].type must be one of c, b, u, p")
    hooks = spec.get("hooks", {})
    _expect(hooks, dict, "hooks")
    for stage, entries in hooks.items():
        _expect(entries, list, f"hooks.{stage}")
        for i, h in enumerate(entries):
            _expect(h, dict, f"hooks.{stage}[{i}]")
            _expect(h.get("path"), str, f"hooks.{stage}[{i}].path")
            if "timeout" in h:
                _expect(h["timeout"], int, f"hooks.{stage}[{i}].timeout")
                if h["timeout"] <= 0:
                    _fail(f"hooks.{stage}[{i}].timeout must be positive")
    return spec


def load_bundle(bundle: str) -> dict:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"no config.json in bundle {bundle}") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None
    try:
        spec = jsonfast.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"config.json is not valid JSON: {e}") from None
    return validate(spec)


def load_process(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            proc = jsonfast.loads(f.read())
    except OSError as e:
        raise InvalidArgument(f"cannot read process file {path}: {e.strerror}") from None
    except ValueError as e:
        raise InvalidArgument(f"process file {path} is not valid JSON: {e}") from None
    validate_process(proc, "process file")
    return proc
