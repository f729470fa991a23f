"""A registry killed with SIGKILL mid-upload keeps every committed blob and shows no half upload."""

from __future__ import annotations

import os
import signal
import threading

import requests

from tests.helpers import wait_for
from tests.registry_server.conftest import OCI_MANIFEST, sha, start_server
from tests.registry_server.test_protocol import push_image


def test_sigkill_mid_upload_then_resume(procs, tmp_path):
    server = start_server(procs, tmp_path)
    base = server.url
    layer = os.urandom(3_000_000)
    digest, body = push_image(base, "safe", "v1", layer=layer)

    big = os.urandom(8 << 20)
    loc = requests.post(f"{base}/v2/safe/blobs/uploads/").headers["Location"]
    uid = loc.rsplit("/", 1)[1]
    data_file = server.root / "_uploads" / uid / "data"
    release = threading.Event()

    def body_gen():
        yield big[: 4 << 20]
        release.wait(60)  # hold the request open until the server is dead
        yield big[4 << 20:]

    def stream():
        try:
            requests.patch(base + loc, data=body_gen(), timeout=60)
        except requests.RequestException:
            pass

    t = threading.Thread(target=stream)
    t.start()
    try:
        wait_for(lambda: data_file.exists() and data_file.stat().st_size >= 3 << 20, timeout=60,
                 what="the upload to be half written")
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=30)
    finally:
        release.set()
        t.join(60)

    again = start_server(procs, tmp_path, root=server.root)
    base = again.url
    # Committed content survived, intact.
    r = requests.get(f"{base}/v2/safe/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert r.status_code == 200 and r.content == body
    assert requests.get(f"{base}/v2/safe/blobs/{sha(layer)}").content == layer
    # The half upload is not a blob.
    assert requests.head(f"{base}/v2/safe/blobs/{sha(big)}").status_code == 404
    stored = set(os.listdir(again.root / "blobs" / "sha256"))
    assert sha(big).split(":")[1] not in stored
    assert all(sha((again.root / "blobs" / "sha256" / h).read_bytes()) == "sha256:" + h for h in stored)
    # The session itself survived the restart and resumes from what reached the disk.
    r = requests.get(base + loc)
    assert r.status_code == 204
    offset = int(r.headers["Range"].split("-")[1]) + 1
    assert 0 < offset <= len(big)
    r = requests.patch(base + loc, data=big[offset:],
                       headers={"Content-Range": f"{offset}-{len(big) - 1}", "Content-Length": str(len(big) - offset)})
    assert r.status_code == 202, r.text
    r = requests.put(f"{base}{loc}?digest={sha(big)}")
    assert r.status_code == 201, r.text
    assert requests.get(f"{base}/v2/safe/blobs/{sha(big)}").content == big
    assert digest == sha(body)
