"""htpasswd users over TLS, configured like the reference registry: env variables and a YAML file."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import requests

from tests.helpers import run_cli
from tests.registry_server.conftest import (
    free_port,
    htpasswd_entry,
    make_certs,
    sha,
    skopeo,
    start_server,
)


def test_htpasswd_prints_bcrypt_entry():
    entry = htpasswd_entry("testuser", "testpassword")
    user, _, h = entry.partition(":")
    assert user == "testuser" and h.startswith("$2y$10$") and len(h) == 60
    import bcrypt

    assert bcrypt.checkpw(b"testpassword", h.encode())
    p = run_cli("registry", "htpasswd", "-Bbn", "bad:user", "pw")
    assert p.returncode == 125 and p.stderr.count("\n") == 1 and "invalid user name" in p.stderr


@pytest.mark.peer("htpasswd")
def test_htpasswd_entry_verifies_with_apache(tmp_path):
    f = tmp_path / "htpasswd"
    run_cli("registry", "htpasswd", "-Bbc", str(f), "alice", "s3cret", check=True)
    run_cli("registry", "htpasswd", "-Bb", str(f), "bob", "other", check=True)
    assert subprocess.run(["htpasswd", "-vb", str(f), "alice", "s3cret"], capture_output=True).returncode == 0
    assert subprocess.run(["htpasswd", "-vb", str(f), "bob", "wrong"], capture_output=True).returncode != 0


def test_basic_auth_challenge_and_login(secured):
    ca = str(secured.certs.cert)
    base = f"https://localhost:{secured.port}"
    r = requests.get(base + "/v2/", verify=ca)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Registry Realm"'
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    r = requests.get(base + "/v2/", verify=ca, auth=("testuser", "wrong"))
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    r = requests.get(base + "/v2/", verify=ca, auth=("nobody", "testpassword"))
    assert r.status_code == 401
    r = requests.get(base + "/v2/_catalog", verify=ca, auth=("testuser", "testpassword"))
    assert r.status_code == 200 and r.json() == {"repositories": []}
    # Plain HTTP to the TLS port gets nowhere.
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{secured.port}/v2/", timeout=10)


@pytest.mark.peer("skopeo")
def test_skopeo_with_ca_and_credentials(secured, image, tmp_path):
    certs = secured.certs
    host = f"localhost:{secured.port}"
    authfile = tmp_path / "auth.json"
    cert_dir = str(certs.certs_d / host)
    p = subprocess.run(["skopeo", "login", "--authfile", str(authfile), "--cert-dir", cert_dir,
                        "-u", "testuser", "-p", "wrong", host], capture_output=True, text=True)
    assert p.returncode != 0 and not authfile.exists()
    skopeo("login", "--authfile", str(authfile), "--cert-dir", cert_dir, "-u", "testuser", "-p", "testpassword",
           host)
    dest = f"docker://{host}/myfirstimage:3"
    skopeo("copy", "--authfile", str(authfile), "--dest-cert-dir", cert_dir, image.ref, dest)
    raw = skopeo("inspect", "--authfile", str(authfile), "--cert-dir", cert_dir, "--raw", dest).stdout
    assert sha(raw.encode()) == image.digest
    skopeo("logout", "--authfile", str(authfile), host)
    p = subprocess.run(["skopeo", "inspect", "--authfile", str(authfile), "--cert-dir", cert_dir, dest],
                       capture_output=True, text=True)
    assert p.returncode != 0 and "unauthorized" in p.stderr.lower()


def test_htpasswd_without_tls_refused(tmp_path):
    (tmp_path / "htpasswd").write_text(htpasswd_entry("u", "p") + "\n")
    p = run_cli("registry", "serve", env={"REGISTRY_AUTH": "htpasswd",
                                          "REGISTRY_AUTH_HTPASSWD_PATH": str(tmp_path / "htpasswd"),
                                          "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "d"),
                                          "REGISTRY_HTTP_ADDR": f"127.0.0.1:{free_port()}"}, timeout=30)
    assert p.returncode == 125
    assert p.stderr.startswith("Error: htpasswd authentication requires TLS") and p.stderr.count("\n") == 1


def test_config_errors_are_one_line(tmp_path):
    root = str(tmp_path / "d")
    cases = [
        ({"REGISTRY_AUTH": "token"}, "auth backend 'token' is not supported"),
        ({"REGISTRY_STORAGE": "s3"}, "storage driver 's3' is not supported"),
        ({"REGISTRY_HTTP_ADDR": "nonsense"}, "invalid listen address"),
        ({"REGISTRY_HTTP_TLS_CERTIFICATE": "/nonexistent.pem", "REGISTRY_HTTP_TLS_KEY": "/nonexistent.key"},
         "cannot load TLS certificate"),
        ({"REGISTRY_HTTP_TLS_CERTIFICATE": "/x.pem"}, "TLS needs both"),
        ({"REGISTRY_AUTH": "htpasswd"}, "htpasswd auth needs a password file"),
    ]
    for env, msg in cases:
        env = {"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": root, "REGISTRY_HTTP_ADDR": f"127.0.0.1:{free_port()}",
               **env}
        p = run_cli("registry", "serve", env=env, timeout=30)
        assert p.returncode == 125 and msg in p.stderr and p.stderr.count("\n") == 1, (env, p.stderr)


def test_unusable_storage_root(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    p = run_cli("registry", "serve", env={"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY": str(tmp_path / "file" / "x"),
                                          "REGISTRY_HTTP_ADDR": f"127.0.0.1:{free_port()}"}, timeout=30)
    assert p.returncode == 125 and "cannot use registry storage" in p.stderr and p.stderr.count("\n") == 1


def test_yaml_config_file_with_env_override(procs, tmp_path):
    port = free_port()
    certs = make_certs(tmp_path / "certs", [port])
    shutil.copy(certs.cert, tmp_path / "server.pem")
    (tmp_path / "htpasswd").write_text(htpasswd_entry("fileuser", "filepass") + "\n")
    cfg = tmp_path / "config.yml"
    cfg.write_text(f"""version: 0.1
log:
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: {tmp_path / 'from-file'}
  delete:
    enabled: false
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:{port}
  tls:
    certificate: {certs.cert}
    key: {certs.key}
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  htpasswd:
    realm: file-realm
    path: {tmp_path / 'htpasswd'}
""")
    env: dict[str, str | None] = {"REGISTRY_HTTP_ADDR": None, "REGISTRY_STORAGE_DELETE_ENABLED": "true"}
    server = start_server(procs, tmp_path, env=env, port=port, args=[str(cfg)],
                          root=tmp_path / "from-env")
    ca = str(certs.cert)
    r = requests.get(f"https://127.0.0.1:{port}/v2/", verify=ca)
    assert r.headers["WWW-Authenticate"] == 'Basic realm="file-realm"'
    auth = ("fileuser", "filepass")
    data = b"config file works"
    r = requests.post(f"https://127.0.0.1:{port}/v2/x/blobs/uploads/?digest={sha(data)}", data=data,
                      verify=ca, auth=auth)
    assert r.status_code == 201
    # The environment wins over the file, as with the reference registry.
    assert (tmp_path / "from-env" / "blobs").is_dir() and not (tmp_path / "from-file").exists()
    r = requests.delete(f"https://127.0.0.1:{port}/v2/x/blobs/{sha(data)}", verify=ca, auth=auth)
    assert r.status_code == 202
    assert server.proc.poll() is None


def test_load_config_env_mapping():
    from dockyard.registry.server.config import load_config

    cfg = load_config(env={"REGISTRY_HTTP_TLS_CERTIFICATE": "/c.pem", "REGISTRY_HTTP_TLS_KEY": "/c.key",
                           "REGISTRY_AUTH_HTPASSWD_PATH": "/auth/htpasswd", "REGISTRY_AUTH": "htpasswd",
                           "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm", "REGISTRY_AUTH_FILE": "/podman/auth.json",
                           "REGISTRY_STORAGE_DELETE_ENABLED": "true"})
    assert (cfg.tls_certificate, cfg.tls_key) == ("/c.pem", "/c.key")
    assert (cfg.htpasswd_path, cfg.htpasswd_realm) == ("/auth/htpasswd", "Registry Realm")
    assert cfg.delete_enabled and cfg.root == "/var/lib/registry" and cfg.host_port == (None, 5000)
    assert load_config(env={}, addr="[::1]:5001").host_port == ("::1", 5001)
    assert json.dumps(load_config(env={"REGISTRY_STORAGE_DELETE_ENABLED": "false"}).delete_enabled) == "false"
