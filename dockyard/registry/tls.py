"""TLS trust per registry, from certs.d directories as Docker and Podman lay them out.

For registry ``HOST:PORT`` each of ``<root>/HOST:PORT/`` is read: ``*.crt`` files are extra CA
certificates (added to the system ones), a ``NAME.cert`` + ``NAME.key`` pair is a client
certificate.  Roots: ``$DOCKYARD_CERTS_D`` (colon-separated, replaces the defaults; tests use it),
else ``/etc/containers/certs.d``, ``/etc/docker/certs.d`` and, for a user,
``~/.config/containers/certs.d``.  ``$DOCKYARD_CERT_DIR`` (set by ``--cert-dir``) replaces the
per-host lookup with one directory.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from dockyard.errors import InvalidArgument


def certs_roots() -> list[Path]:
    env = os.environ.get("DOCKYARD_CERTS_D")
    if env is not None:
        return [Path(p) for p in env.split(":") if p]
    roots = [Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d")]
    if os.geteuid() != 0:
        cfg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
        roots.insert(0, Path(cfg) / "containers" / "certs.d")
    return roots


def cert_dirs(host: str) -> list[Path]:
    # --cert-dir (Podman) names the one directory to use, whatever the host.
    one = os.environ.get("DOCKYARD_CERT_DIR")
    if one:
        return [Path(one)]
    return [d for d in (r / host for r in certs_roots()) if d.is_dir()]


def ssl_context(host: str, verify: bool = True) -> ssl.SSLContext:
    """A client context trusting the system CAs plus the registry's certs.d CAs."""
    if verify:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        # Nothing is verified, so the system CA bundle (tens of ms to parse, on every insecure pull)
        # is not loaded; the protocol defaults (TLS >= 1.2) are those of a default context.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for d in cert_dirs(host):
        for f in sorted(d.iterdir()):
            try:
                if f.suffix == ".crt":
                    ctx.load_verify_locations(cafile=str(f))
                elif f.suffix == ".cert":
                    key = f.with_suffix(".key")
                    if not key.is_file():
                        raise InvalidArgument(f"missing key {key.name} for client certificate {f}")
                    ctx.load_cert_chain(str(f), str(key))
                elif f.suffix == ".key" and not f.with_suffix(".cert").is_file():
                    raise InvalidArgument(f"missing client certificate {f.stem}.cert for key {f}")
            except (ssl.SSLError, OSError) as e:
                raise InvalidArgument(f"loading certificate {f}: {e}") from None
    return ctx
