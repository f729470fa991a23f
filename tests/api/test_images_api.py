"""Image endpoints: tag, push and pull with X-Registry-Auth against a real registry (TLS + htpasswd),
inspect, history, remove, and a save/load round trip; docker-py drives push and pull."""

from __future__ import annotations

import base64
import json

import pytest

from tests.api.conftest import IMAGE, Service, start_service, stop_service
from tests.helpers import run_cli, wait_for
from tests.registry_peer import registry, registry_env, trust  # noqa: F401


@pytest.fixture
def service(tmp_path, registry_env):  # noqa: F811 - the fixture imported above
    root, runroot, sock = tmp_path / "root", tmp_path / "run", tmp_path / "img.sock"
    root.mkdir()
    run_cli("image", "bootstrap", "busybox", root=root, check=True)
    p = start_service(root, runroot, sock, "--time", "0")
    try:
        wait_for(lambda: sock.exists() or p.poll() is not None, timeout=60, what="the API socket")
        assert p.poll() is None
        yield Service(root, runroot, sock)
    finally:
        stop_service(p)


def _lines(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


@pytest.mark.peer("docker-registry")
def test_tag_push_pull_with_registry_auth(service, registry, registry_env):  # noqa: F811
    reg = registry(tls=True, auth=("apiuser", "apipass"))
    trust(reg, registry_env)
    auth = base64.urlsafe_b64encode(json.dumps({"username": "apiuser", "password": "apipass",
                                                "serveraddress": reg.host}).encode()).decode()
    bad = base64.urlsafe_b64encode(json.dumps({"username": "apiuser", "password": "nope"}).encode()).decode()
    repo = f"{reg.host}/api/bb"
    code = ["-o", "/dev/null", "-w", "%{http_code}"]
    assert service.curl(*code, "-XPOST", f"http://localhost/images/{IMAGE}/tag?repo={repo}&tag=v1").stdout == "201"
    src = json.loads(service.curl(f"http://localhost/images/{IMAGE}/json").stdout)
    tagged = json.loads(service.curl(f"http://localhost/v1.41/images/{repo}:v1/json").stdout)
    assert tagged["Id"] == src["Id"]

    denied = _lines(service.curl("-XPOST", "-H", f"X-Registry-Auth: {bad}",
                                 f"http://localhost/images/{repo}/push?tag=v1").stdout)
    assert "error" in denied[-1] and denied[-1]["errorDetail"]["message"]
    pushed = _lines(service.curl("-XPOST", "-H", f"X-Registry-Auth: {auth}",
                                 f"http://localhost/images/{repo}/push?tag=v1").stdout)
    assert pushed[-1]["aux"]["Tag"] == "v1" and pushed[-1]["aux"]["Digest"].startswith("sha256:")

    removed = json.loads(service.curl("-XDELETE", f"http://localhost/images/{repo}:v1").stdout)
    assert removed == [{"Untagged": f"{repo}:v1"}]
    assert service.curl(*code, f"http://localhost/images/{repo}:v1/json").stdout == "404"

    pulled = _lines(service.curl("-XPOST", "-H", f"X-Registry-Auth: {auth}",
                                 f"http://localhost/images/create?fromImage={repo}&tag=v1").stdout)
    assert pulled[-1]["status"] == f"Status: Image is up to date for {repo}:v1" or \
        pulled[-1]["status"] == f"Status: Downloaded newer image for {repo}:v1"
    assert any(m["status"].startswith("Digest: sha256:") for m in pulled)
    again = json.loads(service.curl(f"http://localhost/images/{repo}:v1/json").stdout)
    assert again["Id"] == src["Id"]
    hist = json.loads(service.curl(f"http://localhost/images/{repo}:v1/history").stdout)
    assert hist[0]["Id"] == src["Id"] and f"{repo}:v1" in hist[0]["Tags"]

    # docker-py: the same through a real client library
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=service.uri, timeout=120)
    try:
        creds = {"username": "apiuser", "password": "apipass"}
        client.images.get(IMAGE).tag(f"{reg.host}/api/py", "v2")
        out = client.images.push(f"{reg.host}/api/py", "v2", auth_config=creds)
        assert '"Digest"' in out
        client.images.remove(f"{reg.host}/api/py:v2")
        img = client.images.pull(f"{reg.host}/api/py", tag="v2", auth_config=creds)
        assert img.id == src["Id"] and f"{reg.host}/api/py:v2" in img.tags
    finally:
        client.close()


def test_save_and_load_round_trip(service, tmp_path):
    tar = tmp_path / "bb.tar"
    p = service.curl("-o", str(tar), "-w", "%{http_code}", f"http://localhost/images/get?names={IMAGE}")
    assert p.stdout == "200" and tar.stat().st_size > 100_000
    src = json.loads(service.curl(f"http://localhost/images/{IMAGE}/json").stdout)
    assert service.curl("-XDELETE", f"http://localhost/images/{IMAGE}").returncode == 0
    assert service.curl("-o", "/dev/null", "-w", "%{http_code}", f"http://localhost/images/{IMAGE}/json").stdout == "404"
    loaded = _lines(service.curl("-XPOST", "-H", "Content-Type: application/x-tar", "--data-binary", f"@{tar}",
                                 "http://localhost/images/load").stdout)
    assert loaded == [{"stream": f"Loaded image: {IMAGE}:latest\n"}]
    listed = json.loads(service.curl("http://localhost/images/json").stdout)
    assert [(i["Id"], i["RepoTags"]) for i in listed] == [(src["Id"], [f"{IMAGE}:latest"])]


@pytest.mark.peer("docker-registry")
def test_docker_cli_login_push_pull(service, registry, registry_env):  # noqa: F811
    import os
    import subprocess

    docker = "/usr/local/bin/docker"
    if not os.path.exists(docker):
        pytest.skip("the docker CLI is not installed")
    reg = registry(tls=True, auth=("cliuser", "clipass"))
    trust(reg, registry_env)
    env = service.env()

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([docker, *args], capture_output=True, text=True, env=env, input=input, timeout=120)

    bad = run("login", "-u", "cliuser", "--password-stdin", reg.host, input="wrong\n")
    assert bad.returncode != 0 and "invalid username/password" in bad.stderr
    ok = run("login", "-u", "cliuser", "--password-stdin", reg.host, input="clipass\n")
    assert ok.returncode == 0 and "Login Succeeded" in ok.stdout, ok.stderr
    # the server stored nothing: the docker CLI keeps the credentials and sends them along
    assert not os.path.exists(registry_env["REGISTRY_AUTH_FILE"])
    ref = f"{reg.host}/cli/bb:v3"
    assert run("tag", IMAGE, ref).returncode == 0
    push = run("push", ref)
    assert push.returncode == 0 and "digest: sha256:" in push.stdout, push.stderr
    assert run("rmi", ref).returncode == 0
    pull = run("pull", ref)
    assert pull.returncode == 0, pull.stderr
    assert f"Status: Downloaded newer image for {ref}" in pull.stdout, pull.stdout
    images = run("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert ref in images
