"""Fixtures for the registry server tests: a real `dockyard registry serve` on 127.0.0.1, TLS material,
and small OCI image layouts to push."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import ipaddress
import json
import os
import socket
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import REPO, run_cli, wait_for

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    root: Path
    tls: bool
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_server(procs, tmp_path: Path, env: dict[str, str | None] | None = None, delete: bool = True,
                 root: Path | None = None, port: int | None = None, args: list[str] | None = None) -> Server:
    port = port or free_port()
    root = root or tmp_path / "registry-data"
    full = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    full["PYTHONPATH"] = str(REPO)
    full["REGISTRY_HTTP_ADDR"] = f"127.0.0.1:{port}"
    full["REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"] = str(root)
    full["REGISTRY_STORAGE_DELETE_ENABLED"] = "true" if delete else "false"
    full.update(env or {})
    full = {k: v for k, v in full.items() if v is not None}  # None: leave the variable unset
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / f"registry-{port}.log"
    with open(log, "wb") as logf:
        proc = procs.start([sys.executable, "-m", "dockyard", "registry", "serve", *(args or [])], env=full,
                           stdout=logf, stderr=subprocess.STDOUT)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"registry exited {proc.returncode}: {log.read_text()}")
        return _port_open(port)

    wait_for(up, timeout=30, what="registry to listen")
    return Server(proc, port, root, "REGISTRY_HTTP_TLS_CERTIFICATE" in full, log, full)


@pytest.fixture
def registry(procs, tmp_path) -> Server:
    """A plain-HTTP registry with deletion enabled."""
    return start_server(procs, tmp_path)


@dataclass
class Certs:
    dir: Path
    cert: Path
    key: Path
    certs_d: Path  # a certs.d root with <host>/ca.crt for every name the cert covers


def make_certs(dest: Path, ports: list[int]) -> Certs:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    dest.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = dest / "server.pem", dest / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    certs_d = dest / "certs.d"
    for port in ports:
        for host in (f"localhost:{port}", f"127.0.0.1:{port}"):
            (certs_d / host).mkdir(parents=True, exist_ok=True)
            (certs_d / host / "ca.crt").write_bytes(cert_path.read_bytes())
    return Certs(dest, cert_path, key_path, certs_d)


def tls_env(certs: Certs) -> dict[str, str]:
    return {"REGISTRY_HTTP_TLS_CERTIFICATE": str(certs.cert), "REGISTRY_HTTP_TLS_KEY": str(certs.key)}


def htpasswd_entry(user: str, password: str) -> str:
    p = run_cli("registry", "htpasswd", "-Bbn", user, password, check=True)
    return p.stdout.strip()


@pytest.fixture
def secured(procs, tmp_path):
    """The tutorial's registry: self-signed certificate for localhost, htpasswd user, env configuration."""
    port = free_port()
    certs = make_certs(tmp_path / "certs", [port])
    auth = tmp_path / "auth"
    auth.mkdir()
    (auth / "htpasswd").write_text(htpasswd_entry("testuser", "testpassword") + "\n")
    env = {**tls_env(certs), "REGISTRY_AUTH": "htpasswd", "REGISTRY_AUTH_HTPASSWD_REALM": "Registry Realm",
           "REGISTRY_AUTH_HTPASSWD_PATH": str(auth / "htpasswd")}
    server = start_server(procs, tmp_path, env=env, port=port)
    server.certs = certs  # type: ignore[attr-defined]
    return server


@dataclass
class Image:
    layout: Path
    tag: str
    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def digest(self) -> str:
        return sha(self.manifest)

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def make_layer(files: dict[str, bytes]) -> tuple[bytes, bytes]:
    """(gzip blob, uncompressed tar) of a layer holding ``files``."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in files.items():
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            ti.mode = 0o644
            ti.mtime = 0
            tf.addfile(ti, io.BytesIO(data))
    tar = raw.getvalue()
    return gzip.compress(tar, mtime=0), tar


def make_image(dest: Path, tag: str = "latest", layers: list[dict[str, bytes]] | None = None) -> Image:
    """An OCI image layout with one image, as skopeo and podman read it (``oci:DIR:TAG``)."""
    layers = layers if layers is not None else [{"hello.txt": b"hello from dockyard\n"},
                                                {"data/bin": os.urandom(200_000)}]
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = sha(data)
        (blobs / d.split(":")[1]).write_bytes(data)
        return d

    gz_layers, descs, diff_ids = [], [], []
    for files in layers:
        gz, tar = make_layer(files)
        gz_layers.append(gz)
        descs.append({"mediaType": OCI_LAYER_GZ, "digest": put(gz), "size": len(gz)})
        diff_ids.append(sha(tar))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "digest": put(config), "size": len(config)},
                           "layers": descs}).encode()
    mdigest = put(manifest)
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": mdigest, "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return Image(dest, tag, manifest, config, gz_layers)


@pytest.fixture
def image(tmp_path) -> Image:
    return make_image(tmp_path / "layout")


def skopeo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p
