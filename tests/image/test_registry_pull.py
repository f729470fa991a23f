# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
"""pull and push against the reference registry: plain HTTP, TLS with a certs.d CA, htpasswd."""

from __future__ import annotations

import json

import pytest

from dockyard.engine import Engine
from tests.registry_peer import busybox_oci, registry, registry_env, skopeo_push, trust  # noqa: F401

pytestmark = pytest.mark.peer("docker-registry", "skopeo")
USER = ("testuser", "testpassword")


def image(root, ref):
    e = Engine(root)
    try:
        return e.images.get(ref)
    finally:
        e.close()


def test_pull_plain_http_with_tls_verify_false(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "ns/busybox")
    name = f"127.0.0.1:{reg.port}/ns/busybox:v1"
    p = dy("pull", "--tls-verify=false", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "v1: Pulling from ns/busybox"
    for d in info["layers"]:
        assert f"{d.split(':')[1][:12]}: Pull complete" in lines
    assert f"Digest: {info['manifest']}" in lines
    assert f"Status: Downloaded newer image for {name}" in lines
    assert lines[-1] == name
    img = image(dy.root, name)
    assert img.id == info["config"]
    assert name in img.repo_tags
    assert [lay.digest for lay in img.layers] == info["layers"]
    assert f"127.0.0.1:{reg.port}/ns/busybox@{info['manifest']}" in img.repo_digests

    # Second pull: nothing downloaded, "up to date".
    p = dy("pull", "--tls-verify=false", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    assert "Already exists" in p.stdout and "Pull complete" not in p.stdout
    assert f"Status: Image is up to date for {name}" in p.stdout

    # Quiet prints only the name, and by-digest pulls verify the digest.
    p = dy("pull", "-q", "--tls-verify=false", f"127.0.0.1:{reg.port}/ns/busybox@{info['manifest']}",
           env=registry_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"127.0.0.1:{reg.port}/ns/busybox@{info['manifest']}\n"


def test_images_digest_rows(dy, registry, registry_env, busybox_oci):
    """Docker's rows for pulled images: digests per repository (with --digests or a {{.Digest}} column),
    a tag of another repository shows <none>; untagged, the repository stays with a <none> tag."""
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "ns/busybox")
    repo = f"127.0.0.1:{reg.port}/ns/busybox"
    dy("pull", "-q", "--tls-verify=false", f"{repo}:v1", env=registry_env, check=True)
    dy("tag", f"{repo}:v1", "mine:1", check=True)
    width = len(repo) + 3
    out = dy("images", "--digests", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}", check=True).stdout
    assert out == ("REPOSITORY".ljust(width) + "TAG       DIGEST\n"
                   + repo.ljust(width) + f"v1        {info['manifest']}\n"
                   + "mine".ljust(width) + "1         <none>\n")
    # A {{.Digest}} column shows them without --digests; a custom table gets DIGEST appended with it.
    assert dy("images", "--format", "{{.Tag}} {{.Digest}}", check=True).stdout == f"v1 {info['manifest']}\n1 <none>\n"
    out = dy("images", "--digests", "--format", "table {{.Tag}}", check=True).stdout
    assert out.splitlines()[0] == "TAG       DIGEST"
    dy("rmi", "mine:1", f"{repo}:v1", check=True)
    assert dy("images", "-a", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}", check=True).stdout == ""
    dy("pull", "-q", "--tls-verify=false", f"{repo}@{info['manifest']}", env=registry_env, check=True)
    assert dy("images", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}", check=True).stdout == f"{repo}|<none>|\n"
    out = dy("images", "--digests", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}", check=True).stdout
    assert out == f"{repo}|<none>|{info['manifest']}\n"

    # rmi -f of a name a container uses: the tag and that repository's digests go, the image stays dangling.
    dy("tag", f"{repo}@{info['manifest']}", f"{repo}:v1", check=True)
    p = dy("create", f"{repo}:v1", "true")
    if p.returncode != 0:
        pytest.skip(f"containers cannot be created here: {p.stderr.strip()}")
    p = dy("rmi", "-f", f"{repo}:v1", check=True)
    assert p.stdout == f"Untagged: {repo}:v1\nUntagged: {repo}@{info['manifest']}\n"
    out = dy("images", "--digests", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}", check=True).stdout
    assert out == "<none>|<none>|<none>\n"


def test_pull_tls_certs_d_and_htpasswd(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry(tls=True, auth=USER)
    skopeo_push(layout, "v1", reg, "ns/busybox")
    name = f"{reg.host}/ns/busybox:v1"
    trust(reg, registry_env)
    p = dy("pull", name, env=registry_env)
    assert p.returncode == 125 and "unauthorized" in p.stderr
    assert dy("login", "-u", USER[0], "-p", USER[1], reg.host, env=registry_env).returncode == 0
    p = dy("pull", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    assert image(dy.root, name).id == info["config"]


def test_push_monolithic_chunked_and_mount(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry(tls=True, auth=USER)
    trust(reg, registry_env)
    skopeo_push(layout, "v1", reg, "src/busybox")
    assert dy("login", "-u", USER[0], "-p", USER[1], reg.host, env=registry_env).returncode == 0
    assert dy("pull", f"{reg.host}/src/busybox:v1", env=registry_env).returncode == 0

    # Monolithic upload to a new repository of another registry (no blobs there yet).
    other = registry(tls=True)
    trust(other, registry_env)
    p = dy("push", f"{reg.host}/src/busybox:v1", f"{other.host}/mono/busybox:v2", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert f"The push refers to repository [{other.host}/mono/busybox]" in p.stdout
    assert p.stdout.count(": Pushed") == len(info["layers"])
    assert p.stdout.strip().endswith(f"v2: digest: {info['manifest']} size: "
                                     f"{len((layout / 'blobs/sha256' / info['manifest'].split(':')[1]).read_bytes())}")
    # Pushing again finds every layer there.
    p = dy("push", f"{reg.host}/src/busybox:v1", f"{other.host}/mono/busybox:v2", env=registry_env)
    assert p.returncode == 0 and p.stdout.count("Layer already exists") == len(info["layers"])

    # Chunked upload.
    p = dy("push", "--chunk-size", "65536", f"{reg.host}/src/busybox:v1", f"{other.host}/chunked/bb:v1",
           env=registry_env)
    assert p.returncode == 0, p.stderr

    # Cross-repository mount: the image is also tagged in src/busybox on the same registry.
    assert dy("push", f"{reg.host}/src/busybox:v1", f"{reg.host}/dst/busybox:v1",
              env=registry_env).returncode == 0
    p = dy("push", f"{reg.host}/src/busybox:v1", f"{reg.host}/dst/busybox:v1", env=registry_env)
    assert p.returncode == 0

    # What landed is byte-identical: skopeo reads it back.
    import subprocess
    for host, repo in ((other.host, "mono/busybox:v2"), (other.host, "chunked/bb:v1"), (reg.host, "dst/busybox:v1")):
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", *(["--creds", ":".join(USER)] if host == reg.host else []),
                              f"docker://{host}/{repo}"], capture_output=True, check=True).stdout
        assert [x["digest"] for x in json.loads(raw)["layers"]] == info["layers"]


def test_push_mounts_from_another_repository(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "src/busybox")
    src = f"127.0.0.1:{reg.port}/src/busybox:v1"
    assert dy("pull", "--tls-verify=false", src, env=registry_env).returncode == 0
    p = dy("push", "--tls-verify=false", src, f"127.0.0.1:{reg.port}/dst/busybox:v1", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("Mounted from src/busybox") == len(info["layers"])


def test_push_unknown_image(dy, registry_env):
    p = dy("push", "--tls-verify=false", "127.0.0.1:1/nothere:v1", env=registry_env)
    assert p.returncode == 125 and "Error:" in p.stderr


def test_short_names_resolve_through_registries_conf(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "ns/busybox")
    host = f"127.0.0.1:{reg.port}"
    conf = registry_env["CONTAINERS_REGISTRIES_CONF"]
    open(conf, "w").write(f'unqualified-search-registries = ["{host}"]\n\n'
                          f'[[registry]]\nlocation = "{host}"\ninsecure = true\n\n'
                          f'[[registry]]\nprefix = "blocked.example"\nblocked = true\n')
    import os
    os.makedirs(conf + ".d")
    open(conf + ".d/10-aliases.conf", "w").write(f'[aliases]\n"mybb" = "{host}/ns/busybox"\n')

    # Search registry, and `insecure = true` allows plain HTTP without --tls-verify=false.
    p = dy("pull", "ns/busybox:v1", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == f"{host}/ns/busybox:v1"
    # Alias from a drop-in.
    p = dy("pull", "-q", "mybb:v1", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"{host}/ns/busybox:v1\n"
    p = dy("pull", "blocked.example/x", env=registry_env)
    assert p.returncode == 125 and "blocked" in p.stderr
    p = dy("pull", "ns/nothere:v1", env=registry_env)
    assert p.returncode == 125 and "not found" in p.stderr.lower()


def test_pull_all_tags(dy, registry, registry_env, busybox_oci):
    import subprocess

    from dockyard.registry.client import RegistryClient

    layout, info = busybox_oci
    reg = registry()
    for tag in ("a", "b", "c"):
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v1",
                        f"docker://127.0.0.1:{reg.port}/ns/multi:{tag}"], check=True, timeout=120)
    c = RegistryClient(f"127.0.0.1:{reg.port}", tls_verify=False)
    assert sorted(c.list_tags("ns/multi", page_size=1)) == ["a", "b", "c"]  # paginated via Link
    c.close()
    repo = f"127.0.0.1:{reg.port}/ns/multi"
    p = dy("pull", "--tls-verify=false", "-a", repo, env=registry_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("Digest: ") == 3
    assert p.stdout.splitlines()[-1] == repo
    assert f"Status: Downloaded newer image for {repo}" in p.stdout
    img = image(dy.root, f"{repo}:b")
    assert {f"{repo}:a", f"{repo}:b", f"{repo}:c"} <= set(img.repo_tags)
    p = dy("pull", "--tls-verify=false", "-a", f"{repo}:a", env=registry_env)
    assert p.returncode == 125 and "tag can't be used with --all-tags" in p.stderr


@pytest.mark.peer("script")
def test_tty_progress_display(dy, registry, registry_env, busybox_oci, tmp_path):
    """On a terminal the per-layer lines are a rich live display; the final state is Docker's."""
    import os
    import shlex
    import subprocess

    from tests.helpers import REPO, dockyard_cmd

    layout, info = busybox_oci
    reg = registry()
    skopeo_push(layout, "v1", reg, "ns/busybox")
    cmd = dockyard_cmd(dy.root) + ["pull", "--tls-verify=false", f"127.0.0.1:{reg.port}/ns/busybox:v1"]
    env = dict(os.environ, **registry_env, PYTHONPATH=str(REPO), COLUMNS="120", TERM="xterm")
    p = subprocess.run(["script", "-qec", shlex.join(cmd), "/dev/null"], capture_output=True, text=True,
                       env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.replace("\r", "")
    assert "\x1b[" in out  # cursor control: the live display really ran
    for d in info["layers"]:
        assert f"{d.split(':')[1][:12]}: Pull complete" in out
    assert f"Status: Downloaded newer image for 127.0.0.1:{reg.port}/ns/busybox:v1" in out


def test_registry_mirrors(dy, registry, registry_env, busybox_oci):
    layout, info = busybox_oci
    primary, mirror = registry(), registry()
    skopeo_push(layout, "v1", mirror, "ns/bb")  # only the mirror has v1
    skopeo_push(layout, "v1", primary, "ns/bb")
    import subprocess
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:v1",
                    f"docker://127.0.0.1:{primary.port}/ns/bb:only-primary"], check=True, timeout=120)
    conf = registry_env["CONTAINERS_REGISTRIES_CONF"]

    def write(mode):
        open(conf, "w").write(f'[[registry]]\nprefix = "mirrored.example"\nlocation = "127.0.0.1:{primary.port}"\n'
                              f'insecure = true\n\n[[registry.mirror]]\nlocation = "127.0.0.1:{mirror.port}"\n'
                              f'insecure = true\npull-from-mirror = "{mode}"\n')

    write("all")
    p = dy("pull", "-q", "mirrored.example/ns/bb:v1", env=registry_env)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "mirrored.example/ns/bb:v1\n"
    # A tag the mirror lacks falls back to the registry itself.
    p = dy("pull", "-q", "mirrored.example/ns/bb:only-primary", env=registry_env)
    assert p.returncode == 0, p.stderr

    # Stop the primary: with "all" the mirror alone serves tags; with "digest-only" it does not.
    primary.stop()
    fresh = dy.root.parent / "root2"
    fresh.mkdir()
    from tests.helpers import run_cli
    p = run_cli("pull", "-q", "mirrored.example/ns/bb:v1", root=fresh, env=registry_env)
    assert p.returncode == 0, p.stderr
    write("digest-only")
    p = run_cli("pull", "-q", "mirrored.example/ns/bb:v1", root=fresh, env=registry_env, timeout=180)
    assert p.returncode == 125
    p = run_cli("pull", "-q", f"mirrored.example/ns/bb@{info['manifest']}", root=fresh, env=registry_env)
    assert p.returncode == 0, p.stderr


def test_pull_zstd_layers(dy, registry, registry_env, tmp_path):
    """Each layer is unpacked as it downloads whatever its compression; contents and diff_ids match."""
    import hashlib
    import io
    import os
    import tarfile

    import zstandard

    from dockyard.host import go_arch

    blobs = tmp_path / "oci" / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, object]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"digest": "sha256:" + h, "size": len(data)}

    payload = os.urandom(700_000) + b"z" * 700_000  # several stream pieces, half compressible
    layers, diff_ids = [], []
    for kind, pack in (("zstd", zstandard.ZstdCompressor().compress), ("tar", lambda b: b)):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            ti = tarfile.TarInfo(f"data/{kind}.bin")
            ti.size = len(payload)
            tf.addfile(ti, io.BytesIO(payload))
        raw = buf.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        suffix = "+zstd" if kind == "zstd" else ""
        layers.append({"mediaType": f"application/vnd.oci.image.layer.v1.tar{suffix}", **put(pack(raw))})
    cfg = json.dumps({"architecture": go_arch(), "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                      "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(cfg)},
                           "layers": layers}).encode()
    m = put(manifest)
    (tmp_path / "oci" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "oci" / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    reg = registry()
    skopeo_push(tmp_path / "oci", "v1", reg, "ns/zst")
    name = f"127.0.0.1:{reg.port}/ns/zst:v1"
    p = dy("pull", "--tls-verify=false", name, env=registry_env)
    assert p.returncode == 0, p.stderr
    img = image(dy.root, name)
    assert img.layers[0].digest == layers[0]["digest"]  # zstd as pushed (skopeo gzips the plain one)
    assert [lay.diff_id for lay in img.layers] == diff_ids
    for lay, kind in zip(img.layers, ("zstd", "tar"), strict=True):
        assert (lay.dir / "data" / f"{kind}.bin").read_bytes() == payload
        assert (dy.root / "blobs" / "sha256" / lay.digest.split(":")[1]).stat().st_size == lay.size
    assert not os.listdir(dy.root / "tmp")
