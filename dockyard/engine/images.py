"""The local image store: commit, look up, list, tag, remove, archive and bootstrap images.

Content (manifests, configs, layer blobs) lives in ``engine.blobs``; unpacked layers in
``ROOT/layers/<diff_id hex>``; rows in the ``images``/``image_tags``/``image_layers``/``layers``
tables.  Every change runs under the store lock and writes content before the rows naming it;
a failed commit removes the content it added, so an error never leaves half an image behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple, cast

from dockyard.errors import Conflict, InvalidArgument, NotFound, StoreError

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.image.archive import ArchiveImage, SaveImage
    from dockyard.image.layers import LayerInfo
    from dockyard.image.manifest import Descriptor, Manifest
    from dockyard.image.reference import Reference

def _log() -> Any:
    # logging, tempfile and hashlib (through digest_of) are imported when used: `run` and `ps`
    # look images up and never need them.
    import logging

    return logging.getLogger(__name__)


def _tempfile() -> Any:
    import tempfile

    return tempfile


def _digest_of(data: bytes) -> str:
    from dockyard.image.manifest import digest_of

    return digest_of(data)


_FULL_ID = re.compile(r"^sha256:[0-9a-f]{64}$")
_ID_PREFIX = re.compile(r"^(?:sha256:)?([0-9a-f]{1,64})$")
SAVE_FORMATS = ("docker-archive", "oci-archive", "oci-dir", "docker-dir")


@dataclass
class LayerRecord:
    digest: str  # the blob's digest (compressed form, as pushed)
    size: int  # the blob's size
    media_type: str
    diff_id: str
    chain_id: str
    dir: Path
    content_size: int
    tar_size: int

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class ImageRecord:
    id: str  # config digest
    repo_tags: list[str]  # fully qualified name:tag
    repo_digests: list[str]
    manifest_digest: str
    manifest_media_type: str
    manifest_bytes: bytes
    config_bytes: bytes
    layers: list[LayerRecord]
    size: int
    created: str
    added: float
    last_tag_time: float | None
    index_digest: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def layer_dirs(self) -> list[Path]:
        return [lay.dir for lay in self.layers]

    @property
    def short_id(self) -> str:
        return self.id.split(":", 1)[1][:12]

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})


def _ref(s: str) -> Reference:
    from dockyard.image.reference import parse

    return parse(s)


def familiar(name: str) -> str:
    from dockyard.image.reference import parse

    return parse(name).familiar()


def parse_created(s: str | None) -> float:
    """Seconds since the epoch for an RFC 3339 time (nanoseconds and offsets allowed)."""
    if not s:
        return 0.0
    from datetime import datetime

    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", s)
    if not m:
        return 0.0
    base = datetime.fromisoformat(m.group(1) + (m.group(3) or "Z").replace("Z", "+00:00"))
    return base.timestamp() + (float("0" + m.group(2)) if m.group(2) else 0.0)


class StagedLayer(NamedTuple):
    """A layer unpacked into a private temp directory of the layer store, verified against its diff_id,
    not yet recorded: ``add_from_manifest(staged=...)`` moves it into place or removes it."""

    dir: Path
    info: LayerInfo


class _ReportingReader:
    """A blob file whose reads are reported (unpack progress, and a way to stop it)."""

    def __init__(self, f: IO[bytes], on_read: Callable[[int], None]) -> None:
        self.f, self.on_read = f, on_read

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.on_read(len(data))
        return data


class _BlobTee:
    """A blob download read once: each chunk is hashed and written to a temp file of the blob store
    on its way to the unpacker.  ``commit`` verifies size and digest before the blob gets its name
    (the same checks and fsync-then-rename as ``BlobStore.put_stream``); ``close`` removes an
    uncommitted temp file."""

    def __init__(self, blobs: Any, desc: Descriptor, src: IO[bytes]) -> None:
        import hashlib

        self.blobs, self.desc, self.src = blobs, desc, src
        self.h = hashlib.sha256()
        self.n = 0
        blobs.tmp.mkdir(parents=True, exist_ok=True)
        self.fd, self.tmp = _tempfile().mkstemp(dir=blobs.tmp, prefix="blob-")
        self.committed = False

    def read(self, n: int = -1) -> bytes:
        from dockyard.store.blobs import DigestMismatch

        b = self.src.read(n)
        if b:
            self.n += len(b)
            if self.n > self.desc.size:
                raise DigestMismatch(f"blob {self.desc.digest} is larger than its declared size {self.desc.size}")
            self.h.update(b)
            view = memoryview(b)
            while view:
                view = view[os.write(self.fd, view):]
        return b

    def finish(self) -> None:
        """Read what the unpacker left (padding, or all of it after a failure) and verify the blob."""
        from dockyard.image.layers import STREAM_CHUNK
        from dockyard.store.blobs import DigestMismatch

        while self.read(STREAM_CHUNK):
            pass
        if self.n != self.desc.size:
            raise DigestMismatch(f"size mismatch for {self.desc.digest}: expected {self.desc.size} bytes, "
                                 f"got {self.n}")
        digest = "sha256:" + self.h.hexdigest()
        if digest != self.desc.digest:
            raise DigestMismatch(f"digest mismatch: expected {self.desc.digest}, got {digest}")

    def commit(self) -> None:
        from dockyard.store.blobs import fsync_dir

        os.fsync(self.fd)
        os.fchmod(self.fd, 0o644)
        dest = self.blobs.path(self.desc.digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, dest)
        self.committed = True
        fsync_dir(dest.parent)

    def close(self) -> None:
        os.close(self.fd)
        if not self.committed:
            with contextlib.suppress(OSError):
                os.unlink(self.tmp)


class _NewContent:
    """What one commit added, so a failure can take exactly that back."""

    def __init__(self) -> None:
        self.blobs: list[str] = []
        self.dirs: list[Path] = []


class ImageService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.layers_dir = engine.roots.root / "layers"

    # -- plumbing --------------------------------------------------------------------------------
    @property
    def db(self) -> Any:
        return self.engine.db

    @property
    def blobs(self) -> Any:
        return self.engine.blobs

    def layer_dir(self, diff_id: str) -> Path:
        return self.layers_dir / diff_id.split(":", 1)[1]

    def has_layer(self, digest: str) -> bool:
        """Whether a layer blob (by its digest) is already in the blob store, so a pull can skip it."""
        return bool(self.blobs.has(digest))

    def _put_blob(self, data: bytes, new: _NewContent) -> str:
        digest = _digest_of(data)
        if not self.blobs.has(digest):
            self.blobs.put_bytes(data, digest)
            new.blobs.append(digest)
        return digest

    # -- committing ------------------------------------------------------------------------------
    def add_from_manifest(self, manifest_bytes: bytes, media_type: str, config_bytes: bytes,
                          layer_digests_present: list[str] | None = None, tags: list[str] | None = None,
                          index_bytes: bytes | None = None, repo: str | None = None,
                          staged: dict[str, StagedLayer] | None = None) -> ImageRecord:
        """Commit an image whose layer blobs are already in ``engine.blobs`` (a pull).

        Verifies the config against the manifest and each layer against the config's diff_ids while
        unpacking, then records the image and tags it with ``tags`` (any reference form).  ``repo``
        (e.g. ``docker.io/library/alpine``) records a RepoDigest ``repo@<manifest or index digest>``.
        ``staged`` (diff_id -> ``stage_layer`` result) are layers the caller already unpacked; the
        commit takes them over (moves them into place or removes them, also on failure) and leaves
        the dict empty, and unpacks only the layers missing from it.
        """
        from dockyard.image import manifest as mf

        staged = {} if staged is None else staged
        try:
            man = mf.parse_manifest(manifest_bytes, media_type)
            for lay in man.layers:
                if layer_digests_present is not None and lay.digest not in layer_digests_present:
                    raise InvalidArgument(f"layer {lay.digest} was not downloaded")
                if not self.blobs.has(lay.digest):
                    raise NotFound(f"layer blob {lay.digest} is not in the blob store")
        except BaseException:
            self.discard_staged(staged)
            raise
        digests = []
        if repo:
            digests.append(f"{repo}@{_digest_of(index_bytes) if index_bytes else _digest_of(manifest_bytes)}")
        return self._commit(manifest_bytes, man.media_type, config_bytes, tags or [], index_bytes, digests,
                            staged=staged)

    def needs_layer(self, diff_id: str) -> bool:
        """Whether the layer store lacks this layer, so an image using it has to unpack it."""
        return not self._layer_present(diff_id)

    def stage_layer(self, desc: Descriptor, diff_id: str, position: int,
                    on_read: Callable[[int], None] | None = None) -> StagedLayer:
        """Unpack one layer blob of the blob store into a private temp directory of the layer store
        and verify it against ``diff_id``; ``position`` (0-based) names the layer in errors.

        Takes no lock and touches no row, so a pull calls it from its download threads as each blob
        completes.  Hand the result to ``add_from_manifest(staged=...)`` or ``discard_staged``; if
        this process dies first, the directory is debris the next writer or prune removes.
        ``on_read(n)`` is called for each chunk read from the blob (progress; raising from it stops
        the unpack and removes what it wrote).
        """
        from dockyard.image.layers import LayerError, stage_layer

        size = self.blobs.size(desc.digest)
        if size != desc.size:
            raise LayerError(f"layer {desc.digest}: blob is {size} bytes, manifest says {desc.size}")
        with self.blobs.open(desc.digest) as f:
            src: IO[bytes] = f if on_read is None else _ReportingReader(f, on_read)  # type: ignore[assignment]
            tmp, info = stage_layer(src, self.layers_dir, diff_id.split(":", 1)[1], expected_diff_id=diff_id,
                                    what=f"layer {position + 1} ({desc.digest[:19]})")
        return StagedLayer(tmp, info)

    def stage_download(self, desc: Descriptor, diff_id: str, position: int, src: IO[bytes]) -> StagedLayer:
        """``stage_layer`` of a layer blob while it downloads from ``src``: one pass stores the blob
        (verified, fsynced, named only if complete and correct) and unpacks it, instead of writing
        the blob then reading it back.  The staged directory is returned only once the blob is in
        the store; a blob that does not match its digest fails as such, even when its damage broke
        the unpacking first."""
        from dockyard.image.layers import LayerError, remove_tree, stage_layer

        tee = _BlobTee(self.blobs, desc, src)
        try:
            try:
                tmp, info = stage_layer(cast(IO[bytes], tee), self.layers_dir, diff_id.split(":", 1)[1], expected_diff_id=diff_id,
                                        what=f"layer {position + 1} ({desc.digest[:19]})")
            except LayerError:
                tee.finish()  # a damaged download is reported as that, not as the tar error it caused
                raise
            try:
                tee.finish()
                tee.commit()
            except BaseException:
                remove_tree(tmp)
                raise
        finally:
            tee.close()
        return StagedLayer(tmp, info)

    @staticmethod
    def discard_staged(staged: dict[str, StagedLayer]) -> None:
        """Remove staged layers nobody will commit (idempotent: the dict is emptied)."""
        from dockyard.image.layers import remove_tree

        for s in staged.values():
            remove_tree(s.dir)
        staged.clear()

    def _commit(self, manifest_bytes: bytes, media_type: str, config_bytes: bytes, tags: list[str],
                index_bytes: bytes | None = None, repo_digests: list[str] | None = None,
                new: _NewContent | None = None, staged: dict[str, StagedLayer] | None = None) -> ImageRecord:
        from dockyard.image import manifest as mf

        staged = {} if staged is None else staged
        new = new or _NewContent()
        try:
            man = mf.parse_manifest(manifest_bytes, media_type)
            config = mf.parse_config(config_bytes)
            image_id = _digest_of(config_bytes)
            if man.config.digest != image_id or man.config.size != len(config_bytes):
                raise InvalidArgument(f"image config does not match its manifest "
                                      f"(manifest says {man.config.digest}, config is {image_id})")
            diff_ids: list[str] = config["rootfs"]["diff_ids"]
            if len(diff_ids) != len(man.layers):
                raise InvalidArgument(f"manifest has {len(man.layers)} layers but the config lists "
                                      f"{len(diff_ids)} diff_ids")
            qualified = [self._tag_name(t) for t in tags]
            for d, s in list(staged.items()):
                if d not in diff_ids or s.info.diff_id != d:
                    self.discard_staged({d: staged.pop(d)})  # not this image's: never install it
            # Unpacking (the slow part) runs without the store lock, into private temp dirs; only
            # moving them into place and writing the rows happens under it.  If a concurrent rmi
            # removed a layer this image shares meanwhile, stage that one too and try again.
            for _attempt in range(3):
                self._drop_vanished(staged)
                for i, (desc, diff_id) in enumerate(zip(man.layers, diff_ids, strict=True)):
                    if diff_id not in staged and not self._layer_present(diff_id):
                        staged[diff_id] = self.stage_layer(desc, diff_id, i)
                with self.db.lock():
                    self._clean_orphans()
                    # Staged long ago (a slow pull), another process may have taken it for debris.
                    self._drop_vanished(staged)
                    if any(d not in staged and not self._layer_present(d) for d in diff_ids):
                        continue
                    self._record(image_id, man, config, manifest_bytes, config_bytes, index_bytes,
                                 qualified, repo_digests or [], staged, new)
                    break
            else:
                raise StoreError("layers of this image kept being removed while it was committed; try again")
        except BaseException:
            self.discard_staged(staged)
            self._discard(new)
            raise
        return self.get(image_id)

    @staticmethod
    def _drop_vanished(staged: dict[str, StagedLayer]) -> None:
        for d in [d for d, s in staged.items() if not s.dir.is_dir()]:
            del staged[d]

    def _layer_present(self, diff_id: str) -> bool:
        return self.db.query_one("SELECT 1 FROM layers WHERE diff_id = ?", (diff_id,)) is not None \
            and self.layer_dir(diff_id).is_dir()

    def _record(self, image_id: str, man: Manifest, config: dict[str, Any], manifest_bytes: bytes,
                config_bytes: bytes, index_bytes: bytes | None, qualified: list[str], repo_digests: list[str],
                staged: dict[str, StagedLayer], new: _NewContent) -> None:
        """Under the store lock: content into place, then the rows naming it."""
        from dockyard.image import manifest as mf
        from dockyard.image.layers import remove_tree

        diff_ids: list[str] = config["rootfs"]["diff_ids"]
        manifest_digest = self._put_blob(manifest_bytes, new)
        self._put_blob(config_bytes, new)
        index_digest = self._put_blob(index_bytes, new) if index_bytes else None
        layer_rows: list[tuple[str, int, int]] = []
        for diff_id, (tmp, info) in list(staged.items()):
            dest = self.layer_dir(diff_id)
            if self._layer_present(diff_id):
                continue  # another writer installed it meanwhile; ours is removed with the rest
            if dest.exists():
                remove_tree(dest)  # unrecorded: debris, never a live layer (we hold the lock)
            os.rename(tmp, dest)
            del staged[diff_id]
            new.dirs.append(dest)
            layer_rows.append((diff_id, info.size, info.tar_size))
        self.discard_staged(staged)
        now = time.time()
        with self.db.write() as c:
            for diff_id, size, tar_size in layer_rows:
                c.execute("INSERT OR REPLACE INTO layers VALUES (?, ?, ?, ?)", (diff_id, size, tar_size, now))
            exists = c.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()
            if not exists:
                sizes = {r["diff_id"]: r["size"] for r in c.execute("SELECT diff_id, size FROM layers")}
                total = sum(sizes[d] for d in dict.fromkeys(diff_ids))
                c.execute("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (image_id, manifest_digest, man.media_type, index_digest,
                           config.get("created"), total, now, now if qualified else None))
                for pos, (desc, diff_id, chain) in enumerate(
                        zip(man.layers, diff_ids, mf.chain_ids(diff_ids), strict=True)):
                    c.execute("INSERT INTO image_layers VALUES (?, ?, ?, ?, ?, ?, ?)",
                              (image_id, pos, diff_id, chain, desc.digest, desc.media_type, desc.size))
            for name in qualified:
                self._set_tag(c, name, image_id, now)
            for rd in repo_digests:
                c.execute("INSERT OR IGNORE INTO image_digests VALUES (?, ?, ?)", (image_id, *rd.split("@", 1)))
        if exists:
            # Known image (same config) reached in another form, e.g. uncompressed layers from a
            # docker-archive: keep the stored form, drop the unreferenced copies.
            self._discard(new)

    def _clean_orphans(self) -> None:
        """Remove what killed writers left: unpack temp dirs and layer dirs no row names.

        Layers are moved into place and recorded together under the store lock, which the caller
        holds, so a layer directory no row names belongs to a dead process.  Temp dirs carry their
        writer's pid (live unpacks run without the lock); temp blobs are age-gated.
        """
        from dockyard.image.layers import clean_stale_temp, remove_tree

        clean_stale_temp(self.layers_dir)
        self.blobs.clean_tmp()
        if not self.layers_dir.is_dir():
            return
        known = {r["diff_id"].split(":", 1)[1] for r in self.db.query("SELECT diff_id FROM layers")}
        for e in os.scandir(self.layers_dir):
            if not e.name.startswith(".") and e.name not in known:
                _log().info("removing unrecorded layer directory %s", e.path)
                remove_tree(e.path)

    def _discard(self, new: _NewContent) -> None:
        from dockyard.image.layers import remove_tree

        with self.db.lock():
            for d in new.dirs:
                row = self.db.query_one("SELECT 1 FROM layers WHERE diff_id = ?", ("sha256:" + d.name,))
                if row is None:
                    with contextlib.suppress(OSError):
                        remove_tree(d)
            for digest in new.blobs:
                if not self._blob_referenced(digest):
                    self.blobs.delete(digest)

    def _blob_referenced(self, digest: str) -> bool:
        q = ("SELECT 1 FROM images WHERE id = ? OR manifest_digest = ? OR index_digest = ? "
             "UNION SELECT 1 FROM image_layers WHERE blob_digest = ?")
        return self.db.query_one(q, (digest, digest, digest, digest)) is not None

    @staticmethod
    def _tag_name(name: str) -> str:
        ref = _ref(name)
        if ref.tag is None:
            raise InvalidArgument(f"cannot tag with a digest reference: {name}")
        return str(ref.without_tag()).split("@", 1)[0] + ":" + ref.tag

    def _set_tag(self, c: sqlite3.Connection, name: str, image_id: str, now: float) -> None:
        c.execute("INSERT OR REPLACE INTO image_tags VALUES (?, ?, ?)", (name, image_id, now))
        c.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (now, image_id))

    # -- lookup ----------------------------------------------------------------------------------
    def _load(self, image_id: str) -> ImageRecord:
        row = self.db.query_one("SELECT * FROM images WHERE id = ?", (image_id,))
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        tags = [r["name"] for r in self.db.query(
            "SELECT name FROM image_tags WHERE image_id = ? ORDER BY added, name", (image_id,))]
        digests = [f"{r['repo']}@{r['digest']}" for r in self.db.query(
            "SELECT repo, digest FROM image_digests WHERE image_id = ? ORDER BY repo", (image_id,))]
        layers = []
        for r in self.db.query(
                "SELECT il.*, l.size AS content_size, l.tar_size FROM image_layers il "
                "JOIN layers l ON l.diff_id = il.diff_id WHERE il.image_id = ? ORDER BY il.position",
                (image_id,)):
            layers.append(LayerRecord(r["blob_digest"], r["blob_size"], r["media_type"], r["diff_id"],
                                      r["chain_id"], self.layer_dir(r["diff_id"]), r["content_size"],
                                      r["tar_size"]))
        manifest_bytes = self.blobs.read(row["manifest_digest"])
        config_bytes = self.blobs.read(image_id)
        return ImageRecord(image_id, tags, digests, row["manifest_digest"], row["manifest_media_type"],
                           manifest_bytes, config_bytes, layers, row["size"], row["created"] or "",
                           row["added"], row["last_tag_time"], row["index_digest"],
                           json.loads(manifest_bytes), json.loads(config_bytes))

    def resolve_id(self, ref_or_id: str) -> str:
        """The image ID ``ref_or_id`` names: a full or short ID, name[:tag] or name@digest."""
        if _FULL_ID.match(ref_or_id):
            if self.db.query_one("SELECT 1 FROM images WHERE id = ?", (ref_or_id,)):
                return ref_or_id
            raise NotFound(f"No such image: {ref_or_id}")
        try:
            ref = _ref(ref_or_id)
        except InvalidArgument:
            ref = None
        if ref is not None:
            found = self._lookup_ref(ref)
            if found:
                return found
        m = _ID_PREFIX.match(ref_or_id)
        if m:
            rows = self.db.query("SELECT id FROM images WHERE id LIKE ?", (f"sha256:{m.group(1)}%",))
            if len(rows) == 1:
                return str(rows[0]["id"])
            if len(rows) > 1:
                raise Conflict(f"short ID {ref_or_id} is ambiguous: it matches {len(rows)} images")
        if ref is None:
            _ref(ref_or_id)  # re-raise the reference format error
        raise NotFound(f"No such image: {ref.familiar() if ref else ref_or_id}")

    def _lookup_ref(self, ref: Reference) -> str | None:
        if ref.digest:
            row = self.db.query_one(
                "SELECT image_id FROM image_digests WHERE repo = ? AND digest = ?", (ref.name, ref.digest))
            if row is None:
                row = self.db.query_one("SELECT id AS image_id FROM images WHERE manifest_digest = ? "
                                        "OR index_digest = ?", (ref.digest, ref.digest))
            return str(row["image_id"]) if row else None
        name = f"{ref.name}:{ref.tag}"
        row = self.db.query_one("SELECT image_id FROM image_tags WHERE name = ?", (name,))
        if row:
            return str(row["image_id"])
        if ref.is_short:
            # Podman-style: a short name matches a local image of any registry, localhost first.
            short = f"{ref.short_name}:{ref.tag}"
            rows = self.db.query("SELECT name, image_id FROM image_tags WHERE name LIKE ? ESCAPE '\\' "
                                 "ORDER BY added DESC", ("%/" + short.replace("_", "\\_").replace("%", "\\%"),))
            rows = [r for r in rows if r["name"].endswith("/" + short)]
            for r in rows:
                if r["name"] == f"localhost/{short}":
                    return str(r["image_id"])
            if rows:
                return str(rows[0]["image_id"])
        return None

    def get(self, ref_or_id: str) -> ImageRecord:
        return self._load(self.resolve_id(ref_or_id))

    def exists(self, ref_or_id: str) -> bool:
        try:
            self.resolve_id(ref_or_id)
            return True
        except NotFound:
            return False

    def all(self) -> list[ImageRecord]:
        return [self._load(r["id"]) for r in self.db.query("SELECT id FROM images ORDER BY added DESC")]

    # -- containers --------------------------------------------------------------------------------
    def _containers_using(self, image_id: str) -> list[tuple[str, bool]]:
        """(container ID, running) of the containers made from this image, running ones first."""
        if not self.db.query_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'containers'"):
            return []
        ids = [str(r["id"]) for r in self.db.query("SELECT id FROM containers WHERE image_id = ?", (image_id,))]
        if not ids:
            return []
        # The containers service knows whether a recorded "running" container still runs.
        states = {c["Id"]: c["State"] for c in self.engine.containers.list_containers(all_=True)}
        users = [(cid, states.get(cid) in ("running", "paused", "restarting")) for cid in ids]
        return sorted(users, key=lambda u: not u[1])

    # -- listing -----------------------------------------------------------------------------------
    def list_images(self, all_images: bool = False, filters: list[str] | None = None,
                    repository: str | None = None) -> list[ImageRecord]:
        """``docker images [REPOSITORY[:TAG]] --filter ...``, newest first.

        As Docker's daemon does, ``reference`` filters and ``repository`` (which joins them) also
        narrow each image's names to the matching ones, and an image none of whose names match is left out.
        """
        filters = filters or []
        preds = self._filters(filters, {"dangling", "label", "reference", "before", "since"})
        images = [img for img in self.all() if all(p(img) for p in preds)]
        patterns = [f.partition("=")[2] for f in filters if f.partition("=")[0] == "reference"]
        if repository is None and not patterns:
            return images

        def wanted(name: str) -> bool:
            return any(_ref_matches(p, name) for p in patterns) or (
                repository is not None and repository_matches(repository, name))

        out = []
        for img in images:
            tags = [t for t in img.repo_tags if wanted(t)]
            digests = [d for d in img.repo_digests if wanted(d)]
            if tags or digests:
                out.append(dataclasses.replace(img, repo_tags=tags, repo_digests=digests))
        return out

    def _filters(self, filters: list[str], allowed: set[str]) -> list[Any]:
        preds: list[Any] = []
        for f in filters:
            key, sep, value = f.partition("=")
            if not sep or key not in allowed:
                raise InvalidArgument(f"invalid filter '{f}'" if sep else f"bad format of filter (expected name=value): {f}")
            if key == "dangling":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(f"invalid filter 'dangling={value}'")
                want = value.lower() in ("true", "1")
                preds.append(lambda img, want=want: (not img.repo_tags) == want)
            elif key == "label":
                preds.append(_label_pred(value))
            elif key == "label!":
                p = _label_pred(value)
                preds.append(lambda img, p=p: not p(img))
            elif key == "reference":
                pass  # narrows names too: list_images applies it
            elif key in ("before", "since"):
                pivot = parse_created(self.get(value).created)
                if key == "before":
                    preds.append(lambda img, t=pivot: parse_created(img.created) < t)
                else:
                    preds.append(lambda img, t=pivot: parse_created(img.created) > t)
            elif key == "until":
                cutoff = _until(value)
                preds.append(lambda img, t=cutoff: parse_created(img.created) < t)
        return preds

    # -- inspect / history ---------------------------------------------------------------------------
    def inspect(self, ref_or_id: str) -> dict[str, Any]:
        img = self.get(ref_or_id)
        cfg = img.config
        cc = dict(cfg.get("config") or {})
        container_config = {
            "Hostname": "", "Domainname": "", "User": cc.get("User", ""), "AttachStdin": False,
            "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
            "StdinOnce": False, "Env": cc.get("Env"), "Cmd": cc.get("Cmd"), "Image": "",
            "Volumes": cc.get("Volumes"), "WorkingDir": cc.get("WorkingDir", ""),
            "Entrypoint": cc.get("Entrypoint"), "OnBuild": cc.get("OnBuild"), "Labels": cc.get("Labels"),
        }
        for k in ("ExposedPorts", "StopSignal", "Healthcheck", "Shell", "ArgsEscaped"):
            if k in cc:
                container_config[k] = cc[k]
        out: dict[str, Any] = {
            "Id": img.id,
            "RepoTags": [familiar(t) for t in img.repo_tags],
            "RepoDigests": [familiar(d) for d in img.repo_digests],
            "Parent": "",
            "Comment": _last_comment(cfg),
            "Created": img.created,
            "DockerVersion": cfg.get("docker_version", ""),
            "Author": cfg.get("author", ""),
            "Config": container_config,
            "Architecture": cfg.get("architecture", ""),
            "Os": cfg.get("os", ""),
            "Size": img.size,
            "VirtualSize": img.size,
            "GraphDriver": {"Name": _driver_name(), "Data": _graph_data(img)},
            "RootFS": {"Type": "layers", "Layers": [lay.diff_id for lay in img.layers]},
            "Metadata": {"LastTagTime": _rfc3339(img.last_tag_time) if img.last_tag_time else "0001-01-01T00:00:00Z"},
            "Digest": img.manifest_digest,
            "ManifestMediaType": img.manifest_media_type,
            "Labels": cc.get("Labels"),
            "NamesHistory": [],
        }
        if cfg.get("variant"):
            out["Variant"] = cfg["variant"]
        return out

    def history(self, ref_or_id: str) -> list[dict[str, Any]]:
        """Docker's history entries, newest first: Id, Created, CreatedBy, Tags, Size, Comment."""
        img = self.get(ref_or_id)
        hist = img.config.get("history") or []
        layers = list(img.layers)
        entries: list[dict[str, Any]] = []
        li = 0
        for h in hist:
            empty = bool(h.get("empty_layer"))
            size = 0
            if not empty and li < len(layers):
                size = layers[li].content_size
                li += 1
            entries.append({"Created": int(parse_created(h.get("created"))),
                            "CreatedBy": h.get("created_by", ""), "Size": size,
                            "Comment": h.get("comment", "")})
        for lay in layers[li:]:  # layers the history does not describe
            entries.append({"Created": int(parse_created(img.created)), "CreatedBy": "", "Size": lay.content_size,
                            "Comment": ""})
        entries.reverse()
        for i, e in enumerate(entries):
            e["Id"] = img.id if i == 0 else "<missing>"
            e["Tags"] = [familiar(t) for t in img.repo_tags] if i == 0 and img.repo_tags else None
        return [{k: e[k] for k in ("Id", "Created", "CreatedBy", "Tags", "Size", "Comment")} for e in entries]

    # -- tag / remove / prune -------------------------------------------------------------------------
    def tag(self, source: str, target: str) -> str:
        image_id = self.resolve_id(source)
        name = self._tag_name(target)
        with self.db.write() as c:
            self._set_tag(c, name, image_id, time.time())
        return name

    def untag(self, image: str, names: list[str]) -> list[str]:
        image_id = self.resolve_id(image)
        out = []
        with self.db.write() as c:
            for n in names:
                name = self._tag_name(n)
                cur = c.execute("DELETE FROM image_tags WHERE name = ? AND image_id = ?", (name, image_id))
                if cur.rowcount == 0:
                    raise NotFound(f"{n}: tag not known for image {image_id[7:19]}")
                out.append(name)
        return out

    def remove(self, ref_or_id: str, force: bool = False) -> list[dict[str, str]]:
        """``docker rmi``: untag a name; delete the image once no name is left.  Returns Docker's
        ``[{"Untagged": ...}, {"Deleted": ...}]`` report."""
        with self.db.lock():
            image_id = self.resolve_id(ref_or_id)
            img = self._load(image_id)
            by_name = not _ID_PREFIX.match(ref_or_id) or any(
                _ref_matches_exact(ref_or_id, t) for t in img.repo_tags)
            users = self._containers_using(image_id)
            report: list[dict[str, str]] = []
            gone_tags: list[str]
            if by_name and "@" in ref_or_id:
                # A digest reference: only it goes (Docker keeps the tags then).
                r = _ref(ref_or_id)
                exact = [d for d in img.repo_digests if d == f"{r.name}@{r.digest}"]
                gone_tags = []
                gone_digests = exact or [d for d in img.repo_digests if d.endswith(f"@{r.digest}")]
            elif by_name:
                # The tag, and with the last tag of its repository that repository's digests (Docker's rule).
                name = self._name_for(ref_or_id, img)
                repo = name.rpartition(":")[0]
                gone_tags = [name]
                last_of_repo = not any(t != name and t.rpartition(":")[0] == repo for t in img.repo_tags)
                gone_digests = [d for d in img.repo_digests if last_of_repo and d.split("@", 1)[0] == repo]
            else:
                gone_tags, gone_digests = list(img.repo_tags), list(img.repo_digests)
            named = len(img.repo_tags) > len(gone_tags) or len(img.repo_digests) > len(gone_digests)
            if users and by_name and not named and not force:
                raise Conflict(f'conflict: unable to remove repository reference "{ref_or_id}" (must force) - '
                               f"container {users[0][0][:12]} is using its referenced image {img.short_id}")
            if users and not by_name:
                # Docker's checks by ID: a running container's image cannot be deleted even by force.
                cid, running = users[0]
                if running or not force:
                    raise Conflict(f"conflict: unable to delete {img.short_id} "
                                   f"({'cannot' if running else 'must'} be forced) - image is being used by "
                                   f"{'running' if running else 'stopped'} container {cid[:12]}")
            if not by_name and len(img.repo_tags) > 1 and not force:
                raise Conflict(f"conflict: unable to delete {img.short_id} (must be forced) - "
                               "image is referenced in multiple repositories")
            with self.db.write() as c:
                for t in gone_tags:
                    c.execute("DELETE FROM image_tags WHERE name = ?", (t,))
                    report.append({"Untagged": familiar(t)})
                for d in gone_digests:
                    c.execute("DELETE FROM image_digests WHERE image_id = ? AND repo = ? AND digest = ?",
                              (image_id, *d.split("@", 1)))
                    report.append({"Untagged": familiar(d)})
                if users or named:
                    # Another name is left; or forced while a container uses it: the names go, the
                    # content stays until the container does (its rootfs is stacked on these layers).
                    return report
                c.execute("DELETE FROM images WHERE id = ?", (image_id,))
            report.append({"Deleted": image_id})
            self._collect(img)
            return report

    def _name_for(self, ref: str, img: ImageRecord) -> str:
        for t in img.repo_tags:
            if _ref_matches_exact(ref, t):
                return t
        with contextlib.suppress(InvalidArgument):
            r = _ref(ref)
            if r.tag:
                want = f"{r.name}:{r.tag}"
                if want in img.repo_tags:
                    return want
                for t in img.repo_tags:
                    if t.endswith(f"/{r.short_name}:{r.tag}"):
                        return t
        return img.repo_tags[0]

    def _collect(self, img: ImageRecord) -> int:
        """Delete the layers and blobs only ``img`` (now gone from the tables) used; bytes freed."""
        from dockyard.image.layers import remove_tree, temp_name

        freed = 0
        for lay in img.layers:
            if self.db.query_one("SELECT 1 FROM image_layers WHERE diff_id = ?", (lay.diff_id,)):
                continue
            with self.db.write() as c:
                c.execute("DELETE FROM layers WHERE diff_id = ?", (lay.diff_id,))
            if lay.dir.exists():
                # Renamed first so a crash mid-delete leaves a temp dir (cleaned later), not half a layer.
                doomed = lay.dir.with_name(temp_name(lay.dir.name) + "deleted")
                os.rename(lay.dir, doomed)
                remove_tree(doomed)
            freed += lay.content_size
        candidates = [img.id, img.manifest_digest, *(lay.digest for lay in img.layers)]
        if img.index_digest:
            candidates.append(img.index_digest)
        for d in dict.fromkeys(candidates):
            if not self._blob_referenced(d):
                self.blobs.delete(d)
        return freed

    def prune(self, all_images: bool = False, filters: list[str] | None = None) -> tuple[list[dict[str, str]], int]:
        preds = self._filters(filters or [], {"label", "label!", "until"})
        report: list[dict[str, str]] = []
        freed = 0
        with self.db.lock():
            self._clean_orphans()
            for img in self.all():
                if img.repo_tags and not all_images:
                    continue
                if self._containers_using(img.id) or not all(p(img) for p in preds):
                    continue
                with self.db.write() as c:
                    for t in img.repo_tags:
                        c.execute("DELETE FROM image_tags WHERE name = ?", (t,))
                        report.append({"Untagged": familiar(t)})
                    c.execute("DELETE FROM images WHERE id = ?", (img.id,))
                report.append({"Deleted": img.id})
                freed += self._collect(img)
            freed += self._sweep_blobs()
        return report, freed

    def _sweep_blobs(self, older_than: float = 3600.0) -> int:
        """Delete blobs no image names (left by pulls or loads that died before their commit).

        Age-gated: a pull downloads blobs before it takes the lock to commit them.
        """
        cutoff = time.time() - older_than
        freed = 0
        for digest in list(self.blobs.digests()):
            try:
                st = self.blobs.path(digest).stat()
            except (OSError, InvalidArgument):
                continue
            if st.st_mtime < cutoff and not self._blob_referenced(digest):
                self.blobs.delete(digest)
                freed += st.st_size
        return freed

    # -- archives ------------------------------------------------------------------------------------
    def _save_items(self, refs: list[str]) -> list[SaveImage]:
        from dockyard.image.archive import SaveImage, SaveLayer

        items: dict[str, SaveImage] = {}
        for r in refs:
            img = self.get(r)
            names: list[str]
            if _ID_PREFIX.match(r) and not any(_ref_matches_exact(r, t) for t in img.repo_tags):
                names = []  # saved by ID: no names, as docker save does
            else:
                names = [self._name_for(r, img)] if img.repo_tags else []
            item = items.get(img.id)
            if item is None:
                item = SaveImage([], [], img.id, img.config_bytes, img.manifest_bytes, img.manifest_media_type,
                                 [SaveLayer(lay.digest, lay.media_type, lay.size, lay.diff_id, lay.tar_size)
                                  for lay in img.layers])
                items[img.id] = item
            for n in names:
                if n not in item.names:
                    item.names.append(n)
                    item.familiar.append(familiar(n))
        return list(items.values())

    def save(self, refs: list[str], fmt: str = "docker-archive", output: str | None = None,
             stream: IO[bytes] | None = None) -> None:
        """Write ``refs`` to ``output`` (a file, or a directory for the -dir formats) or ``stream``."""
        from dockyard.image import archive

        if fmt not in SAVE_FORMATS:
            raise InvalidArgument(f"unsupported save format {fmt!r} (one of {', '.join(SAVE_FORMATS)})")
        if not refs:
            raise InvalidArgument("save needs at least one image")
        items = self._save_items(refs)
        opener = self.blobs.open
        if fmt in ("oci-dir", "docker-dir"):
            if not output:
                raise InvalidArgument(f"--format {fmt} needs an output directory (-o DIR)")
            dest = Path(output)
            if dest.exists() and any(dest.iterdir()):
                raise InvalidArgument(f"output directory {output} is not empty")
            if fmt == "docker-dir":
                if len(items) != 1:
                    raise InvalidArgument("docker-dir holds exactly one image")
                archive.write_docker_dir(items[0], opener, dest)
            else:
                archive.write_oci_dir(items, opener, dest)
            return
        writer = archive.write_docker_archive if fmt == "docker-archive" else archive.write_oci_archive
        if output is None:
            assert stream is not None
            writer(items, opener, stream)
            return
        out = Path(output)
        if not out.absolute().parent.is_dir():
            raise InvalidArgument(f'invalid output path: directory "{out.absolute().parent}" does not exist')
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                writer(items, opener, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def load(self, src: BinaryIO | None = None, path: str | None = None) -> list[str]:
        """Load every image of an archive (docker-archive or OCI, gzip or not) or a layout directory.
        Returns Docker's report lines' subjects: familiar names, or IDs for untagged images."""
        from dockyard.image import archive

        tmp_root = self.engine.roots.tmp
        tmp_root.mkdir(parents=True, exist_ok=True)
        with _tempfile().TemporaryDirectory(dir=tmp_root, prefix="load-") as td:
            if path and os.path.isdir(path):
                found = archive.read_layout(Path(path))
            else:
                if path:
                    try:
                        f: IO[bytes] = open(path, "rb")
                    except FileNotFoundError:
                        raise NotFound(f"open {path}: no such file or directory") from None
                else:
                    assert src is not None
                    f = src
                with f if path else contextlib.nullcontext(f):
                    archive.extract_archive(f, Path(td))
                found = archive.read_layout(Path(td))
            loaded: list[str] = []
            for item in found:
                loaded += self._store_archive_image(item)
        return loaded

    def _store_archive_image(self, item: ArchiveImage) -> list[str]:
        new = _NewContent()
        try:
            with self.db.lock():
                for digest, p in item.blob_files.items():
                    if self.blobs.has(digest):
                        continue
                    with open(p, "rb") as f:
                        self.blobs.put_stream(f, digest, p.stat().st_size)
                    new.blobs.append(digest)
                names = [self._tag_name(n) for n in item.names]
                img = self._commit(item.manifest_bytes, item.media_type, item.config_bytes, names,
                                   item.index_bytes, new=new)
        except BaseException:
            self._discard(new)
            raise
        return [familiar(n) for n in names] if names else [img.id]

    # -- creating images from a root filesystem ---------------------------------------------------------
    def create_from_tar(self, src: IO[bytes], *, tags: list[str], container_config: dict[str, Any],
                        created: float | None = None, created_by: str = "", comment: str = "",
                        platform: dict[str, str] | None = None) -> ImageRecord:
        """One-layer image from a rootfs tar (any compression), stored gzip-compressed."""
        import gzip

        from dockyard.image import manifest as mf
        from dockyard.image.config import config_bytes, new_config
        from dockyard.image.layers import _HashReader, decompressed

        plat = platform or mf.host_platform()
        created = time.time() if created is None else created
        tmp_root = self.engine.roots.tmp
        tmp_root.mkdir(parents=True, exist_ok=True)
        new = _NewContent()
        with _tempfile().TemporaryFile(dir=tmp_root, prefix="layer-") as tmpf:
            reader = _HashReader(decompressed(src), "rootfs tar")
            with gzip.GzipFile(fileobj=tmpf, mode="wb", mtime=0, compresslevel=6) as gz:
                while True:
                    chunk = reader.read(1 << 20)
                    if not chunk:
                        break
                    gz.write(chunk)
            if reader.n == 0:
                raise InvalidArgument("the rootfs tar is empty")
            size = tmpf.tell()
            tmpf.seek(0)
            blob = self.blobs.put_stream(tmpf, None, size)
        if not self._blob_referenced(blob):
            new.blobs.append(blob)
        hist: dict[str, Any] = {"created": _rfc3339(created)}
        if created_by:
            hist["created_by"] = created_by
        if comment:
            hist["comment"] = comment
        cfg = new_config([reader.digest], created=created, os_name=plat["os"], arch=plat["architecture"],
                         variant=plat.get("variant"), container_config=container_config, history=[hist])
        cb = config_bytes(cfg)
        man = mf.build_manifest(mf.Descriptor(mf.OCI_CONFIG, _digest_of(cb), len(cb)),
                                [mf.Descriptor(mf.OCI_LAYER_GZIP, blob, size)])
        return self._commit(man, mf.OCI_MANIFEST, cb, tags, new=new)

    def import_tar(self, src: IO[bytes], ref: str | None = None, changes: list[str] | None = None,
                   message: str = "", platform: str | None = None) -> ImageRecord:
        """``docker import``: a rootfs tarball becomes a one-layer image."""
        from dockyard.image.config import apply_changes
        from dockyard.image.manifest import parse_platform

        cfg = apply_changes({}, changes or [])
        plat = parse_platform(platform)
        if plat and plat["os"] != "linux":
            raise InvalidArgument(f"invalid platform {platform!r}: only linux images can be imported")
        return self.create_from_tar(src, tags=[ref] if ref else [], container_config=cfg,
                                    comment=message or "Imported from -", platform=plat)

    def import_url(self, url: str, ref: str | None = None, changes: list[str] | None = None,
                   message: str = "", platform: str | None = None) -> ImageRecord:
        """``docker import URL``: stream a rootfs tarball over HTTP(S) into a new image."""
        import urllib.error
        import urllib.request

        if not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"unsupported URL {url!r}: only http:// and https:// can be imported")
        try:
            resp = urllib.request.urlopen(url, timeout=60)  # noqa: S310 - scheme checked above
        except urllib.error.HTTPError as e:
            raise NotFound(f"importing {url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise InvalidArgument(f"importing {url}: {reason}") from None
        with resp:
            return self.import_tar(resp, ref, changes, message or f"Imported from {url}", platform)

    def bootstrap(self, what: str) -> ImageRecord:
        """``dockyard image bootstrap busybox|debian[:SUITE]``: a base image built offline."""
        from dockyard.image import bootstrap as bs
        from dockyard.image.config import DEFAULT_PATH

        kind, _, suite = what.partition(":")
        tmp_root = self.engine.roots.tmp
        tmp_root.mkdir(parents=True, exist_ok=True)
        env = [f"PATH={DEFAULT_PATH}"]
        if kind == "busybox":
            if suite not in ("", "latest"):
                raise InvalidArgument("busybox takes no version: it is the host's busybox-static")
            with _tempfile().TemporaryFile(dir=tmp_root, prefix="bootstrap-") as f:
                base = bs.busybox_layer(f)
                f.seek(0)
                return self.create_from_tar(f, tags=[base.name], container_config={"Env": env, "Cmd": base.cmd},
                                            created=base.created, created_by=base.created_by)
        if kind == "debian":
            from dockyard.image.layers import mounts_under, pack_directory, remove_tree, unmount_rootfs

            suite = suite or bs.host_debian_suite()
            self._tag_name(f"localhost/debian:{suite}")  # a bad tag fails now, not after debootstrap
            rootfs = Path(_tempfile().mkdtemp(dir=tmp_root, prefix="debootstrap-"))
            try:
                # Docker Hub's "-slim" tags are minbase already: debian:stable-slim bootstraps "stable"
                # and is tagged as asked, so `run debian:stable-slim` works offline.
                mirror = bs.debootstrap(suite.removesuffix("-slim"), rootfs)
                with _tempfile().TemporaryFile(dir=tmp_root, prefix="bootstrap-") as f:
                    pack_directory(rootfs, f)
                    f.seek(0)
                    return self.create_from_tar(
                        f, tags=[f"localhost/debian:{suite}"],
                        container_config={"Env": env, "Cmd": ["bash"]},
                        created_by=f"dockyard image bootstrap debian:{suite} (debootstrap --variant=minbase "
                                   f"{suite.removesuffix('-slim')} {mirror})")
            finally:
                # debootstrap mounts /proc and /sys inside; never let a removal walk into the host's.
                for mp in mounts_under(rootfs):
                    unmount_rootfs(Path(mp))
                if mounts_under(rootfs):
                    _log().error("not removing %s: something is still mounted inside it", rootfs)
                else:
                    remove_tree(rootfs)
        raise InvalidArgument(f"unknown bootstrap image {what!r}: busybox or debian[:SUITE]")


# -- helpers -----------------------------------------------------------------------------------------
def _rfc3339(ts: float) -> str:
    from dockyard.image.config import rfc3339

    return rfc3339(ts)


def _driver_name() -> str:
    from dockyard.image.layers import storage_driver

    return storage_driver()


def _graph_data(img: ImageRecord) -> dict[str, str]:
    if not img.layers:
        return {}
    dirs = [str(d) for d in reversed(img.layer_dirs)]
    data = {"UpperDir": dirs[0]}
    if len(dirs) > 1:
        data["LowerDir"] = ":".join(dirs[1:])
    return data


def _last_comment(cfg: dict[str, Any]) -> str:
    hist = cfg.get("history") or []
    return str(hist[-1].get("comment", "")) if hist else ""


def _label_pred(value: str) -> Any:
    k, sep, v = value.partition("=")
    if sep:
        return lambda img: img.labels.get(k) == v
    return lambda img: k in img.labels


def _until(value: str) -> float:
    """Docker's ``until``: a Unix timestamp, an RFC 3339 time or date, or a Go duration before now."""
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    if m and any(m.groups()):
        h, mi, se = (float(g) if g else 0.0 for g in m.groups())
        return time.time() - (h * 3600 + mi * 60 + se)
    t = parse_created(value if "T" in value else value + "T00:00:00Z")
    if not t:
        raise InvalidArgument(f"invalid until filter {value!r}: expected a duration (24h), "
                              "a Unix timestamp or an RFC 3339 time")
    return t


def _glob(pattern: str, s: str) -> bool:
    """Go's path.Match: ``*`` and ``?`` do not cross ``/``."""
    rx = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            rx += "[^/]*"
        elif ch == "?":
            rx += "[^/]"
        elif ch == "[":
            j = pattern.find("]", i)
            if j < 0:
                raise InvalidArgument(f"invalid reference filter pattern {pattern!r}")
            rx += pattern[i:j + 1].replace("[^", "[!").replace("[!", "[^")
            i = j
        else:
            rx += re.escape(ch)
        i += 1
    return re.fullmatch(rx, s) is not None


def _split_ref(ref: str) -> tuple[str, str | None]:
    """(name, tag) of ``name:tag``; (name, None) of ``name@digest``."""
    if "@" in ref:
        return ref.split("@", 1)[0], None
    name, _, tag = ref.rpartition(":")
    return name, tag


def _ref_matches(pattern: str, ref: str) -> bool:
    """docker images --filter reference=PATTERN (a name:tag or name@digest), matched against the familiar
    and the full reference and their names (Docker's FamiliarMatch, plus the fully qualified forms)."""
    fam = familiar(ref)
    return any(_glob(pattern, s) for s in (fam, _split_ref(fam)[0], ref, _split_ref(ref)[0]))


def _ref_matches_exact(ref: str, tag: str) -> bool:
    try:
        r = _ref(ref)
    except InvalidArgument:
        return False
    return f"{r.name}:{r.tag}" == tag or (r.is_short and tag.endswith(f"/{r.short_name}:{r.tag}"))


def repository_matches(arg: str, ref: str) -> bool:
    """``docker images REPOSITORY[:TAG]`` against a name:tag or name@digest: the repository (short
    names match any registry, as in Podman), and the tag when one is given (a digest reference has
    none); glob patterns go through the reference filter."""
    if any(c in arg for c in "*?["):
        return _ref_matches(arg, ref)
    try:
        r = _ref(arg)
    except InvalidArgument:
        return False
    name, t = _split_ref(ref)
    explicit_tag = r.tag if (":" in arg.rsplit("/", 1)[-1]) else None
    if explicit_tag and explicit_tag != t:
        return False
    return name == r.name or (r.is_short and name.endswith("/" + str(r.short_name)))
