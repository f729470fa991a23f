"""Filesystem storage of the registry server: content-addressed blobs plus per-repository links.

Layout under the root directory::

    blobs/sha256/<hex>                                  all content: layers, configs, manifests
    _tmp/                                               temp files of small writes (manifests)
    _uploads/<uuid>/data, <uuid>/repo                   upload sessions in progress
    repositories/<name>/_layers/sha256/<hex>            blob visible in <name> (empty file)
    repositories/<name>/_manifests/revisions/sha256/<hex>   manifest in <name>; holds its media type
    repositories/<name>/_manifests/tags/<tag>           holds the digest the tag points at
    repositories/<name>/_referrers/sha256/<subject-hex>/sha256/<hex>   <hex> has that subject
    gc.lock

Everything appears by rename after fsync, content before the link that names it, so a killed server
leaves complete blobs or nothing (an upload's temp file at worst).  Concurrent pushes of one blob
rename identical content over each other; concurrent tag writes are atomic replaces, last one wins.

Every method that changes links runs under a shared flock on ``gc.lock``; the garbage collector
holds it exclusively, so it never sees a manifest half-written and a manifest never lands while
its blobs are being swept.  All methods block on disk: the app calls them on worker threads.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.errors import StoreError
from dockyard.registry.server.errors import RegistryError
from dockyard.store.blobs import BlobStore, atomic_write, fsync_dir

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME_MAX = 255

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
MANIFEST_MAX = 4 << 20  # the reference registry's limit
UPLOAD_MAX_AGE = 7 * 24 * 3600  # abandoned upload sessions are purged after a week, like the reference


def check_name(name: str) -> str:
    if len(name) > NAME_MAX or not NAME_RE.match(name):
        raise RegistryError("NAME_INVALID", f"invalid repository name {name!r}", {"name": name})
    return name


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag):
        raise RegistryError("TAG_INVALID", f"invalid tag {tag!r}", {"tag": tag})
    return tag


def check_digest(digest: str) -> str:
    if not DIGEST_RE.match(digest):
        raise RegistryError("DIGEST_INVALID", f"invalid or unsupported digest {digest!r}", {"digest": digest})
    return digest


def is_digest(ref: str) -> bool:
    return ":" in ref


def _hex(digest: str) -> str:
    return check_digest(digest).split(":", 1)[1]


def _touch(path: Path) -> None:
    """Create an empty marker file durably (its directory entry is what matters)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a"):
        pass
    fsync_dir(path.parent)


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    return True


@dataclass
class Upload:
    """An upload session: bytes appended to ``data``, hashed as they arrive."""

    uuid: str
    repo: str
    dir: Path
    offset: int
    hasher: Any  # hashlib sha256 object covering exactly ``offset`` bytes, or None after a restart

    @property
    def data(self) -> Path:
        return self.dir / "data"


class UploadWriter:
    """Appends to one upload on a worker thread; the event loop hands it chunks in order."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.f = open(upload.data, "ab")

    def write(self, chunk: bytes) -> None:
        self.f.write(chunk)
        if self.upload.hasher is not None:
            self.upload.hasher.update(chunk)
        self.upload.offset += len(chunk)

    def close(self) -> None:
        self.f.close()


class Storage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root / "blobs", tmp=self.root / "_tmp")
        self.uploads_dir = self.root / "_uploads"
        self.repos_dir = self.root / "repositories"
        self.lock_path = self.root / "gc.lock"
        try:
            for d in (self.root, self.blobs.root, self.blobs.tmp, self.uploads_dir, self.repos_dir):
                d.mkdir(parents=True, exist_ok=True)
            self.lock_path.touch(exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot use registry storage {self.root}: {e.strerror} (set "
                             f"storage.filesystem.rootdirectory, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY)") from None
        # Hash state of live sessions lives in memory; after a restart a session is re-hashed from disk.
        self._uploads: dict[str, Upload] = {}

    # ---- locking ----

    @contextlib.contextmanager
    def _locked(self, exclusive: bool = False) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self._locked(exclusive=True)

    # ---- paths ----

    def repo_dir(self, name: str) -> Path:
        return self.repos_dir / check_name(name)

    def _layer_link(self, name: str, digest: str) -> Path:
        return self.repo_dir(name) / "_layers" / "sha256" / _hex(digest)

    def _revision(self, name: str, digest: str) -> Path:
        return self.repo_dir(name) / "_manifests" / "revisions" / "sha256" / _hex(digest)

    def _tag_path(self, name: str, tag: str) -> Path:
        return self.repo_dir(name) / "_manifests" / "tags" / check_tag(tag)

    def _referrer(self, name: str, subject: str, digest: str) -> Path:
        return self.repo_dir(name) / "_referrers" / "sha256" / _hex(subject) / "sha256" / _hex(digest)

    # ---- blobs ----

    def blob_linked(self, name: str, digest: str) -> bool:
        return self._layer_link(name, digest).exists() and self.blobs.has(digest)

    def blob_path(self, name: str, digest: str) -> Path:
        """The file of a blob visible in ``name``; manifests count as blobs of their repository."""
        check_digest(digest)
        if self.blob_linked(name, digest) or (self._revision(name, digest).exists() and self.blobs.has(digest)):
            return self.blobs.path(digest)
        raise RegistryError("BLOB_UNKNOWN", f"blob {digest} unknown to repository {name}", {"digest": digest})

    def delete_blob(self, name: str, digest: str) -> None:
        """Unlink a blob from the repository; its content goes when ``gc`` finds nothing using it."""
        with self._locked():
            if not _unlink(self._layer_link(name, digest)):
                raise RegistryError("BLOB_UNKNOWN", f"blob {digest} unknown to repository {name}",
                                    {"digest": digest})

    def mount_blob(self, name: str, digest: str, source: str | None) -> bool:
        """Link a blob already stored into ``name``; False when the source does not have it."""
        check_name(name)
        with self._locked():
            if source is not None:
                if not self.blob_linked(check_name(source), digest):
                    return False
            elif not self.blobs.has(check_digest(digest)):
                return False
            _touch(self._layer_link(name, digest))
            return True

    # ---- uploads ----

    def new_upload(self, name: str) -> Upload:
        check_name(name)
        uid = str(uuidlib.uuid4())
        d = self.uploads_dir / uid
        d.mkdir()
        (d / "data").touch()
        (d / "repo").write_text(name)
        up = Upload(uid, name, d, 0, hashlib.sha256())
        self._uploads[uid] = up
        return up

    def get_upload(self, name: str, uid: str) -> Upload:
        check_name(name)
        up = self._uploads.get(uid)
        if up is None:
            try:
                uuidlib.UUID(uid)
                d = self.uploads_dir / uid
                repo = (d / "repo").read_text()
                size = (d / "data").stat().st_size
            except (ValueError, OSError):
                raise RegistryError("BLOB_UPLOAD_UNKNOWN", f"upload {uid} unknown", {"uuid": uid}) from None
            up = Upload(uid, repo, d, size, None)
            self._uploads[uid] = up
        if up.repo != name:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", f"upload {uid} unknown to repository {name}",
                                {"uuid": uid})
        return up

    def commit_upload(self, up: Upload, digest: str) -> int:
        """Verify the upload against ``digest`` and move it into the blob store; returns its size."""
        check_digest(digest)
        with open(up.data, "rb+") as f:
            os.fsync(f.fileno())
            size = os.fstat(f.fileno()).st_size
            hasher = up.hasher
            if hasher is None or up.offset != size:
                hasher = hashlib.sha256()
                while b := f.read(1 << 20):
                    hasher.update(b)
        actual = "sha256:" + hasher.hexdigest()
        if actual != digest:
            self.cancel_upload(up)
            raise RegistryError("DIGEST_INVALID", f"digest mismatch: expected {digest}, got {actual}",
                                {"expected": digest, "actual": actual})
        dest = self.blobs.path(digest)
        with self._locked():
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(up.data, 0o644)
            os.replace(up.data, dest)
            fsync_dir(dest.parent)
            _touch(self._layer_link(up.repo, digest))
        self.cancel_upload(up)
        return size

    def cancel_upload(self, up: Upload) -> None:
        self._uploads.pop(up.uuid, None)
        shutil.rmtree(up.dir, ignore_errors=True)

    def purge_uploads(self, max_age: float = UPLOAD_MAX_AGE) -> int:
        cutoff = time.time() - max_age
        n = 0
        for entry in os.scandir(self.uploads_dir):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    self._uploads.pop(entry.name, None)
                    shutil.rmtree(entry.path, ignore_errors=True)
                    n += 1
        self.blobs.clean_tmp()
        return n

    # ---- manifests ----

    def resolve(self, name: str, ref: str) -> str:
        """The digest ``ref`` (a tag or a digest) names in ``name``."""
        if is_digest(ref):
            digest = check_digest(ref)
        else:
            try:
                digest = self._tag_path(name, ref).read_text().strip()
            except FileNotFoundError:
                # MANIFEST_UNKNOWN even when the repository is unknown too, as the reference answers.
                raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: {name}:{ref}",
                                    {"tag": ref}) from None
        if not self._revision(name, digest).exists():
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest unknown: {name}@{digest}", {"digest": digest})
        return digest

    def _name_known(self, name: str) -> None:
        if not self.repo_dir(name).is_dir():
            raise RegistryError("NAME_UNKNOWN", f"repository {name} not known to registry", {"name": name})

    def get_manifest(self, name: str, ref: str) -> tuple[str, str, bytes]:
        """(digest, media type, content) of a manifest."""
        digest = self.resolve(name, ref)
        media_type = self._revision(name, digest).read_text().strip()
        return digest, media_type, self.blobs.read(digest)

    def put_manifest(self, name: str, ref: str, body: bytes, content_type: str) -> tuple[str, str | None]:
        """Store a manifest under a tag or its digest; returns (digest, subject digest or None)."""
        check_name(name)
        if not is_digest(ref):
            check_tag(ref)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if is_digest(ref) and check_digest(ref) != digest:
            raise RegistryError("DIGEST_INVALID", f"manifest digest {digest} does not match {ref}",
                                {"expected": ref, "actual": digest})
        manifest, media_type = parse_manifest(body, content_type)
        subject = manifest.get("subject")
        subject_digest = _descriptor_digest(subject) if subject is not None else None
        with self._locked():
            for d in referenced_blobs(manifest, media_type):
                if not self.blob_linked(name, d):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", f"manifest references unknown blob {d}",
                                        {"digest": d})
            for d in referenced_manifests(manifest, media_type):
                if not (self._revision(name, d).exists() and self.blobs.has(d)):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", f"index references unknown manifest {d}",
                                        {"digest": d})
            self.blobs.put_bytes(body, digest)
            rev = self._revision(name, digest)
            if not rev.exists():
                atomic_write(rev, media_type)
            if subject_digest is not None:
                _touch(self._referrer(name, subject_digest, digest))
            if not is_digest(ref):
                atomic_write(self._tag_path(name, ref), digest)
        return digest, subject_digest

    def delete_manifest(self, name: str, ref: str) -> None:
        """Delete a tag, or a manifest by digest together with every tag pointing at it."""
        with self._locked():
            if not is_digest(ref):
                self.resolve(name, ref)
                _unlink(self._tag_path(name, ref))
                return
            self.remove_revision(name, self.resolve(name, ref))

    def remove_revision(self, name: str, digest: str) -> None:
        """Drop a manifest from a repository with its tags and referrer entry; the caller holds a lock."""
        for tag in self.tags(name):
            with contextlib.suppress(OSError):
                if self._tag_path(name, tag).read_text().strip() == digest:
                    _unlink(self._tag_path(name, tag))
        with contextlib.suppress(RegistryError, OSError, ValueError):
            manifest, _ = parse_manifest(self.blobs.read(digest), self._revision(name, digest).read_text())
            if manifest.get("subject") is not None:
                _unlink(self._referrer(name, _descriptor_digest(manifest["subject"]), digest))
        _unlink(self._revision(name, digest))

    def tag_map(self, name: str) -> dict[str, str]:
        """tag -> digest for every tag of ``name``."""
        out = {}
        for tag in self.tags(name):
            with contextlib.suppress(OSError):
                out[tag] = self._tag_path(name, tag).read_text().strip()
        return out

    def layer_links(self, name: str) -> list[str]:
        d = self.repo_dir(name) / "_layers" / "sha256"
        return sorted("sha256:" + h for h in os.listdir(d)) if d.is_dir() else []

    def unlink_layer(self, name: str, digest: str) -> None:
        _unlink(self._layer_link(name, digest))

    def tags(self, name: str) -> list[str]:
        self._name_known(name)
        d = self.repo_dir(name) / "_manifests" / "tags"
        return sorted(os.listdir(d)) if d.is_dir() else []

    def revisions(self, name: str) -> list[str]:
        d = self.repo_dir(name) / "_manifests" / "revisions" / "sha256"
        return sorted("sha256:" + h for h in os.listdir(d)) if d.is_dir() else []

    def repositories(self, with_manifests: bool = True) -> list[str]:
        """Names of repositories holding at least one manifest (or anything at all), sorted."""
        names = []
        for dirpath, dirnames, _ in os.walk(self.repos_dir):
            if "_manifests" in dirnames or (not with_manifests and "_layers" in dirnames):
                names.append(os.path.relpath(dirpath, self.repos_dir))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(names)

    def referrers(self, name: str, subject: str, artifact_type: str | None) -> list[dict[str, Any]]:
        """Descriptors of the manifests in ``name`` whose subject is ``subject``."""
        check_name(name)
        d = self.repos_dir / name / "_referrers" / "sha256" / _hex(subject) / "sha256"
        out = []
        for h in sorted(os.listdir(d)) if d.is_dir() else []:
            digest = "sha256:" + h
            try:
                media_type = self._revision(name, digest).read_text().strip()
                body = self.blobs.read(digest)
            except (OSError, RegistryError):
                continue  # deleted since it was listed
            manifest = json.loads(body)
            desc: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": len(body)}
            atype = manifest.get("artifactType")
            if atype is None and media_type in IMAGE_TYPES:
                atype = (manifest.get("config") or {}).get("mediaType")
            if atype is not None:
                desc["artifactType"] = atype
            if manifest.get("annotations"):
                desc["annotations"] = manifest["annotations"]
            if artifact_type is None or desc.get("artifactType") == artifact_type:
                out.append(desc)
        return out


def _descriptor_digest(desc: Any) -> str:
    if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
        raise RegistryError("MANIFEST_INVALID", "manifest has a descriptor without a digest")
    d = desc["digest"]
    if not DIGEST_RE.match(d):
        raise RegistryError("MANIFEST_INVALID", f"manifest has an invalid or unsupported digest {d!r}")
    if not isinstance(desc.get("size"), int) or desc["size"] < 0:
        raise RegistryError("MANIFEST_INVALID", f"descriptor {d} has no valid size")
    return d


def parse_manifest(body: bytes, content_type: str) -> tuple[dict[str, Any], str]:
    """Parse and check the structure of a manifest; returns (manifest, media type)."""
    if len(body) > MANIFEST_MAX:
        raise RegistryError("MANIFEST_INVALID", f"manifest larger than {MANIFEST_MAX} bytes", status=413)
    try:
        manifest = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise RegistryError("MANIFEST_INVALID", "manifest is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise RegistryError("MANIFEST_INVALID", "manifest is not a JSON object")
    declared = content_type.split(";", 1)[0].strip()
    inner = manifest.get("mediaType")
    media_type = declared if declared in MANIFEST_TYPES else inner
    if media_type not in MANIFEST_TYPES:
        raise RegistryError("MANIFEST_INVALID", f"unsupported manifest media type {declared or inner!r}")
    if inner is not None and inner != media_type:
        raise RegistryError("MANIFEST_INVALID",
                            f"manifest mediaType {inner!r} does not match Content-Type {media_type!r}")
    if manifest.get("schemaVersion") != 2:
        raise RegistryError("MANIFEST_INVALID", "manifest schemaVersion must be 2")
    if media_type in IMAGE_TYPES:
        _descriptor_digest(manifest.get("config"))
        layers = manifest.get("layers")
        if not isinstance(layers, list):
            raise RegistryError("MANIFEST_INVALID", "image manifest has no layers list")
        for layer in layers:
            _descriptor_digest(layer)
    else:
        children = manifest.get("manifests")
        if not isinstance(children, list):
            raise RegistryError("MANIFEST_INVALID", "index has no manifests list")
        for child in children:
            _descriptor_digest(child)
    if manifest.get("subject") is not None:
        _descriptor_digest(manifest["subject"])
    return manifest, media_type


def referenced_blobs(manifest: dict[str, Any], media_type: str) -> list[str]:
    """Blobs an image manifest needs in the store (foreign layers with URLs live elsewhere)."""
    if media_type not in IMAGE_TYPES:
        return []
    out = [manifest["config"]["digest"]]
    out += [layer["digest"] for layer in manifest["layers"] if not layer.get("urls")]
    return out


def referenced_manifests(manifest: dict[str, Any], media_type: str) -> list[str]:
    if media_type not in INDEX_TYPES:
        return []
    return [m["digest"] for m in manifest["manifests"]]
