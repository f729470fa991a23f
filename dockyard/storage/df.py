"""Disk usage as Docker's ``GET /system/df`` reports it: images, containers, volumes, build cache.

Read straight from the store's tables, each only if it exists (the sqlite_master check), so this
works whichever areas a store has used; sizes are measured like Docker's (directory.Size for
volumes and containers' writable layers, layer content sizes for images).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dockyard.osutil import pid_alive
from dockyard.storage.volumes import data_dir, disk_size

if TYPE_CHECKING:
    from dockyard.engine import Engine


def _tables(engine: Engine) -> set[str]:
    return {r[0] for r in engine.db.query("SELECT name FROM sqlite_master WHERE type='table'")}


def _images(engine: Engine, tables: set[str], users: dict[str, int]) -> tuple[list[dict[str, Any]], int]:
    if not {"images", "image_layers", "layers"} <= tables:
        return [], 0
    from dockyard.engine.images import parse_created

    db = engine.db
    layer_size = {r["diff_id"]: int(r["size"]) for r in db.query("SELECT diff_id, size FROM layers")}
    per_image: dict[str, set[str]] = {}
    for r in db.query("SELECT image_id, diff_id FROM image_layers"):
        per_image.setdefault(r["image_id"], set()).add(r["diff_id"])
    refcount: dict[str, int] = {}
    for diffs in per_image.values():
        for d in diffs:
            refcount[d] = refcount.get(d, 0) + 1
    tags: dict[str, list[str]] = {}
    for r in db.query("SELECT name, image_id FROM image_tags ORDER BY name") if "image_tags" in tables else []:
        tags.setdefault(r["image_id"], []).append(r["name"])
    digests: dict[str, list[str]] = {}
    if "image_digests" in tables:
        for r in db.query("SELECT image_id, repo, digest FROM image_digests"):
            digests.setdefault(r["image_id"], []).append(f"{r['repo']}@{r['digest']}")
    out = []
    for r in db.query("SELECT id, created, added FROM images"):
        diffs = per_image.get(r["id"], set())
        size = sum(layer_size.get(d, 0) for d in diffs)
        shared = sum(layer_size.get(d, 0) for d in diffs if refcount.get(d, 0) > 1)
        out.append({"Id": r["id"], "ParentId": "", "RepoTags": tags.get(r["id"], []),
                    "RepoDigests": digests.get(r["id"], []),
                    "Created": int(parse_created(r["created"]) or r["added"]), "Size": size,
                    "SharedSize": shared, "Labels": {}, "Containers": users.get(r["id"], 0)})
    layers_size = sum(layer_size.get(d, 0) for d in refcount)
    return out, layers_size


def _containers(engine: Engine, tables: set[str]) -> list[dict[str, Any]]:
    if "containers" not in tables:
        return []
    out = []
    mounts: dict[str, list[str]] = {}
    if "container_mounts" in tables:
        for r in engine.db.query("SELECT container_id, volume FROM container_mounts WHERE volume IS NOT NULL"):
            mounts.setdefault(r["container_id"], []).append(r["volume"])
    for r in engine.db.query("SELECT * FROM containers ORDER BY created DESC"):
        config = json.loads(r["config"] or "{}")
        state = str(r["status"])
        if state in ("running", "paused") and not pid_alive(int(r["pid"])):
            state = "exited"
        upper = engine.roots.root / "containers" / r["id"] / "upper"
        size_rw = disk_size(upper) if upper.is_dir() else 0
        args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        out.append({"Id": r["id"], "Names": ["/" + r["name"]], "Image": r["image_name"], "ImageID": r["image_id"],
                    "Command": " ".join(args), "Created": int(r["created"]), "State": state,
                    "ExitCode": int(r["exit_code"]), "StartedAt": float(r["started_at"]),
                    "FinishedAt": float(r["finished_at"]), "SizeRw": size_rw, "SizeRootFs": size_rw,
                    "Labels": config.get("Labels") or {},
                    "Mounts": [{"Type": "volume", "Name": v} for v in mounts.get(r["id"], [])]})
    return out


def _volumes(engine: Engine, tables: set[str], live: set[str] | None) -> list[dict[str, Any]]:
    if "volumes" not in tables:
        return []
    refs: dict[str, set[str]] = {}
    for r in engine.db.query("SELECT container_id, volume FROM container_mounts WHERE volume IS NOT NULL"):
        if live is None or r["container_id"] in live:
            refs.setdefault(r["volume"], set()).add(r["container_id"])
    out = []
    root = engine.roots.root
    from datetime import UTC, datetime

    for r in engine.db.query("SELECT * FROM volumes ORDER BY name"):
        out.append({"Name": r["name"], "Driver": r["driver"], "Mountpoint": str(data_dir(root, r["name"])),
                    "CreatedAt": datetime.fromtimestamp(r["created"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "Labels": json.loads(r["labels"]) or None, "Scope": "local",
                    "Options": json.loads(r["options"]) or None,
                    "UsageData": {"Size": disk_size(data_dir(root, r["name"])),
                                  "RefCount": len(refs.get(r["name"], ()))}})
    return out


def disk_usage(engine: Engine) -> dict[str, Any]:
    """Docker's /system/df body: LayersSize, Images, Containers, Volumes, BuildCache."""
    tables = _tables(engine)
    containers = _containers(engine, tables)
    users: dict[str, int] = {}
    for c in containers:
        users[c["ImageID"]] = users.get(c["ImageID"], 0) + 1
    images, layers_size = _images(engine, tables, users)
    live = {c["Id"] for c in containers} if "containers" in tables else None
    return {"LayersSize": layers_size, "Images": images, "Containers": containers,
            "Volumes": _volumes(engine, tables, live), "BuildCache": []}


def summary(du: dict[str, Any]) -> list[dict[str, Any]]:
    """The four rows of ``system df``: TotalCount, Active, Size, Reclaimable (bytes and percent)."""
    images, containers, volumes = du["Images"], du["Containers"], du["Volumes"]
    total = int(du["LayersSize"])
    used = sum(i["Size"] - i["SharedSize"] for i in images if i["Containers"])
    c_size = sum(c["SizeRw"] for c in containers)
    c_free = sum(c["SizeRw"] for c in containers if c["State"] not in ("running", "paused", "restarting"))
    v_size = sum(v["UsageData"]["Size"] for v in volumes)
    v_free = sum(v["UsageData"]["Size"] for v in volumes if not v["UsageData"]["RefCount"])
    return [
        {"Type": "Images", "TotalCount": len(images), "Active": sum(1 for i in images if i["Containers"]),
         "Size": total, "Reclaimable": total - used},
        {"Type": "Containers", "TotalCount": len(containers),
         "Active": sum(1 for c in containers if c["State"] in ("running", "paused", "restarting")),
         "Size": c_size, "Reclaimable": c_free},
        {"Type": "Local Volumes", "TotalCount": len(volumes),
         "Active": sum(1 for v in volumes if v["UsageData"]["RefCount"]), "Size": v_size, "Reclaimable": v_free},
        {"Type": "Build Cache", "TotalCount": 0, "Active": 0, "Size": 0, "Reclaimable": 0},
    ]


def _label_ok(labels: dict[str, str], flt: dict[str, list[str]]) -> bool:
    def has(want: str) -> bool:
        k, sep, v = want.partition("=")
        return k in labels and (not sep or labels[k] == v)

    return all(has(w) for w in flt.get("label", [])) and not any(has(w) for w in flt.get("label!", []))


def prune_system(engine: Engine, *, all_images: bool = False, volumes: bool = False,
                 filters: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """``system prune``: stopped containers, unused networks, (with ``volumes``) unused volumes, then
    dangling (or, with ``all_images``, unused) images, each through its own service.  Returns the
    removed names per kind and the bytes reclaimed."""
    from dockyard.errors import Conflict, InvalidArgument, NotFound

    flt = dict(filters or {})
    for k in flt:
        if k not in ("label", "label!", "until"):
            raise InvalidArgument(f"invalid filter '{k}'")
    tables = _tables(engine)
    report: dict[str, Any] = {"Containers": [], "Networks": [], "Volumes": [], "Images": [], "SpaceReclaimed": 0}
    if "containers" in tables:
        from dockyard.engine.volumes import _until

        until = _until(flt["until"][-1]) if flt.get("until") else None
        for r in engine.db.query("SELECT id, config, created FROM containers ORDER BY created"):
            cid = str(r["id"])
            labels = (json.loads(r["config"] or "{}").get("Labels")) or {}
            if not _label_ok(labels, flt) or (until is not None and r["created"] >= until):
                continue
            try:
                if engine.containers.is_running(cid):
                    continue
                upper = engine.roots.root / "containers" / cid / "upper"
                size = disk_size(upper) if upper.is_dir() else 0
                engine.containers.remove(cid)
            except (NotFound, Conflict):
                continue
            report["Containers"].append(cid)
            report["SpaceReclaimed"] += size
    if "networks" in tables:
        if "label!" in flt:
            from dockyard.engine.networks import PREDEFINED

            for n in engine.networks.list({"label": flt["label"]} if flt.get("label") else None):
                if n["Name"] in PREDEFINED or n["Containers"] or not _label_ok(n["Labels"] or {}, flt):
                    continue
                try:
                    report["Networks"].append(engine.networks.remove(n["Id"]))
                except (NotFound, Conflict):
                    continue
        else:
            report["Networks"] = engine.networks.prune({"label": flt["label"]} if flt.get("label") else None)
    if volumes:
        names, space = engine.volumes.prune(flt)
        report["Volumes"] = names
        report["SpaceReclaimed"] += space
    if "images" in tables:
        img_filters = [f"{k}={v}" for k, vals in flt.items() for v in vals]
        entries, freed = engine.images.prune(all_images=all_images, filters=img_filters)
        report["Images"] = entries
        report["SpaceReclaimed"] += freed
    return report
