"""`-v`, `--mount`, `--tmpfs`, `--shm-size` and `--volumes-from` into one typed list of mounts.

The grammar and every error message follow Docker (the CLI's ``opts/mount.go`` for ``--mount``,
the daemon's linux mount parser for ``-v`` and for validating both), so a script that gets an error
from Docker gets the same sentence from dockyard.  Parsing touches nothing on disk: creating a
missing ``-v`` host directory and named volumes happens when the container is prepared.
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument

BIND, VOLUME, TMPFS = "bind", "volume", "tmpfs"

PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
_CONSISTENCY = ("consistent", "cached", "delegated", "default")
# Mount flags tmpfs (and mount(8)) know; anything else in a --tmpfs option list must be key=value.
_TMPFS_FLAGS = {
    "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async", "dirsync",
    "remount", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
    "strictatime", "nostrictatime", "lazytime", "nolazytime", "bind", "rbind", "unbindable", "runbindable",
    "private", "rprivate", "shared", "rshared", "slave", "rslave", "iversion", "noiversion", "tmpcopyup",
    "notmpcopyup",
}
_TMPFS_KEYS = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol", "huge", "inode64", "noswap"}
# Docker's daemon defaults for every tmpfs mount; the user's options are merged over them.
TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev"]
SHM_DEFAULT_SIZE = 64 * 1024 * 1024

_RAM_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


@dataclass
class MountSpec:
    """One mount a container asked for.  ``source``: host path (bind), volume name ("" = anonymous)."""

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    mode: str = ""  # -v's raw mode field, shown as inspect's Mode
    propagation: str = ""  # binds only; "" means Docker's default, rprivate
    nonrecursive: bool = False
    nocopy: bool = False  # volumes: skip copying the image's content into an empty volume
    chown: bool = False  # Podman's U: chown the source to the container's user
    relabel: str = ""  # z/Z: SELinux relabelling, accepted and a no-op without SELinux (as Docker)
    create_source: bool = False  # -v binds create a missing host directory; --mount binds refuse it
    driver: str = ""  # volumes: driver named by --mount volume-driver (local)
    volume_opts: dict[str, str] = field(default_factory=dict)
    volume_labels: dict[str, str] = field(default_factory=dict)
    tmpfs_options: list[str] = field(default_factory=list)
    tmpfs_size: int = 0
    tmpfs_mode: int | None = None
    origin: str = ""  # "volume" (-v), "mount", "tmpfs", "shm", "image", "volumes-from": where it came from
    generated_name: bool = False  # an anonymous volume that got its random name

    @property
    def anonymous(self) -> bool:
        return self.type == VOLUME and not self.source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MountSpec:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: ``64m``, ``1g``, ``512k``, ``1.5GiB``; binary multiples."""
    m = _RAM_RE.match(text.strip()) if text else None
    if not m:
        raise ValueError(f"invalid size: '{text}'")
    return int(float(m.group(1)) * _RAM_UNITS[(m.group(2) or "").lower()])


def parse_shm_size(text: str) -> int:
    try:
        n = ram_in_bytes(text)
    except ValueError as e:
        raise InvalidArgument(f'invalid argument "{text}" for "--shm-size" flag: {e}') from None
    if n <= 0:
        raise InvalidArgument("SHM size can not be less than 0")
    return n


# -- -v / --volume ---------------------------------------------------------------------------------
def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _valid_mode(mode: str) -> bool:
    if not mode:
        return True
    counts = {"rw": 0, "label": 0, "prop": 0, "copy": 0, "cons": 0, "U": 0}
    for o in mode.split(","):
        if o in ("rw", "ro"):
            counts["rw"] += 1
        elif o in ("z", "Z"):
            counts["label"] += 1
        elif o in PROPAGATIONS:
            counts["prop"] += 1
        elif o == "nocopy":
            counts["copy"] += 1
        elif o in _CONSISTENCY:
            counts["cons"] += 1
        elif o == "U":
            counts["U"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def parse_volume(raw: str, cwd: str | None = None) -> MountSpec:
    """``SRC:DST[:MODE]`` or ``DST`` (an anonymous volume)."""
    if raw.count(":") > 2:
        raise InvalidArgument(_invalid_spec(raw))
    arr = raw.split(":", 2)
    if not arr[0]:
        raise InvalidArgument(_invalid_spec(raw))
    source, mode = "", ""
    if len(arr) == 1:
        target = arr[0]
    elif len(arr) == 2:
        if arr[1] and _valid_mode(arr[1]):
            # "/foo:rw" is a destination with a mode, which a volume cannot have.
            raise InvalidArgument(_invalid_spec(raw))
        source, target = arr
    else:
        source, target, mode = arr
    if not _valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    opts = mode.split(",") if mode else []
    # Docker's CLI makes ./rel and ../rel host paths absolute; a bare name stays a volume name.
    if source.startswith(".") and not source.startswith("/"):
        source = os.path.abspath(os.path.join(cwd or os.getcwd(), source))
    typ = BIND if source.startswith("/") else VOLUME
    spec = MountSpec(type=typ, target=target, source=source, read_only="ro" in opts, mode=mode,
                     nocopy="nocopy" in opts, chown="U" in opts,
                     relabel=next((o for o in opts if o in ("z", "Z")), ""),
                     propagation=next((o for o in opts if o in PROPAGATIONS), ""),
                     create_source=typ == BIND, origin="volume")
    if typ == VOLUME and spec.propagation:
        raise InvalidArgument(f"{_invalid_spec(raw)}: invalid mount config for type \"volume\": "
                              "field BindOptions must not be specified")
    if typ == BIND and spec.nocopy:
        raise InvalidArgument(f"{_invalid_spec(raw)}: invalid mount config for type \"bind\": "
                              "field VolumeOptions must not be specified")
    try:
        validate(spec, check_bind_source=False)
    except InvalidArgument as e:
        raise InvalidArgument(f"{_invalid_spec(raw)}: {e}") from None
    return spec


# -- --mount -----------------------------------------------------------------------------------------
def _parse_bool(key: str, val: str) -> bool:
    v = val.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise ValueError(f"invalid value for {key}: {val}")


def _mount_fields(value: str) -> list[str]:
    try:
        rows = list(csv.reader([value], strict=True))
    except csv.Error as e:
        raise ValueError(str(e)) from None
    return rows[0] if rows else []


def parse_mount(value: str, cwd: str | None = None) -> MountSpec:
    """``--mount type=bind|volume|tmpfs,source=...,target=...,...`` (CSV, so fields may be quoted)."""
    try:
        spec = _parse_mount_fields(value, cwd)
    except ValueError as e:
        raise InvalidArgument(f'invalid argument "{value}" for "--mount" flag: {e}') from None
    validate(spec, check_bind_source=True)
    return spec


def _parse_mount_fields(value: str, cwd: str | None) -> MountSpec:
    spec = MountSpec(type=VOLUME, target="", origin="mount")
    volume_opt = bind_opt = tmpfs_opt = False
    for fld in _mount_fields(value):
        key, sep, val = fld.partition("=")
        key = key.lower()
        if not sep:
            if key in ("readonly", "ro"):
                spec.read_only = True
            elif key == "volume-nocopy":
                spec.nocopy, volume_opt = True, True
            elif key == "bind-nonrecursive":
                spec.nonrecursive, bind_opt = True, True
            else:
                raise ValueError(f"invalid field '{fld}' must be a key=value pair")
            continue
        if key == "type":
            spec.type = val.lower()
        elif key in ("source", "src"):
            spec.source = val
            if val == "." or val.startswith("./"):
                spec.source = os.path.abspath(os.path.join(cwd or os.getcwd(), val))
        elif key in ("target", "dst", "destination"):
            spec.target = val
        elif key in ("readonly", "ro"):
            spec.read_only = _parse_bool(key, val)
        elif key == "consistency":
            if val.lower() not in _CONSISTENCY:
                raise ValueError(f"invalid value for {key}: {val}")
        elif key == "bind-propagation":
            spec.propagation, bind_opt = val.lower(), True
        elif key == "bind-nonrecursive":
            spec.nonrecursive, bind_opt = _parse_bool(key, val), True
        elif key == "volume-nocopy":
            spec.nocopy, volume_opt = _parse_bool(key, val), True
        elif key == "volume-label":
            k, _, v = val.partition("=")
            if k:
                spec.volume_labels[k] = v
            volume_opt = True
        elif key == "volume-driver":
            spec.driver, volume_opt = val, True
        elif key == "volume-opt":
            k, _, v = val.partition("=")
            if k:
                spec.volume_opts[k] = v
            volume_opt = True
        elif key == "tmpfs-size":
            try:
                spec.tmpfs_size = ram_in_bytes(val)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {val}") from None
            tmpfs_opt = True
        elif key == "tmpfs-mode":
            try:
                spec.tmpfs_mode = int(val, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {val}") from None
            if not 0 <= spec.tmpfs_mode <= 0o7777:
                raise ValueError(f"invalid value for {key}: {val}")
            tmpfs_opt = True
        else:
            raise ValueError(f"unexpected key '{key}' in '{fld}'")
    if not spec.type:
        raise ValueError("type is required")
    if not spec.target:
        raise ValueError("target is required")
    if volume_opt and spec.type != VOLUME:
        raise ValueError(f"cannot mix 'volume-*' options with mount type '{spec.type}'")
    if bind_opt and spec.type != BIND:
        raise ValueError(f"cannot mix 'bind-*' options with mount type '{spec.type}'")
    if tmpfs_opt and spec.type != TMPFS:
        raise ValueError(f"cannot mix 'tmpfs-*' options with mount type '{spec.type}'")
    return spec


# -- --tmpfs -----------------------------------------------------------------------------------------
def parse_tmpfs(value: str) -> MountSpec:
    """``--tmpfs /run[:rw,noexec,size=64m]``."""
    target, _, opts = value.partition(":")
    options = [o for o in opts.split(",") if o] if opts else []
    for o in options:
        k, sep, v = o.partition("=")
        if (not sep and k not in _TMPFS_FLAGS) or (sep and k not in _TMPFS_KEYS):
            raise InvalidArgument(f"invalid tmpfs option {o!r} in --tmpfs {value}")
    spec = MountSpec(type=TMPFS, target=target, tmpfs_options=options, read_only="ro" in options,
                     origin="tmpfs")
    validate(spec, check_bind_source=False)
    return spec


# -- validation (the daemon's checks, shared by all forms) ------------------------------------------
def _config_error(typ: str, msg: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{typ}": {msg}')


def validate(spec: MountSpec, *, check_bind_source: bool) -> None:
    typ = spec.type
    if not spec.target:
        raise _config_error(typ, "field Target must not be empty")
    if posixpath.normpath(spec.target) == "/" or spec.target == "/":
        raise _config_error(typ, "invalid specification: destination can't be '/'")
    if not spec.target.startswith("/"):
        raise _config_error(typ, f"invalid mount path: '{spec.target}' mount path must be absolute")
    if typ == BIND:
        if not spec.source:
            raise _config_error(typ, "field Source must not be empty")
        if spec.propagation and spec.propagation not in PROPAGATIONS:
            raise _config_error(typ, f"invalid propagation mode: {spec.propagation}")
        if not spec.source.startswith("/"):
            raise _config_error(typ, f"invalid mount path: '{spec.source}' mount path must be absolute")
        if check_bind_source and not os.path.lexists(spec.source):
            raise _config_error(typ, f"bind source path does not exist: {spec.source}")
    elif typ == VOLUME:
        if not spec.source and spec.read_only:
            raise _config_error(typ, "must not set ReadOnly mode when using anonymous volumes")
        if spec.source:
            check_volume_name(spec.source)
        if spec.driver and spec.driver != "local":
            raise _config_error(typ, f"volume driver {spec.driver!r} is not supported (only local)")
    elif typ == TMPFS:
        if spec.source:
            raise _config_error(typ, "field Source must not be specified")
    else:
        raise _config_error(typ, "mount type unknown")


VOLUME_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def check_volume_name(name: str) -> None:
    if len(name) == 1:
        raise InvalidArgument(f"create {name}: volume name is too short, names should be at least two "
                              "alphanumeric characters")
    if not VOLUME_NAME_RE.match(name):
        raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                              'only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
                              "directory, use absolute path")


# -- all flags together ------------------------------------------------------------------------------
def parse_volumes_from(value: str) -> tuple[str, str]:
    """``CONTAINER[:ro|:rw]`` -> (container, mode); mode "" keeps each mount's own RW."""
    ref, sep, mode = value.partition(":")
    if not ref or (sep and mode not in ("ro", "rw")):
        raise InvalidArgument(f"invalid mode for volumes-from: {mode or value}")
    return ref, mode


def parse(volumes: list[str], mounts: list[str], tmpfs: list[str], *, shm_size: str | None = None,
          cwd: str | None = None) -> list[MountSpec]:
    """Every mount flag of `run`/`create`, validated; raises InvalidArgument with Docker's message.

    ``--shm-size`` becomes a tmpfs at /dev/shm (unless another mount already targets /dev/shm),
    so callers replace their default /dev/shm with it (see ``override_defaults``).
    """
    specs = [parse_volume(v, cwd) for v in volumes]
    specs += [parse_mount(m, cwd) for m in mounts]
    specs += [parse_tmpfs(t) for t in tmpfs]
    check_duplicates(specs)
    if shm_size is not None:
        size = parse_shm_size(shm_size)
        if not any(posixpath.normpath(s.target) == "/dev/shm" for s in specs):
            specs.append(MountSpec(type=TMPFS, target="/dev/shm", tmpfs_size=size,
                                   tmpfs_options=["nosuid", "noexec", "nodev", "mode=1777"], origin="shm"))
    return specs


def check_duplicates(specs: list[MountSpec]) -> None:
    seen: set[str] = set()
    for s in specs:
        t = posixpath.normpath(s.target)
        if t in seen:
            raise InvalidArgument(f"Duplicate mount point: {s.target}")
        seen.add(t)


def tmpfs_data(spec: MountSpec) -> list[str]:
    """OCI options of a tmpfs mount: Docker's defaults, then the user's, the later of a pair winning."""
    opts = list(TMPFS_DEFAULTS) + list(spec.tmpfs_options)
    if spec.tmpfs_size:
        opts.append(f"size={spec.tmpfs_size}")
    if spec.tmpfs_mode is not None:
        opts.append(f"mode={spec.tmpfs_mode:o}")
    if spec.read_only:
        opts.append("ro")
    return merge_flags(opts)


def merge_flags(opts: list[str]) -> list[str]:
    """``noexec,exec`` -> ``exec``; ``size=1m,size=2m`` -> ``size=2m``: the last word on a setting wins."""
    out: dict[str, str] = {}
    for o in opts:
        k, sep, _ = o.partition("=")
        if sep:
            key = k
        else:
            key = "rw" if k == "ro" else k[2:] if k.startswith("no") else k
        out.pop(key, None)
        out[key] = o
    return list(out.values())


def override_defaults(defaults: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Default OCI mounts minus those a user mount replaces (same destination), then the user's."""
    taken = {posixpath.normpath(m["destination"]) for m in extra}
    return [m for m in defaults if posixpath.normpath(m["destination"]) not in taken] + list(extra)
