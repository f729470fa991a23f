# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""registries.conf, auth.json and certs.d handling, from files as Podman and Docker write them."""

from __future__ import annotations

import base64
import json
import ssl

import pytest

from dockyard.errors import InvalidArgument
from dockyard.image.reference import parse
from dockyard.image.registries import RegistryBlocked, load
from dockyard.registry import auth, tls
from tests.registry_peer import make_self_signed, registry_env  # noqa: F401


def _conf(tmp_path, main: str, dropins: dict[str, str] | None = None):
    p = tmp_path / "registries.conf"
    p.write_text(main)
    for name, text in (dropins or {}).items():
        d = tmp_path / "registries.conf.d"
        d.mkdir(exist_ok=True)
        (d / name).write_text(text)
    return load()


def test_short_name_without_config_is_docker_hub(registry_env, tmp_path):
    conf = _conf(tmp_path, "")
    assert [str(r) for r in conf.candidates(parse("alpine"))] == ["docker.io/library/alpine:latest"]


def test_search_registries_and_aliases_from_dropins(registry_env, tmp_path):
    conf = _conf(tmp_path, 'unqualified-search-registries = ["quay.io", "docker.io"]\n', {
        "00-shortnames.conf": '[aliases]\n"alpine" = "docker.io/library/alpine"\n"fed" = "registry.example/fedora"\n',
        "50-override.conf": '[aliases]\n"fed" = "quay.io/fedora/fedora"\n',
    })
    assert [str(r) for r in conf.candidates(parse("busybox:1"))] == [
        "quay.io/busybox:1", "docker.io/library/busybox:1"]
    assert [str(r) for r in conf.candidates(parse("alpine:3"))] == ["docker.io/library/alpine:3"]
    assert [str(r) for r in conf.candidates(parse("fed"))] == ["quay.io/fedora/fedora:latest"]
    # A qualified name is never searched.
    assert [str(r) for r in conf.candidates(parse("localhost/x"))] == ["localhost/x:latest"]
    assert len(conf.files) == 3


def test_registry_tables_insecure_blocked_and_location(registry_env, tmp_path):
    conf = _conf(tmp_path, """
[[registry]]
location = "localhost:5999"
insecure = true

[[registry]]
prefix = "evil.example"
blocked = true

[[registry]]
prefix = "mirror.example/team"
location = "127.0.0.1:6000/internal"
""")
    assert conf.is_insecure("localhost:5999")
    assert not conf.is_insecure("localhost:5998")
    with pytest.raises(RegistryBlocked, match="blocked"):
        conf.check_blocked(parse("evil.example/x"))
    assert str(conf.rewrite(parse("mirror.example/team/app:1"))) == "127.0.0.1:6000/internal/app:1"


def test_v1_format(registry_env, tmp_path):
    conf = _conf(tmp_path, """
[registries.search]
registries = ["r1.example"]
[registries.insecure]
registries = ["r2.example:5000"]
[registries.block]
registries = ["r3.example"]
""")
    assert [str(r) for r in conf.candidates(parse("a"))] == ["r1.example/a:latest"]
    assert conf.is_insecure("r2.example:5000")
    with pytest.raises(RegistryBlocked):
        conf.check_blocked(parse("r3.example/a"))


def test_bad_toml_is_a_clear_error(registry_env, tmp_path):
    with pytest.raises(InvalidArgument, match="registries.conf"):
        _conf(tmp_path, "unqualified-search-registries = [\n")


def test_auth_json_roundtrip_and_docker_config(registry_env, tmp_path):
    assert auth.lookup("localhost:5001") is None
    path = auth.store("localhost:5001", "u", "p:w")
    data = json.loads(path.read_text())
    assert data == {"auths": {"localhost:5001": {"auth": base64.b64encode(b"u:p:w").decode()}}}
    assert (path.stat().st_mode & 0o777) == 0o600
    c = auth.lookup("localhost:5001", "ns/repo")
    assert (c.username, c.password) == ("u", "p:w")
    # Docker's config.json, with Docker Hub under its legacy key, is read as a fallback.
    dc = tmp_path / "docker-config"
    dc.mkdir()
    (dc / "config.json").write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:secret").decode()},
        "localhost:5001/ns/repo": {"auth": base64.b64encode(b"scoped:x").decode()}}}))
    assert auth.lookup("docker.io").username == "hub"
    # auth.json is searched before docker's file, whatever the specificity there.
    assert auth.lookup("localhost:5001", "ns/repo").username == "u"
    auth.remove("localhost:5001")
    assert auth.lookup("localhost:5001", "ns/repo").username == "scoped"
    with pytest.raises(auth.NotLoggedIn, match="not logged into localhost:5001"):
        auth.remove("localhost:5001")
    with pytest.raises(auth.NotLoggedIn, match="docker logout"):
        auth.remove("docker.io")


def test_certs_d_ca_is_trusted(registry_env, tmp_path):
    cert, key = make_self_signed(tmp_path / "c")
    d = tmp_path / "certs.d" / "localhost:7000"
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(cert.read_bytes())
    ctx = tls.ssl_context("localhost:7000")
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert any(c.get("subject") == ((("commonName", "localhost"),),) for c in ctx.get_ca_certs())
    assert not any(c.get("subject") == ((("commonName", "localhost"),),)
                   for c in tls.ssl_context("localhost:7001").get_ca_certs())
    (d / "client.key").write_text("x")
    with pytest.raises(InvalidArgument, match="missing client certificate"):
        tls.ssl_context("localhost:7000")
