"""Content discovery (tags, catalog), content management (delete) and the referrers API."""

from __future__ import annotations

import json
import os

import requests

from tests.registry_server.conftest import OCI_CONFIG, OCI_MANIFEST, sha, start_server
from tests.registry_server.test_protocol import error_code, push_blob, push_image


def test_tags_pagination(registry):
    base = registry.url
    layer = os.urandom(100)
    tags = [f"t{i:02d}" for i in range(5)]
    for t in reversed(tags):
        push_image(base, "pg", t, layer=layer)
    assert requests.get(f"{base}/v2/pg/tags/list").json() == {"name": "pg", "tags": tags}
    got, url = [], f"{base}/v2/pg/tags/list?n=2"
    while url:
        r = requests.get(url)
        assert len(r.json()["tags"]) <= 2
        got += r.json()["tags"]
        link = r.headers.get("Link")
        url = base + link.split(";")[0].strip("<>") if link else None
    assert got == tags
    assert requests.get(f"{base}/v2/pg/tags/list?last=t02").json()["tags"] == ["t03", "t04"]
    assert requests.get(f"{base}/v2/pg/tags/list?n=0").json()["tags"] == []
    r = requests.get(f"{base}/v2/pg/tags/list?n=-1")
    assert r.status_code == 400 and error_code(r) == "PAGINATION_NUMBER_INVALID"
    r = requests.get(f"{base}/v2/unknown/tags/list")
    assert r.status_code == 404 and error_code(r) == "NAME_UNKNOWN"


def test_catalog(registry):
    base = registry.url
    names = ["a", "lib/b", "lib/b/c", "z-last"]
    for n in names:
        push_image(base, n, "v1")
    push_blob(base, "blobs-only", b"no manifest yet")
    assert requests.get(f"{base}/v2/_catalog").json() == {"repositories": names}
    r = requests.get(f"{base}/v2/_catalog?n=3")
    assert r.json()["repositories"] == names[:3] and 'rel="next"' in r.headers["Link"]
    assert requests.get(f"{base}/v2/_catalog?n=3&last=lib/b/c").json()["repositories"] == ["z-last"]


def test_delete_tag_manifest_and_blob(registry):
    base = registry.url
    digest, _ = push_image(base, "del", "one", layer=b"layer-x")
    push_image(base, "del", "two", layer=b"layer-x")
    r = requests.delete(f"{base}/v2/del/manifests/one")
    assert r.status_code == 202
    assert requests.get(f"{base}/v2/del/tags/list").json()["tags"] == ["two"]
    assert requests.head(f"{base}/v2/del/manifests/{digest}").status_code == 200
    r = requests.delete(f"{base}/v2/del/manifests/{digest}")
    assert r.status_code == 202
    assert requests.get(f"{base}/v2/del/tags/list").json()["tags"] == []
    r = requests.get(f"{base}/v2/del/manifests/{digest}")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = requests.delete(f"{base}/v2/del/manifests/{digest}")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    assert requests.delete(f"{base}/v2/del/blobs/{sha(b'layer-x')}").status_code == 202
    r = requests.head(f"{base}/v2/del/blobs/{sha(b'layer-x')}")
    assert r.status_code == 404
    r = requests.delete(f"{base}/v2/del/blobs/{sha(b'layer-x')}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_delete_disabled_by_default(procs, tmp_path):
    server = start_server(procs, tmp_path, delete=False)
    base = server.url
    digest, _ = push_image(base, "keep", "v1", layer=b"keep me")
    for path in (f"manifests/{digest}", "manifests/v1", f"blobs/{sha(b'keep me')}"):
        r = requests.delete(f"{base}/v2/keep/{path}")
        assert r.status_code == 405 and error_code(r) == "UNSUPPORTED"
    assert requests.get(f"{base}/v2/keep/manifests/v1").status_code == 200
    assert requests.get(f"{base}/v2/keep/blobs/{sha(b'keep me')}").content == b"keep me"


def push_artifact(base: str, repo: str, subject: tuple[str, int], artifact_type: str, payload: bytes,
                  annotations: dict | None = None) -> requests.Response:
    empty = push_blob(base, repo, b"{}")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
                "layers": [{"mediaType": "application/octet-stream", "digest": push_blob(base, repo, payload),
                            "size": len(payload)}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": subject[0], "size": subject[1]}}
    if annotations:
        manifest["annotations"] = annotations
    body = json.dumps(manifest).encode()
    return requests.put(f"{base}/v2/{repo}/manifests/{sha(body)}", data=body,
                        headers={"Content-Type": OCI_MANIFEST})


def test_referrers(registry):
    base = registry.url
    subject_digest, subject_body = push_image(base, "ref", "v1")
    subject = (subject_digest, len(subject_body))
    sig = push_artifact(base, "ref", subject, "application/vnd.example.signature", b"sig",
                        {"org.example": "yes"})
    assert sig.status_code == 201 and sig.headers["OCI-Subject"] == subject_digest
    sbom = push_artifact(base, "ref", subject, "application/vnd.example.sbom", b"sbom")
    assert sbom.status_code == 201
    r = requests.get(f"{base}/v2/ref/referrers/{subject_digest}")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    index = r.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    by_type = {m["artifactType"]: m for m in index["manifests"]}
    assert set(by_type) == {"application/vnd.example.signature", "application/vnd.example.sbom"}
    assert by_type["application/vnd.example.signature"]["digest"] == sig.headers["Docker-Content-Digest"]
    assert by_type["application/vnd.example.signature"]["annotations"] == {"org.example": "yes"}
    r = requests.get(f"{base}/v2/ref/referrers/{subject_digest}?artifactType=application/vnd.example.sbom")
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [sbom.headers["Docker-Content-Digest"]]
    # An image manifest's config media type stands in for a missing artifactType.
    plain = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": push_blob(base, "ref", b"{}"), "size": 2},
             "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject[1]}}
    body = json.dumps(plain).encode()
    assert requests.put(f"{base}/v2/ref/manifests/plain", data=body,
                        headers={"Content-Type": OCI_MANIFEST}).status_code == 201
    r = requests.get(f"{base}/v2/ref/referrers/{subject_digest}", params={"artifactType": OCI_CONFIG})
    assert [m["digest"] for m in r.json()["manifests"]] == [sha(body)]
    # Deleting a referrer removes it from the list.
    assert requests.delete(f"{base}/v2/ref/manifests/{sig.headers['Docker-Content-Digest']}").status_code == 202
    r = requests.get(f"{base}/v2/ref/referrers/{subject_digest}")
    assert len(r.json()["manifests"]) == 2
    # A subject nobody refers to (or that does not exist) has an empty list, not an error.
    r = requests.get(f"{base}/v2/ref/referrers/{sha(b'nothing')}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    r = requests.get(f"{base}/v2/ref/referrers/not-a-digest")
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
