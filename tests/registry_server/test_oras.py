"""oras (the OCI artifacts client, PyPI package) pushing an artifact that refers to an image."""

from __future__ import annotations

import os

import requests

from tests.registry_server.test_protocol import push_image


def test_oras_push_with_subject_and_referrers(registry, tmp_path, monkeypatch):
    import oras.client
    import oras.oci

    base = registry.url
    subject_digest, subject_body = push_image(base, "oras/app", "v1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sbom.json").write_text('{"packages": []}')
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    subject = oras.oci.Subject(mediaType="application/vnd.oci.image.manifest.v1+json", digest=subject_digest,
                               size=len(subject_body))
    r = client.push(target=f"{registry.host}/oras/app:sbom", files=["sbom.json:application/spdx+json"],
                    subject=subject, manifest_annotations={"org.example.kind": "sbom"})
    assert r.status_code == 201 and r.headers["OCI-Subject"] == subject_digest
    index = requests.get(f"{base}/v2/oras/app/referrers/{subject_digest}").json()
    assert len(index["manifests"]) == 1
    ref = index["manifests"][0]
    assert ref["digest"] == r.headers["Docker-Content-Digest"]
    assert ref["annotations"]["org.example.kind"] == "sbom"

    out = tmp_path / "out"
    files = client.pull(target=f"{registry.host}/oras/app:sbom", outdir=str(out))
    assert [os.path.basename(f) for f in files] == ["sbom.json"]
    assert (out / "sbom.json").read_text() == '{"packages": []}'
    assert client.get_tags(f"{registry.host}/oras/app") == ["sbom", "v1"]
