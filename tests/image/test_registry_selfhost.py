# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""dockyard's client against dockyard's own registry server (`dockyard registry serve`), configured
with the same file as the reference registry: TLS, htpasswd, push (monolithic, chunked, mount),
pull, and skopeo reading what dockyard pushed there."""

from __future__ import annotations

import json
import subprocess

import pytest

from dockyard.engine import Engine
from tests.registry_peer import busybox_oci, registry, registry_env, skopeo_push, trust  # noqa: F401

pytestmark = pytest.mark.peer("docker-registry", "skopeo")
USER = ("testuser", "testpassword")


def test_push_and_pull_through_dockyard_registry(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    seed = registry()
    skopeo_push(layout, "v1", seed, "seed/bb")
    src = f"127.0.0.1:{seed.port}/seed/bb:v1"
    assert dy("pull", "--tls-verify=false", src, env=registry_env).returncode == 0

    own = registry(tls=True, auth=USER, server="dockyard")
    trust(own, registry_env)

    def run(*args, **kw):
        p = dy(*args, env=registry_env, **kw)
        assert p.returncode == 0, f"{args}: {p.stderr}"
        return p

    p = dy("push", src, f"{own.host}/mine/bb:1", env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr
    run("login", "-u", USER[0], "--password-stdin", own.host, input=USER[1])
    p = run("push", src, f"{own.host}/mine/bb:1")
    assert p.stdout.count(": Pushed") == len(info["layers"])
    p = run("push", "--chunk-size", "100000", src, f"{own.host}/chunked/bb:1")
    run("tag", src, f"{own.host}/mine/bb:1")
    p = run("push", f"{own.host}/mine/bb:1", f"{own.host}/mounted/bb:1")
    assert p.stdout.count("Mounted from mine/bb") + p.stdout.count("Layer already exists") == len(info["layers"])

    fresh = dy.root.parent / "fresh-root"
    fresh.mkdir()
    from tests.helpers import run_cli
    p = run_cli("pull", f"{own.host}/chunked/bb:1", root=fresh, env=registry_env)
    assert p.returncode == 0, p.stderr
    e = Engine(fresh)
    try:
        assert e.images.get(f"{own.host}/chunked/bb:1").id == info["config"]
    finally:
        e.close()

    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", ":".join(USER),
                          f"docker://{own.host}/mounted/bb:1"], capture_output=True, check=True).stdout
    assert [x["digest"] for x in json.loads(raw)["layers"]] == info["layers"]
