"""ImageService as pull and containers use it: Docker schema2 commits, shared layers, lookups, stacking."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import pytest

from dockyard.engine import Engine
from dockyard.errors import InvalidArgument, NotFound
from dockyard.image import manifest as mf
from dockyard.image.layers import LayerError, mount_rootfs, unmount_rootfs
from tests.conftest import requires_root
from tests.image.layertar import entry, make_tar


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


BASE = make_tar([entry("etc/", "dir"), entry("etc/os", "file", b"base"), entry("etc/old", "file", b"old")])
TOP = make_tar([entry("etc/", "dir"), entry("etc/.wh.old", "file"), entry("app", "file", b"app")])


@pytest.fixture
def engine(dy_root):
    e = Engine(dy_root)
    try:
        yield e
    finally:
        e.close()


def _push_blobs(engine, raws: list[bytes]) -> list[tuple[str, int]]:
    out = []
    for raw in raws:
        gz = gzip.compress(raw, mtime=0)
        out.append((engine.blobs.put_bytes(gz), len(gz)))
    return out


def _docker_image(engine, raws: list[bytes], cmd: list[str], diff_ids: list[str] | None = None):
    blobs = _push_blobs(engine, raws)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": cmd},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids or [_sha(r) for r in raws]},
                         "history": [{"created_by": f"layer {i}"} for i in range(len(raws))]}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
        "config": {"mediaType": mf.DOCKER_CONFIG, "size": len(config), "digest": _sha(config)},
        "layers": [{"mediaType": mf.DOCKER_LAYER_GZIP, "size": s, "digest": d} for d, s in blobs],
    }).encode()
    return manifest, config, [d for d, _ in blobs]


def test_commit_docker_schema2_and_lookups(engine):
    manifest, config, digests = _docker_image(engine, [BASE, TOP], ["/app"])
    assert all(engine.images.has_layer(d) for d in digests)
    rec = engine.images.add_from_manifest(manifest, mf.DOCKER_MANIFEST, config, digests,
                                          tags=["registry.example:5000/team/app:1"],
                                          repo="registry.example:5000/team/app")
    assert rec.id == _sha(config)
    assert rec.repo_tags == ["registry.example:5000/team/app:1"]
    assert rec.repo_digests == [f"registry.example:5000/team/app@{_sha(manifest)}"]
    assert [lay.descriptor() for lay in rec.layers] == json.loads(manifest)["layers"]
    assert rec.config["config"]["Cmd"] == ["/app"]
    assert [d.name for d in rec.layer_dirs] == [_sha(BASE)[7:], _sha(TOP)[7:]]
    assert rec.layers[1].chain_id == mf.chain_ids([_sha(BASE), _sha(TOP)])[1]
    for ref in ("registry.example:5000/team/app:1", f"registry.example:5000/team/app@{_sha(manifest)}",
                rec.id, rec.id[7:19], rec.id[7:11]):
        assert engine.images.get(ref).id == rec.id, ref
    # Short names match local images of any registry (Podman), but only on whole path components.
    assert engine.images.get("team/app:1").id == rec.id
    assert engine.images.get("app:1").id == rec.id
    for other in ("eam/app:1", "team/app:2", "pp:1"):
        with pytest.raises(NotFound, match="No such image"):
            engine.images.get(other)
    info = engine.images.inspect(rec.id)
    assert info["RepoDigests"] == [f"registry.example:5000/team/app@{_sha(manifest)}"]
    hist = engine.images.history(rec.id)
    assert [h["CreatedBy"] for h in hist] == ["layer 1", "layer 0"]
    assert hist[0]["Size"] == 3 and hist[1]["Size"] == 7


def test_shared_layers_are_unpacked_once_and_kept_while_used(engine):
    m1, c1, d1 = _docker_image(engine, [BASE], ["one"])
    one = engine.images.add_from_manifest(m1, mf.DOCKER_MANIFEST, c1, d1, tags=["one"])
    base_dir = one.layer_dirs[0]
    marker = os.stat(base_dir).st_ino
    m2, c2, d2 = _docker_image(engine, [BASE, TOP], ["two"])
    two = engine.images.add_from_manifest(m2, mf.DOCKER_MANIFEST, c2, d2, tags=["two"])
    assert two.layer_dirs[0] == base_dir and os.stat(base_dir).st_ino == marker
    engine.images.remove("one")
    assert base_dir.is_dir() and engine.images.has_layer(d1[0])
    engine.images.remove("two")
    assert not base_dir.exists() and not engine.images.has_layer(d1[0])
    assert list(engine.images.layers_dir.iterdir()) == []


def test_failed_commit_removes_what_it_added(engine):
    before_blobs = set(engine.blobs.digests())
    manifest, config, digests = _docker_image(engine, [BASE, TOP], ["x"],
                                              diff_ids=[_sha(BASE), "sha256:" + "9" * 64])
    layer_blobs = set(digests)
    with pytest.raises(LayerError, match="does not match the image config"):
        engine.images.add_from_manifest(manifest, mf.DOCKER_MANIFEST, config, digests, tags=["x"])
    # The pull's layer blobs are the caller's; the manifest, config and unpacked layers are gone.
    assert set(engine.blobs.digests()) == before_blobs | layer_blobs
    assert [p.name for p in engine.images.layers_dir.iterdir()] == []
    assert engine.db.query("SELECT * FROM images") == []
    with pytest.raises(InvalidArgument, match="does not match its manifest"):
        engine.images.add_from_manifest(manifest, mf.DOCKER_MANIFEST, config + b" ", digests)
    missing = json.loads(manifest)
    missing["layers"][0]["digest"] = "sha256:" + "8" * 64
    with pytest.raises(NotFound, match="not in the blob store"):
        engine.images.add_from_manifest(json.dumps(missing).encode(), mf.DOCKER_MANIFEST, config)
    with pytest.raises(InvalidArgument, match="unknown manifest media type"):
        engine.images.add_from_manifest(b'{"schemaVersion":2,"mediaType":"application/x-nope"}',
                                        "application/x-nope", config)


def test_staged_layers_are_taken_over_by_the_commit(engine):
    """A pull stages layers as their blobs arrive; the commit moves exactly those into place (no second
    unpack), never installs one the image does not name, and a failed commit leaves none behind."""
    manifest, config, digests = _docker_image(engine, [BASE, TOP], ["/app"])
    descs = mf.parse_manifest(manifest, mf.DOCKER_MANIFEST).layers
    staged = {_sha(BASE): engine.images.stage_layer(descs[0], _sha(BASE), 0)}
    inode = os.stat(staged[_sha(BASE)].dir).st_ino
    assert staged[_sha(BASE)].dir.name.startswith(".tmp-")
    other = engine.blobs.put_bytes(gzip.compress(make_tar([entry("x", "file", b"x")]), mtime=0))
    foreign = engine.images.stage_layer(mf.Descriptor(mf.DOCKER_LAYER_GZIP, other, engine.blobs.size(other)),
                                        _sha(make_tar([entry("x", "file", b"x")])), 0)
    staged[foreign.info.diff_id] = foreign
    assert engine.images.needs_layer(_sha(BASE)) and engine.images.needs_layer(_sha(TOP))
    rec = engine.images.add_from_manifest(manifest, mf.DOCKER_MANIFEST, config, tags=["staged:1"], staged=staged)
    assert staged == {}
    assert os.stat(rec.layer_dirs[0]).st_ino == inode  # moved into place, not unpacked again
    assert sorted(p.name for p in engine.images.layers_dir.iterdir()) == sorted(
        [_sha(BASE)[7:], _sha(TOP)[7:]])  # TOP unpacked by the commit; the foreign one removed
    assert not engine.images.needs_layer(_sha(BASE))

    # A staged layer that does not match its diff_id fails at staging; a failed commit removes the rest.
    m2, c2, _ = _docker_image(engine, [TOP, BASE], ["x"], diff_ids=[_sha(TOP), "sha256:" + "7" * 64])
    d2 = mf.parse_manifest(m2, mf.DOCKER_MANIFEST).layers
    with pytest.raises(LayerError, match="does not match the image config"):
        engine.images.stage_layer(d2[1], "sha256:" + "7" * 64, 1)
    staged = {foreign.info.diff_id: engine.images.stage_layer(
        mf.Descriptor(mf.DOCKER_LAYER_GZIP, other, engine.blobs.size(other)), foreign.info.diff_id, 0)}
    with pytest.raises(LayerError, match="layer 2 .* does not match the image config"):
        engine.images.add_from_manifest(m2, mf.DOCKER_MANIFEST, c2, tags=["bad:1"], staged=staged)
    assert staged == {}
    assert sorted(p.name for p in engine.images.layers_dir.iterdir()) == sorted([_sha(BASE)[7:], _sha(TOP)[7:]])


@requires_root
def test_image_layers_stack_for_a_container(engine, tmp_path):
    manifest, config, digests = _docker_image(engine, [BASE, TOP], ["x"])
    rec = engine.images.add_from_manifest(manifest, mf.DOCKER_MANIFEST, config, digests, tags=["stack"])
    target = tmp_path / "merged"
    mount_rootfs(rec.layer_dirs, tmp_path / "upper", tmp_path / "work", target)
    try:
        assert sorted(os.listdir(target / "etc")) == ["os"]
        assert (target / "app").read_bytes() == b"app"
    finally:
        unmount_rootfs(target)


def test_diff_ids_cannot_name_paths(engine, tmp_path):
    evil = "sha256:" + ("../" * 22)[:64]
    manifest, config, digests = _docker_image(engine, [BASE], ["x"], diff_ids=[evil])
    with pytest.raises(InvalidArgument, match="invalid diff_id"):
        engine.images.add_from_manifest(manifest, mf.DOCKER_MANIFEST, config, digests)
    assert not engine.images.layers_dir.exists() or list(engine.images.layers_dir.iterdir()) == []


def test_history_maps_sizes_past_empty_layers(engine):
    blobs = _push_blobs(engine, [BASE, TOP])
    config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-05-06T07:08:09.123456789Z",
                         "config": {}, "rootfs": {"type": "layers", "diff_ids": [_sha(BASE), _sha(TOP)]},
                         "history": [{"created": "2024-05-06T07:08:00Z", "created_by": "ADD base"},
                                     {"created": "2024-05-06T07:08:05Z", "created_by": "ENV A=1", "empty_layer": True},
                                     {"created": "2024-05-06T07:08:09Z", "created_by": "COPY app",
                                      "comment": "buildkit"}]}).encode()
    manifest = mf.build_manifest(mf.Descriptor(mf.OCI_CONFIG, _sha(config), len(config)),
                                 [mf.Descriptor(mf.OCI_LAYER_GZIP, d, s) for d, s in blobs])
    rec = engine.images.add_from_manifest(manifest, mf.OCI_MANIFEST, config, tags=["hist:1"])
    hist = engine.images.history("hist:1")
    assert [(h["CreatedBy"], h["Size"], h["Comment"]) for h in hist] == [
        ("COPY app", 3, "buildkit"), ("ENV A=1", 0, ""), ("ADD base", 7, "")]
    assert hist[0]["Id"] == rec.id and hist[0]["Tags"] == ["hist:1"]
    assert [h["Id"] for h in hist[1:]] == ["<missing>", "<missing>"]
    assert hist[0]["Created"] == 1714979289
    assert engine.images.inspect("hist:1")["Created"] == "2024-05-06T07:08:09.123456789Z"
