"""Reference parsing against the cases of Docker's distribution/reference grammar."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.image.reference import parse, parse_any, parse_domain

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("given, full, familiar", [
    ("alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("alpine:3", "docker.io/library/alpine:3", "alpine:3"),
    ("library/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("docker.io/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("docker.io/library/alpine:3.19", "docker.io/library/alpine:3.19", "alpine:3.19"),
    ("index.docker.io/library/alpine", "docker.io/library/alpine:latest", "alpine:latest"),
    ("user/app", "docker.io/user/app:latest", "user/app:latest"),
    ("user/app/sub:v1", "docker.io/user/app/sub:v1", "user/app/sub:v1"),
    ("docker.io/hello-world:latest", "docker.io/library/hello-world:latest", "hello-world:latest"),
    ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ("localhost:5000/myfirstimage:3", "localhost:5000/myfirstimage:3", "localhost:5000/myfirstimage:3"),
    ("127.0.0.1:5000/ns/repo:tag", "127.0.0.1:5000/ns/repo:tag", "127.0.0.1:5000/ns/repo:tag"),
    ("quay.io/podman/hello", "quay.io/podman/hello:latest", "quay.io/podman/hello:latest"),
    ("example.com:8080/a_b/c__d/e-f/g---h:T_1.x-y", "example.com:8080/a_b/c__d/e-f/g---h:T_1.x-y",
     "example.com:8080/a_b/c__d/e-f/g---h:T_1.x-y"),
    ("[::1]:5000/repo", "[::1]:5000/repo:latest", "[::1]:5000/repo:latest"),
    ("Example/foo", "Example/foo:latest", "Example/foo:latest"),  # upper-case first part is a domain
    (f"alpine@{D}", f"docker.io/library/alpine@{D}", f"alpine@{D}"),
    (f"alpine:3@{D}", f"docker.io/library/alpine:3@{D}", f"alpine:3@{D}"),
    (f"host:1/r@{D}", f"host:1/r@{D}", f"host:1/r@{D}"),
    ("localhost:5000", "docker.io/library/localhost:5000", "localhost:5000"),  # a tag, as in Docker
])
def test_valid(given, full, familiar):
    ref = parse(given)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_fields_and_helpers():
    ref = parse("localhost:5000/ns/repo:tag")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("localhost:5000", "ns/repo", "tag", None)
    assert ref.name == "localhost:5000/ns/repo"
    assert ref.reference == "tag"
    assert str(ref.with_tag("v2")) == "localhost:5000/ns/repo:v2"
    assert parse(f"a@{D}").reference == D
    assert parse_any("alpine").tag is None
    assert parse("alpine") == parse("docker.io/library/alpine:latest")


def test_short_names():
    assert parse("alpine").short_name == "alpine"
    assert parse("alpine:3").short_name == "alpine"
    assert parse(f"org/app:1@{D}").short_name == "org/app"
    assert parse("docker.io/alpine").short_name is None
    assert parse("localhost/alpine").short_name is None
    assert str(parse("alpine:3").with_domain("quay.io")) == "quay.io/alpine:3"
    assert str(parse("alpine:3").with_domain("docker.io")) == "docker.io/library/alpine:3"
    assert str(parse("org/app").with_domain("r.example:5000")) == "r.example:5000/org/app:latest"


@pytest.mark.parametrize("bad, msg", [
    ("", "invalid reference format"),
    ("Alpine", "repository name (library/Alpine) must be lowercase"),
    ("user/App", "repository name (user/App) must be lowercase"),
    ("alpine:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("alpine::3", "invalid reference format"),
    ("-alpine", "invalid reference format"),
    ("alpine-", "invalid reference format"),
    ("a..b", "invalid reference format"),
    ("a/", "invalid reference format"),
    ("/a", "invalid reference format"),
    ("a//b", "invalid reference format"),
    ("host:port/repo", "invalid reference format"),
    ("alpine:" + "t" * 129, "invalid reference format"),
    ("alpine:.bad", "invalid reference format"),
    ("alpine@sha256:abc", "invalid reference format"),
    ("alpine@sha256:" + "A" * 64, "invalid checksum digest length"),
    ("alpine@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("a" * 64, "cannot specify 64-byte hexadecimal strings"),
    ("x/" + "a" * 255, "must not be more than 255 characters"),
    ("alpine latest", "invalid reference format"),
    ("https://docker.io/alpine", "invalid reference format"),
])
def test_invalid(bad, msg):
    with pytest.raises(InvalidArgument) as e:
        parse(bad)
    assert msg in str(e.value)


def test_bad_tag_in_with_tag():
    with pytest.raises(InvalidArgument, match="invalid tag format"):
        parse("alpine").with_tag("no/slashes")


@pytest.mark.parametrize("given, host", [
    ("localhost:5000", "localhost:5000"),
    ("https://localhost:5000/v2/", "localhost:5000"),
    ("index.docker.io", "docker.io"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("quay.io", "quay.io"),
])
def test_parse_domain(given, host):
    assert parse_domain(given) == host


def test_parse_domain_invalid():
    with pytest.raises(InvalidArgument):
        parse_domain("bad host")
