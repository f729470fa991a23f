# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""login / logout / manifest inspect against the reference registry with TLS and htpasswd."""

from __future__ import annotations

import base64
import json

import pytest

from tests.registry_peer import busybox_oci, registry, registry_env, skopeo_push, trust  # noqa: F401

pytestmark = pytest.mark.peer("docker-registry", "skopeo")
USER = ("testuser", "testpassword")


def test_login_logout_cycle(dy, registry, registry_env):
    reg = registry(tls=True, auth=USER)
    trust(reg, registry_env)
    p = dy("login", "-u", USER[0], "--password-stdin", reg.host, input=USER[1] + "\n", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert "Login Succeeded" in p.stdout
    data = json.loads(open(registry_env["REGISTRY_AUTH_FILE"]).read())
    assert base64.b64decode(data["auths"][reg.host]["auth"]).decode() == "testuser:testpassword"

    p = dy("logout", reg.host, env=registry_env)
    assert p.returncode == 0, p.stderr
    assert f"Removing login credentials for {reg.host}" in p.stdout
    assert reg.host not in json.loads(open(registry_env["REGISTRY_AUTH_FILE"]).read())["auths"]

    p = dy("logout", reg.host, env=registry_env)
    assert p.returncode == 125
    assert f"Error: not logged into {reg.host}" in p.stderr


def test_login_wrong_password_stores_nothing(dy, registry, registry_env):
    reg = registry(tls=True, auth=USER)
    trust(reg, registry_env)
    p = dy("login", "-u", USER[0], "-p", "wrong", reg.host, env=registry_env)
    assert p.returncode == 125
    assert "Error:" in p.stderr and "unauthorized" in p.stderr
    assert "invalid username/password" in p.stderr
    assert "Login Succeeded" not in p.stdout
    import os
    assert not os.path.exists(registry_env["REGISTRY_AUTH_FILE"])


def test_login_untrusted_certificate_is_refused(dy, registry, registry_env):
    reg = registry(tls=True, auth=USER)
    p = dy("login", "-u", USER[0], "-p", USER[1], reg.host, env=registry_env)
    assert p.returncode == 125
    assert "certificate" in p.stderr.lower() or "tls" in p.stderr.lower()
    # --tls-verify=false is the explicit, per-command opt-out.
    p = dy("login", "--tls-verify=false", "-u", USER[0], "-p", USER[1], reg.host, env=registry_env)
    assert p.returncode == 0, p.stderr


def test_manifest_inspect_raw_and_verbose(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry(tls=True, auth=USER)
    trust(reg, registry_env)
    skopeo_push(layout, "v1", reg, "ns/busybox")
    ref = f"{reg.host}/ns/busybox:v1"

    p = dy("manifest", "inspect", ref, env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr

    assert dy("login", "-u", USER[0], "-p", USER[1], reg.host, env=registry_env).returncode == 0
    p = dy("manifest", "inspect", ref, env=registry_env)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["schemaVersion"] == 2
    assert [x["digest"] for x in doc["layers"]] == info["layers"]

    p = dy("manifest", "inspect", "-v", ref, env=registry_env)
    assert p.returncode == 0, p.stderr
    v = json.loads(p.stdout)
    assert v["Ref"] == f"{reg.host}/ns/busybox@{info['manifest']}"
    assert v["Descriptor"]["digest"] == info["manifest"]
    assert v["Descriptor"]["platform"]["os"] == "linux"
    assert json.loads(base64.b64decode(v["Raw"])) == doc
    assert v["OCIManifest"] == doc

    p = dy("manifest", "inspect", f"{reg.host}/ns/nothere:v1", env=registry_env)
    assert p.returncode == 125 and "Error:" in p.stderr and "not found" in p.stderr.lower()


def test_bearer_token_flow(dy, registry, registry_env, busybox_oci):
    """A registry delegating auth to a token server: login fetches a token with Basic credentials,
    then every API call carries a Bearer token scoped to the repository."""
    layout, info = busybox_oci
    reg = registry(tls=True, auth=USER, token=True)
    trust(reg, registry_env)
    skopeo_push(layout, "v1", reg, "ns/busybox")
    p = dy("login", "-u", USER[0], "-p", "nope", reg.host, env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr
    p = dy("login", "-u", USER[0], "-p", USER[1], reg.host, env=registry_env)
    assert p.returncode == 0, p.stderr
    reg.token_server.requests.clear()
    p = dy("manifest", "inspect", f"{reg.host}/ns/busybox:v1", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["config"]["digest"] == info["config"]
    assert (USER[0], ["repository:ns/busybox:pull"]) in reg.token_server.requests


def test_authfile_flag_and_logout_all(dy, registry, registry_env, tmp_path):
    reg = registry(auth=USER)
    other = tmp_path / "other-auth.json"
    p = dy("login", "--tls-verify=false", "--authfile", str(other), "-u", USER[0], "--password-stdin", reg.host,
           input=USER[1], env=registry_env)
    assert p.returncode == 0, p.stderr
    assert reg.host in json.loads(other.read_text())["auths"]
    import os
    assert not os.path.exists(registry_env["REGISTRY_AUTH_FILE"])
    p = dy("logout", "--authfile", str(other), "--all", env=registry_env)
    assert p.returncode == 0 and not other.exists()


def test_login_usage_errors(dy, registry_env):
    p = dy("login", "--password-stdin", "localhost:1", input="x", env=registry_env)
    assert p.returncode == 125 and "--username" in p.stderr
    p = dy("login", "-u", "a", "-p", "b", "--password-stdin", "localhost:1", input="x", env=registry_env)
    assert p.returncode == 125 and "mutually exclusive" in p.stderr


def test_login_reuses_valid_stored_credentials(dy, registry, registry_env):
    reg = registry(auth=USER)
    assert dy("login", "--tls-verify=false", "-u", USER[0], "-p", USER[1], reg.host,
              env=registry_env).returncode == 0
    p = dy("login", "--tls-verify=false", reg.host, env=registry_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"Authenticating with existing credentials for {reg.host}\nLogin Succeeded\n"
    # Stale credentials are not reused: it asks (here: reads the answers from stdin).
    import base64
    path = registry_env["REGISTRY_AUTH_FILE"]
    data = json.loads(open(path).read())
    data["auths"][reg.host]["auth"] = base64.b64encode(b"testuser:stale").decode()
    open(path, "w").write(json.dumps(data))
    p = dy("login", "--tls-verify=false", reg.host, input=f"{USER[0]}\n{USER[1]}\n", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert "existing credentials" not in p.stdout and "Login Succeeded" in p.stdout
