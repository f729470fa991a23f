"""A real reference registry (Debian's ``docker-registry``, distribution 2.8) for tests.

Usage::

    from tests.registry_peer import start_registry, registry  # `registry` is a pytest fixture factory

    def test_x(tmp_path, registry):
        reg = registry(tls=True, auth=("testuser", "testpassword"))
        reg.host          # "localhost:PORT" (TLS cert valid for localhost and 127.0.0.1)
        reg.url           # "https://localhost:PORT"
        reg.certs_d       # a private certs.d root containing HOST/ca.crt for this registry
        reg.env()         # {"DOCKYARD_CERTS_D": ..., } to pass to the CLI
        reg.skopeo_tls()  # skopeo flags that make it trust / authenticate to this registry

Each registry gets a free 127.0.0.1 port (never 5000), filesystem storage under the test's tmp dir,
optionally TLS with a self-signed certificate made with ``cryptography`` and htpasswd auth with a
bcrypt hash.  It is stopped by pid when the test ends.  ``start_registry`` is the plain function
for callers outside pytest (the benchmarks); call ``.stop()`` yourself.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    """A currently free loopback port; never 5000, which a developer's own registry may hold."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port != 5000:
            return port


def make_self_signed(dest: Path, names: tuple[str, ...] = ("localhost",),
                     ips: tuple[str, ...] = ("127.0.0.1",)) -> tuple[Path, Path]:
    """A self-signed CA-capable server certificate; returns (cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    san = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    dest.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = dest / "server.pem", dest / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    import bcrypt

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                            for u, p in users.items()))
    return path


@dataclass
class RegistryPeer:
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    tls: bool
    hostname: str = "localhost"
    auth: tuple[str, str] | None = None
    ca_cert: Path | None = None
    log: Path | None = None
    token_server: TokenServer | None = None
    _certs_d: Path | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"{self.hostname}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    @property
    def storage(self) -> Path:
        return self.workdir / "data"

    @property
    def certs_d(self) -> Path:
        """A private certs.d root trusting this registry (``<root>/<host>/ca.crt``)."""
        if self._certs_d is None:
            root = self.workdir / "certs.d"
            if self.ca_cert is not None:
                for h in {self.host, f"127.0.0.1:{self.port}"}:
                    (root / h).mkdir(parents=True, exist_ok=True)
                    shutil.copy(self.ca_cert, root / h / "ca.crt")
            else:
                root.mkdir(parents=True, exist_ok=True)
            self._certs_d = root
        return self._certs_d

    def env(self) -> dict[str, str]:
        return {"DOCKYARD_CERTS_D": str(self.certs_d)}

    def skopeo_tls(self) -> list[str]:
        """Flags for a skopeo copy *to or from* this registry (use as --src-/--dest- after renaming)."""
        if not self.tls:
            return ["--tls-verify=false"]
        return ["--cert-dir", str(self.certs_d / self.host)]

    def skopeo_creds(self) -> list[str]:
        return ["--creds", f"{self.auth[0]}:{self.auth[1]}"] if self.auth else []

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.token_server is not None:
            self.token_server.stop()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class TokenServer:
    """A minimal Docker token server (the Bearer flow of docker.io, ghcr.io, Harbor...) on loopback.

    Checks Basic credentials against ``users`` and hands out an ES256 JWT carrying the requested
    ``access``, signed by a self-signed certificate the registry trusts (``rootcertbundle``) and
    named in the token's ``x5c`` header.  ``requests`` records every (user, scopes) asked for.
    """

    issuer = "dockyard-test-issuer"
    service = "dockyard-test-registry"

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        import http.server
        import threading

        self.users = users
        self.requests: list[tuple[str | None, list[str]]] = []
        self.cert, self.key = make_self_signed(workdir / "token-signing", names=("token-signer",))
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def _handle(self, h: object) -> None:
        import base64
        import urllib.parse

        req = h  # BaseHTTPRequestHandler
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)  # type: ignore[attr-defined]
        user = None
        hdr = req.headers.get("Authorization", "")  # type: ignore[attr-defined]
        if hdr.startswith("Basic "):
            u, _, pw = base64.b64decode(hdr[6:]).decode().partition(":")
            if self.users.get(u) != pw:
                self._reply(req, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid username/password"}]})
                return
            user = u
        scopes = q.get("scope", [])
        self.requests.append((user, scopes))
        access = []
        for sc in scopes:
            typ, _, rest = sc.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": typ, "name": name, "actions": actions.split(",") if user else []})
        self._reply(req, 200, {"token": self._sign(user or "", access), "expires_in": 300})

    @staticmethod
    def _reply(req: object, status: int, doc: dict[str, object]) -> None:
        import json

        body = json.dumps(doc).encode()
        req.send_response(status)  # type: ignore[attr-defined]
        req.send_header("Content-Type", "application/json")  # type: ignore[attr-defined]
        req.send_header("Content-Length", str(len(body)))  # type: ignore[attr-defined]
        req.end_headers()  # type: ignore[attr-defined]
        req.wfile.write(body)  # type: ignore[attr-defined]

    def _sign(self, sub: str, access: list[dict[str, object]]) -> str:
        import base64
        import json

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(b: bytes) -> str:
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), None)
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256",
                  "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": self.issuer, "sub": sub, "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg,union-attr]
        r, s_ = decode_dss_signature(der)
        return signing_input + "." + b64(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _config(port: int, storage: Path, tls: tuple[Path, Path] | None, htpasswd: Path | None,
            token: TokenServer | None = None) -> str:
    import yaml

    cfg: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if tls:
        cfg["http"]["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}  # type: ignore[index]
    if htpasswd:
        cfg["auth"] = {"htpasswd": {"realm": "Registry Realm", "path": str(htpasswd)}}
    if token:
        cfg["auth"] = {"token": {"realm": token.realm, "service": token.service, "issuer": token.issuer,
                                 "rootcertbundle": str(token.cert)}}
    return yaml.safe_dump(cfg, default_flow_style=False)


def start_registry(workdir: Path, tls: bool = False, auth: tuple[str, str] | None = None,
                   hostname: str = "localhost", timeout: float = 30.0, token: bool = False,
                   server: str = "docker-registry") -> RegistryPeer:
    """Start a registry; ``auth`` = (user, password) enables htpasswd (Basic), or with ``token=True``
    a Bearer token server (``peer.token_server``) that checks those credentials.

    ``server="dockyard"`` runs ``dockyard registry serve`` with the same config file instead of the
    reference registry (it reads the same format), for dockyard-to-dockyard tests."""
    import sys

    if server == "dockyard":
        argv_head = [sys.executable, "-m", "dockyard", "registry", "serve"]
    elif server == "docker-registry":
        argv_head = [REGISTRY_BIN, "serve"]
    else:
        raise ValueError(f"unknown registry server {server!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    certs = make_self_signed(workdir / "certs", names=("localhost",)) if tls else None
    tok = TokenServer(workdir, {auth[0]: auth[1]} if auth else {}) if token else None
    htpasswd = write_htpasswd(workdir / "auth" / "htpasswd", {auth[0]: auth[1]}) if auth and not token else None
    last_err = ""
    for _attempt in range(3):
        port = free_port()
        cfg = workdir / "config.yml"
        cfg.write_text(_config(port, workdir / "data", certs, htpasswd, tok))
        log = workdir / "registry.log"
        with open(log, "ab") as logf:
            # The registry reads REGISTRY_* variables as config overrides; REGISTRY_AUTH_FILE
            # (Podman's auth file) would turn into `auth.file`, so none are passed on.
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            if server == "dockyard":
                from tests.helpers import REPO

                env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
            proc = subprocess.Popen([*argv_head, str(cfg)], stdout=logf, stderr=logf, env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        peer = RegistryPeer(port, workdir, proc, tls, hostname, auth, certs[0] if certs else None, log)
        if _wait_ready(peer, timeout):
            peer.token_server = tok
            return peer
        last_err = log.read_text(errors="replace")[-500:]
        peer.stop()
    if tok:
        tok.stop()
    raise RuntimeError(f"{server} did not start: {last_err}")


def _wait_ready(peer: RegistryPeer, timeout: float) -> bool:
    url = f"{'https' if peer.tls else 'http'}://127.0.0.1:{peer.port}/v2/"
    ctx = peer.ssl_context()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not peer.alive():
            return False
        try:
            urllib.request.urlopen(url, timeout=2, context=ctx).close()
            return True
        except urllib.error.HTTPError as e:
            if e.code == 401:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@pytest.fixture
def registry(tmp_path) -> Iterator:
    """Factory fixture: ``registry(tls=..., auth=(user, pw), token=..., server=...)`` -> RegistryPeer, stopped at teardown."""
    started: list[RegistryPeer] = []

    def start(tls: bool = False, auth: tuple[str, str] | None = None, hostname: str = "localhost",
              token: bool = False, server: str = "docker-registry") -> RegistryPeer:
        peer = start_registry(tmp_path / f"registry{len(started)}", tls=tls, auth=auth, hostname=hostname,
                              token=token, server=server)
        started.append(peer)
        return peer

    try:
        yield start
    finally:
        for p in started:
            p.stop()


def make_oci_layout(dest: Path, layers: list[Path], tag: str = "latest", *, docker_format: bool = False,
                    architecture: str | None = None, cmd: list[str] | None = None) -> dict[str, object]:
    """Build an OCI image layout at ``dest`` from root filesystem directories (one layer each).

    Layers are gzip-compressed tars of each directory.  The result can be pushed with
    ``skopeo copy oci:DEST:TAG docker://...``.  Returns {"manifest": digest, "layers": [digests],
    "config": digest}.
    """
    import gzip
    import hashlib
    import io
    import json
    import tarfile

    from dockyard.host import go_arch

    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        h = hashlib.sha256(data).hexdigest()
        (blobs / h).write_bytes(data)
        return "sha256:" + h

    layer_descs, diff_ids = [], []
    for d in layers:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for p in sorted(d.rglob("*")):
                tf.add(p, arcname=str(p.relative_to(d)), recursive=False)
        tar = raw.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(tar).hexdigest())
        gz = gzip.compress(tar, compresslevel=1, mtime=0)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": put(gz), "size": len(gz)})
    config = {"architecture": architecture or go_arch(), "os": "linux",
              "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": f"layer {i}"} for i in range(len(layers))]}
    cfg = json.dumps(config).encode()
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg),
                           "size": len(cfg)},
                "layers": layer_descs}
    mdata = json.dumps(manifest).encode()
    mdigest = put(mdata)
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (dest / "index.json").write_text(json.dumps({
        "schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": len(mdata),
            "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return {"manifest": mdigest, "config": manifest["config"]["digest"],  # type: ignore[index]
            "layers": [x["digest"] for x in layer_descs]}


def skopeo_push(layout: Path, tag: str, peer: RegistryPeer, repo: str, *, fmt: str | None = None,
                all_platforms: bool = False) -> None:
    """Copy an OCI layout's image (or, with ``all_platforms``, its whole index) into ``peer``."""
    args = ["skopeo", "copy", "--quiet"] + (["--all"] if all_platforms else [])
    if fmt:
        args += ["--format", fmt]
    args += [f"--dest-{a[2:]}" if a.startswith("--") else a for a in peer.skopeo_tls() + peer.skopeo_creds()]
    args += [f"oci:{layout}:{tag}", f"docker://127.0.0.1:{peer.port}/{repo}:{tag}"
             if not peer.tls else f"docker://{peer.host}/{repo}:{tag}"]
    subprocess.run(args, check=True, capture_output=True, timeout=300)


@pytest.fixture
def registry_env(tmp_path, monkeypatch) -> dict[str, str]:
    """Private credential, trust and registries.conf locations for the test (set in os.environ too,
    so in-process engine calls see them); never the user's real auth.json or /etc."""
    env = {
        "REGISTRY_AUTH_FILE": str(tmp_path / "auth" / "auth.json"),
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "DOCKYARD_CERTS_D": str(tmp_path / "certs.d"),
        "CONTAINERS_REGISTRIES_CONF": str(tmp_path / "registries.conf"),
    }
    (tmp_path / "certs.d").mkdir(exist_ok=True)
    (tmp_path / "registries.conf").write_text("")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def trust(peer: RegistryPeer, env: dict[str, str]) -> None:
    """Install the peer's CA into the test's certs.d root, like the tutorial's `cp server.pem ca.crt`."""
    if peer.ca_cert is None:
        return
    d = Path(env["DOCKYARD_CERTS_D"]) / peer.host
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(peer.ca_cert, d / "ca.crt")


@pytest.fixture(scope="session")
def busybox_oci(tmp_path_factory, busybox_rootfs_template) -> tuple[Path, dict[str, object]]:
    """An OCI layout (tag "v1") with two layers: the busybox rootfs and a small /etc/hello file."""
    d = tmp_path_factory.mktemp("busybox-oci")
    extra = d / "extra"
    (extra / "etc").mkdir(parents=True)
    (extra / "etc" / "hello").write_text("hello from dockyard\n")
    info = make_oci_layout(d / "oci", [busybox_rootfs_template, extra], "v1")
    return d / "oci", info


def make_oci_index(dest: Path, rootfs: Path, tag: str = "multi",
                   platforms: tuple[tuple[str, str | None], ...] = (("amd64", None), ("arm64", "v8"))
                   ) -> dict[str, object]:
    """An OCI layout whose tag names an image index with one image per (architecture, variant).

    Each image gets a distinct extra layer (/etc/arch) so the pulled platform is observable.
    Push with ``skopeo copy --all``.  Returns {"index": digest, "<arch>": manifest info}.
    """
    import hashlib
    import json

    out: dict[str, object] = {}
    entries = []
    for arch, variant in platforms:
        extra = dest.parent / f"extra-{arch}"
        (extra / "etc").mkdir(parents=True, exist_ok=True)
        (extra / "etc" / "arch").write_text(arch + "\n")
        info = make_oci_layout(dest, [rootfs, extra], f"tmp-{arch}", architecture=arch)
        mdigest = str(info["manifest"])
        size = (dest / "blobs" / "sha256" / mdigest.split(":")[1]).stat().st_size
        plat = {"architecture": arch, "os": "linux", **({"variant": variant} if variant else {})}
        entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
                        "size": size, "platform": plat})
        out[arch] = info
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    h = hashlib.sha256(index).hexdigest()
    (dest / "blobs" / "sha256" / h).write_bytes(index)
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + h, "size": len(index),
        "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    out["index"] = "sha256:" + h
    return out
