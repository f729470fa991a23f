"""save/load in every format, read and written by the real skopeo and umoci, and hostile archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from tests.image.helpers import bootstrap, dy_binary, inspect, store_state
from tests.image.layertar import entry, make_tar

EMPTY = {"images": [], "layers": [], "blobs": []}


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def oci_archive(layers: list[bytes], *, name: str = "example.com/test/img:1", diff_ids: list[str] | None = None,
                layer_type: str | None = None, tamper=None, manifest_pad: int = 0, compress: str = "gzip",
                platforms: list[str] | None = None) -> bytes:
    """An OCI image layout tar built by hand; ``tamper(files)`` may damage it afterwards.  With
    ``platforms`` (["linux/amd64", ...]) index.json points at a nested index, one manifest each."""
    if compress == "zstd":
        import zstandard

        blobs_ = [zstandard.ZstdCompressor().compress(raw) for raw in layers]
    else:
        blobs_ = [gzip.compress(raw) for raw in layers]
    layer_type = layer_type or f"application/vnd.oci.image.layer.v1.tar+{compress}"
    files = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}

    def add(blob: bytes) -> dict:
        files["blobs/sha256/" + _sha(blob)[7:]] = blob
        return {"digest": _sha(blob), "size": len(blob)}

    entries = []
    for plat in platforms or [None]:
        arch = plat.split("/")[1] if plat else "amd64"
        config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"], "Labels": {"arch": arch}},
                             "rootfs": {"type": "layers",
                                        "diff_ids": diff_ids or [_sha(r) for r in layers]}}).encode()
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **add(config)},
                    "layers": [{"mediaType": layer_type, **add(b)} for b in blobs_]}
        if manifest_pad:
            manifest["annotations"] = {"pad": "x" * manifest_pad}
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", **add(json.dumps(manifest).encode())}
        if plat:
            desc["platform"] = {"os": "linux", "architecture": arch}
        entries.append(desc)
    top = entries[0]
    if platforms:
        inner = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": entries}).encode()
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", **add(inner)}
    top["annotations"] = {"org.opencontainers.image.ref.name": name}
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [top]}).encode()
    if tamper:
        tamper(files)
    return _tar(files)


def _load(dy, data: bytes):
    return dy_binary(dy, "load", input=data, check=False)


def test_docker_archive_roundtrip_stdout_stdin_and_gzip(dy, tmp_path):
    image_id = bootstrap(dy)
    dy("tag", "busybox", "second:2", check=True)
    rc, archive, err = dy_binary(dy, "save", "localhost/busybox", "second:2", input=b"")
    assert rc == 0, err
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        names = tf.getnames()
        manifest = json.load(tf.extractfile("manifest.json"))
        repos = json.load(tf.extractfile("repositories"))
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)
    assert manifest[0]["RepoTags"] == ["localhost/busybox:latest", "second:2"]
    assert set(repos) == {"localhost/busybox", "second"}
    # The layer inside is the uncompressed tar named by its diff_id, as Docker writes it.
    diff_id = inspect(dy, "busybox")["RootFS"]["Layers"][0]
    assert manifest[0]["Layers"] == [f"blobs/sha256/{diff_id[7:]}"]

    dy("rmi", "-f", image_id, check=True)
    assert store_state(dy.root) == EMPTY
    rc, out, err = dy_binary(dy, "load", input=gzip.compress(archive))
    assert out.decode().splitlines() == ["Loaded image: localhost/busybox:latest", "Loaded image: second:2"]
    assert inspect(dy, "second:2")["Id"] == image_id

    out_file = tmp_path / "bb.tar"
    dy("image", "save", "-o", str(out_file), "busybox", check=True)
    dy("rmi", "-f", image_id, check=True)
    p = dy("load", "-i", str(out_file), check=True)
    assert p.stdout.strip() == "Loaded image: localhost/busybox:latest"
    assert inspect(dy, "localhost/busybox")["Id"] == image_id
    p = dy("load", "-q", "-i", str(out_file), check=True)
    assert p.stdout == ""


def test_save_by_id_has_no_names_and_loads_untagged(dy, tmp_path):
    image_id = bootstrap(dy)
    out = tmp_path / "id.tar"
    dy("save", "-o", str(out), image_id[7:19], check=True)
    dy("rmi", "busybox", check=True)
    p = dy("load", "-i", str(out), check=True)
    assert p.stdout.strip() == f"Loaded image ID: {image_id}"
    assert inspect(dy, image_id)["RepoTags"] == []


@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir", "docker-dir"])
def test_other_formats_roundtrip(dy, tmp_path, fmt):
    image_id = bootstrap(dy)
    dest = tmp_path / "out"
    dy("save", "--format", fmt, "-o", str(dest), "busybox", check=True)
    if fmt == "docker-dir":
        man = json.loads((dest / "manifest.json").read_text())
        assert man["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        assert (dest / "version").read_text() == "Directory Transport Version: 1.1\n"
    else:
        index = json.loads((dest / "index.json").read_bytes() if fmt == "oci-dir" else
                           tarfile.open(dest).extractfile("index.json").read())
        assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "latest"
    dy("rmi", "busybox", check=True)
    p = dy("load", "-i", str(dest), check=True)
    if fmt == "docker-dir":
        assert p.stdout.strip() == f"Loaded image ID: {image_id}"
    else:
        assert p.stdout.strip() == "Loaded image: localhost/busybox:latest"
    assert inspect(dy, image_id)["Config"]["Cmd"] == ["sh"]


def test_save_refusals(dy, tmp_path):
    bootstrap(dy)
    p = dy("save", "nosuch")
    assert p.returncode == 125 and "No such image: nosuch" in p.stderr
    p = dy("save", "--format", "oci-dir", "busybox")
    assert p.returncode == 125 and "needs an output directory" in p.stderr
    p = dy("save", "--format", "tarball", "-o", str(tmp_path / "x"), "busybox")
    assert p.returncode == 125
    assert not (tmp_path / "x").exists()
    p = dy("save", "-o", str(tmp_path / "nodir" / "x.tar"), "busybox")
    assert p.returncode == 125 and "invalid output path" in p.stderr and "does not exist" in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["root"]  # only the store: no stray temp file
    p = dy("load", "-i", str(tmp_path / "missing.tar"))
    assert p.returncode == 125 and "no such file or directory" in p.stderr
    (tmp_path / "ro").mkdir(mode=0o555)
    if os.geteuid() != 0:
        p = dy("save", "-o", str(tmp_path / "ro" / "x.tar"), "busybox")
        assert p.returncode == 125 and "permission denied" in p.stderr


@pytest.mark.peer("skopeo")
def test_skopeo_reads_what_save_writes(dy, tmp_path):
    image_id = bootstrap(dy)
    diff_id = inspect(dy, "busybox")["RootFS"]["Layers"][0]
    da, oa, dd = tmp_path / "d.tar", tmp_path / "o.tar", tmp_path / "dir"
    dy("save", "-o", str(da), "busybox", check=True)
    dy("save", "--format", "oci-archive", "-o", str(oa), "busybox", check=True)
    dy("save", "--format", "docker-dir", "-o", str(dd), "busybox", check=True)
    for src in (f"docker-archive:{da}", f"oci-archive:{oa}", f"dir:{dd}"):
        p = subprocess.run(["skopeo", "inspect", "--config", src], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, (src, p.stderr)
        cfg = json.loads(p.stdout)
        assert cfg["rootfs"]["diff_ids"] == [diff_id], src
        assert cfg["config"]["Cmd"] == ["sh"]
    # A full copy re-verifies every blob.
    p = subprocess.run(["skopeo", "copy", f"docker-archive:{da}", f"oci:{tmp_path / 'copy'}:x"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    p = subprocess.run(["skopeo", "inspect", "--config", f"oci:{tmp_path / 'copy'}:x"], capture_output=True,
                       text=True)
    assert json.loads(p.stdout)["rootfs"]["diff_ids"] == [diff_id]
    assert image_id.startswith("sha256:")


@pytest.mark.peer("umoci")
def test_umoci_unpacks_saved_oci_layout(dy, tmp_path):
    bootstrap(dy)
    layout = tmp_path / "layout"
    dy("save", "--format", "oci-dir", "-o", str(layout), "busybox", check=True)
    bundle = tmp_path / "bundle"
    p = subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert os.path.isfile(bundle / "rootfs/bin/busybox")
    assert os.readlink(bundle / "rootfs/bin/ls") == "/bin/busybox"
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"]


@pytest.mark.peer("skopeo")
@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_load_reads_what_skopeo_writes(dy, tmp_path, busybox_rootfs, transport):
    # A source image made without dockyard: an OCI layout holding the busybox rootfs.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for child in sorted(os.listdir(busybox_rootfs)):
            tf.add(busybox_rootfs / child, arcname=child)
    src = tmp_path / "src.tar"
    src.write_bytes(oci_archive([raw.getvalue()], name="latest"))
    out = tmp_path / "skopeo.tar"
    dest = f"{transport}:{out}:example.com/skopeo/img:3"
    p = subprocess.run(["skopeo", "copy", f"oci-archive:{src}:latest", dest],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    p = dy("load", "-i", str(out), check=True)
    assert p.stdout.strip() == "Loaded image: example.com/skopeo/img:3"
    info = inspect(dy, "example.com/skopeo/img:3")
    assert info["RootFS"]["Layers"] == [_sha(raw.getvalue())]
    assert os.path.isfile(os.path.join(info["GraphDriver"]["Data"]["UpperDir"], "bin/busybox"))


# -- hostile and damaged input -----------------------------------------------------------------------
def _flip_layer(files):
    for k, v in files.items():
        if k.startswith("blobs/") and v[:2] == b"\x1f\x8b":
            files[k] = v[:-20] + bytes(20)


def _bad_blob_name(files):
    for k in list(files):
        if k.startswith("blobs/") and files[k][:2] == b"\x1f\x8b":
            files["blobs/sha256/" + "0" * 64] = files.pop(k)


GOOD_LAYER = make_tar([entry("etc/", "dir"), entry("etc/hello", "file", b"hi")])


@pytest.mark.parametrize("archive, message", [
    (lambda: oci_archive([GOOD_LAYER], tamper=_flip_layer), "digest mismatch"),
    (lambda: oci_archive([GOOD_LAYER], tamper=_bad_blob_name), "missing blob"),
    (lambda: oci_archive([GOOD_LAYER], diff_ids=["sha256:" + "1" * 64]), "does not match the image config"),
    (lambda: oci_archive([make_tar([entry("../../evil", "file", b"x")])]), "contains '..'"),
    (lambda: oci_archive([make_tar([entry("/etc/shadow", "file", b"x")])]), "absolute path"),
    (lambda: oci_archive([make_tar([entry("l", "sym", link="/"), entry("l/etc/x", "file", b"x")])]),
     "goes through the symlink"),
    (lambda: oci_archive([make_tar([entry("dev/kmem", "chr", devmajor=1, devminor=2)])]), "device node"),
    (lambda: oci_archive([GOOD_LAYER], layer_type="application/x-unknown"), "unknown layer media type"),
    (lambda: oci_archive([GOOD_LAYER], manifest_pad=5 << 20), "too large"),
    (lambda: oci_archive([GOOD_LAYER])[:3000], "truncated|missing"),
    (lambda: os.urandom(5000), "not an image archive|corrupt"),
    (lambda: b"", "empty input"),
    (lambda: _tar({"hello.txt": b"hi"}), "unrecognized archive"),
])
def test_bad_archives_leave_nothing(dy, archive, message):
    import re

    bootstrap(dy)
    before = store_state(dy.root)
    rc, out, err = _load(dy, archive())
    assert rc == 125, err
    assert re.search(message, err), err
    assert err.startswith("Error: ") and err.count("\n") == 1
    assert store_state(dy.root) == before
    assert os.listdir(dy.root / "tmp") == []


def test_docker_archive_with_wrong_diff_id(dy, tmp_path):
    bootstrap(dy)
    good = tmp_path / "good.tar"
    dy("save", "-o", str(good), "busybox", check=True)
    dy("rmi", "busybox", check=True)
    files = {}
    with tarfile.open(good) as tf:
        for m in tf.getmembers():
            if m.isreg():
                files[m.name] = tf.extractfile(m).read()
    man = json.loads(files["manifest.json"])
    cfg = json.loads(files[man[0]["Config"]])
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "2" * 64]
    cb = json.dumps(cfg).encode()
    files["evil-config.json"] = cb
    man[0]["Config"] = "evil-config.json"
    files["manifest.json"] = json.dumps(man).encode()
    rc, _, err = _load(dy, _tar(files))
    assert rc == 125 and "does not match the image config" in err
    assert store_state(dy.root) == EMPTY
    # Paths in manifest.json cannot leave the archive either.
    man[0]["Config"] = "../../etc/passwd"
    files["manifest.json"] = json.dumps(man).encode()
    rc, _, err = _load(dy, _tar(files))
    assert rc == 125 and "contains '..'" in err
    assert store_state(dy.root) == EMPTY


def test_load_zstd_layers_and_platform_selection(dy):
    from dockyard import host

    other = "arm64" if host.go_arch() != "arm64" else "amd64"
    data = oci_archive([GOOD_LAYER], compress="zstd", platforms=[f"linux/{other}", f"linux/{host.go_arch()}"])
    rc, out, err = _load(dy, data)
    assert rc == 0, err
    assert out.decode().strip() == "Loaded image: example.com/test/img:1"
    info = inspect(dy, "example.com/test/img:1")
    assert info["Architecture"] == host.go_arch() and info["Config"]["Labels"] == {"arch": host.go_arch()}
    assert info["RootFS"]["Layers"] == [_sha(GOOD_LAYER)]
    with open(os.path.join(info["GraphDriver"]["Data"]["UpperDir"], "etc/hello"), "rb") as f:
        assert f.read() == b"hi"
    rc, _, err = _load(dy, oci_archive([GOOD_LAYER], platforms=["linux/s390x"]))
    assert rc == 125 and "no image for platform" in err


def test_load_legacy_docker_archive_with_linked_layers(dy, tmp_path):
    """docker save before v25: <id>/layer.tar per layer, duplicates as symlinks, <hex>.json configs."""
    layer = GOOD_LAYER
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [_sha(layer), _sha(layer)]}}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        def add(name, data=None, link=None):
            ti = tarfile.TarInfo(name)
            if link:
                ti.type, ti.linkname = tarfile.SYMTYPE, link
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        add("aaa/layer.tar", layer)
        add("bbb/layer.tar", link="../aaa/layer.tar")
        add(f"{_sha(config)[7:]}.json", config)
        add("manifest.json", json.dumps([{"Config": f"{_sha(config)[7:]}.json", "RepoTags": ["legacy:1"],
                                          "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]).encode())
    rc, out, err = _load(dy, buf.getvalue())
    assert rc == 0, err
    assert out.decode().strip() == "Loaded image: legacy:1"
    assert inspect(dy, "legacy:1")["RootFS"]["Layers"] == [_sha(layer)] * 2


def test_load_directory_cannot_read_outside_itself(dy, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"not for images")
    layout = tmp_path / "layout"
    with tarfile.open(fileobj=io.BytesIO(oci_archive([GOOD_LAYER]))) as tf:
        tf.extractall(layout, filter="data")
    index = json.loads((layout / "index.json").read_bytes())
    man_digest = index["manifests"][0]["digest"]
    man = json.loads((layout / "blobs/sha256" / man_digest[7:]).read_bytes())
    blob = layout / "blobs/sha256" / man["layers"][0]["digest"][7:]
    blob.unlink()
    blob.symlink_to(secret)
    p = dy("load", "-i", str(layout))
    assert p.returncode == 125 and "points outside the archive" in p.stderr
    assert store_state(dy.root) == EMPTY


@pytest.mark.peer("podman")
@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_interop_both_ways(dy, tmp_path, fmt):
    import tempfile

    image_id = bootstrap(dy)
    # podman wants a short runroot (< 50 characters).
    prun = tempfile.mkdtemp(prefix="dy-prun-")
    try:
        _podman_roundtrip(dy, tmp_path, fmt, image_id,
                          ["podman", "--root", str(tmp_path / "proot"), "--runroot", prun, "--storage-driver", "vfs"])
    finally:
        shutil.rmtree(prun, ignore_errors=True)


def _podman_roundtrip(dy, tmp_path, fmt, image_id, podman):
    ours = tmp_path / "ours.tar"
    dy("save", "--format", fmt, "-o", str(ours), "busybox", check=True)
    p = subprocess.run([*podman, "load", "-i", str(ours)], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "Loaded image: localhost/busybox:latest" in p.stdout
    p = subprocess.run([*podman, "image", "inspect", "--format", "{{.Id}}", "localhost/busybox:latest"],
                       capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == image_id[7:]
    theirs = tmp_path / "theirs.tar"
    p = subprocess.run([*podman, "save", "--format", fmt, "-o", str(theirs), "localhost/busybox:latest"],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    dy("rmi", "busybox", check=True)
    p = dy("load", "-i", str(theirs), check=True)
    assert p.stdout.strip() == "Loaded image: localhost/busybox:latest"
    info = inspect(dy, "busybox")
    assert info["Config"]["Cmd"] == ["sh"]
    assert os.path.isfile(os.path.join(info["GraphDriver"]["Data"]["UpperDir"], "bin/busybox"))
