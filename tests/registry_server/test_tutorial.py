"""The tutorial's "simple local Container Registry" walkthrough, served by `dockyard registry serve`.

Command for command, with what the test machine forces: the server runs as a command (not
`$CR run registry:3`) on a free port instead of 5000, the CA goes to a private certs.d root instead of
/etc/containers/certs.d, and "alpine:3" comes from a second (plain HTTP) dockyard registry through a
registries.conf alias, since there is no internet.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.registry_peer import busybox_oci, registry_env  # noqa: F401 - fixtures
from tests.registry_server.conftest import free_port, start_server

pytestmark = pytest.mark.peer("openssl", "skopeo")


def test_tutorial_walkthrough_against_dockyard_registry(dy, procs, tmp_path, registry_env,  # noqa: F811
                                                        busybox_oci):  # noqa: F811
    layout, info = busybox_oci
    upstream = start_server(procs, tmp_path / "upstream-server", root=tmp_path / "upstream")
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://{upstream.host}/library/alpine:3"], check=True, timeout=120)
    open(registry_env["CONTAINERS_REGISTRIES_CONF"], "w").write(
        f'[aliases]\n"alpine" = "{upstream.host}/library/alpine"\n\n'
        f'[[registry]]\nlocation = "{upstream.host}"\ninsecure = true\n')

    # mkdir -p data/registry/{auth,data,certs}; the tutorial's openssl and htpasswd lines.
    reg = tmp_path / "data" / "registry"
    for d in ("auth", "data", "certs"):
        (reg / d).mkdir(parents=True)
    subprocess.run(["bash", "-c", """
        openssl req -x509 -new -nodes -newkey rsa:4096 -keyout certs/server.key -sha512 -days 90 \
          -subj "/C=''/ST=''/L=''/O=''/OU=''/CN=localhost/emailAddress=''" -out certs/server.pem \
          -reqexts SAN -extensions SAN \
          -config <(cat /etc/ssl/openssl.cnf <(printf "[SAN]\\nsubjectAltName= DNS:localhost"))
        """], cwd=reg, check=True, capture_output=True, timeout=120)
    p = dy("registry", "htpasswd", "-Bbn", "testuser", "testpassword")
    assert p.returncode == 0
    (reg / "auth" / "htpasswd").write_text(p.stdout)

    port = free_port()
    host = f"localhost:{port}"
    # sudo cp data/registry/certs/server.pem /etc/containers/certs.d/localhost:5000/ca.crt
    (tmp_path / "certs.d" / host).mkdir(parents=True)
    shutil.copy(reg / "certs" / "server.pem", tmp_path / "certs.d" / host / "ca.crt")
    start_server(procs, tmp_path, port=port, root=reg / "data", delete=False, env={
        "REGISTRY_HTTP_TLS_CERTIFICATE": str(reg / "certs" / "server.pem"),
        "REGISTRY_HTTP_TLS_KEY": str(reg / "certs" / "server.key"),
        "REGISTRY_AUTH": "htpasswd",
        "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
        "REGISTRY_AUTH_HTPASSWD_PATH": str(reg / "auth" / "htpasswd"),
    })

    def run(*args, **kw):
        p = dy(*args, env=registry_env, **kw)
        assert p.returncode == 0, f"{args}: {p.stderr}"
        return p

    def images() -> list[dict]:
        # Docker prints one JSON object per line for --format json; accept an array as well.
        out = run("images", "--format", "json").stdout.strip()
        if out.startswith("["):
            return json.loads(out)
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    p = dy("login", host, env=registry_env, input="testuser\nwrongpassword\n")
    assert p.returncode != 0
    p = run("login", host, input="testuser\ntestpassword\n")
    assert "Login Succeeded" in p.stdout
    run("image", "pull", "alpine:3")
    run("image", "tag", "alpine:3", f"{host}/myfirstimage:3")
    p = run("image", "push", f"{host}/myfirstimage:3")
    assert f"The push refers to repository [{host}/myfirstimage]" in p.stdout
    assert f"3: digest: {info['manifest']}" in p.stdout
    run("image", "rm", "alpine:3")
    run("image", "rm", f"{host}/myfirstimage:3")
    assert images() == []
    p = run("image", "pull", f"{host}/myfirstimage:3")
    assert f"Status: Downloaded newer image for {host}/myfirstimage:3" in p.stdout
    assert len(images()) == 1
    p = run("logout", host)
    assert f"Removing login credentials for {host}" in p.stdout
    p = dy("image", "pull", f"{host}/myfirstimage:3", env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr
    # What was pushed is on disk where the tutorial's volume points.
    assert (reg / "data" / "repositories" / "myfirstimage" / "_manifests" / "tags" / "3").read_text() == \
        info["manifest"]
