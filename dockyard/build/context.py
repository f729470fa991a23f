"""The build context and COPY/ADD: .dockerignore, source globs, content hashes for the cache, copying.

Sources are confined to their root (the context directory, or another stage's or image's root
filesystem for ``--from``) and destinations to the stage's root filesystem: every path is resolved
with symlinks read as if that root were ``/``, so neither a context symlink nor an image symlink
can make a build read or write the host.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import InvalidArgument, NotFound
from dockyard.runtime.rootfs import secure_join

_GLOB_CHARS = re.compile(r"[*?\[]")


# -- .dockerignore ---------------------------------------------------------------------------------------
def _pattern_regex(pat: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pat):
        c = pat[i]
        if c == "*":
            if pat[i:i + 2] == "**":
                i += 2
                if pat[i:i + 1] == "/":
                    out.append("(?:.*/)?")
                    i += 1
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pat.find("]", i + 1)
            if j < 0:
                raise InvalidArgument(f"invalid .dockerignore pattern {pat!r}: unterminated [")
            cls = pat[i + 1:j]
            if cls.startswith("^"):
                cls = "!" + cls[1:]
            out.append("[" + ("^" + cls[1:] if cls.startswith("!") else cls) + "]")
            i = j
        elif c == "\\" and i + 1 < len(pat):
            out.append(re.escape(pat[i + 1]))
            i += 1
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


class Ignore:
    """Docker's .dockerignore rules: the last matching pattern wins, ``!`` re-includes, a matched
    directory excludes everything under it."""

    def __init__(self, lines: list[str]) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            neg = line.startswith("!")
            if neg:
                line = line[1:].strip()
            line = os.path.normpath(line).lstrip("/")
            if line in ("", "."):
                continue
            self.rules.append((neg, _pattern_regex(line)))

    @classmethod
    def load(cls, context: Path, dockerfile: Path | None = None) -> Ignore:
        # <Dockerfile>.dockerignore next to the Dockerfile wins over the context's, as in BuildKit.
        cands = [Path(str(dockerfile) + ".dockerignore")] if dockerfile else []
        cands += [context / ".dockerignore", context / ".containerignore"]
        for p in cands:
            if p.is_file():
                return cls(p.read_text(errors="replace").splitlines())
        return cls([])

    def excluded(self, rel: str) -> bool:
        if not self.rules or not rel or rel == ".":
            return False
        parts = rel.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        result = False
        for neg, rx in self.rules:
            if any(rx.match(p) for p in prefixes):
                result = not neg
        return result


NO_IGNORE = Ignore([])


# -- sources ---------------------------------------------------------------------------------------------
@dataclass
class Source:
    path: str  # on the host, inside root
    rel: str  # relative to root (for .dockerignore and the cache hash)
    is_dir: bool


def resolve_sources(root: Path, pattern: str, ignore: Ignore, what: str) -> list[Source]:
    """The paths ``pattern`` names under ``root`` (globs allowed), none of them outside it."""
    rootreal = os.path.realpath(root)
    clean = os.path.normpath("/" + pattern).lstrip("/")
    if _GLOB_CHARS.search(clean):
        matches = sorted(glob.glob(clean, root_dir=rootreal, include_hidden=True))
        rels = [m for m in matches if not ignore.excluded(m)]
        if not rels:
            raise NotFound(f"{what}: no source files were specified: {pattern!r} matches nothing")
    else:
        rels = [clean]
    out = []
    for rel in rels:
        host = secure_join(rootreal, rel) if rel else rootreal
        if not os.path.lexists(host) or (rel and ignore.excluded(rel)):
            raise NotFound(f"{what}: {pattern}: no such file or directory"
                           + (" (excluded by .dockerignore)" if os.path.lexists(host) else ""))
        out.append(Source(host, rel, os.path.isdir(host)))
    return out


def hash_sources(sources: list[Source], ignore: Ignore, with_owner: bool) -> str:
    """A digest of everything a COPY would copy: names, modes, link targets and contents (not times,
    so touching a file does not invalidate the cache, as with Docker)."""
    h = hashlib.sha256()

    def one(path: str, rel: str) -> None:
        st = os.lstat(path)
        h.update(f"{rel}\0{st.st_mode:o}\0".encode())
        if with_owner:
            h.update(f"{st.st_uid}:{st.st_gid}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                h.update(hashlib.file_digest(f, "sha256").digest())
        elif stat.S_ISDIR(st.st_mode):
            for child in sorted(os.listdir(path)):
                crel = f"{rel}/{child}" if rel else child
                if not ignore.excluded(crel):
                    one(os.path.join(path, child), crel)

    for s in sources:
        h.update(b"src\0")
        one(s.path, s.rel)
    return h.hexdigest()


# -- copying ---------------------------------------------------------------------------------------------
@dataclass
class Owner:
    uid: int | None  # None: keep the source's
    gid: int | None
    mode: int | None  # --chmod


def dest_path(rootfs: Path, dest: str, workdir: str) -> tuple[str, str]:
    """(absolute path in the image, host path inside rootfs) for a COPY destination."""
    in_image = dest if dest.startswith("/") else os.path.join(workdir or "/", dest)
    clean = os.path.normpath(in_image)
    return clean + ("/" if dest.endswith("/") and clean != "/" else ""), secure_join(str(rootfs), clean)


_KEEP_XATTRS = ("user.", "security.capability")


def _apply_owner(path: str, src: str, st: os.stat_result, owner: Owner) -> None:
    uid = st.st_uid if owner.uid is None else owner.uid
    gid = st.st_gid if owner.gid is None else owner.gid
    os.lchown(path, uid, gid)
    if not stat.S_ISLNK(st.st_mode):
        # File capabilities and user xattrs travel with the file (after chown, which clears capabilities).
        try:
            names = [n for n in os.listxattr(src, follow_symlinks=False) if n.startswith(_KEEP_XATTRS)]
        except OSError:
            names = []
        for n in names:
            with contextlib.suppress(OSError):
                os.setxattr(path, n, os.getxattr(src, n, follow_symlinks=False), follow_symlinks=False)
        os.chmod(path, owner.mode if owner.mode is not None else stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _clear(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def copy_entry(src: str, dst: str, rel: str, ignore: Ignore, owner: Owner, rootfs: Path,
               links: dict[tuple[int, int], str]) -> None:
    """Copy ``src`` to ``dst`` (a host path already confined to rootfs), recursively for directories."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        if os.path.islink(dst):
            # An image symlink to a directory is followed, but only inside the image.
            dst = secure_join(str(rootfs), os.path.relpath(dst, str(rootfs)))
        if os.path.lexists(dst) and not os.path.isdir(dst):
            os.unlink(dst)
        new = not os.path.isdir(dst)
        if new:
            os.mkdir(dst, 0o755)
        for child in sorted(os.listdir(src)):
            crel = f"{rel}/{child}" if rel else child
            if ignore.excluded(crel):
                continue
            copy_entry(os.path.join(src, child), os.path.join(dst, child), crel, ignore, owner, rootfs, links)
        _apply_owner(dst, src, st, owner)
        return
    _clear(dst)
    key = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and key in links:
        os.link(links[key], dst, follow_symlinks=False)
        return
    if stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, 0o600)
    else:
        return  # sockets and devices are not copied into images
    if st.st_nlink > 1:
        links[key] = dst
    _apply_owner(dst, src, st, owner)


def copy_contents(src: str, dst: str, rel: str, ignore: Ignore, owner: Owner, rootfs: Path,
                  links: dict[tuple[int, int], str]) -> None:
    """A source directory's contents into ``dst``: the directory itself is not copied, so an existing
    destination keeps its own owner and mode; a missing one is made 0755, owned by the --chown owner
    (else root), as buildah does."""
    if os.path.islink(dst):
        dst = secure_join(str(rootfs), os.path.relpath(dst, str(rootfs)))
    if os.path.lexists(dst) and not os.path.isdir(dst):
        os.unlink(dst)
    if not os.path.isdir(dst):
        os.mkdir(dst, 0o755)
        os.chown(dst, owner.uid or 0, owner.gid or 0)
    for child in sorted(os.listdir(src)):
        crel = f"{rel}/{child}" if rel else child
        if not ignore.excluded(crel):
            copy_entry(os.path.join(src, child), os.path.join(dst, child), crel, ignore, owner, rootfs, links)


def make_parents(rootfs: Path, host_path: str) -> None:
    """Create the missing directories above ``host_path`` (root-owned 0755, as Docker does)."""
    parent = os.path.dirname(host_path.rstrip("/"))
    missing = []
    while parent.startswith(str(rootfs)) and not os.path.lexists(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    for d in reversed(missing):
        os.mkdir(d, 0o755)
