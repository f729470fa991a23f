"""OCI and Docker schema2 manifests, indexes and configs: media types, parsing, validation.

Both families are read; what dockyard writes is OCI unless Docker format is asked for.  Every
document is size-capped and checked before anything is stored, so a hostile registry or archive
gets a one-line error instead of a half-written image.
"""

from __future__ import annotations

import hashlib
import json
import platform as _platform
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument, Unsupported

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = OCI_LAYER + "+gzip"
OCI_LAYER_ZSTD = OCI_LAYER + "+zstd"
OCI_LAYOUT_VERSION = "1.0.0"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)

# layer media type -> compression ("" for none)
LAYER_TYPES: dict[str, str] = {
    OCI_LAYER: "",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    DOCKER_LAYER: "",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER: "gzip",
}

# containerd and containers/image refuse manifests above 4 MiB; a config is allowed a little more
# because of long histories.
MAX_MANIFEST_SIZE = 4 << 20
MAX_CONFIG_SIZE = 8 << 20


@dataclass
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = self.annotations
        if self.platform:
            d["platform"] = self.platform
        return d


@dataclass
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str] = field(default_factory=dict)


def _load_json(data: bytes, what: str, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise InvalidArgument(f"{what} is too large ({len(data)} bytes, limit {limit})")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return doc


def _descriptor(d: Any, what: str) -> Descriptor:
    from dockyard.store.blobs import check_digest

    if not isinstance(d, dict):
        raise InvalidArgument(f"{what}: descriptor is not an object")
    mt, digest, size = d.get("mediaType"), d.get("digest"), d.get("size")
    if not isinstance(mt, str) or not isinstance(digest, str):
        raise InvalidArgument(f"{what}: descriptor lacks mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{what}: descriptor {digest} has an invalid size {size!r}")
    try:
        check_digest(digest)
    except InvalidArgument:
        raise InvalidArgument(f"{what}: unsupported or malformed digest {digest!r}") from None
    ann = d.get("annotations") or {}
    plat = d.get("platform")
    return Descriptor(mt, digest, size, dict(ann) if isinstance(ann, dict) else {},
                      plat if isinstance(plat, dict) else None)


def detect_media_type(data: bytes, declared: str | None = None) -> str:
    """The media type of a manifest or index document (the declared one wins when it is known)."""
    if declared and declared in MANIFEST_TYPES + INDEX_TYPES:
        return declared
    doc = _load_json(data, "manifest", MAX_MANIFEST_SIZE)
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        if mt not in MANIFEST_TYPES + INDEX_TYPES:
            raise InvalidArgument(f"unknown manifest media type {mt!r}")
        return mt
    if doc.get("schemaVersion") == 1:
        raise Unsupported("Docker schema1 manifests are not supported")
    if "manifests" in doc:
        return OCI_INDEX
    if "layers" in doc:
        return OCI_MANIFEST
    raise InvalidArgument("document is neither an image manifest nor an index")


def parse_manifest(data: bytes, media_type: str | None = None) -> Manifest:
    doc = _load_json(data, "manifest", MAX_MANIFEST_SIZE)
    mt = doc.get("mediaType") or media_type or OCI_MANIFEST
    if media_type and doc.get("mediaType") and doc["mediaType"] != media_type:
        raise InvalidArgument(f"manifest declares media type {doc['mediaType']!r} "
                              f"but was served as {media_type!r}")
    if mt in INDEX_TYPES:
        raise InvalidArgument("expected an image manifest, got an index")
    if mt not in MANIFEST_TYPES:
        raise InvalidArgument(f"unknown manifest media type {mt!r}")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(f"unsupported manifest schemaVersion {doc.get('schemaVersion')!r}")
    config = _descriptor(doc.get("config"), "manifest config")
    if config.media_type not in CONFIG_TYPES:
        raise InvalidArgument(f"unknown config media type {config.media_type!r}: not a container image")
    if config.size > MAX_CONFIG_SIZE:
        raise InvalidArgument(f"image config is too large ({config.size} bytes)")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidArgument("manifest has no layers list")
    layers = [_descriptor(x, f"manifest layer {i}") for i, x in enumerate(raw_layers)]
    for lay in layers:
        if lay.media_type not in LAYER_TYPES:
            raise InvalidArgument(f"unknown layer media type {lay.media_type!r} ({lay.digest})")
    ann = doc.get("annotations") or {}
    return Manifest(mt, config, layers, dict(ann) if isinstance(ann, dict) else {})


def parse_index(data: bytes) -> list[Descriptor]:
    doc = _load_json(data, "image index", MAX_MANIFEST_SIZE)
    mt = doc.get("mediaType")
    if mt is not None and mt not in INDEX_TYPES:
        raise InvalidArgument(f"expected an image index, got media type {mt!r}")
    raw = doc.get("manifests")
    if not isinstance(raw, list):
        raise InvalidArgument("image index has no manifests list")
    return [_descriptor(x, f"index entry {i}") for i, x in enumerate(raw)]


def digest_of(data: bytes) -> str:
    """The content digest of a document or blob held in memory."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def parse_platform(spec: str | None) -> dict[str, str] | None:
    """``os/arch[/variant]`` (``--platform``) as an OCI platform; None for none given."""
    if not spec:
        return None
    parts = spec.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"invalid platform {spec!r}: expected os/arch[/variant]")
    p = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        p["variant"] = parts[2]
    return p


def host_platform() -> dict[str, str]:
    from dockyard import host

    p = {"os": "linux", "architecture": host.go_arch()}
    m = _platform.machine()
    if m == "aarch64":
        p["variant"] = "v8"
    elif m == "armv7l":
        p["variant"] = "v7"
    return p


def select_platform(entries: list[Descriptor], want: dict[str, str] | None = None) -> Descriptor:
    """The index entry for ``want`` (default: this host), as docker pull picks it."""
    want = want or host_platform()
    candidates = [e for e in entries if e.media_type in MANIFEST_TYPES]
    for e in candidates:
        p = e.platform or {}
        if p.get("os") != want.get("os") or p.get("architecture") != want.get("architecture"):
            continue
        if want.get("variant") and p.get("variant") and p["variant"] != want["variant"]:
            continue
        return e
    # An index without platforms (oci-archive of one image) has a single obvious choice.
    if len(candidates) == 1 and not candidates[0].platform:
        return candidates[0]
    plat = "/".join(v for v in (want.get("os"), want.get("architecture"), want.get("variant")) if v)
    raise InvalidArgument(f"no image for platform {plat} in the manifest list")


def parse_config(data: bytes) -> dict[str, Any]:
    doc = _load_json(data, "image config", MAX_CONFIG_SIZE)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" \
            or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidArgument("image config has no rootfs.diff_ids: not a container image config")
    import re

    for d in rootfs["diff_ids"]:
        # Checked strictly: a diff_id names a directory in the layer store.
        if not isinstance(d, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", d):
            raise InvalidArgument(f"image config has an invalid diff_id {d!r}")
    return doc


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainIDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    out: list[str] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            out.append(digest_of(f"{out[-1]} {d}".encode()))
    return out


def to_docker_layer_type(media_type: str) -> str:
    comp = LAYER_TYPES.get(media_type)
    if comp == "gzip":
        return DOCKER_LAYER_GZIP
    if comp == "":
        return DOCKER_LAYER
    raise Unsupported(f"layers of type {media_type} cannot be written in Docker format")


def to_oci_layer_type(media_type: str) -> str:
    comp = LAYER_TYPES.get(media_type)
    if comp is None:
        raise InvalidArgument(f"unknown layer media type {media_type!r}")
    return {"": OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}[comp]


def build_manifest(config: Descriptor, layers: list[Descriptor], docker: bool = False,
                   annotations: dict[str, str] | None = None) -> bytes:
    """Serialize a manifest, converting media types to the asked family."""
    if docker:
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config.size, "digest": config.digest},
            "layers": [{"mediaType": to_docker_layer_type(x.media_type), "size": x.size, "digest": x.digest}
                       for x in layers],
        }
    else:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
            "layers": [{"mediaType": to_oci_layer_type(x.media_type), "digest": x.digest, "size": x.size}
                       for x in layers],
        }
        if annotations:
            doc["annotations"] = annotations
    return json.dumps(doc, separators=(",", ":")).encode()
