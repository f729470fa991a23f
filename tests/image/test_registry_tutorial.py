# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""The tutorial's "simple local Container Registry" walkthrough, command for command.

Differences forced by the test machine, not by dockyard: the registry is Debian's docker-registry
started by the test (not `$CR run registry:3`) on a free port instead of 5000, the CA goes to a
private certs.d root instead of /etc/containers/certs.d, and "alpine:3" comes from a second local
registry through a registries.conf alias, since there is no internet.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.registry_peer import busybox_oci, registry, registry_env, trust  # noqa: F401

pytestmark = pytest.mark.peer("docker-registry", "skopeo")


def test_tutorial_registry_walkthrough(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    upstream = registry()
    # The OCI layout's tag is "v1"; publish it upstream as library/alpine:3.
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://127.0.0.1:{upstream.port}/library/alpine:3"], check=True, timeout=120)
    open(registry_env["CONTAINERS_REGISTRIES_CONF"], "w").write(
        f'[aliases]\n"alpine" = "127.0.0.1:{upstream.port}/library/alpine"\n\n'
        f'[[registry]]\nlocation = "127.0.0.1:{upstream.port}"\ninsecure = true\n')

    # The tutorial's registry: TLS with a self-signed localhost certificate, htpasswd testuser.
    reg = registry(tls=True, auth=("testuser", "testpassword"))
    trust(reg, registry_env)  # sudo cp server.pem /etc/containers/certs.d/localhost:5000/ca.crt
    host = reg.host
    assert host.startswith("localhost:")

    def run(*args, **kw):
        p = dy(*args, env=registry_env, **kw)
        assert p.returncode == 0, f"{args}: {p.stderr}"
        return p

    p = run("login", host, input="testuser\ntestpassword\n")
    assert "Login Succeeded" in p.stdout
    run("image", "pull", "alpine:3")
    run("image", "tag", "alpine:3", f"{host}/myfirstimage:3")
    p = run("image", "push", f"{host}/myfirstimage:3")
    assert f"The push refers to repository [{host}/myfirstimage]" in p.stdout
    assert f"3: digest: {info['manifest']}" in p.stdout
    run("image", "rm", "alpine:3")
    run("image", "rm", f"{host}/myfirstimage:3")
    p = run("images", "--format", "json")  # one JSON object per line, like docker
    assert p.stdout.strip() == ""
    p = run("image", "pull", f"{host}/myfirstimage:3")
    assert f"Status: Downloaded newer image for {host}/myfirstimage:3" in p.stdout
    p = run("images", "--format", "json")
    imgs = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert len(imgs) == 1
    p = run("logout", host)
    assert f"Removing login credentials for {host}" in p.stdout
    # Logged out: the registry refuses us again.
    p = dy("image", "pull", f"{host}/myfirstimage:3", env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr
