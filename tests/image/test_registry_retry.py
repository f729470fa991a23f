# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""Transient failures: a proxy in front of the reference registry drops connections mid-blob and
answers 503, and the pull retries with backoff; a blob that never arrives whole is a clear error."""

from __future__ import annotations

import collections
import http.client
import http.server
import threading
import time

import pytest

from tests.registry_peer import busybox_oci, registry, registry_env, skopeo_push  # noqa: F401

pytestmark = pytest.mark.peer("docker-registry", "skopeo")


class FlakyProxy:
    """Forwards to the registry; ``cut[path] = n`` truncates the first n GETs of a path halfway,
    ``unavailable[path] = n`` answers the first n requests with 503."""

    def __init__(self, upstream_port: int) -> None:
        self.cut: dict[str, int] = {}
        self.unavailable: dict[str, int] = {}
        self.slow: set[str] = set()  # paths sent in small pieces with pauses
        self.hits: collections.Counter[str] = collections.Counter()
        proxy = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _forward(self):
                path = self.path.split("?", 1)[0]
                proxy.hits[path] += 1
                if proxy.unavailable.get(path, 0) > 0:
                    proxy.unavailable[path] -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn.request(self.command, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command == "GET" and proxy.cut.get(path, 0) > 0 and len(data) > 1:
                    proxy.cut[path] -= 1
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if self.command == "GET" and path in proxy.slow:
                    for i in range(0, len(data), 32 << 10):
                        self.wfile.write(data[i:i + (32 << 10)])
                        self.wfile.flush()
                        time.sleep(0.2)
                elif self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _forward

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def proxied(registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "ns/bb")
    proxy = FlakyProxy(reg.port)
    try:
        yield proxy, info
    finally:
        proxy.stop()


def test_truncated_download_and_503_are_retried(dy, proxied, registry_env):
    proxy, info = proxied
    layer = info["layers"][0]
    proxy.cut[f"/v2/ns/bb/blobs/{layer}"] = 1
    proxy.unavailable["/v2/ns/bb/manifests/v1"] = 1
    p = dy("pull", "--tls-verify=false", f"127.0.0.1:{proxy.port}/ns/bb:v1", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert proxy.hits[f"/v2/ns/bb/blobs/{layer}"] == 2
    assert proxy.hits["/v2/ns/bb/manifests/v1"] == 2
    assert (dy.root / "blobs" / "sha256" / layer.split(":")[1]).is_file()


def test_blob_that_never_arrives_whole(dy, proxied, registry_env):
    proxy, info = proxied
    layer = info["layers"][0]
    proxy.cut[f"/v2/ns/bb/blobs/{layer}"] = 100
    p = dy("pull", "--tls-verify=false", f"127.0.0.1:{proxy.port}/ns/bb:v1", env=registry_env)
    assert p.returncode == 125
    assert p.stderr.startswith("Error: downloading " + layer)
    assert proxy.hits[f"/v2/ns/bb/blobs/{layer}"] == 3
    assert not (dy.root / "blobs" / "sha256" / layer.split(":")[1]).exists()
    tmp = dy.root / "tmp"
    assert not tmp.exists() or not list(tmp.iterdir())


def test_interrupted_pull_leaves_nothing(dy, proxied, registry_env):
    """Ctrl-C in the middle of a download: exit 130, no partial blob, no temp file, no image."""
    import os
    import signal
    import subprocess

    from tests.helpers import REPO, dockyard_cmd, wait_for

    proxy, info = proxied
    layer = info["layers"][0]
    proxy.slow.add(f"/v2/ns/bb/blobs/{layer}")
    env = dict(os.environ, **registry_env, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(dockyard_cmd(dy.root) + ["pull", "--tls-verify=false",
                                                     f"127.0.0.1:{proxy.port}/ns/bb:v1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        seen = []

        def downloading():
            line = proc.stdout.readline()
            seen.append(line)
            return f"{layer.split(':')[1][:12]}: Downloading" in line or not line

        wait_for(downloading, timeout=60, what="the layer download to start")
        wait_for(lambda: (dy.root / "tmp").is_dir() and list((dy.root / "tmp").iterdir()), timeout=30,
                 what="a temp file")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Error: aborted" in err or "Error: interrupted" in err
    assert not (dy.root / "blobs" / "sha256" / layer.split(":")[1]).exists()
    assert not list((dy.root / "tmp").iterdir())


def test_layers_unpack_while_others_download_and_a_killed_pull_leaves_only_debris(dy, proxied, registry_env):
    """A layer is unpacked as soon as its blob is complete, while a slow one still downloads; until the
    commit it is an unrecorded temp directory, so a pull killed then leaves no image and no layer,
    and the next pull clears the debris and succeeds."""
    import os
    import subprocess

    from tests.helpers import REPO, dockyard_cmd, wait_for
    from tests.image.helpers import store_state

    proxy, info = proxied
    slow, fast = (d.split(":")[1] for d in info["layers"])
    proxy.slow.add(f"/v2/ns/bb/blobs/sha256:{slow}")
    env = dict(os.environ, **registry_env, PYTHONPATH=str(REPO))
    name = f"127.0.0.1:{proxy.port}/ns/bb:v1"
    layers = dy.root / "layers"
    proc = subprocess.Popen(dockyard_cmd(dy.root) + ["pull", "--tls-verify=false", name],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        seen: list[str] = []

        def fast_layer_done():
            line = proc.stdout.readline()
            seen.append(line.strip())
            return line.startswith(f"{fast[:12]}: Pull complete") or not line

        wait_for(fast_layer_done, timeout=120, what="the small layer to be unpacked")
        assert seen[-1] == f"{fast[:12]}: Pull complete", seen
        assert f"{slow[:12]}: Download complete" not in seen
        assert not (dy.root / "blobs" / "sha256" / slow).exists()
        staged = [n for n in os.listdir(layers) if n.startswith(".tmp-")]
        assert any((layers / n / "etc" / "hello").is_file() for n in staged), staged
    finally:
        proc.kill()
        proc.wait()
    state = store_state(dy.root)
    assert state["images"] == []
    assert state["layers"] and all(n.startswith(".tmp-") for n in state["layers"])

    proxy.slow.clear()
    p = dy("pull", "--tls-verify=false", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    assert f"{fast[:12]}: Pull complete" in p.stdout.splitlines()  # its blob stayed; its layer is unpacked again
    assert sorted(store_state(dy.root)["layers"]) == sorted(d.split(":")[1] for d in _diff_ids(dy, name))


def _diff_ids(dy, name: str) -> list[str]:
    import json

    out = dy("image", "inspect", "--format", "{{json .RootFS.Layers}}", name, check=True).stdout
    return json.loads(out)
