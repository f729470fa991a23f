# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""Interoperability with skopeo (containers/image): each side reads what the other wrote, and
multi-platform indexes resolve to the right image."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from dockyard.engine import Engine
from dockyard.host import go_arch
from tests.registry_peer import busybox_oci, make_oci_index, registry, registry_env, skopeo_push  # noqa: F401

pytestmark = pytest.mark.peer("docker-registry", "skopeo")


def engine_image(root, ref):
    e = Engine(root)
    try:
        return e.images.get(ref)
    finally:
        e.close()


def test_dockyard_push_then_skopeo_copy_to_dir(dy, registry, registry_env, busybox_oci, tmp_path):
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "seed/bb")
    base = f"127.0.0.1:{reg.port}"
    assert dy("pull", "--tls-verify=false", f"{base}/seed/bb:v1", env=registry_env).returncode == 0
    # A second registry that has never seen the blobs, so every byte comes from dockyard's upload.
    reg2 = registry()
    p = dy("push", "--tls-verify=false", f"{base}/seed/bb:v1", f"127.0.0.1:{reg2.port}/from/dockyard:1",
           env=registry_env)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "dir"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                    f"docker://127.0.0.1:{reg2.port}/from/dockyard:1", f"dir:{out}"], check=True, timeout=120)
    manifest = (out / "manifest.json").read_bytes()
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == info["manifest"]
    for d in info["layers"] + [info["config"]]:
        h = d.split(":")[1]
        assert hashlib.sha256((out / h).read_bytes()).hexdigest() == h


def test_skopeo_docker_v2s2_pulled_by_dockyard(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "docker/fmt", fmt="v2s2")
    name = f"127.0.0.1:{reg.port}/docker/fmt:v1"
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}"],
                                    capture_output=True, check=True).stdout)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    p = dy("pull", "--tls-verify=false", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    img = engine_image(dy.root, name)
    assert img.id == info["config"]
    assert img.manifest_media_type == "application/vnd.docker.distribution.manifest.v2+json"


def test_manifest_list_platform_selection(dy, registry, registry_env, busybox_rootfs_template, tmp_path):
    layout = tmp_path / "multi" / "oci"
    info = make_oci_index(layout, busybox_rootfs_template, "multi",
                          platforms=(("amd64", None), ("arm64", "v8"), ("ppc64le", None)))
    reg = registry()
    skopeo_push(layout, "multi", reg, "ns/multi", all_platforms=True)
    name = f"127.0.0.1:{reg.port}/ns/multi:multi"

    p = dy("manifest", "inspect", "--tls-verify=false", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    idx = json.loads(p.stdout)
    assert idx["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["platform"]["architecture"] for m in idx["manifests"]] == ["amd64", "arm64", "ppc64le"]
    p = dy("manifest", "inspect", "-v", "--tls-verify=false", name, env=registry_env)
    detail = json.loads(p.stdout)
    assert [d["Descriptor"]["platform"]["architecture"] for d in detail] == ["amd64", "arm64", "ppc64le"]
    assert all(d["Ref"].startswith(f"127.0.0.1:{reg.port}/ns/multi@sha256:") for d in detail)

    # Host platform by default.
    host = go_arch()
    if host in info:
        p = dy("pull", "--tls-verify=false", name, env=registry_env)
        assert p.returncode == 0, p.stderr
        assert f"Digest: {info['index']}" in p.stdout
        assert engine_image(dy.root, name).id == info[host]["config"]

    p = dy("pull", "--tls-verify=false", "--platform", "linux/arm64/v8", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    img = engine_image(dy.root, name)
    assert img.id == info["arm64"]["config"]
    assert img.index_digest == info["index"]

    p = dy("pull", "--tls-verify=false", "--platform", "linux/s390x", name, env=registry_env)
    assert p.returncode == 125 and "linux/s390x" in p.stderr
    p = dy("pull", "--tls-verify=false", "--platform", "bogus", name, env=registry_env)
    assert p.returncode == 125 and "invalid platform" in p.stderr
