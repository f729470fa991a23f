"""The OCI distribution API over HTTP, spoken with plain requests against a real server."""

from __future__ import annotations

import http.client
import json
import os
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.registry_server.conftest import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, sha

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


def push_blob(base: str, repo: str, data: bytes) -> str:
    d = sha(data)
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/?digest={d}", data=data)
    assert r.status_code == 201, r.text
    return d


def push_image(base: str, repo: str, tag: str, layer: bytes | None = None, **extra) -> tuple[str, bytes]:
    layer = layer if layer is not None else os.urandom(1000)
    cfg = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": push_blob(base, repo, cfg), "size": len(cfg)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": push_blob(base, repo, layer), "size": len(layer)}], **extra}
    body = json.dumps(manifest).encode()
    r = requests.put(f"{base}/v2/{repo}/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201, r.text
    assert r.headers["Docker-Content-Digest"] == sha(body)
    return sha(body), body


def error_code(r: requests.Response) -> str:
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()["errors"][0]["code"]


def raw_request(server, method: str, path: str) -> tuple[int, dict]:
    """Send the path exactly as given (requests would resolve `..` before sending)."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        c.close()


def test_base_endpoint_and_version_header(registry):
    for method in ("GET", "HEAD"):
        r = requests.request(method, registry.url + "/v2/")
        assert r.status_code == 200
        assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    r = requests.get(registry.url + "/v2/nothing/here/at/all")
    assert r.status_code == 404
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_push_then_pull_with_range(registry):
    base = registry.url
    data = os.urandom(300_000)
    d = push_blob(base, "lib/thing", data)
    r = requests.head(f"{base}/v2/lib/thing/blobs/{d}")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data)
    assert r.headers["Docker-Content-Digest"] == d and not r.content
    r = requests.get(f"{base}/v2/lib/thing/blobs/{d}")
    assert r.content == data
    r = requests.get(f"{base}/v2/lib/thing/blobs/{d}", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == data[1000:2000]
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    # A blob is visible only in the repositories it was pushed to or mounted into.
    r = requests.get(f"{base}/v2/other/blobs/{d}")
    assert r.status_code == 404 and error_code(r) == "BLOB_UNKNOWN"


def test_post_then_put_single_request(registry):
    base = registry.url
    data = b"x" * 5000
    r = requests.post(f"{base}/v2/r/blobs/uploads/")
    assert r.status_code == 202 and r.headers["Location"].startswith("/v2/r/blobs/uploads/")
    r = requests.put(f"{base}{r.headers['Location']}?digest={sha(data)}", data=data,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/r/blobs/{sha(data)}"
    assert requests.get(f"{base}/v2/r/blobs/{sha(data)}").content == data


def test_chunked_upload_resumable_status_and_reuse(registry):
    base = registry.url
    data = os.urandom(2_500_000)
    loc = requests.post(f"{base}/v2/c/blobs/uploads/").headers["Location"]
    chunks = [data[:1_000_000], data[1_000_000:2_000_000], data[2_000_000:]]
    offset = 0
    for chunk in chunks[:2]:
        r = requests.patch(base + loc, data=chunk, headers={
            "Content-Range": f"{offset}-{offset + len(chunk) - 1}", "Content-Length": str(len(chunk)),
            "Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        offset += len(chunk)
        assert r.headers["Range"] == f"0-{offset - 1}"
        loc = r.headers["Location"]
    r = requests.get(base + loc)
    assert r.status_code == 204 and r.headers["Range"] == f"0-{offset - 1}"
    # A chunk that does not continue where the upload is: 416 and the real position.
    r = requests.patch(base + loc, data=b"zz", headers={"Content-Range": "5-6", "Content-Length": "2"})
    assert r.status_code == 416 and r.headers["Range"] == f"0-{offset - 1}"
    r = requests.put(f"{base}{loc}?digest={sha(data)}", data=chunks[2])
    assert r.status_code == 201, r.text
    assert requests.get(f"{base}/v2/c/blobs/{sha(data)}").content == data
    # The session is gone once completed.
    for method in ("GET", "PATCH", "PUT"):
        r = requests.request(method, f"{base}{loc}?digest={sha(data)}", data=b"more")
        assert r.status_code == 404 and error_code(r) == "BLOB_UPLOAD_UNKNOWN"
    assert os.listdir(registry.root / "_uploads") == []


def test_cancel_upload(registry):
    base = registry.url
    loc = requests.post(f"{base}/v2/c/blobs/uploads/").headers["Location"]
    requests.patch(base + loc, data=b"abc")
    assert requests.delete(base + loc).status_code == 204
    assert requests.get(base + loc).status_code == 404
    assert os.listdir(registry.root / "_uploads") == []


def test_digest_mismatch_stores_nothing(registry):
    base = registry.url
    data, wrong = b"real content", sha(b"other content")
    r = requests.post(f"{base}/v2/m/blobs/uploads/?digest={wrong}", data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    loc = requests.post(f"{base}/v2/m/blobs/uploads/").headers["Location"]
    r = requests.put(f"{base}{loc}?digest={wrong}", data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    for d in (wrong, sha(data)):
        assert requests.head(f"{base}/v2/m/blobs/{d}").status_code == 404
    assert not (registry.root / "blobs" / "sha256").exists() or not os.listdir(registry.root / "blobs" / "sha256")
    assert os.listdir(registry.root / "_uploads") == []
    r = requests.post(f"{base}/v2/m/blobs/uploads/?digest=md5:abc", data=data)
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"


def test_manifest_by_tag_and_digest_with_negotiation(registry):
    base = registry.url
    digest, body = push_image(base, "app", "v1")
    for ref in ("v1", digest):
        r = requests.get(f"{base}/v2/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.content == body
        assert r.headers["Content-Type"] == OCI_MANIFEST and r.headers["Docker-Content-Digest"] == digest
        h = requests.head(f"{base}/v2/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert h.status_code == 200 and int(h.headers["Content-Length"]) == len(body) and not h.content
    # A client that only reads Docker manifests does not get an OCI one.
    r = requests.get(f"{base}/v2/app/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = requests.get(f"{base}/v2/app/manifests/nope")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    r = requests.get(f"{base}/v2/never-pushed/manifests/v1")
    assert r.status_code == 404 and error_code(r) == "MANIFEST_UNKNOWN"
    # The same content pushed by digest gives the same digest.
    r = requests.put(f"{base}/v2/app/manifests/{digest}", data=body, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/app/manifests/{digest}"


def test_index_served_as_platform_manifest_to_clients_without_index_support(registry):
    base = registry.url
    digest, body = push_image(base, "multi", "amd64-only")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body),
         "platform": {"os": "linux", "architecture": "amd64"}}]}).encode()
    r = requests.put(f"{base}/v2/multi/manifests/all", data=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    r = requests.get(f"{base}/v2/multi/manifests/all", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
    assert r.content == index
    if os.uname().machine == "x86_64":
        r = requests.get(f"{base}/v2/multi/manifests/all", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == digest


def test_manifest_errors_store_nothing(registry):
    base = registry.url
    cfg = b"{}"
    missing = sha(b"never uploaded")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": push_blob(base, "e", cfg), "size": 2},
                           "layers": [{"mediaType": "x", "digest": missing, "size": 14}]}).encode()
    r = requests.put(f"{base}/v2/e/manifests/t", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    assert r.json()["errors"][0]["detail"] == {"digest": missing}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": missing, "size": 1}]}).encode()
    r = requests.put(f"{base}/v2/e/manifests/t", data=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 400 and error_code(r) == "MANIFEST_BLOB_UNKNOWN"
    big = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "pad": "x" * (5 << 20)}).encode()
    r = requests.put(f"{base}/v2/e/manifests/t", data=big, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413 and error_code(r) == "MANIFEST_INVALID"
    for bad in (b"not json", b"[]", b'{"schemaVersion": 1}'):
        r = requests.put(f"{base}/v2/e/manifests/t", data=bad, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 400 and error_code(r) == "MANIFEST_INVALID"
    r = requests.put(f"{base}/v2/e/manifests/{sha(b'x')}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 400 and error_code(r) == "DIGEST_INVALID"
    for tag in ("-starts-with-dash", "x" * 129, "has+plus"):
        r = requests.put(f"{base}/v2/e/manifests/{tag}", data=manifest, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 400 and error_code(r) == "TAG_INVALID"
    r = requests.get(f"{base}/v2/e/tags/list")
    assert r.json()["tags"] == []
    assert not (registry.root / "repositories" / "e" / "_manifests").exists()


def test_invalid_repository_names(registry):
    base = registry.url
    for name in ("Upper", "a..b", "-lead", "a//b", "x" * 256):
        r = requests.post(f"{base}/v2/{name}/blobs/uploads/")
        assert r.status_code == 400 and error_code(r) == "NAME_INVALID", name
    status, body = raw_request(registry, "GET", "/v2/ok/../../etc/manifests/latest")
    assert status == 400 and body["errors"][0]["code"] == "NAME_INVALID"
    status, body = raw_request(registry, "POST", "/v2/../blobs/uploads/")
    assert status in (400, 404)
    assert not any((registry.root / "repositories").iterdir())


def test_cross_repository_mount(registry):
    base = registry.url
    d = push_blob(base, "src/repo", b"shared layer")
    r = requests.post(f"{base}/v2/dst/blobs/uploads/?mount={d}&from=src/repo")
    assert r.status_code == 201 and r.headers["Location"] == f"/v2/dst/blobs/{d}"
    assert requests.get(f"{base}/v2/dst/blobs/{d}").content == b"shared layer"
    # Not in the source repository: the registry falls back to a normal upload session.
    other = sha(b"elsewhere")
    r = requests.post(f"{base}/v2/dst2/blobs/uploads/?mount={other}&from=src/repo")
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]


def test_concurrent_pushes_of_same_blob_and_tag(registry):
    base = registry.url
    layer = os.urandom(1_000_000)

    def push(i: int) -> str:
        return push_image(base, "race", "same", layer=layer)[0]

    with ThreadPoolExecutor(8) as ex:
        digests = set(ex.map(push, range(8)))
    assert len(digests) == 1
    r = requests.get(f"{base}/v2/race/manifests/same", headers={"Accept": OCI_MANIFEST})
    assert r.headers["Docker-Content-Digest"] in digests
    assert requests.get(f"{base}/v2/race/blobs/{sha(layer)}").content == layer
    assert os.listdir(registry.root / "_uploads") == []


def test_manifest_sent_in_small_chunks(registry):
    """A chunked manifest body arrives in pieces; all of them make the manifest, and size is still capped."""
    base = registry.url
    cfg = push_blob(base, "chunky", b"{}")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": OCI_CONFIG, "digest": cfg, "size": 2}, "layers": [],
                       "annotations": {"pad": "y" * 200_000}}).encode()

    def pieces(data: bytes, n: int = 1000):
        for i in range(0, len(data), n):
            yield data[i:i + n]

    r = requests.put(f"{base}/v2/chunky/manifests/v1", data=pieces(body), headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 201 and r.headers["Docker-Content-Digest"] == sha(body)
    assert requests.get(f"{base}/v2/chunky/manifests/v1").content == body
    big = json.dumps({"pad": "z" * (5 << 20)}).encode()
    r = requests.put(f"{base}/v2/chunky/manifests/v2", data=pieces(big, 1 << 16),
                     headers={"Content-Type": OCI_MANIFEST})
    assert r.status_code == 413


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_large_blob_streams_through_bounded_memory(registry):
    """A 300 MiB blob in and out (chunked upload, then a plain GET) leaves the server's peak RSS far below it."""
    import hashlib

    base = registry.url
    size, piece = 300 << 20, 4 << 20
    seed = os.urandom(piece)
    h = hashlib.sha256()

    def body():
        for i in range(size // piece):
            chunk = i.to_bytes(8, "big") + seed[8:]
            h.update(chunk)
            yield chunk

    loc = requests.post(f"{base}/v2/big/blobs/uploads/").headers["Location"]
    r = requests.patch(base + loc, data=body())
    assert r.status_code == 202 and r.headers["Range"] == f"0-{size - 1}"
    digest = "sha256:" + h.hexdigest()
    assert requests.put(f"{base}{r.headers['Location']}?digest={digest}").status_code == 201
    got, n = hashlib.sha256(), 0
    with requests.get(f"{base}/v2/big/blobs/{digest}", stream=True) as r:
        for chunk in r.iter_content(1 << 20):
            got.update(chunk)
            n += len(chunk)
    assert n == size and "sha256:" + got.hexdigest() == digest
    assert _peak_rss_mb(registry.proc.pid) < 150  # about 45 MiB in practice
