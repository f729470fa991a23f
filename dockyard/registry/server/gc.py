"""Garbage collection of the registry's storage: mark every blob a manifest references, sweep the rest.

It runs under the storage's exclusive lock, so a server working on the same root waits for it
instead of landing a manifest whose blobs are being swept (the reference registry instead asks
for the server to be stopped).  A manifest that cannot be read stops the run: with an unknown set
of references nothing can be swept safely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.errors import InvalidArgument, NotFound, StoreError
from dockyard.registry.server.errors import RegistryError
from dockyard.registry.server.storage import IMAGE_TYPES, INDEX_TYPES, Storage, parse_manifest


@dataclass
class GcResult:
    marked: int = 0
    blobs_deleted: list[str] = field(default_factory=list)
    manifests_deleted: list[str] = field(default_factory=list)  # "repository@digest"
    bytes_freed: int = 0


def _references(manifest: dict[str, Any], media_type: str) -> list[str]:
    if media_type in IMAGE_TYPES:
        return [manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])]
    if media_type in INDEX_TYPES:
        return [m["digest"] for m in manifest["manifests"]]
    return []


def _kept(storage: Storage, repo: str, manifests: dict[str, tuple[dict[str, Any], str]]) -> set[str]:
    """Manifests reachable from a tag: through index children, and referrers of what is kept."""
    keep = {d for d in storage.tag_map(repo).values() if d in manifests}
    while True:
        grown = set(keep)
        for d, (manifest, media_type) in manifests.items():
            if d in keep:
                grown.update(c for c in _references(manifest, media_type) if c in manifests)
            subject = manifest.get("subject")
            if subject is not None and subject.get("digest") in keep:
                grown.add(d)
        if grown == keep:
            return keep
        keep = grown


def collect(root: str | os.PathLike[str], dry_run: bool = False, delete_untagged: bool = False) -> GcResult:
    if not (Path(root) / "blobs").is_dir():
        raise InvalidArgument(f"{root} is not a registry storage root (no blobs directory)")
    storage = Storage(root)
    result = GcResult()
    with storage.exclusive():
        marked: set[str] = set()
        repos = storage.repositories(with_manifests=False)
        for repo in repos:
            manifests: dict[str, tuple[dict[str, Any], str]] = {}
            for digest in storage.revisions(repo):
                try:
                    _, media_type, body = storage.get_manifest(repo, digest)
                    manifests[digest] = parse_manifest(body, media_type)
                except (OSError, RegistryError) as e:
                    raise StoreError(f"cannot read manifest {repo}@{digest} ({e}); not collecting: "
                                     f"its blobs would be unknown") from None
            keep = _kept(storage, repo, manifests) if delete_untagged else set(manifests)
            for digest in sorted(set(manifests) - keep):
                result.manifests_deleted.append(f"{repo}@{digest}")
                if not dry_run:
                    storage.remove_revision(repo, digest)
            for digest in keep:
                marked.add(digest)
                marked.update(_references(*manifests[digest]))
        result.marked = len(marked)
        for digest in sorted(storage.blobs.digests()):
            if digest in marked:
                continue
            result.blobs_deleted.append(digest)
            try:
                result.bytes_freed += storage.blobs.size(digest)
            except NotFound:
                continue
            if not dry_run:
                storage.blobs.delete(digest)
        if not dry_run:
            swept = set(result.blobs_deleted)
            for repo in repos:
                for digest in storage.layer_links(repo):
                    if digest in swept:
                        storage.unlink_layer(repo, digest)
    return result
