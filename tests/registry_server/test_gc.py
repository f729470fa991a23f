"""`dockyard registry gc`: mark and sweep that never takes a blob a manifest still references."""

from __future__ import annotations

import json
import os
import threading

import requests

from tests.helpers import run_cli
from tests.registry_server.conftest import OCI_INDEX, OCI_MANIFEST, sha
from tests.registry_server.test_discovery import push_artifact
from tests.registry_server.test_protocol import push_blob, push_image


def gc(server, *args: str):
    return run_cli("registry", "gc", *args, env={"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(server.root)},
                   check=True)


def blob_files(server) -> set[str]:
    d = server.root / "blobs" / "sha256"
    return {"sha256:" + h for h in os.listdir(d)}


def pull_all(base: str, repo: str, tag: str) -> None:
    """Fetch a manifest and every blob it names, checking each digest."""
    r = requests.get(f"{base}/v2/{repo}/manifests/{tag}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert r.status_code == 200, r.text
    m = r.json()
    for desc in [m["config"], *m["layers"]] if "config" in m else []:
        assert sha(requests.get(f"{base}/v2/{repo}/blobs/{desc['digest']}").content) == desc["digest"]


def test_sweeps_unreferenced_keeps_referenced(registry):
    base = registry.url
    shared = os.urandom(5000)
    push_image(base, "keep", "v1", layer=shared)
    gone_digest, _ = push_image(base, "drop", "v1", layer=b"only in the dropped image")
    push_image(base, "drop", "v2", layer=shared)
    orphan = push_blob(base, "keep", b"uploaded but never used")
    assert requests.delete(f"{base}/v2/drop/manifests/{gone_digest}").status_code == 202
    before = blob_files(registry)

    p = gc(registry, "--dry-run")
    assert blob_files(registry) == before
    listed = {line.split(": ")[1] for line in p.stdout.splitlines() if line.startswith("blob eligible for deletion")}
    assert listed == {orphan, gone_digest, sha(b"only in the dropped image")}
    assert " 3 blobs (" in p.stdout and "and 0 manifests eligible for deletion" in p.stdout

    gc(registry)
    assert blob_files(registry) == before - listed
    pull_all(base, "keep", "v1")
    pull_all(base, "drop", "v2")
    r = requests.head(f"{base}/v2/keep/blobs/{orphan}")
    assert r.status_code == 404
    # A second run finds nothing more.
    assert "0 blobs (0 bytes) and 0 manifests deleted" in gc(registry).stdout


def test_delete_untagged_keeps_index_children_and_referrers(registry):
    base = registry.url
    old, _ = push_image(base, "u", "latest", layer=b"old layer")
    new, new_body = push_image(base, "u", "latest", layer=b"new layer")  # `old` is now untagged
    child, child_body = push_image(base, "u", "child-tmp", layer=b"child layer")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": len(child_body),
         "platform": {"os": "linux", "architecture": "arm64"}}]}).encode()
    assert requests.put(f"{base}/v2/u/manifests/multi", data=index,
                        headers={"Content-Type": OCI_INDEX}).status_code == 201
    assert requests.delete(f"{base}/v2/u/manifests/child-tmp").status_code == 202  # child only via the index
    sig = push_artifact(base, "u", (new, len(new_body)), "application/vnd.example.sig", b"signature")
    sig_digest = sig.headers["Docker-Content-Digest"]

    p = gc(registry, "--delete-untagged")
    assert f"manifest deleted: u@{old}" in p.stdout
    assert "and 1 manifests deleted" in p.stdout
    assert requests.get(f"{base}/v2/u/manifests/{old}").status_code == 404
    for d in (new, child, sig_digest):
        assert requests.head(f"{base}/v2/u/manifests/{d}").status_code == 200
    assert sha(b"old layer") not in blob_files(registry)
    assert {sha(b"new layer"), sha(b"child layer"), sha(b"signature")} <= blob_files(registry)
    pull_all(base, "u", "latest")
    pull_all(base, "u", child)


def test_gc_concurrent_with_pushes_never_breaks_a_tag(registry):
    base = registry.url
    errors: list[str] = []
    stop = threading.Event()

    def pusher(n: int) -> None:
        for i in range(6):
            try:
                push_image(base, f"busy/{n}", f"t{i}", layer=os.urandom(20_000))
            except AssertionError as e:
                # A blob swept between its upload and its manifest is reported, never silently lost.
                if "MANIFEST_BLOB_UNKNOWN" not in str(e):
                    errors.append(str(e))

    def collector() -> None:
        while not stop.is_set():
            gc(registry)

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(4)]
    g = threading.Thread(target=collector)
    g.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    g.join()
    assert not errors
    for n in range(4):
        for tag in requests.get(f"{base}/v2/busy/{n}/tags/list").json()["tags"]:
            pull_all(base, f"busy/{n}", tag)


def test_refuses_unreadable_manifest(registry):
    digest, _ = push_image(registry.url, "bad", "v1")
    (registry.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(b"garbage")
    before = blob_files(registry)
    p = run_cli("registry", "gc", env={"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(registry.root)})
    assert p.returncode == 125 and "cannot read manifest bad@" in p.stderr and p.stderr.count("\n") == 1
    assert blob_files(registry) == before


def test_not_a_storage_root(tmp_path):
    p = run_cli("registry", "gc", env={"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "none")})
    assert p.returncode == 125 and "is not a registry storage root" in p.stderr
