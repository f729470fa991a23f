"""Layer unpacking: every tar feature a layer uses, hostile entries refused, stacking with overlay/vfs."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat

import pytest

from dockyard.image.layers import LayerError, mount_rootfs, unmount_rootfs, unpack_layer
from tests.conftest import requires_root
from tests.image.layertar import entry, make_tar


def _unpack(tmp_path, data: bytes, **kw):
    dest = tmp_path / "layers" / "L"
    info = unpack_layer(io.BytesIO(data), dest, **kw)
    return dest, info


def _left_over(tmp_path) -> list[str]:
    d = tmp_path / "layers"
    return sorted(os.listdir(d)) if d.exists() else []


@pytest.mark.parametrize("compress", ["", "gzip", "zstd"])
def test_unpack_all_entry_kinds(tmp_path, compress):
    raw = make_tar([
        entry("./", "dir", mode=0o755),
        entry("bin/", "dir"),
        entry("bin/tool", "file", b"#!/bin/sh\necho hi\n", mode=0o4755, uid=0, gid=0),
        entry("bin/tool2", "hard", link="bin/tool"),
        entry("bin/sh", "sym", link="/bin/busybox"),
        entry("etc/", "dir", mode=0o755),
        entry("etc/rel", "sym", link="../bin/tool"),
        entry("etc/owned", "file", b"x", uid=1234, gid=4321, mode=0o640, mtime=1_234_567_890),
        entry("etc/attr", "file", b"y", xattrs={"user.dockyard": "yes"}),
        entry("ro/", "dir", mode=0o555),
        entry("ro/inside", "file", b"z"),
        entry("fifo", "fifo"),
    ])
    data = raw
    if compress == "gzip":
        data = gzip.compress(raw)
    elif compress == "zstd":
        import zstandard

        data = zstandard.ZstdCompressor().compress(raw)
    dest, info = _unpack(tmp_path, data)
    assert info.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert (dest / "bin/tool").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert os.stat(dest / "bin/tool").st_ino == os.stat(dest / "bin/tool2").st_ino
    assert os.readlink(dest / "bin/sh") == "/bin/busybox"
    assert os.readlink(dest / "etc/rel") == "../bin/tool"
    assert stat.S_IMODE(os.stat(dest / "ro").st_mode) == 0o555
    assert (dest / "ro/inside").read_bytes() == b"z"
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    st = os.stat(dest / "etc/owned")
    assert int(st.st_mtime) == 1_234_567_890
    assert stat.S_IMODE(st.st_mode) == 0o640
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 4321)
        assert stat.S_IMODE(os.stat(dest / "bin/tool").st_mode) == 0o4755
    assert os.getxattr(dest / "etc/attr", "user.dockyard") == b"yes"
    assert _left_over(tmp_path) == ["L"]


@requires_root
def test_whiteouts_become_overlay_format(tmp_path):
    dest, _ = _unpack(tmp_path, make_tar([
        entry("etc/", "dir"),
        entry("etc/.wh.gone", "file"),
        entry("var/", "dir"),
        entry("var/.wh..wh..opq", "file"),
        entry("var/new", "file", b"n"),
    ]))
    st = os.lstat(dest / "etc/gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert not (dest / "etc/.wh.gone").exists()
    assert os.getxattr(dest / "var", "trusted.overlay.opaque") == b"y"
    assert not (dest / "var/.wh..wh..opq").exists()


@pytest.mark.parametrize("entries, message", [
    ([entry("../escape", "file", b"x")], "contains '..'"),
    ([entry("a/../../escape", "file", b"x")], "contains '..'"),
    ([entry("/etc/passwd", "file", b"x")], "absolute path"),
    ([entry("evil", "sym", link="../../../../etc")], "points outside the layer root"),
    ([entry("sub/evil", "sym", link="../../etc")], "points outside the layer root"),
    ([entry("link", "sym", link="/etc"), entry("link/passwd", "file", b"x")], "goes through the symlink /link"),
    ([entry("dir/", "dir"), entry("dir/l", "sym", link="."), entry("dir/l/x", "file", b"x")], "goes through the symlink"),
    ([entry("hl", "hard", link="../../etc/passwd")], "contains '..'"),
    ([entry("hl", "hard", link="/etc/passwd")], "not in this layer"),
    ([entry("dev/sda", "blk", devmajor=8)], "device node"),
    ([entry("dev/mem", "chr", devmajor=1, devminor=1)], "device node"),
    ([entry("x/.wh...", "file")], "invalid whiteout"),
])
def test_hostile_entries_are_refused(tmp_path, entries, message):
    outside = tmp_path / "etc"
    with pytest.raises(LayerError, match=message.replace(".", r"\.").replace("(", r"\(")):
        _unpack(tmp_path, make_tar(entries))
    assert _left_over(tmp_path) == []
    assert not outside.exists()
    assert not (tmp_path / "escape").exists()


def test_truncated_and_corrupt_data(tmp_path):
    good = make_tar([entry("f", "file", os.urandom(50_000))], "gzip")
    with pytest.raises(LayerError, match="corrupt or truncated"):
        _unpack(tmp_path, good[: len(good) // 2])
    bad = bytearray(good)
    bad[200:260] = b"\x00" * 60
    with pytest.raises(LayerError, match="corrupt|truncated"):
        _unpack(tmp_path, bytes(bad))
    plain = make_tar([entry("f", "file", os.urandom(50_000))])
    with pytest.raises(LayerError, match="corrupt or truncated"):
        _unpack(tmp_path, plain[:30_000])
    with pytest.raises(LayerError, match="empty layer|not a tar"):
        _unpack(tmp_path, b"")
    assert _left_over(tmp_path) == []


def test_diff_id_mismatch_leaves_nothing(tmp_path):
    with pytest.raises(LayerError, match="does not match the image config"):
        _unpack(tmp_path, make_tar([entry("f", "file", b"x")]), expected_diff_id="sha256:" + "0" * 64)
    assert _left_over(tmp_path) == []


def _two_layers(tmp_path, overlay_whiteouts=None):
    low = tmp_path / "layers" / "low"
    unpack_layer(io.BytesIO(make_tar([
        entry("etc/", "dir"), entry("etc/keep", "file", b"keep"), entry("etc/gone", "file", b"gone"),
        entry("var/", "dir"), entry("var/old", "file", b"old"),
        entry("bin/", "dir"), entry("bin/x", "file", b"x1"), entry("bin/y", "hard", link="bin/x"),
    ])), low, overlay_whiteouts=overlay_whiteouts)
    top = tmp_path / "layers" / "top"
    unpack_layer(io.BytesIO(make_tar([
        entry("etc/", "dir"), entry("etc/.wh.gone", "file"),
        entry("var/", "dir"), entry("var/.wh..wh..opq", "file"), entry("var/new", "file", b"new"),
        entry("etc/added", "file", b"added"),
    ])), top, overlay_whiteouts=overlay_whiteouts)
    return [low, top]


@requires_root
@pytest.mark.parametrize("driver, overlay_whiteouts", [("overlay", True), ("vfs", True), ("vfs", False)])
def test_mount_rootfs_stacks_layers(tmp_path, driver, overlay_whiteouts):
    # vfs with .wh. marker files is what an unprivileged store holds.
    lowers = _two_layers(tmp_path, overlay_whiteouts)
    if not overlay_whiteouts:
        assert (lowers[1] / "etc/.wh.gone").is_file() and (lowers[1] / "var/.wh..wh..opq").is_file()
    c = tmp_path / "c"
    target = c / "merged"
    used = mount_rootfs(lowers, c / "upper", c / "work", target, driver=driver)
    try:
        assert used == driver
        assert (target / "etc/keep").read_bytes() == b"keep"
        assert (target / "etc/added").read_bytes() == b"added"
        assert not (target / "etc/gone").exists()
        assert sorted(os.listdir(target / "etc")) == ["added", "keep"]
        assert sorted(os.listdir(target / "var")) == ["new"]
        assert os.stat(target / "bin/x").st_ino == os.stat(target / "bin/y").st_ino
        (target / "etc/written").write_text("w")
    finally:
        unmount_rootfs(target)
    assert not (target / "etc").exists()
    # Writes land in the container's upper layer, never in the shared image layers.
    assert (c / "upper/etc/written").read_text() == "w"
    assert not (lowers[1] / "etc/written").exists()
    unmount_rootfs(target)  # unmounting twice is harmless


class _Dribble(io.RawIOBase):
    """A source that hands out a few bytes per read, as a slow network does."""

    def __init__(self, data: bytes, step: int) -> None:
        self.f, self.step = io.BytesIO(data), step

    def read(self, n: int = -1) -> bytes:
        return self.f.read(min(self.step, n) if n >= 0 else self.step)


def _gzip_member(raw: bytes, *, name: bytes = b"", extra: bytes = b"", comment: bytes = b"", hcrc: bool = False) -> bytes:
    import struct
    import zlib

    flags = (4 if extra else 0) | (8 if name else 0) | (16 if comment else 0) | (2 if hcrc else 0)
    head = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff"
    if extra:
        head += struct.pack("<H", len(extra)) + extra
    if name:
        head += name + b"\0"
    if comment:
        head += comment + b"\0"
    if hcrc:
        head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return head + c.compress(raw) + c.flush() + struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)


def test_gzip_forms_other_tools_write(tmp_path):
    """Header fields (name, extra, comment, header CRC), several members, zero padding, read a few
    bytes at a time: all give the same layer and diff_id."""
    raw = make_tar([entry("d/", "dir"), entry("d/big", "file", os.urandom(300_000) + b"\0" * 300_000),
                    entry("d/small", "file", b"s")])
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    forms = [
        _gzip_member(raw, name=b"layer.tar", extra=b"ab\x02\x00xy", comment=b"made by hand", hcrc=True),
        _gzip_member(raw[:1000]) + _gzip_member(raw[1000:]),
        gzip.compress(raw) + b"\0" * 1024,
    ]
    for i, data in enumerate(forms):
        for step in (7, 1 << 20):
            dest = tmp_path / "layers" / f"L{i}-{step}"
            info = unpack_layer(_Dribble(data, step), dest, expected_diff_id=diff_id)  # type: ignore[arg-type]
            assert info.diff_id == diff_id and info.tar_size == len(raw)
            assert (dest / "d" / "big").stat().st_size == 600_000 and (dest / "d" / "small").read_bytes() == b"s"


def test_gzip_damage_is_caught_without_a_diff_id(tmp_path):
    """Without a diff_id to check (import), gzip's own CRC-32 and length are verified."""
    raw = make_tar([entry("f", "file", b"x" * 10_000)])
    data = bytearray(gzip.compress(raw))
    data[-8] ^= 0xFF  # the CRC-32 in the trailer
    with pytest.raises(LayerError, match="corrupt or truncated compressed data"):
        _unpack(tmp_path, bytes(data))
    with pytest.raises(LayerError, match="corrupt or truncated compressed data"):
        _unpack(tmp_path, gzip.compress(raw) + b"trailing garbage")
    # A file name field that never ends is refused, not buffered whole.
    with pytest.raises(LayerError, match="header field too long"):
        _unpack(tmp_path, b"\x1f\x8b\x08\x08" + b"\0" * 6 + b"A" * (3 << 20))
    assert _left_over(tmp_path) == []


def test_long_names_and_archives_without_end_blocks(tmp_path):
    import tarfile

    deep = "/".join(["component"] * 30) + "/file"
    link = "target-" + "x" * 200
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
            ti, _ = entry(deep, "file", b"deep")
            tf.addfile(ti, io.BytesIO(b"deep"))
            ti, _ = entry(link, "file", b"t")
            tf.addfile(ti, io.BytesIO(b"t"))
            ti, _ = entry("sym", "sym", link=link)
            tf.addfile(ti)
        raw = buf.getvalue().rstrip(b"\0")
        raw += b"\0" * (-len(raw) % 512)  # the last member's padding, without the end-of-archive blocks
        dest, _ = _unpack(tmp_path, raw)
        assert (dest / deep).read_bytes() == b"deep" and os.readlink(dest / "sym") == link
        os.rename(dest, tmp_path / f"done-{fmt}")


def test_oversized_headers_and_sparse_files_are_refused(tmp_path):
    import tarfile

    ti, _ = entry("f", "file", b"x")
    ti.pax_headers = {"comment": "c" * (2 << 20)}
    with pytest.raises(LayerError, match="too large"):
        _unpack(tmp_path, make_tar([(ti, b"x")]))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        ti, _ = entry("sparse", "file", b"data")
        ti.type = tarfile.GNUTYPE_SPARSE
        tf.addfile(ti, io.BytesIO(b"data"))
    with pytest.raises(LayerError, match="sparse"):
        _unpack(tmp_path, buf.getvalue())
    assert _left_over(tmp_path) == []
