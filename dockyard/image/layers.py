"""Layer tars in, layer directories out; layer directories stacked into a container's rootfs.

Unpacking trusts nothing in the tar: every name, link target and symlink target is checked so no
entry can write outside the layer directory, device nodes are refused, and the layer is extracted
into a temp directory that is renamed into place only when complete and its diff_id verified.

Whiteouts are stored in overlayfs' own format when running as root (a 0/0 character device for a
deleted path, ``trusted.overlay.opaque=y`` on an opaque directory), so layer directories stack
directly as overlay lowerdirs.  Without root they keep the tar's ``.wh.`` marker files and the
copying (vfs) fallback applies them.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import posixpath
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from dockyard.errors import InvalidArgument, Unsupported
from dockyard.osutil import copy_metadata, pid_alive

if TYPE_CHECKING:
    import logging
    import tarfile

# gzip, hashlib, logging, tarfile, tempfile and zlib are imported where used: `run` needs this
# module only to mount and unmount a rootfs, and those imports were a third of its start.


def _log() -> logging.Logger:
    import logging

    return logging.getLogger(__name__)

CHUNK = 1 << 20
WH_PREFIX = ".wh."
WH_META_PREFIX = ".wh..wh."
WH_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# xattrs a layer may carry; trusted.* (overlay's own metadata among them) and security labels
# belong to the host, not to an image.
_ALLOWED_XATTR_PREFIXES = ("user.",)
_ROOT_XATTRS = ("security.capability",)


class LayerError(InvalidArgument):
    """A layer is corrupt, truncated or hostile."""


@dataclass
class LayerInfo:
    diff_id: str
    size: int  # bytes of file content, like Docker's layer size
    tar_size: int  # bytes of the uncompressed tar stream


class _Peekable(io.RawIOBase):
    def __init__(self, f: IO[bytes], head: bytes) -> None:
        self.f, self.head = f, head

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.f.read(len(b))
        b[: len(data)] = data
        return len(data)


def compression_of(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def decompressed(f: IO[bytes]) -> IO[bytes]:
    """A reader of ``f``'s uncompressed content; gzip and zstd are told apart by their magic."""
    head = f.read(4)
    raw: IO[bytes] = io.BufferedReader(_Peekable(f, head), CHUNK)
    comp = compression_of(head)
    if comp == "gzip":
        import gzip

        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if comp == "zstd":
        import zstandard

        return cast(IO[bytes], zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True))
    return raw


def _stream_errors() -> tuple[type[BaseException], ...]:
    import gzip
    import zlib

    errs: list[type[BaseException]] = [EOFError, zlib.error, gzip.BadGzipFile]
    try:
        import zstandard

        errs.append(zstandard.ZstdError)
    except ImportError:  # pragma: no cover - zstandard is a dependency
        pass
    return tuple(errs)


class _HashReader:
    """Hashes what tarfile reads, so the diff_id comes out of the same single pass."""

    def __init__(self, f: IO[bytes], what: str) -> None:
        import hashlib

        self.f, self.what = f, what
        self.h = hashlib.sha256()
        self.n = 0
        self._errs = _stream_errors()

    def read(self, n: int = -1) -> bytes:
        try:
            data = self.f.read(n)
        except self._errs as e:
            raise LayerError(f"{self.what}: corrupt or truncated compressed data ({e})") from None
        self.h.update(data)
        self.n += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


def diff_id_of(f: IO[bytes], what: str = "layer") -> str:
    """The sha256 of a layer's uncompressed content (its diff_id)."""
    r = _HashReader(decompressed(f), what)
    r.drain()
    return r.digest


# -- the unpack stream: compressed blob -> decompressed chunks (hashed) -> tar entries ----------------
# Each piece of a layer is read from the network, hashed, written to the blob, inflated, hashed
# again and written to its file while it is still in the CPU cache: on the loaded 2-core bench
# machine (2 MiB L2 per core) 64-512 KiB pieces take 20-40% less CPU than 1 MiB ones, whose every
# pass goes to memory (memory bandwidth, not hashing or inflating, is what a pull spends most on);
# within that range bigger pieces mean fewer GIL hand-offs between the layer threads, which cost
# wall time when the cores are contended.  zlib, sha256 and write(2) release the GIL, so layers
# unpacking on threads use every core.
STREAM_CHUNK = 256 << 10
MAX_SPECIAL = 1 << 20  # largest pax / GNU long-name header accepted (as Go's archive/tar)


class _Corrupt(Exception):
    pass


class _Input:
    """The compressed source, with bytes peeked during header parsing kept for what follows."""

    def __init__(self, read: Any) -> None:
        self._read = read
        self.buf = b""

    def more(self) -> bool:
        b = self._read(STREAM_CHUNK)
        if not b:
            return False
        self.buf = self.buf + b if self.buf else b
        return True

    def fill(self, n: int) -> bool:
        while len(self.buf) < n:
            if not self.more():
                return False
        return True

    def read(self, n: int = -1) -> bytes:
        if self.buf:
            b, self.buf = self.buf, b""
            return b
        return cast(bytes, self._read(STREAM_CHUNK if n < 0 else n))

    def skip_string(self) -> None:
        while b"\x00" not in self.buf:
            if len(self.buf) > MAX_SPECIAL:
                raise _Corrupt("gzip header field too long")  # never buffer a whole hostile blob
            if not self.more():
                raise _Corrupt("truncated gzip header")
        self.buf = self.buf[self.buf.index(b"\x00") + 1:]


def _gzip_header(inp: _Input) -> None:
    if not inp.fill(10):
        raise _Corrupt("truncated gzip header")
    if inp.buf[:2] != GZIP_MAGIC:
        raise _Corrupt("not a gzip member")
    if inp.buf[2] != 8:
        raise _Corrupt("unknown compression method")
    flags = inp.buf[3]
    inp.buf = inp.buf[10:]
    if flags & 4:  # FEXTRA
        if not inp.fill(2) or not inp.fill(2 + int.from_bytes(inp.buf[:2], "little")):
            raise _Corrupt("truncated gzip header")
        inp.buf = inp.buf[2 + int.from_bytes(inp.buf[:2], "little"):]
    if flags & 8:  # FNAME
        inp.skip_string()
    if flags & 16:  # FCOMMENT
        inp.skip_string()
    if flags & 2:  # FHCRC
        if not inp.fill(2):
            raise _Corrupt("truncated gzip header")
        inp.buf = inp.buf[2:]


def _inflate(inp: _Input, check_crc: bool) -> Iterable[bytes]:
    """gzip members (as many as follow each other, zero padding allowed between and after).

    Raw deflate with the header parsed here: zlib's own gzip mode also computes a CRC-32, which
    doubles the cost on poorly compressible data and adds nothing when the caller verifies a
    sha256 of the output anyway (``check_crc=False``)."""
    import zlib

    while True:
        _gzip_header(inp)
        d = zlib.decompressobj(-zlib.MAX_WBITS)
        data, inp.buf = inp.buf, b""
        crc = size = 0
        while not d.eof:
            if not data:
                data = inp.read(STREAM_CHUNK)
                if not data:
                    raise _Corrupt("compressed data ended before the end-of-stream marker")
            out = d.decompress(data, STREAM_CHUNK)
            data = d.unconsumed_tail
            if out:
                if check_crc:
                    crc = zlib.crc32(out, crc)
                size += len(out)
                yield out
        inp.buf = d.unused_data  # at the end everything past it is there (unconsumed_tail may repeat it)
        if not inp.fill(8):
            raise _Corrupt("truncated gzip trailer")
        want_crc, want_size = int.from_bytes(inp.buf[:4], "little"), int.from_bytes(inp.buf[4:8], "little")
        if want_size != size & 0xFFFFFFFF or (check_crc and want_crc != crc):
            raise _Corrupt("gzip checksum or length mismatch")
        inp.buf = inp.buf[8:]
        while True:
            inp.buf = inp.buf.lstrip(b"\x00")
            if inp.buf:
                break
            if not inp.more():
                return


def _plain(inp: _Input) -> Iterable[bytes]:
    while b := inp.read(STREAM_CHUNK):
        yield b


def _unzstd(inp: _Input) -> Iterable[bytes]:
    import zstandard

    r = zstandard.ZstdDecompressor().stream_reader(cast(IO[bytes], inp), read_size=STREAM_CHUNK, read_across_frames=True)
    while b := r.read(STREAM_CHUNK):
        yield b


class _LayerStream:
    """A layer's uncompressed bytes, hashed (its diff_id) as they are produced; ``read`` for tar
    headers, ``copy_to`` for file contents without joining chunks."""

    def __init__(self, src: IO[bytes], what: str, check_crc: bool = True) -> None:
        import hashlib
        import zlib

        self.what = what
        self.h = hashlib.sha256()
        self.n = 0  # bytes produced
        self.pos = 0  # bytes consumed
        self.buf = memoryview(b"")
        inp = _Input(src.read)
        inp.fill(4)
        comp = compression_of(inp.buf)
        self._chunks = iter(_inflate(inp, check_crc) if comp == "gzip" else
                            _unzstd(inp) if comp == "zstd" else _plain(inp))
        # zstandard is imported only for zstd layers: a gzip pull should not pay for loading it.
        self._errs: tuple[type[BaseException], ...] = (_Corrupt, *_stream_errors()) if comp == "zstd" \
            else (_Corrupt, EOFError, zlib.error)

    def _next(self) -> bool:
        try:
            b = next(self._chunks, b"")
        except self._errs as e:
            raise LayerError(f"{self.what}: corrupt or truncated compressed data ({e})") from None
        if not b:
            return False
        self.h.update(b)
        self.n += len(b)
        self.buf = memoryview(b)
        return True

    def read(self, n: int) -> bytes:
        if n > MAX_SPECIAL:
            raise LayerError(f"{self.what}: a tar header of {n} bytes is too large")
        if len(self.buf) >= n:
            out = bytes(self.buf[:n])
            self.buf = self.buf[n:]
            self.pos += n
            return out
        parts = [bytes(self.buf)]
        got = len(self.buf)
        self.buf = memoryview(b"")
        while got < n and self._next():
            take = self.buf[: n - got]
            parts.append(bytes(take))
            got += len(take)
            self.buf = self.buf[len(take):]
        self.pos += got
        return b"".join(parts)

    def tell(self) -> int:
        return self.pos

    def copy_to(self, fd: int | None, n: int) -> None:
        """Write the next ``n`` bytes to ``fd`` (or drop them when None)."""
        while n:
            if not self.buf and not self._next():
                raise LayerError(f"{self.what}: corrupt or truncated tar data (unexpected end of data)")
            piece = self.buf[:n]
            self.buf = self.buf[len(piece):]
            n -= len(piece)
            self.pos += len(piece)
            while fd is not None and piece:
                piece = piece[os.write(fd, piece):]

    def drain(self) -> None:
        self.pos += len(self.buf)
        self.buf = memoryview(b"")
        while self._next():
            self.pos += len(self.buf)
            self.buf = memoryview(b"")

    @property
    def digest(self) -> str:
        return "sha256:" + self.h.hexdigest()


class _TarCursor:
    """What ``TarInfo.fromtarfile`` needs of a TarFile: headers are parsed by tarfile itself (pax,
    GNU long names, base-256 numbers), contents are streamed by ``_LayerStream.copy_to``."""

    encoding = "utf-8"
    errors = "surrogateescape"

    def __init__(self, stream: _LayerStream) -> None:
        self.fileobj = stream
        self.pax_headers: dict[str, str] = {}
        self.offset = 0  # where the next header starts, set by tarfile

    def members(self) -> Iterable[tarfile.TarInfo]:
        import tarfile

        s = self.fileobj
        what = s.what
        while True:
            start = s.pos
            try:
                m = tarfile.TarInfo.fromtarfile(cast(tarfile.TarFile, self))
            except tarfile.HeaderError as e:
                # By name: typeshed does not declare tarfile's HeaderError subclasses.
                kind = type(e).__name__
                if kind == "EmptyHeaderError" and start == 0:
                    raise LayerError(f"{what}: empty layer data") from None
                if kind in ("EOFHeaderError", "EmptyHeaderError") and start > 0:
                    return  # the end blocks, or none (archives without them are common)
                if start == 0:
                    raise LayerError(f"{what}: not a tar archive ({e})") from None
                raise LayerError(f"{what}: corrupt or truncated tar data ({e})") from None
            if m.sparse is not None or m.type == tarfile.GNUTYPE_SPARSE:
                raise LayerError(f"{what}: tar entry {m.name!r} is a sparse file, which image layers do not use")
            yield m
            # Whatever of its data the caller did not consume, and the padding.
            if s.pos > self.offset:
                raise LayerError(f"{what}: corrupt tar data (entry {m.name!r} overruns its size)")
            s.copy_to(None, self.offset - s.pos)


# -- removing trees that may contain read-only directories ---------------------------------------
def remove_tree(path: str | os.PathLike[str]) -> None:
    def onerror(func: Any, p: str, exc: Any) -> None:
        # A layer may hold 0555 directories; without root, make the parent writable and retry.
        if isinstance(exc[1], FileNotFoundError):
            return
        parent = os.path.dirname(p)
        with contextlib.suppress(OSError):
            os.chmod(parent, 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
        func(p)

    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=onerror)
        else:
            os.unlink(path)


def _remove(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(path)
    else:
        os.unlink(path)


# -- unpacking --------------------------------------------------------------------------------------
def _clean_name(raw: str, what: str, allow_absolute: bool = False) -> str | None:
    if "\x00" in raw:
        raise LayerError(f"{what}: tar entry {raw!r} has a NUL byte in its name")
    if raw.startswith("/") and not allow_absolute:
        raise LayerError(f"{what}: tar entry {raw!r} has an absolute path: refusing to write outside the layer")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"{what}: tar entry {raw!r} contains '..': refusing to write outside the layer")
    return "/".join(parts) if parts else None


def _parent_dir(root: Path, name: str, what: str, entry: str, create: bool) -> Path:
    """The directory that will hold ``name``, refusing to pass through a symlink or a file."""
    cur = root
    for comp in name.split("/")[:-1]:
        cur = cur / comp
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            if not create:
                raise LayerError(f"{what}: tar entry {entry!r} links to a path that is not in this layer") from None
            os.mkdir(cur, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            rel = cur.relative_to(root)
            raise LayerError(f"{what}: tar entry {entry!r} goes through the symlink /{rel}: "
                             "refusing to write outside the layer")
        if not stat.S_ISDIR(st.st_mode):
            raise LayerError(f"{what}: tar entry {entry!r}: /{cur.relative_to(root)} is not a directory")
    return cur


def _check_symlink(name: str, target: str, what: str) -> None:
    if "\x00" in target:
        raise LayerError(f"{what}: symlink {name!r} has a NUL byte in its target")
    if target.startswith("/"):
        return  # resolved inside the container's root at run time, never by the unpacker
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise LayerError(f"{what}: symlink {name!r} -> {target!r} points outside the layer root")


def _xattrs(m: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    out = []
    for k, v in m.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            out.append((k[len("SCHILY.xattr."):], v.encode("utf-8", "surrogateescape")))
    return out


def _set_xattrs(path: Path, attrs: Iterable[tuple[str, bytes]], is_root: bool) -> None:
    for name, value in attrs:
        allowed = name.startswith(_ALLOWED_XATTR_PREFIXES) or (is_root and name in _ROOT_XATTRS)
        if not allowed:
            _log().debug("not applying xattr %s on %s", name, path)
            continue
        try:
            os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as e:
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


def _apply_meta(path: Path, m: tarfile.TarInfo, is_root: bool, *, chmod: bool = True, times: bool = True) -> None:
    if is_root:
        os.lchown(path, m.uid, m.gid)
    if not m.issym():
        _set_xattrs(path, _xattrs(m), is_root)
        if chmod:
            # After chown, which clears set-id bits.
            os.chmod(path, m.mode & 0o7777)
    if times:
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)


def _apply_meta_fd(fd: int, m: tarfile.TarInfo, is_root: bool) -> None:
    """``_apply_meta`` of a regular file through the descriptor it was written by (no path walks)."""
    if is_root:
        os.chown(fd, m.uid, m.gid)
    for name, value in _xattrs(m):
        if name.startswith(_ALLOWED_XATTR_PREFIXES) or (is_root and name in _ROOT_XATTRS):
            try:
                os.setxattr(fd, name, value)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
    os.chmod(fd, m.mode & 0o7777)  # after chown, which clears set-id bits
    os.utime(fd, (m.mtime, m.mtime))


def _extract(stream: _LayerStream, root: Path, what: str, overlay_whiteouts: bool) -> int:
    is_root = os.geteuid() == 0
    dirs: dict[Path, tarfile.TarInfo] = {}
    size = 0
    for m in _TarCursor(stream).members():
        name = _clean_name(m.name, what)
        if name is None:
            if m.isdir():
                dirs[root] = m
                continue
            raise LayerError(f"{what}: tar entry {m.name!r} has an empty name")
        parent = _parent_dir(root, name, what, m.name, create=True)
        base = name.rsplit("/", 1)[-1]
        path = parent / base

        if base.startswith(WH_PREFIX):
            if base == WH_OPAQUE:
                if overlay_whiteouts:
                    os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y")
                else:
                    path.touch()
            elif not base.startswith(WH_META_PREFIX):
                hidden = base[len(WH_PREFIX):]
                if hidden in ("", ".", ".."):
                    raise LayerError(f"{what}: invalid whiteout entry {m.name!r}")
                _remove(parent / hidden)
                if overlay_whiteouts:
                    os.mknod(parent / hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0))
                else:
                    _remove(path)
                    path.touch()
            continue  # .wh..wh.* other than the opaque marker are aufs internals
        if m.ischr() or m.isblk():
            raise LayerError(f"{what}: tar entry {m.name!r} is a device node; "
                             "device nodes are not allowed in image layers")
        try:
            existing = os.lstat(path)
        except FileNotFoundError:
            existing = None
        if existing is not None and not (m.isdir() and stat.S_ISDIR(existing.st_mode)):
            _remove(path)
            existing = None

        if m.isdir():
            if existing is None:
                os.mkdir(path, 0o700)
            dirs[path] = m
            _apply_meta(path, m, is_root, chmod=False, times=False)
            continue
        if m.isreg():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                stream.copy_to(fd, m.size)
                _apply_meta_fd(fd, m, is_root)
            finally:
                os.close(fd)
            size += m.size
            continue
        if m.issym():
            _check_symlink(name, m.linkname, what)
            os.symlink(m.linkname, path)
            size += len(m.linkname)
        elif m.islnk():
            target = _clean_name(m.linkname, what, allow_absolute=True)
            if target is None:
                raise LayerError(f"{what}: hard link {m.name!r} has an empty target")
            tparent = _parent_dir(root, target, what, m.name, create=False)
            tpath = tparent / target.rsplit("/", 1)[-1]
            try:
                tst = os.lstat(tpath)
            except FileNotFoundError:
                raise LayerError(f"{what}: hard link {m.name!r} -> {m.linkname!r}: "
                                 "target is not in this layer") from None
            if stat.S_ISDIR(tst.st_mode):
                raise LayerError(f"{what}: hard link {m.name!r} points at a directory")
            os.link(tpath, path, follow_symlinks=False)
            continue  # the inode already carries its owner, mode and times
        elif m.isfifo():
            os.mkfifo(path, 0o600)
        else:
            raise LayerError(f"{what}: tar entry {m.name!r} has an unsupported type {m.type!r}")
        _apply_meta(path, m, is_root)

    # Directory modes and times last: children changed the times, and a 0555 directory must stay
    # writable until its children exist.
    if root not in dirs:
        os.chmod(root, 0o755)
    for path in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        m = dirs[path]
        if path == root:
            _apply_meta(path, m, is_root)
        else:
            os.chmod(path, m.mode & 0o7777)
            os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
    return size


def overlay_whiteouts_default() -> bool:
    return os.geteuid() == 0


def temp_name(label: str) -> str:
    """``.tmp-<label>-<pid>-``: the owner's pid lets cleanup tell a dead writer's debris from a live one."""
    return f".tmp-{label[:12]}-{os.getpid()}-"


def stage_layer(src: IO[bytes], parent: Path, label: str, *, expected_diff_id: str | None = None,
                what: str = "layer", overlay_whiteouts: bool | None = None) -> tuple[Path, LayerInfo]:
    """Unpack a (gzip/zstd/plain) layer tar into a fresh temp directory under ``parent``.

    The caller renames the directory into place (or removes it).  Raises ``LayerError`` for
    hostile or damaged input, with nothing left behind.
    """
    # Private: layers hold set-id binaries that must not be reachable by other host users.
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=temp_name(label), dir=parent))
    try:
        # The diff_id (sha256 of the whole output) checks what gzip's CRC-32 would, at no extra cost.
        reader = _LayerStream(src, what, check_crc=expected_diff_id is None)
        if overlay_whiteouts is None:
            overlay_whiteouts = overlay_whiteouts_default()
        size = _extract(reader, tmp, what, overlay_whiteouts)
        reader.drain()
        if expected_diff_id and reader.digest != expected_diff_id:
            raise LayerError(f"{what}: content does not match the image config "
                             f"(diff_id {reader.digest}, expected {expected_diff_id})")
        return tmp, LayerInfo(reader.digest, size, reader.n)
    except BaseException:
        remove_tree(tmp)
        raise


def unpack_layer(src: IO[bytes], dest: Path, *, expected_diff_id: str | None = None,
                 what: str = "layer", overlay_whiteouts: bool | None = None) -> LayerInfo:
    """Unpack a layer into ``dest``, which appears only when complete and verified.

    If ``dest`` already exists (another writer won the race) the existing directory is kept.
    """
    tmp, info = stage_layer(src, dest.parent, dest.name, expected_diff_id=expected_diff_id, what=what,
                            overlay_whiteouts=overlay_whiteouts)
    try:
        os.rename(tmp, dest)
    except OSError as e:
        remove_tree(tmp)
        if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    return info


def clean_stale_temp(layers_dir: Path, older_than: float = 3600.0) -> None:
    """Remove temp dirs of writers that died: their pid is gone, or they are older than ``older_than``
    (pids get reused).  Age is the ctime, which a tar's timestamps cannot fake.  This process's own
    are live work however old (a slow pull stages its first layers long before it commits)."""
    import time

    if not layers_dir.is_dir():
        return
    cutoff = time.time() - older_than
    me = os.getpid()
    for e in os.scandir(layers_dir):
        if not e.name.startswith(".tmp-"):
            continue
        parts = e.name.split("-")
        pid = int(parts[2]) if len(parts) > 3 and parts[2].isdigit() else 0
        if pid == me:
            continue
        with contextlib.suppress(OSError):
            if (pid and not pid_alive(pid)) or e.stat(follow_symlinks=False).st_ctime < cutoff:
                remove_tree(e.path)


# -- packing ------------------------------------------------------------------------------------------
def pack_directory(rootfs: Path, out: BinaryIO, *, skip_contents_of: tuple[str, ...] = ("proc", "sys", "dev")) -> None:
    """Write ``rootfs`` as a layer tar (PAX, sorted, hard links kept, xattrs recorded)."""

    def add(tf: tarfile.TarFile, path: str, arc: str) -> None:
        ti = tf.gettarinfo(path, arcname=arc)
        if ti is None:
            return  # sockets cannot be archived and mean nothing in an image
        if ti.ischr() or ti.isblk():
            return  # devices come from the runtime, never from an image
        ti.uname = ti.gname = ""
        if not ti.issym():
            pax = dict(ti.pax_headers)
            with contextlib.suppress(OSError):
                for name in os.listxattr(path, follow_symlinks=False):
                    if name.startswith(_ALLOWED_XATTR_PREFIXES) or name in _ROOT_XATTRS:
                        val = os.getxattr(path, name, follow_symlinks=False)
                        pax["SCHILY.xattr." + name] = val.decode("utf-8", "surrogateescape")
            ti.pax_headers = pax
        if ti.isreg():
            with open(path, "rb") as f:
                tf.addfile(ti, f)
        else:
            tf.addfile(ti)
        if ti.isdir() and arc not in skip_contents_of:
            for child in sorted(os.listdir(path)):
                add(tf, os.path.join(path, child), f"{arc}/{child}" if arc != "." else child)

    import tarfile

    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for child in sorted(os.listdir(rootfs)):
            add(tf, str(rootfs / child), child)


# -- stacking -----------------------------------------------------------------------------------------
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 2
_VFS_MARKER = "dockyard-vfs-populated"


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    from dockyard.runtime._libc import check, libc

    check(libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None,
                     flags, data.encode() if data is not None else None), f"mount {target}")


def storage_driver() -> str:
    """overlay where the kernel has it and we may mount it, else the copying vfs fallback."""
    from dockyard import host

    forced = os.environ.get("DOCKYARD_STORAGE_DRIVER")
    if forced:
        if forced not in ("overlay", "vfs"):
            raise InvalidArgument(f"unknown storage driver {forced!r} (overlay or vfs)")
        return forced
    return "overlay" if os.geteuid() == 0 and host.overlay_supported() else "vfs"


def _escape(p: Path) -> str:
    s = str(p)
    if "," in s:
        raise Unsupported(f"overlay cannot use a path with a comma: {s}")
    return s.replace("\\", "\\\\").replace(":", "\\:")


def _mount_overlay(lowers: list[Path], upper: Path, work: Path, target: Path, volatile: bool = False) -> None:
    # overlay lists the topmost lower first.
    ordered = list(reversed(lowers))
    # volatile: no sync of the upper layer, neither on syncfs nor at unmount (where it costs tens of
    # ms on a busy disk).  The kernel then refuses a later mount while work/incompat/volatile exists,
    # so a volatile mount clears it first: the caller only asks this for a layer it throws away.
    opts = ",volatile" if volatile else ""
    if volatile:
        remove_tree(work / "work" / "incompat" / "volatile")
    data = (f"lowerdir={':'.join(_escape(p) for p in ordered)},"
            f"upperdir={_escape(upper)},workdir={_escape(work)}{opts}")
    if len(data) < 4000:
        _mount("overlay", str(target), "overlay", 0, data)
        return
    # Many deep paths overflow the one-page option string: name the lowers by short fd paths.
    fds = [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p in ordered]
    try:
        data = (f"lowerdir={':'.join(f'/proc/self/fd/{fd}' for fd in fds)},"
                f"upperdir={_escape(upper)},workdir={_escape(work)}{opts}")
        _mount("overlay", str(target), "overlay", 0, data)
    finally:
        for fd in fds:
            os.close(fd)


def mount_rootfs(lower_dirs: list[Path], upper: Path, work: Path, target: Path,
                 driver: str | None = None, *, volatile: bool = False) -> str:
    """Make ``target`` the container rootfs: ``lower_dirs`` (bottom -> top) plus a writable ``upper``.

    ``volatile`` (overlay only) skips syncing ``upper``: for a layer discarded after one use (--rm).

    overlay: an overlay mount.  vfs (no overlay, or forced): the layers are copied into ``upper``
    once (whiteouts applied) and ``upper`` is bind-mounted on ``target``.  Returns the driver used.
    """
    driver = driver or storage_driver()
    for d in (upper, work, target):
        d.mkdir(parents=True, exist_ok=True)
    if driver == "overlay" and lower_dirs:
        try:
            lowers = [Path(p) for p in lower_dirs]
            try:
                _mount_overlay(lowers, upper, work, target, volatile)
            except OSError:
                if not volatile:
                    raise
                _mount_overlay(lowers, upper, work, target)  # kernels before 5.10 lack volatile
            return "overlay"
        except OSError as e:
            if os.environ.get("DOCKYARD_STORAGE_DRIVER") == "overlay":
                raise Unsupported(f"cannot mount overlay on {target}: {e.strerror}") from None
            if any(upper.iterdir()):
                raise Unsupported(f"cannot mount overlay on {target} ({e.strerror}) and its upper "
                                  "layer already has changes") from None
            _log().warning("overlay mount failed (%s); copying layers instead (vfs)", e.strerror)
    marker = work / _VFS_MARKER
    if not marker.exists():
        for lower in lower_dirs:
            _copy_layer(Path(lower), upper, {})
        marker.touch()
    _mount(str(upper), str(target), None, MS_BIND | MS_REC, None)
    return "vfs"


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest first."""
    real = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == real or mp.startswith(real + "/"):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def unmount_rootfs(target: Path) -> None:
    import ctypes

    from dockyard.runtime._libc import libc

    if libc.umount2(str(target).encode(), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EINVAL or err == errno.ENOENT:
        return  # not mounted
    if err == errno.EBUSY and libc.umount2(str(target).encode(), MNT_DETACH) == 0:
        return
    err = ctypes.get_errno()
    raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str, names: list[str]) -> bool:
    if WH_OPAQUE in names:
        return True
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def apply_layer_dir(src: str, dst: str) -> None:
    """Replay an unpacked layer directory (overlay-format whiteouts or ``.wh.`` markers) onto ``dst``:
    deletions delete, opaque directories are emptied first, everything else is copied with its owner,
    mode and times.  The vfs fallback flattens layers with it; build's --squash replays layers through
    an overlay mount with it."""
    _copy_layer(Path(src), Path(dst), {})


def _copy_layer(src: Path, dst: Path, links: dict[tuple[int, int], Path]) -> None:
    """Apply one layer directory onto ``dst`` (whiteouts of either format included)."""
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    names = [e.name for e in entries]
    if _is_opaque(str(src), names):
        for child in os.listdir(dst):
            _remove(dst / child)
    for e in entries:
        if e.name == WH_OPAQUE or e.name.startswith(WH_META_PREFIX):
            continue
        if e.name.startswith(WH_PREFIX):
            _remove(dst / e.name[len(WH_PREFIX):])
            continue
        st = e.stat(follow_symlinks=False)
        d = dst / e.name
        if _is_whiteout(st):
            _remove(d)
            continue
        if stat.S_ISDIR(st.st_mode):
            try:
                dst_st: os.stat_result | None = os.lstat(d)
            except FileNotFoundError:
                dst_st = None
            if dst_st is not None and not stat.S_ISDIR(dst_st.st_mode):
                os.unlink(d)
                dst_st = None
            if dst_st is None:
                os.mkdir(d, 0o700)
            _copy_layer(Path(e.path), d, links)
            copy_metadata(e.path, d, st)
            continue
        _remove(d)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in links:
            os.link(links[key], d, follow_symlinks=False)
            continue
        if stat.S_ISREG(st.st_mode):
            shutil.copyfile(e.path, d, follow_symlinks=False)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(e.path), d)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(d, 0o600)
        else:
            continue  # sockets and devices never come from a verified layer
        if st.st_nlink > 1:
            links[key] = d
        copy_metadata(e.path, d, st)
