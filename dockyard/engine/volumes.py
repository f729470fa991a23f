"""Volumes: ``volume create/ls/inspect/rm/prune`` and the mounts of a container's start.

The container engine calls ``reserve`` at create (volumes exist and count as in use from then on),
``prepare`` at each start (OCI mounts, copy-up, option mounts), ``detach`` when the container stops
and ``release`` when it is removed.  Rows: ``volumes``, ``container_mounts`` (who uses what, per
destination), ``volume_mounts`` (which started containers hold an option volume's mount).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import secrets
import time
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.storage import volumes as local
from dockyard.storage.mountspec import BIND, TMPFS, VOLUME, MountSpec, check_volume_name, tmpfs_data

if TYPE_CHECKING:
    import sqlite3

    from dockyard.engine import Engine

ANON_LABEL = "com.docker.volume.anonymous"
LIST_FILTERS = ("dangling", "driver", "label", "name")
PRUNE_FILTERS = ("label", "label!", "until", "all")


def _rfc3339(ts: float) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _depth(spec: MountSpec) -> int:
    return len([p for p in posixpath.normpath(spec.target).split("/") if p])


class VolumeService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.root = engine.roots.root

    @property
    def db(self) -> Any:
        return self.engine.db

    # -- volume objects --------------------------------------------------------------------------
    def _row(self, name: str) -> sqlite3.Row:
        r = self.db.query_one("SELECT * FROM volumes WHERE name=?", (name,))
        if r is None:
            raise NotFound(f"get {name}: no such volume")
        return r

    def exists(self, name: str) -> bool:
        return self.db.query_one("SELECT 1 FROM volumes WHERE name=?", (name,)) is not None

    def create(self, name: str | None = None, driver: str = "local", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, *, anonymous: bool = False) -> dict[str, Any]:
        """``volume create``: an existing volume of the same driver is returned as is, like Docker."""
        with self.db.write() as c:
            return self._inspect(self._create(c, name, driver, labels or {}, options or {}, anonymous))

    def _create(self, c: sqlite3.Connection, name: str | None, driver: str, labels: dict[str, str],
                options: dict[str, str], anonymous: bool) -> sqlite3.Row:
        driver = driver or "local"
        if name is None:
            name = secrets.token_hex(32)
        check_volume_name(name)
        if driver != "local":
            raise InvalidArgument(f"create {name}: error looking up volume plugin {driver}: plugin "
                                  f'"{driver}" not found')
        local.check_options(options)
        old = c.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()
        if old is not None:
            return old
        if anonymous:
            labels = {ANON_LABEL: "", **labels}
        # Directory first, then the row naming it: a crash in between leaves an unnamed directory,
        # never a volume without its data.
        fresh = not local.volume_dir(self.root, name).exists()
        local.create_dirs(self.root, name)
        try:
            c.execute("INSERT INTO volumes (name, driver, labels, options, anonymous, created) VALUES (?,?,?,?,?,?)",
                      (name, driver, json.dumps(labels), json.dumps(options), int(anonymous), time.time()))
        except BaseException:
            if fresh:
                local.remove_dirs(self.root, name)
            raise
        return c.execute("SELECT * FROM volumes WHERE name=?", (name,)).fetchone()

    def _inspect(self, r: sqlite3.Row, size: bool = False) -> dict[str, Any]:
        labels = json.loads(r["labels"]) or None
        options = json.loads(r["options"]) or None
        out: dict[str, Any] = {
            "CreatedAt": _rfc3339(r["created"]),
            "Driver": r["driver"],
            "Labels": labels,
            "Mountpoint": str(local.data_dir(self.root, r["name"])),
            "Name": r["name"],
            "Options": options,
            "Scope": "local",
        }
        if size:
            out["UsageData"] = {"Size": local.disk_size(local.data_dir(self.root, r["name"])),
                                "RefCount": len(self.in_use(r["name"]))}
        return out

    def inspect(self, name: str) -> dict[str, Any]:
        return self._inspect(self._row(name))

    def list_volumes(self, filters: dict[str, list[str]] | None = None, size: bool = False) -> list[dict[str, Any]]:
        flt = filters or {}
        for k, vals in flt.items():
            if k not in LIST_FILTERS:
                raise InvalidArgument(f"invalid filter '{k}'")
            if k == "dangling":
                for v in vals:
                    if v.lower() not in ("true", "false", "1", "0"):
                        raise InvalidArgument(f"invalid filter 'dangling={v}'")
        used = self._used_names()
        out = []
        for r in self.db.query("SELECT * FROM volumes ORDER BY name"):
            if not self._match(flt, r, used):
                continue
            out.append(self._inspect(r, size))
        return out

    def _match(self, flt: dict[str, list[str]], r: sqlite3.Row, used: set[str]) -> bool:
        labels = json.loads(r["labels"])
        for k, vals in flt.items():
            if k == "dangling":
                want = {v.lower() in ("true", "1") for v in vals}
                if (r["name"] not in used) not in want:
                    return False
            elif k == "driver" and r["driver"] not in vals:
                return False
            elif k == "name" and not any(v in r["name"] for v in vals):
                return False
            elif k == "label" and not all(_label_match(labels, v) for v in vals):
                return False
            elif k == "label!" and any(_label_match(labels, v) for v in vals):
                return False
            elif k == "until":
                if r["created"] >= _until(vals[-1]):
                    return False
        return True

    def _used_names(self) -> set[str]:
        return {r[0] for r in self._live_usage_rows("SELECT volume, container_id FROM container_mounts "
                                                     "WHERE volume IS NOT NULL")}

    def _live_usage_rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        """Usage rows whose container still exists: a container removed without ``release`` (a crash,
        an older engine) does not pin its volumes forever."""
        rows = self.db.query(sql, params)
        if not rows or not self._has_table("containers"):
            return list(rows)
        ids = {r[0] for r in self.db.query("SELECT id FROM containers")}
        return [r for r in rows if r["container_id"] in ids]

    def _has_table(self, name: str) -> bool:
        return self.db.query_one("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)) is not None

    def in_use(self, name: str) -> list[str]:
        """IDs of the containers (running or not) that mount volume ``name``."""
        rows = self._live_usage_rows("SELECT DISTINCT container_id FROM container_mounts WHERE volume=?", (name,))
        return sorted({r["container_id"] for r in rows})

    def remove(self, name: str, force: bool = False) -> None:
        """``volume rm``: refuses a volume that containers use; ``force`` removes those containers first
        (Podman's -f) and ignores a missing volume (Docker's -f)."""
        with self.db.lock():  # no container may start using it between the check and the removal
            if not self.exists(name):
                if force:
                    return
                self._row(name)
            users = self.in_use(name)
            if users and not force:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            for cid in users:
                with contextlib.suppress(NotFound):
                    self.engine.containers.remove(cid, force=True)
                self.release(cid, remove_anonymous=False)
            with self.db.write() as c:
                c.execute("DELETE FROM container_mounts WHERE volume=?", (name,))
                c.execute("DELETE FROM volume_mounts WHERE volume=?", (name,))
                c.execute("DELETE FROM volumes WHERE name=?", (name,))
            # Row first, then the files: a crash in between leaves an unnamed directory, never a
            # row whose data is half gone.
            local.remove_dirs(self.root, name)

    def prune(self, filters: dict[str, list[str]] | None = None, all_volumes: bool = True) -> tuple[list[str], int]:
        """Remove unused volumes (all of them, as the tutorial and Podman expect; ``all_volumes=False``
        keeps named ones, Docker 23's default).  Returns (names, bytes reclaimed)."""
        flt = dict(filters or {})
        for k in flt:
            if k not in PRUNE_FILTERS:
                raise InvalidArgument(f"invalid filter '{k}'")
        if "all" in flt:
            all_volumes = any(v.lower() in ("true", "1") for v in flt.pop("all"))
        used = self._used_names()
        removed: list[str] = []
        space = 0
        for r in self.db.query("SELECT * FROM volumes ORDER BY name"):
            if r["name"] in used or not self._match(flt, r, used):
                continue
            if not all_volumes and not r["anonymous"]:
                continue
            size = local.disk_size(local.data_dir(self.root, r["name"]))
            try:
                self.remove(r["name"])
            except Conflict:
                continue  # a container started using it meanwhile
            removed.append(r["name"])
            space += size
        return removed, space

    # -- containers' mounts --------------------------------------------------------------------------
    def reserve(self, container_id: str, specs: list[MountSpec], image_config: dict[str, Any]) -> list[dict[str, Any]]:
        """At container create: make named volumes that do not exist yet, anonymous ones for ``-v /dst``
        and the image's VOLUMEs, missing ``-v`` host directories; record the container as their user.
        Idempotent per destination (a second call reuses the same anonymous volumes).  Returns Docker's
        inspect ``Mounts``."""
        return _inspect_mounts(self, self._reserve(container_id, specs, image_config))

    def _reserve(self, container_id: str, specs: list[MountSpec], image_config: dict[str, Any]) -> list[MountSpec]:
        wanted = list(specs)
        targets = {posixpath.normpath(s.target) for s in wanted}
        for vol in sorted((image_config or {}).get("Volumes") or {}):
            if posixpath.normpath(vol) not in targets and vol.startswith("/") and posixpath.normpath(vol) != "/":
                wanted.append(MountSpec(type=VOLUME, target=vol, origin="image"))
                targets.add(posixpath.normpath(vol))
        for spec in wanted:
            if spec.volume_opts:
                local.check_options(spec.volume_opts)
        created_dirs: list[Path] = []
        new_volumes: list[str] = []
        resolved: list[MountSpec] = []
        try:
            with self.db.write() as c:
                before = {r["destination"]: r for r in c.execute(
                    "SELECT * FROM container_mounts WHERE container_id=?", (container_id,))}
                rows = []
                for pos, spec in enumerate(wanted):
                    s = MountSpec.from_dict(spec.to_dict())
                    dest = posixpath.normpath(s.target)
                    anonymous = False
                    if s.type == VOLUME:
                        if not s.source:
                            old = before.get(dest)
                            anonymous = True
                            if old is not None and old["anonymous"] and old["volume"]:
                                s.source = old["volume"]
                            else:
                                s.source = secrets.token_hex(32)
                            s.generated_name = True
                        exists = c.execute("SELECT 1 FROM volumes WHERE name=?", (s.source,)).fetchone()
                        if not exists:
                            new_volumes.append(s.source)
                            self._create(c, s.source, s.driver or "local", dict(s.volume_labels),
                                         dict(s.volume_opts), anonymous)
                    elif s.type == BIND and s.create_source and not os.path.lexists(s.source):
                        # Docker creates a missing -v host directory (but not a --mount one).
                        top = s.source
                        while not os.path.lexists(os.path.dirname(top)):
                            top = os.path.dirname(top)
                        os.makedirs(s.source, mode=0o755, exist_ok=True)
                        created_dirs.append(Path(top))
                    resolved.append(s)
                    rows.append((container_id, dest, pos, s.source if s.type == VOLUME else None, int(anonymous),
                                 json.dumps(s.to_dict())))
                c.execute("DELETE FROM container_mounts WHERE container_id=?", (container_id,))
                c.executemany("INSERT INTO container_mounts (container_id, destination, position, volume, anonymous, "
                              "spec) VALUES (?,?,?,?,?,?)", rows)
        except BaseException:
            for d in created_dirs:
                with contextlib.suppress(OSError):
                    os.removedirs(d)
            for n in new_volumes:
                local.remove_dirs(self.root, n)
            raise
        return resolved

    def mounts_of(self, container_id: str) -> list[MountSpec]:
        """The container's resolved mounts, in the order it asked for them."""
        rows = self.db.query("SELECT spec FROM container_mounts WHERE container_id=? ORDER BY position",
                             (container_id,))
        return [MountSpec.from_dict(json.loads(r["spec"])) for r in rows]

    def volumes_from(self, refs: list[str]) -> list[MountSpec]:
        """``--volumes-from CONTAINER[:ro|:rw]``: that container's bind and volume mounts (not tmpfs),
        with its RW unless a mode is given."""
        from dockyard.storage.mountspec import parse_volumes_from

        out: list[MountSpec] = []
        for ref in refs:
            name, mode = parse_volumes_from(ref)
            cid = self.engine.containers.resolve(name)
            for s in self.mounts_of(cid):
                if s.type == TMPFS:
                    continue
                s.origin = "volumes-from"
                s.create_source = False
                if mode:
                    s.read_only = mode == "ro"
                out.append(s)
        return out

    def prepare(self, container_id: str, specs: list[MountSpec], image_config: dict[str, Any],
                rootfs: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """At each start, with the container's rootfs mounted: ``reserve``, then mount option volumes,
        copy the image's content into empty volumes, chown ``U`` sources.  Returns (OCI ``mounts`` to
        append to config.json, parents before children; Docker inspect ``Mounts``)."""
        resolved = self._reserve(container_id, specs, image_config)
        oci: list[dict[str, Any]] = []
        held: list[str] = []
        try:
            for s in sorted(resolved, key=_depth):
                if s.type == VOLUME:
                    data = self._use_volume(container_id, s.source, held)
                    if not s.nocopy:
                        from dockyard.storage.copyup import copy_up

                        copy_up(rootfs, s.target, data)
                    if s.chown:
                        _chown_to_user(data, rootfs, image_config)
                    oci.append({"destination": s.target, "type": "bind", "source": str(data),
                                "options": ["rbind", "rprivate"] + (["ro"] if s.read_only else [])})
                elif s.type == BIND:
                    if s.create_source and not os.path.lexists(s.source):
                        os.makedirs(s.source, mode=0o755, exist_ok=True)  # as at create (Docker)
                    if not os.path.lexists(s.source):
                        raise InvalidArgument(f'invalid mount config for type "bind": bind source path does not '
                                              f"exist: {s.source}")
                    if s.chown:
                        _chown_to_user(Path(s.source), rootfs, image_config)
                    oci.append({"destination": s.target, "type": "bind", "source": s.source,
                                "options": ["bind" if s.nonrecursive else "rbind", s.propagation or "rprivate"]
                                + (["ro"] if s.read_only else [])})
                else:
                    oci.append({"destination": s.target, "type": "tmpfs", "source": "shm" if s.origin == "shm"
                                else "tmpfs", "options": tmpfs_data(s)})
        except BaseException:
            self._drop_mounts(container_id, held)
            raise
        return oci, _inspect_mounts(self, resolved)

    def _use_volume(self, container_id: str, name: str, held: list[str]) -> Path:
        r = self._row(name)
        data = local.data_dir(self.root, name)
        if not data.is_dir():
            local.create_dirs(self.root, name)
        opts = json.loads(r["options"])
        if opts.get("type") or opts.get("device"):
            with self.db.write() as c:
                if not local.is_mounted(data):
                    local.mount_options(opts, data)
                c.execute("INSERT OR IGNORE INTO volume_mounts (volume, container_id) VALUES (?,?)", (name, container_id))
            held.append(name)
        return data

    def _drop_mounts(self, container_id: str, names: list[str] | None = None) -> None:
        """Forget ``container_id`` as a holder of option-volume mounts (all, or ``names``) and unmount
        those nobody else holds."""
        with self.db.write() as c:
            rows = c.execute("SELECT volume FROM volume_mounts WHERE container_id=?", (container_id,)).fetchall()
            for v in [r["volume"] for r in rows if names is None or r["volume"] in names]:
                c.execute("DELETE FROM volume_mounts WHERE volume=? AND container_id=?", (v, container_id))
                if c.execute("SELECT 1 FROM volume_mounts WHERE volume=?", (v,)).fetchone() is None:
                    local.unmount(local.data_dir(self.root, v))

    def detach(self, container_id: str) -> None:
        """The container stopped: unmount option volumes it was the last started user of.  Idempotent."""
        self._drop_mounts(container_id)

    def release(self, container_id: str, remove_anonymous: bool) -> None:
        """The container is removed: it no longer uses its volumes; ``remove_anonymous`` (``--rm``,
        ``rm -v``) removes the anonymous volumes it created unless another container uses them.
        Idempotent."""
        self.detach(container_id)
        with self.db.write() as c:
            anon = [r["volume"] for r in c.execute(
                "SELECT volume FROM container_mounts WHERE container_id=? AND anonymous=1 AND volume IS NOT NULL",
                (container_id,))]
            c.execute("DELETE FROM container_mounts WHERE container_id=?", (container_id,))
        if remove_anonymous:
            for name in anon:
                with contextlib.suppress(NotFound, Conflict):
                    self.remove(name)

    def _inspect_mount(self, s: MountSpec) -> dict[str, Any]:
        if s.type == VOLUME:
            return {"Type": "volume", "Name": s.source, "Source": str(local.data_dir(self.root, s.source)),
                    "Destination": s.target, "Driver": s.driver or "local", "Mode": _volume_mode(s),
                    "RW": not s.read_only, "Propagation": ""}
        if s.type == BIND:
            return {"Type": "bind", "Source": s.source, "Destination": s.target, "Mode": s.mode,
                    "RW": not s.read_only, "Propagation": s.propagation or "rprivate"}
        return {"Type": "tmpfs", "Source": "", "Destination": s.target, "Mode": "", "RW": not s.read_only,
                "Propagation": ""}


def _inspect_mounts(svc: VolumeService, specs: list[MountSpec]) -> list[dict[str, Any]]:
    """Docker lists --tmpfs and --shm-size under HostConfig, not under Mounts."""
    return [svc._inspect_mount(s) for s in specs if s.origin not in ("tmpfs", "shm")]


def _volume_mode(s: MountSpec) -> str:
    """Docker's inspect Mode: named volumes of the local driver default to "z", anonymous ones from
    ``-v /dst`` or the image's VOLUME have none."""
    if s.mode:
        return s.mode
    return "" if s.generated_name and s.origin != "mount" else "z"


def _label_match(labels: dict[str, str], want: str) -> bool:
    k, sep, v = want.partition("=")
    return k in labels and (not sep or labels[k] == v)


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _until(value: str) -> float:
    """Docker's ``until``: a Unix time, an RFC 3339 time, or a Go duration before now."""
    import re

    from dockyard.engine.images import parse_created

    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    ts = parse_created(value)
    if ts:
        return ts
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", value)
    if not parts or "".join(a + b for a, b in parts) != value:
        raise InvalidArgument(f"invalid filter 'until={value}'")
    return time.time() - sum(float(a) * _DURATION_UNITS[b] for a, b in parts)


def _chown_to_user(path: Path, rootfs: Path, image_config: dict[str, Any]) -> None:
    """Podman's ``U``: the mount's source belongs to the container's user (recursively)."""
    user = str((image_config or {}).get("User") or "0")
    uid = gid = 0
    name, _, group = user.partition(":")
    if name.isdigit():
        uid = gid = int(name)
    with contextlib.suppress(OSError):
        for line in (rootfs / "etc" / "passwd").read_text().splitlines():
            f = line.split(":")
            if len(f) >= 4 and (f[0] == name or f[2] == name):
                uid, gid = int(f[2]), int(f[3])
                break
    if group.isdigit():
        gid = int(group)
    for dirpath, dirnames, filenames in os.walk(path):
        os.lchown(dirpath, uid, gid)
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)
