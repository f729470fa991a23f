"""Base images built offline from what the host has: busybox-static, or debootstrap from the host's
Debian mirror.  The result is an ordinary one-layer image, so everything else (run, save, push)
treats it like a pulled one.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dockyard.errors import InvalidArgument, Unsupported

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


@dataclass
class BaseImage:
    name: str  # fully qualified name:tag
    created: float
    cmd: list[str]
    created_by: str


def find_static_busybox() -> str:
    for p in [shutil.which("busybox") or "", *BUSYBOX_CANDIDATES]:
        if p and os.path.isfile(p):
            if _is_static(p):
                return p
    raise Unsupported("no static busybox on this host: install busybox-static (apt-get install busybox-static)")


def _is_static(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    # A dynamic ELF names its interpreter in a PT_INTERP segment.
    return head[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in head and b"/lib/ld-" not in head


def busybox_layer(out: IO[bytes]) -> BaseImage:
    """Write the busybox rootfs tar to ``out``; times come from the binary, so the image is reproducible."""
    bb = find_static_busybox()
    st = os.stat(bb)
    mtime = int(st.st_mtime)
    applets = subprocess.run([bb, "--list-full"], capture_output=True, text=True, check=True).stdout.split()
    version = subprocess.run([bb], capture_output=True, text=True).stdout.split("\n", 1)[0].split(" (")[0]

    def add(tf: tarfile.TarFile, name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, mtime, link
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data) if data else None)

    dirs = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700, "run": 0o755,
            "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
            "var": 0o755, "var/spool": 0o755, "var/www": 0o755}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for d, mode in sorted(dirs.items()):
            add(tf, d, tarfile.DIRTYPE, mode)
        ti = tarfile.TarInfo("bin/busybox")
        ti.mode, ti.mtime, ti.size = 0o755, mtime, st.st_size
        with open(bb, "rb") as f:
            tf.addfile(ti, f)
        for path in sorted(set(applets)):
            rel = path.lstrip("/")
            if rel == "bin/busybox" or rel.rsplit("/", 1)[0] not in dirs:
                continue
            add(tf, rel, tarfile.SYMTYPE, 0o777, link="/bin/busybox")
        add(tf, "etc/passwd", tarfile.REGTYPE, 0o644, PASSWD.encode())
        add(tf, "etc/group", tarfile.REGTYPE, 0o644, GROUP.encode())
        add(tf, "etc/hostname", tarfile.REGTYPE, 0o644, b"localhost\n")
        add(tf, "etc/hosts", tarfile.REGTYPE, 0o644, b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        add(tf, "etc/resolv.conf", tarfile.REGTYPE, 0o644, b"")
    return BaseImage("localhost/busybox:latest", float(mtime), ["sh"],
                     f"dockyard image bootstrap busybox ({version or 'busybox'} from {bb})")


def debian_mirror() -> str:
    """The Debian mirror apt on this host uses (deb822 .sources or one-line lists)."""
    candidates: list[Path] = []
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        candidates += sorted(d.glob("*.sources")) + sorted(d.glob("*.list"))
    candidates.append(Path("/etc/apt/sources.list"))
    for p in candidates:
        try:
            text = p.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            urls: list[str] = []
            if words[:1] == ["URIs:"]:
                urls = words[1:]
            elif words[:1] == ["deb"]:
                urls = [w for w in words[1:] if "://" in w][:1]
            for u in urls:
                u = u.rstrip("/")
                if u.endswith("/debian") and "security" not in u:
                    return u
    return DEFAULT_DEBIAN_MIRROR


def host_debian_suite() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                return line.split("=", 1)[1].strip('"') or "stable"
    except OSError:
        pass
    return "stable"


def debootstrap(suite: str, dest: Path) -> str:
    """Run ``debootstrap --variant=minbase`` into ``dest``; returns the mirror used."""
    if not shutil.which("debootstrap"):
        raise Unsupported("debootstrap is not installed (apt-get install debootstrap)")
    if not suite.replace("-", "").isalnum():
        raise InvalidArgument(f"invalid Debian suite {suite!r}")
    if os.geteuid() != 0:
        raise Unsupported("bootstrapping a Debian image needs root (debootstrap chroots and creates devices)")
    mirror = debian_mirror()
    p = subprocess.run(["debootstrap", "--variant=minbase", suite, str(dest), mirror],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        tail = " | ".join(p.stdout.strip().splitlines()[-3:])
        raise Unsupported(f"debootstrap {suite} from {mirror} failed: {tail}")
    # Keep the image lean and free of the host's traces, as Debian's own images are.
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists", "var/log", "debootstrap"):
        p2 = dest / rel
        if p2.is_dir():
            for child in p2.iterdir():
                if child.is_dir() and not child.is_symlink():
                    if child.name != "partial":
                        shutil.rmtree(child)
                elif child.name != "lock":
                    child.unlink()
    # The runtime provides these per container; the image must not carry the build host's.
    for rel in ("etc/hostname", "etc/resolv.conf"):
        (dest / rel).unlink(missing_ok=True)
        (dest / rel).touch(mode=0o644)
    (dest / "etc/hosts").write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    return mirror
