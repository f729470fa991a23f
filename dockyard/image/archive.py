"""Image archives: docker-archive (``docker save``), OCI image layout (dir or tar), containers/image ``dir``.

Reading never trusts the archive: it is unpacked into a private temp directory accepting only
plain files, directories and in-archive symlinks (old ``docker save`` links duplicate layers), and
every blob is digest-checked when it enters the store.  Writing streams, so ``save`` to stdout needs
no temp space.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from dockyard.errors import InvalidArgument, Unsupported
from dockyard.image import manifest as mf

MAX_INDEX_FILE = mf.MAX_MANIFEST_SIZE


class ArchiveError(InvalidArgument):
    pass


# -- reading -------------------------------------------------------------------------------------------
def extract_archive(src: IO[bytes], dest: Path) -> None:
    """Unpack an image archive (tar, optionally gzip/bzip2/xz) into ``dest``, safely."""
    from dockyard.image.layers import _clean_name, compression_of, decompressed

    head = src.read(4)
    if not head:
        raise ArchiveError("empty input: expected an image archive (tar)")
    from dockyard.image.layers import _Peekable

    raw: IO[bytes] = io.BufferedReader(_Peekable(src, head), 1 << 20)
    stream: IO[bytes] = decompressed(raw) if compression_of(head) else raw
    links: list[tuple[str, str]] = []
    try:
        tf = tarfile.open(fileobj=stream, mode="r|*")  # also understands bzip2/xz
    except tarfile.TarError as e:
        raise ArchiveError(f"not an image archive: {e}") from None
    try:
        with tf:
            for m in tf:
                name = _clean_name(m.name, "archive")
                if name is None:
                    continue
                path = dest / name
                if m.isdir():
                    _safe_mkdirs(dest, name)
                elif m.isreg():
                    _safe_mkdirs(dest, posixpath.dirname(name))
                    src_f = tf.extractfile(m)
                    assert src_f is not None
                    if os.path.lexists(path):
                        os.unlink(path)
                    with open(path, "xb") as out:
                        shutil.copyfileobj(src_f, out, 1 << 20)
                elif m.issym() or m.islnk():
                    links.append((name, m.linkname if m.islnk() else
                                  posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))))
                else:
                    raise ArchiveError(f"archive entry {m.name!r} has an unsupported type (device, fifo...)")
    except (tarfile.TarError, EOFError, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:
            raise
        raise ArchiveError(f"corrupt or truncated archive ({e})") from None
    for name, target in links:
        t = _clean_name(target, "archive")
        if t is None or target.startswith("/"):
            raise ArchiveError(f"archive link {name!r} -> {target!r} points outside the archive")
        tpath = dest / t
        if not tpath.is_file() or tpath.is_symlink():
            raise ArchiveError(f"archive link {name!r} -> {target!r}: target missing from the archive")
        _safe_mkdirs(dest, posixpath.dirname(name))
        os.link(tpath, dest / name)


def _safe_mkdirs(root: Path, rel: str) -> None:
    cur = root
    for comp in [c for c in rel.split("/") if c]:
        cur = cur / comp
        if cur.is_symlink() or (cur.exists() and not cur.is_dir()):
            raise ArchiveError(f"archive path {rel!r} collides with a file")
        cur.mkdir(exist_ok=True)


def _contained(root: Path, p: Path, what: str) -> Path:
    """``p`` itself, if it really is a file inside ``root``: a layout directory handed to ``load``
    must not make dockyard read files elsewhere through symlinks."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(p)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise ArchiveError(f"{what} ({p.name}) points outside the archive")
    return p


def _read_small(path: Path, what: str, limit: int) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ArchiveError(f"archive is missing {what} ({path.name})") from None
    if st.st_size > limit:
        raise ArchiveError(f"{what} in the archive is too large ({st.st_size} bytes, limit {limit})")
    return path.read_bytes()


def _inside(root: Path, rel: str, what: str) -> Path:
    from dockyard.image.layers import _clean_name

    if not isinstance(rel, str):
        raise ArchiveError(f"{what}: expected a path, got {rel!r}")
    clean = _clean_name(rel, "archive", allow_absolute=False)
    if clean is None:
        raise ArchiveError(f"{what}: empty path")
    p = root / clean
    if not p.is_file():
        raise ArchiveError(f"archive is missing {what} ({rel})")
    return _contained(root, p, what)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return "sha256:" + h.hexdigest()


@dataclass
class ArchiveImage:
    """One image found in an archive, ready for the engine to store."""

    names: list[str]
    manifest_bytes: bytes
    media_type: str
    config_bytes: bytes
    blob_files: dict[str, Path] = field(default_factory=dict)  # layer blob digest -> file
    index_bytes: bytes | None = None


def read_layout(root: Path) -> list[ArchiveImage]:
    """Find the images in an unpacked archive or a directory of either kind."""
    if (root / "manifest.json").is_file() and (root / "manifest.json").stat().st_size and \
            _looks_like_docker_archive(root):
        return _read_docker_archive(root)
    if (root / "oci-layout").is_file() or (root / "index.json").is_file():
        return _read_oci_layout(root)
    if (root / "version").is_file() and (root / "manifest.json").is_file():
        return _read_dir_transport(root)
    raise ArchiveError("unrecognized archive: neither a docker-archive (manifest.json) "
                       "nor an OCI image layout (oci-layout, index.json)")


def _looks_like_docker_archive(root: Path) -> bool:
    try:
        doc = json.loads(_read_small(root / "manifest.json", "manifest.json", MAX_INDEX_FILE))
    except ValueError:
        raise ArchiveError("manifest.json in the archive is not valid JSON") from None
    return isinstance(doc, list)


def _layer_media_type(path: Path) -> str:
    from dockyard.image.layers import compression_of

    with open(path, "rb") as f:
        comp = compression_of(f.read(4))
    return {"": mf.OCI_LAYER, "gzip": mf.OCI_LAYER_GZIP, "zstd": mf.OCI_LAYER_ZSTD}[comp]


def _read_docker_archive(root: Path) -> list[ArchiveImage]:
    doc = json.loads(_read_small(_contained(root, root / "manifest.json", "manifest.json"), "manifest.json",
                                 MAX_INDEX_FILE))
    out = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict) or "Config" not in entry or not isinstance(entry.get("Layers"), list):
            raise ArchiveError(f"manifest.json entry {i} lacks Config or Layers")
        cfg_path = _inside(root, entry["Config"], "the image config")
        config_bytes = _read_small(cfg_path, "the image config", mf.MAX_CONFIG_SIZE)
        mf.parse_config(config_bytes)
        layers: list[mf.Descriptor] = []
        files: dict[str, Path] = {}
        for rel in entry["Layers"]:
            p = _inside(root, rel, "a layer")
            digest = sha256_file(p)
            layers.append(mf.Descriptor(_layer_media_type(p), digest, p.stat().st_size))
            files[digest] = p
        config_desc = mf.Descriptor(mf.OCI_CONFIG, mf.digest_of(config_bytes),
                                    len(config_bytes))
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ArchiveError(f"manifest.json entry {i} has invalid RepoTags")
        out.append(ArchiveImage(list(tags), mf.build_manifest(config_desc, layers), mf.OCI_MANIFEST,
                                config_bytes, files))
    if not out:
        raise ArchiveError("manifest.json in the archive lists no images")
    return out


def _blob_path(root: Path, digest: str) -> Path:
    from dockyard.store.blobs import check_digest

    check_digest(digest)
    return root / "blobs" / "sha256" / digest.split(":", 1)[1]


def _read_oci_layout(root: Path) -> list[ArchiveImage]:
    layout = root / "oci-layout"
    if layout.is_file():
        try:
            ver = json.loads(_read_small(layout, "oci-layout", 4096)).get("imageLayoutVersion")
        except (ValueError, AttributeError):
            raise ArchiveError("oci-layout in the archive is not valid JSON") from None
        if ver != mf.OCI_LAYOUT_VERSION:
            raise ArchiveError(f"unsupported OCI layout version {ver!r}")
    index_bytes = _read_small(_contained(root, root / "index.json", "index.json"), "index.json", MAX_INDEX_FILE)
    out = []
    for desc in mf.parse_index(index_bytes):
        name = _name_from_annotations(desc.annotations)
        sub_index: bytes | None = None
        if desc.media_type in mf.INDEX_TYPES:
            sub_index = _verified_small(root, desc, "an image index")
            desc = mf.select_platform(mf.parse_index(sub_index))
        elif desc.media_type not in mf.MANIFEST_TYPES:
            raise ArchiveError(f"unknown media type {desc.media_type!r} in index.json")
        manifest_bytes = _verified_small(root, desc, "a manifest")
        man = mf.parse_manifest(manifest_bytes, desc.media_type)
        config_bytes = _verified_small(root, man.config, "the image config")
        files = {lay.digest: _existing_blob(root, lay.digest) for lay in man.layers}
        out.append(ArchiveImage([name] if name else [], manifest_bytes, man.media_type, config_bytes,
                                files, sub_index))
    if not out:
        raise ArchiveError("index.json in the archive lists no images")
    return out


def _existing_blob(root: Path, digest: str) -> Path:
    p = _blob_path(root, digest)
    if not p.is_file():
        raise ArchiveError(f"archive is missing blob {digest}")
    return _contained(root, p, f"blob {digest}")


def _verified_small(root: Path, desc: mf.Descriptor, what: str) -> bytes:
    limit = mf.MAX_CONFIG_SIZE if "config" in what else mf.MAX_MANIFEST_SIZE
    if desc.size > limit:
        raise ArchiveError(f"{what} {desc.digest} is too large ({desc.size} bytes, limit {limit})")
    data = _read_small(_existing_blob(root, desc.digest), what, limit)
    got = mf.digest_of(data)
    if got != desc.digest:
        raise ArchiveError(f"digest mismatch for {what}: expected {desc.digest}, got {got}")
    if len(data) != desc.size:
        raise ArchiveError(f"size mismatch for {what} {desc.digest}: expected {desc.size}, got {len(data)}")
    return data


def _name_from_annotations(ann: dict[str, str]) -> str | None:
    """The image name an OCI layout entry carries (containerd's full name, else a usable ref.name)."""
    full = ann.get("io.containerd.image.name")
    if full:
        return full
    ref = ann.get("org.opencontainers.image.ref.name")
    # A bare tag ("latest") names no repository; a full reference is kept.
    if ref and ("/" in ref or ":" in ref):
        return ref
    return None


def _read_dir_transport(root: Path) -> list[ArchiveImage]:
    manifest_bytes = _read_small(_contained(root, root / "manifest.json", "manifest.json"), "manifest.json",
                                 mf.MAX_MANIFEST_SIZE)
    mt = mf.detect_media_type(manifest_bytes)
    man = mf.parse_manifest(manifest_bytes, mt)

    def blob(d: str) -> Path:
        p = root / d.split(":", 1)[1]
        if not p.is_file():
            raise ArchiveError(f"directory is missing blob {d}")
        return _contained(root, p, f"blob {d}")

    config_bytes = _read_small(blob(man.config.digest), "the image config", mf.MAX_CONFIG_SIZE)
    return [ArchiveImage([], manifest_bytes, mt, config_bytes, {lay.digest: blob(lay.digest) for lay in man.layers})]


# -- writing -------------------------------------------------------------------------------------------
@dataclass
class SaveLayer:
    blob_digest: str
    media_type: str
    size: int
    diff_id: str
    tar_size: int


@dataclass
class SaveImage:
    names: list[str]  # fully qualified name:tag
    familiar: list[str]  # Docker's short form of the same names
    config_digest: str
    config_bytes: bytes
    manifest_bytes: bytes
    manifest_media_type: str
    layers: list[SaveLayer]


Opener = Callable[[str], BinaryIO]


class _TarOut:
    def __init__(self, out: IO[bytes]) -> None:
        self.tf = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)
        self.seen: set[str] = set()
        self.mtime = int(time.time())

    def dir(self, name: str) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, self.mtime
        self.tf.addfile(ti)

    def file(self, name: str, data: bytes | IO[bytes], size: int | None = None) -> None:
        if name in self.seen:
            return
        self.seen.add(name)
        parent = posixpath.dirname(name)
        if parent:
            parts = parent.split("/")
            for i in range(1, len(parts) + 1):
                self.dir("/".join(parts[:i]))
        ti = tarfile.TarInfo(name)
        ti.mode, ti.mtime = 0o644, self.mtime
        if isinstance(data, bytes):
            ti.size = len(data)
            self.tf.addfile(ti, io.BytesIO(data))
        else:
            assert size is not None
            ti.size = size
            self.tf.addfile(ti, _Exact(data, size))

    def close(self) -> None:
        self.tf.close()


class _Exact:
    """Feeds tarfile exactly ``size`` bytes and fails loudly if the source disagrees."""

    def __init__(self, f: IO[bytes], size: int) -> None:
        self.f, self.left = f, size

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(self.left if n < 0 else min(n, self.left))
        self.left -= len(data)
        if not data and n != 0 and self.left > 0:
            raise Unsupported("a stored layer is shorter than recorded; the store is damaged")
        return data


def _index_entry(desc: dict[str, Any], name: str | None) -> dict[str, Any]:
    if name:
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
        desc["annotations"] = {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}
    return desc


def write_docker_archive(images: list[SaveImage], opener: Opener, out: IO[bytes]) -> None:
    """``docker save`` layout as Docker 25+ writes it: manifest.json + repositories + an OCI layout
    whose layers are uncompressed tars named by their diff_id."""
    from dockyard.image.layers import decompressed

    t = _TarOut(out)
    manifest_json: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for img in images:
        layer_descs = [mf.Descriptor(mf.OCI_LAYER, lay.diff_id, lay.tar_size) for lay in img.layers]
        for lay in img.layers:
            path = f"blobs/sha256/{lay.diff_id.split(':', 1)[1]}"
            if path in t.seen:
                continue
            with opener(lay.blob_digest) as f:
                t.file(path, decompressed(f), lay.tar_size)
        t.file(f"blobs/sha256/{img.config_digest.split(':', 1)[1]}", img.config_bytes)
        config_desc = mf.Descriptor(mf.OCI_CONFIG, img.config_digest, len(img.config_bytes))
        man = mf.build_manifest(config_desc, layer_descs)
        man_digest = mf.digest_of(man)
        t.file(f"blobs/sha256/{man_digest.split(':', 1)[1]}", man)
        manifest_json.append({
            "Config": f"blobs/sha256/{img.config_digest.split(':', 1)[1]}",
            "RepoTags": img.familiar or None,
            "Layers": [f"blobs/sha256/{lay.diff_id.split(':', 1)[1]}" for lay in img.layers],
        })
        base = {"mediaType": mf.OCI_MANIFEST, "digest": man_digest, "size": len(man)}
        for name, fam in zip(img.names, img.familiar, strict=True) if img.names else [(None, None)]:
            index.append(_index_entry(dict(base), name))
            if fam and img.layers:
                repo, _, tag = fam.rpartition(":")
                repositories.setdefault(repo, {})[tag] = img.layers[-1].diff_id.split(":", 1)[1]
    t.file("index.json", json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX,
                                      "manifests": index}).encode())
    t.file("manifest.json", json.dumps(manifest_json).encode())
    t.file("oci-layout", json.dumps({"imageLayoutVersion": mf.OCI_LAYOUT_VERSION}).encode())
    if repositories:
        t.file("repositories", json.dumps(repositories).encode())
    t.close()


def _oci_manifest(img: SaveImage) -> bytes:
    if img.manifest_media_type == mf.OCI_MANIFEST:
        return img.manifest_bytes
    man = mf.parse_manifest(img.manifest_bytes, img.manifest_media_type)
    return mf.build_manifest(mf.Descriptor(mf.OCI_CONFIG, img.config_digest, len(img.config_bytes)), man.layers)


def _oci_entries(images: list[SaveImage], opener: Opener) -> Iterator[tuple[str, bytes | tuple[str, int]]]:
    """(path, bytes or (blob digest, size)) for an OCI image layout holding ``images``."""
    index: list[dict[str, Any]] = []
    yield "oci-layout", json.dumps({"imageLayoutVersion": mf.OCI_LAYOUT_VERSION}).encode()
    for img in images:
        for lay in img.layers:
            yield f"blobs/sha256/{lay.blob_digest.split(':', 1)[1]}", (lay.blob_digest, lay.size)
        yield f"blobs/sha256/{img.config_digest.split(':', 1)[1]}", img.config_bytes
        man = _oci_manifest(img)
        man_digest = mf.digest_of(man)
        yield f"blobs/sha256/{man_digest.split(':', 1)[1]}", man
        base = {"mediaType": mf.OCI_MANIFEST, "digest": man_digest, "size": len(man)}
        for name in img.names or [None]:  # type: ignore[list-item]
            index.append(_index_entry(dict(base), name))
    yield "index.json", json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": index}).encode()


def write_oci_archive(images: list[SaveImage], opener: Opener, out: IO[bytes]) -> None:
    t = _TarOut(out)
    for path, content in _oci_entries(images, opener):
        if isinstance(content, bytes):
            t.file(path, content)
        elif path not in t.seen:
            with opener(content[0]) as f:
                t.file(path, f, content[1])
    t.close()


def write_oci_dir(images: list[SaveImage], opener: Opener, dest: Path) -> None:
    from dockyard.store.blobs import atomic_write

    for path, content in _oci_entries(images, opener):
        p = dest / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            atomic_write(p, content)
        elif not p.exists():
            with opener(content[0]) as f, open(p.with_name(p.name + ".part"), "wb") as o:
                shutil.copyfileobj(f, o, 1 << 20)
            os.replace(p.with_name(p.name + ".part"), p)


def write_docker_dir(img: SaveImage, opener: Opener, dest: Path) -> None:
    """containers/image ``dir:`` transport with a Docker schema2 manifest (podman save --format docker-dir)."""
    from dockyard.store.blobs import atomic_write

    man = mf.parse_manifest(img.manifest_bytes, img.manifest_media_type)
    docker_manifest = mf.build_manifest(mf.Descriptor(mf.DOCKER_CONFIG, img.config_digest,
                                                      len(img.config_bytes)), man.layers, docker=True)
    dest.mkdir(parents=True, exist_ok=True)
    for lay in img.layers:
        p = dest / lay.blob_digest.split(":", 1)[1]
        with opener(lay.blob_digest) as f, open(p.with_name(p.name + ".part"), "wb") as o:
            shutil.copyfileobj(f, o, 1 << 20)
        os.replace(p.with_name(p.name + ".part"), p)
    atomic_write(dest / img.config_digest.split(":", 1)[1], img.config_bytes)
    atomic_write(dest / "manifest.json", docker_manifest)
    atomic_write(dest / "version", "Directory Transport Version: 1.1\n")
