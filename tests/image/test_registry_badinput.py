# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""Hostile or broken registries: every failure is one clear error and leaves nothing half-written.

The registry is the real reference registry; its filesystem storage is tampered with after a
normal skopeo push, which is how a corrupt disk or a malicious mirror looks to a client.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.registry_peer import busybox_oci, registry, registry_env, skopeo_push  # noqa: F401

pytestmark = pytest.mark.peer("docker-registry", "skopeo")


def blob_file(reg, digest: str) -> Path:
    h = digest.split(":", 1)[1]
    return reg.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / h[:2] / h / "data"


def assert_store_clean(root: Path, bad: str | None = None) -> None:
    blobs = root / "blobs" / "sha256"
    if bad:
        assert not (blobs / bad.split(":", 1)[1]).exists(), "a bad blob reached the store"
    tmp = root / "tmp"
    assert not tmp.exists() or not os.listdir(tmp), f"temp files left: {os.listdir(tmp)}"


@pytest.fixture
def pushed(registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "ns/bb")
    return reg, info


def pull(dy, reg, ref="ns/bb:v1", *extra):
    return dy("pull", "--tls-verify=false", *extra, f"127.0.0.1:{reg.port}/{ref}")


def test_corrupt_layer_is_refused(dy, pushed, registry_env):
    reg, info = pushed
    layer = info["layers"][0]
    f = blob_file(reg, layer)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    p = pull(dy, reg)
    assert p.returncode == 125
    assert "digest mismatch" in p.stderr and layer in p.stderr
    assert p.stderr.count("Error:") == 1
    assert_store_clean(dy.root, layer)


def test_truncated_layer_is_refused(dy, pushed, registry_env):
    reg, info = pushed
    layer = info["layers"][0]
    f = blob_file(reg, layer)
    f.write_bytes(f.read_bytes()[:1000])
    p = pull(dy, reg)
    assert p.returncode == 125
    assert layer in p.stderr and ("1000" in p.stderr or "size" in p.stderr)
    assert_store_clean(dy.root, layer)


def test_manifest_digest_mismatch(dy, pushed, registry_env):
    reg, info = pushed
    f = blob_file(reg, info["manifest"])
    doc = json.loads(f.read_bytes())
    doc["annotations"] = {"tampered": "yes"}
    f.write_bytes(json.dumps(doc).encode())
    p = pull(dy, reg)
    assert p.returncode == 125 and "manifest digest mismatch" in p.stderr
    p = pull(dy, reg, f"ns/bb@{info['manifest']}")
    assert p.returncode == 125 and "manifest digest mismatch" in p.stderr
    assert_store_clean(dy.root)


def test_oversized_manifest(dy, registry_env):
    """The reference registry itself refuses to serve huge manifests, so a hostile one is a small
    HTTP server sending 5 MiB of manifest: the client must stop reading at its 4 MiB limit."""
    import http.server
    import threading

    body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "annotations": {"padding": "x" * (5 << 20)}}).encode()

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            data = b"{}" if self.path == "/v2/" else body
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            if "chunked" not in self.path:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:
                pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        port = srv.server_address[1]
        p = dy("pull", "--tls-verify=false", f"127.0.0.1:{port}/ns/bb:v1", env=registry_env)
        assert p.returncode == 125 and "too large" in p.stderr, p.stderr
        # Without Content-Length (connection-delimited body) the cap holds while reading.
        p = dy("pull", "--tls-verify=false", f"127.0.0.1:{port}/ns/chunked:v1", env=registry_env)
        assert p.returncode == 125 and "too large" in p.stderr, p.stderr
    finally:
        srv.shutdown()
        srv.server_close()
    assert_store_clean(dy.root)


def test_unknown_media_types(dy, pushed, registry_env):
    """An OCI artifact (unknown config type) and an image with an unknown layer type."""
    from dockyard.registry.client import RegistryClient

    reg, info = pushed
    c = RegistryClient(f"127.0.0.1:{reg.port}", tls_verify=False)
    src = json.loads(blob_file(reg, info["manifest"]).read_bytes())
    artifact = dict(src, config=dict(src["config"], mediaType="application/vnd.example.thing.config+json"))
    c.put_manifest("ns/bb", "artifact", json.dumps(artifact).encode(), src["mediaType"])
    odd = dict(src, layers=[dict(src["layers"][0], mediaType="application/vnd.example.layer")])
    c.put_manifest("ns/bb", "oddlayer", json.dumps(odd).encode(), src["mediaType"])
    c.close()
    p = pull(dy, reg, "ns/bb:artifact")
    assert p.returncode == 125 and "unknown config media type" in p.stderr
    p = pull(dy, reg, "ns/bb:oddlayer")
    assert p.returncode == 125 and "unknown layer media type" in p.stderr
    assert_store_clean(dy.root)
    assert not (dy.root / "blobs" / "sha256" / info["layers"][0].split(":")[1]).exists()


def test_wrong_credentials_and_missing_image(dy, registry, registry_env, busybox_oci):
    layout, _ = busybox_oci
    reg = registry(tls=True, auth=("u", "right"))
    from tests.registry_peer import trust

    trust(reg, registry_env)
    skopeo_push(layout, "v1", reg, "ns/bb")
    p = dy("pull", "--creds", "u:wrong", f"{reg.host}/ns/bb:v1", env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr.lower()
    p = dy("pull", f"{reg.host}/ns/bb:v1", env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr.lower()
    p = dy("pull", "--creds", "u:right", f"{reg.host}/ns/bb:nosuchtag", env=registry_env)
    assert p.returncode == 125 and "not found" in p.stderr.lower()
    assert_store_clean(dy.root)


def test_untrusted_tls_and_plain_http_refused_by_default(dy, registry, registry_env, busybox_oci):
    layout, _ = busybox_oci
    tls_reg = registry(tls=True)
    skopeo_push(layout, "v1", tls_reg, "ns/bb")
    p = dy("pull", f"{tls_reg.host}/ns/bb:v1", env=registry_env)
    assert p.returncode == 125 and "certificate" in p.stderr.lower()
    plain = registry()
    p = dy("pull", f"127.0.0.1:{plain.port}/ns/bb:v1", env=registry_env)
    assert p.returncode == 125 and "Error:" in p.stderr

