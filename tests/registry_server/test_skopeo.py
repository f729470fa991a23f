"""skopeo (containers/image, the library under Podman and Buildah) pushing to and pulling from the server."""

from __future__ import annotations

import json

import pytest

from tests.registry_server.conftest import OCI_MANIFEST, make_image, sha, skopeo

pytestmark = pytest.mark.peer("skopeo")


def test_copy_in_and_out(registry, image, tmp_path):
    dest = f"docker://{registry.host}/skopeo/test:{image.tag}"
    skopeo("copy", "--dest-tls-verify=false", image.ref, dest)
    raw = skopeo("inspect", "--tls-verify=false", "--raw", dest).stdout
    assert sha(raw.encode()) == image.digest
    info = json.loads(skopeo("inspect", "--tls-verify=false", dest).stdout)
    assert info["Digest"] == image.digest and len(info["Layers"]) == 2

    out = tmp_path / "out"
    skopeo("copy", "--src-tls-verify=false", dest, f"oci:{out}:copy")
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.digest
    for layer in image.layers:
        assert (out / "blobs" / "sha256" / sha(layer).split(":")[1]).read_bytes() == layer


def test_copy_between_repositories_list_tags_and_delete(registry, image, tmp_path):
    a = f"docker://{registry.host}/one/app:{image.tag}"
    b = f"docker://{registry.host}/two/app:copied"
    skopeo("copy", "--dest-tls-verify=false", image.ref, a)
    # Same registry: containers/image mounts the layers across repositories instead of re-uploading.
    skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", a, b)
    assert sha(skopeo("inspect", "--tls-verify=false", "--raw", b).stdout.encode()) == image.digest
    second = make_image(tmp_path / "second", tag="v2")
    skopeo("copy", "--dest-tls-verify=false", second.ref, f"docker://{registry.host}/two/app:v2")
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/two/app").stdout)
    assert sorted(tags["Tags"]) == ["copied", "v2"]
    skopeo("delete", "--tls-verify=false", b)
    tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/two/app").stdout)
    assert tags["Tags"] == ["v2"]


def test_docker_schema2_conversion(registry, image):
    dest = f"docker://{registry.host}/conv/app:docker"
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", image.ref, dest)
    raw = json.loads(skopeo("inspect", "--tls-verify=false", "--raw", dest).stdout)
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert raw["mediaType"] != OCI_MANIFEST
