"""Pull of a ~500 MB, 10-layer image from the reference registry on loopback.

dockyard pull (into a fresh root each run: download, verify, store the blobs and unpack, each layer
in one streamed pass) and its download half alone (`RegistryService.fetch` without unpacking,
in-process) against `skopeo copy` into a directory (download and verify only, no unpacking),
`podman pull` (download and unpack, fresh storage each run) where podman is installed, and
`docker pull` where a Docker engine answers.

The image is 10 layers of one 50 MB file of random bytes each (gzip level 1, so nearly stored):
the cost is in moving bytes (network, hashing, page cache), not in per-file work or inflating.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from bench.harness import Case, dockyard

LAYERS = 10
LAYER_BYTES = 50 * 1000 * 1000
_peers: dict[str, object] = {}


class _HashingWriter(io.RawIOBase):
    def __init__(self, f: io.BufferedWriter) -> None:
        self.f = f
        self.h = hashlib.sha256()
        self.n = 0

    def writable(self) -> bool:
        return True

    def write(self, b: bytes) -> int:  # type: ignore[override]
        self.h.update(b)
        self.n += len(b)
        return self.f.write(b)


def _random_layer(blobs: Path, i: int) -> tuple[dict[str, object], str]:
    """One gzip layer holding a file of random bytes; returns (descriptor, diff_id), streaming to disk."""
    tmp = blobs / f"tmp-{i}"
    diff = hashlib.sha256()
    with open(tmp, "wb") as raw:
        hw = _HashingWriter(raw)  # type: ignore[arg-type]
        with gzip.GzipFile(fileobj=hw, mode="wb", compresslevel=1, mtime=0) as gz:

            class Tee(io.RawIOBase):
                def writable(self) -> bool:
                    return True

                def write(self, b: bytes) -> int:  # type: ignore[override]
                    diff.update(b)
                    return gz.write(b)

            with tarfile.open(fileobj=Tee(), mode="w|", format=tarfile.PAX_FORMAT) as tf:  # type: ignore[arg-type]
                ti = tarfile.TarInfo(f"data/layer{i}.bin")
                ti.size = LAYER_BYTES
                ti.mode = 0o644
                tf.addfile(ti, _RandomReader(LAYER_BYTES))
    digest = hw.h.hexdigest()
    os.rename(tmp, blobs / digest)
    return ({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + digest,
             "size": hw.n}, "sha256:" + diff.hexdigest())


class _RandomReader:
    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def _build_layout(dest: Path) -> None:
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    descs, diffs = zip(*(_random_layer(blobs, i) for i in range(LAYERS)), strict=True)

    def put(data: bytes) -> dict[str, object]:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return {"digest": "sha256:" + h, "size": len(data)}

    from dockyard.host import go_arch

    cfg = json.dumps({"architecture": go_arch(), "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                      "rootfs": {"type": "layers", "diff_ids": list(diffs)}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(cfg)},
                           "layers": list(descs)}).encode()
    m = put(manifest)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **m,
         "annotations": {"org.opencontainers.image.ref.name": "1"}}]}))


def _docker_works() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def prepare(workdir: str) -> list[Case]:
    from tests.registry_peer import start_registry

    wd = Path(workdir)
    layout = wd / "oci"
    _build_layout(layout)
    reg = start_registry(wd / "registry")
    _peers[workdir] = reg
    ref = f"127.0.0.1:{reg.port}/bench/big:1"
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{ref}"],
                   check=True)
    shutil.rmtree(layout)
    conf = wd / "registries.conf"
    conf.write_text("")
    (wd / "auth.json").write_text('{"auths": {}}')
    env = {"CONTAINERS_REGISTRIES_CONF": str(conf), "REGISTRY_AUTH_FILE": str(wd / "auth.json")}
    root, out, proot = wd / "dy-root", wd / "skopeo-dir", wd / "podman"

    def fresh(p: Path):
        return lambda: shutil.rmtree(p, ignore_errors=True)

    dl_root = wd / "dy-fetch-root"

    def fetch_only() -> None:
        # The download half of a pull (manifest, config, layers streamed and verified into the
        # blob store), in-process: the same work `skopeo copy ... dir:` does.
        import os as _os

        from dockyard.engine import Engine
        from dockyard.image.reference import parse

        _os.environ.update(env)
        e = Engine(dl_root)
        try:
            e.registry.fetch(parse(ref), tls_verify=False)
        finally:
            e.close()

    cases = [
        Case("dockyard pull",  dockyard("--root", str(root), "pull", "-q", "--tls-verify=false", ref),
             before=fresh(root), after=fresh(root), env=env),
        Case("dockyard fetch (no unpack)", func=fetch_only, before=fresh(dl_root), after=fresh(dl_root)),
        Case("skopeo copy docker:// dir:", ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                            f"docker://{ref}", f"dir:{out}"],
             needs="skopeo", before=fresh(out), after=fresh(out), env=env),
        Case("podman pull", ["podman", "--root", str(proot / "root"), "--runroot", str(proot / "run"),
                             "pull", "-q", "--tls-verify=false", ref],
             needs="podman", before=lambda: _podman_clean(proot), after=lambda: _podman_clean(proot), env=env),
    ]
    if _docker_works():
        cases.append(Case("docker pull", ["docker", "pull", "-q", ref], before=lambda: _docker_rmi(ref),
                          after=lambda: _docker_rmi(ref)))
    return cases


def _podman_clean(proot: Path) -> None:
    # podman leaves its storage's overlay mount behind; unmount what the benchmark's podman made.
    if proot.exists():
        subprocess.run(["podman", "--root", str(proot / "root"), "--runroot", str(proot / "run"), "system",
                        "reset", "-f"], capture_output=True)
        with open("/proc/self/mounts") as f:
            points = [line.split()[1] for line in f if line.split()[1].startswith(str(proot) + "/")]
        for mp in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", mp], capture_output=True)
    shutil.rmtree(proot, ignore_errors=True)


def _docker_rmi(ref: str) -> None:
    subprocess.run(["docker", "rmi", "-f", ref], capture_output=True)


def cleanup(workdir: str) -> None:
    _podman_clean(Path(workdir) / "podman")
    reg = _peers.pop(workdir, None)
    if reg is not None:
        reg.stop()  # type: ignore[attr-defined]
