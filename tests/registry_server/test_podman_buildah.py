"""Podman and Buildah pushing to and pulling from the server, insecure and with a certs.d CA + login."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from tests.registry_server.conftest import skopeo


@pytest.fixture
def store():
    """A private vfs store for podman/buildah (nothing in /var/lib/containers/storage).  The runroot
    must stay under 50 characters, hence a short directory in /tmp rather than tmp_path."""
    d = tempfile.mkdtemp(prefix="dyreg-", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def tool(name: str, store: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    base = [name, "--root", f"{store}/root", "--runroot", f"{store}/run", "--storage-driver", "vfs"]
    if name == "podman":
        base += ["--events-backend", "none", "--cgroup-manager", "cgroupfs"]
    # Private registries.conf: what other tests or the host put in /etc/containers does not leak in.
    conf = os.path.join(store, "registries.conf")
    if not os.path.exists(conf):
        with open(conf, "w") as f:
            f.write("")
    env = {**os.environ, "CONTAINERS_REGISTRIES_CONF": conf}
    env.pop("REGISTRY_AUTH_FILE", None)
    p = subprocess.run(base + list(args), capture_output=True, text=True, timeout=180, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{name} {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p


def image_id(name: str, store: str, ref: str) -> str:
    return json.loads(tool(name, store, "inspect", ref).stdout)[0]["Id"]


@pytest.mark.peer("podman", "skopeo")
def test_podman_pull_tag_push_insecure(registry, image, store):
    src = f"{registry.host}/src/app:{image.tag}"
    skopeo("copy", "--dest-tls-verify=false", image.ref, f"docker://{src}")
    tool("podman", store, "pull", "--tls-verify=false", src)
    dst = f"{registry.host}/pushed/by-podman:v1"
    tool("podman", store, "tag", src, dst)
    tool("podman", store, "push", "--tls-verify=false", dst)
    tool("podman", store, "rmi", src, dst)
    tool("podman", store, "pull", "--tls-verify=false", dst)
    assert image_id("podman", store, dst) == json.loads(image.manifest)["config"]["digest"].split(":")[1]


@pytest.mark.peer("buildah", "skopeo")
def test_buildah_pull_push_insecure(registry, image, store):
    src = f"{registry.host}/src/app:{image.tag}"
    skopeo("copy", "--dest-tls-verify=false", image.ref, f"docker://{src}")
    tool("buildah", store, "pull", "--tls-verify=false", src)
    dst = f"{registry.host}/pushed/by-buildah:v1"
    tool("buildah", store, "push", "--tls-verify=false", src, f"docker://{dst}")
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{dst}").stdout)
    assert len(info["Layers"]) == 2


@pytest.mark.peer("podman", "skopeo")
def test_podman_login_push_pull_with_ca(secured, image, store, tmp_path):
    host = f"localhost:{secured.port}"
    cert_dir = str(secured.certs.certs_d / host)
    authfile = str(tmp_path / "auth.json")
    p = tool("podman", store, "login", "--authfile", authfile, "--cert-dir", cert_dir, "-u", "testuser",
             "-p", "wrong", host, check=False)
    assert p.returncode != 0
    tool("podman", store, "login", "--authfile", authfile, "--cert-dir", cert_dir, "-u", "testuser",
         "-p", "testpassword", host)
    tool("podman", store, "pull", image.ref)
    ref = f"{host}/myfirstimage:3"
    local = json.loads(tool("podman", store, "images", "--format", "json").stdout)[0]["Id"]
    tool("podman", store, "tag", local, ref)
    tool("podman", store, "push", "--authfile", authfile, "--cert-dir", cert_dir, ref)
    tool("podman", store, "rmi", "-f", local)
    tool("podman", store, "pull", "--authfile", authfile, "--cert-dir", cert_dir, ref)
    assert image_id("podman", store, ref) == local
    tool("podman", store, "logout", "--authfile", authfile, host)
    tool("podman", store, "rmi", "-f", local)
    p = tool("podman", store, "pull", "--authfile", authfile, "--cert-dir", cert_dir, ref, check=False)
    assert p.returncode != 0 and "unauthorized" in p.stderr.lower()


@pytest.mark.peer("buildah")
def test_buildah_push_pull_with_ca_and_creds(secured, image, store):
    host = f"localhost:{secured.port}"
    cert_dir = str(secured.certs.certs_d / host)
    tool("buildah", store, "pull", image.ref)
    local = json.loads(tool("buildah", store, "images", "--json").stdout)[0]["id"]
    ref = f"{host}/by-buildah/tls:v1"
    p = tool("buildah", store, "push", "--cert-dir", cert_dir, "--creds", "testuser:wrong", local,
             f"docker://{ref}", check=False)
    assert p.returncode != 0
    tool("buildah", store, "push", "--cert-dir", cert_dir, "--creds", "testuser:testpassword", local,
         f"docker://{ref}")
    tool("buildah", store, "rmi", "-f", local)
    tool("buildah", store, "pull", "--cert-dir", cert_dir, "--creds", "testuser:testpassword", ref)
    assert json.loads(tool("buildah", store, "images", "--json").stdout)[0]["id"] == local
