"""VolumeService.prepare/detach/release with real mounts, checked inside real runc containers."""

from __future__ import annotations

import json
import os
import secrets

import pytest

from dockyard.errors import Conflict, DockyardError, InvalidArgument
from dockyard.storage import mountspec
from tests.conftest import requires_root
from tests.storage.conftest import mounts_below, run_in_runc

pytestmark = [requires_root]


_ENGINE = []


def cid() -> str:
    """A container ID with a row in the containers table: usage by containers that no longer exist
    does not count, so the fake containers of these tests need rows."""
    c = secrets.token_hex(32)
    with _ENGINE[-1].db.write() as db:
        db.execute("INSERT INTO containers (id, name, image_id, image_name, created, config, host_config, settings) "
                   "VALUES (?,?,?,?,?,?,?,?)", (c, "ctr-" + c[:12], "sha256:x", "busybox", 0, "{}", "{}", "{}"))
    return c


@pytest.fixture(autouse=True)
def _engine_for_cid(engine):
    _ENGINE.append(engine)
    yield
    _ENGINE.pop()


def _fstype(path) -> str | None:
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == real:
                return fields[fields.index("-") + 1]
    return None


@pytest.fixture
def web_rootfs(busybox_rootfs):
    www = busybox_rootfs / "var" / "www"
    (www / "sub").mkdir(parents=True, exist_ok=True)
    (www / "index.html").write_text("<h1>from the image</h1>\n")
    os.chmod(www / "index.html", 0o604)
    os.chown(www / "index.html", 65534, 65534)
    os.symlink("index.html", www / "link.html")
    os.link(www / "index.html", www / "hard.html")
    os.chmod(www, 0o750)
    return busybox_rootfs


def test_named_volume_copy_up_once_never_overwrites(engine, web_rootfs):
    vols = engine.volumes
    a = cid()
    oci, inspect = vols.prepare(a, mountspec.parse(["site:/var/www"], [], []), {}, web_rootfs)
    data = engine.roots.root / "volumes" / "site" / "_data"
    assert oci == [{"destination": "/var/www", "type": "bind", "source": str(data), "options": ["rbind", "rprivate"]}]
    assert inspect == [{"Type": "volume", "Name": "site", "Source": str(data), "Destination": "/var/www",
                        "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
    assert (data / "index.html").read_text() == "<h1>from the image</h1>\n"
    st = os.stat(data / "index.html")
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o604, 65534, 65534)
    assert os.readlink(data / "link.html") == "index.html"
    assert os.stat(data / "hard.html").st_ino == st.st_ino
    assert (data / "sub").is_dir() and os.stat(data).st_mode & 0o777 == 0o750
    # The volume now holds data: a changed image and a second container never overwrite it.
    (data / "index.html").write_text("mine\n")
    (web_rootfs / "var" / "www" / "index.html").write_text("changed image\n")
    vols.prepare(a, mountspec.parse(["site:/var/www"], [], []), {}, web_rootfs)
    vols.prepare(cid(), mountspec.parse(["site:/var/www"], [], []), {}, web_rootfs)
    assert (data / "index.html").read_text() == "mine\n"
    # nocopy leaves a new volume empty
    vols.prepare(cid(), mountspec.parse(["empty:/var/www:nocopy"], [], []), {}, web_rootfs)
    assert not any((engine.roots.root / "volumes" / "empty" / "_data").iterdir())


def test_copy_up_stays_inside_rootfs(engine, busybox_rootfs, tmp_path):
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "key").write_text("host only")
    os.symlink(str(secret), busybox_rootfs / "evil")  # absolute: must resolve inside the rootfs
    vols = engine.volumes
    vols.prepare(cid(), mountspec.parse(["v-evil:/evil"], [], []), {}, busybox_rootfs)
    assert not any((engine.roots.root / "volumes" / "v-evil" / "_data").iterdir())


@pytest.mark.peer("runc")
def test_ro_rw_tmpfs_and_copy_up_seen_by_runc(engine, web_rootfs, tmp_path):
    host = tmp_path / "host-data"
    host.mkdir()
    (host / "index.html").write_text("hello from the host\n")
    c = cid()
    specs = mountspec.parse([f"{host}:/srv/ro:ro", "site:/var/www", f"{tmp_path}/made/by/v:/srv/new"],
                            ["type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1770"], [])
    oci, _ = engine.volumes.prepare(c, specs, {}, web_rootfs)
    assert (tmp_path / "made" / "by" / "v").is_dir()  # -v creates a missing host directory
    p = run_in_runc(tmp_path, web_rootfs, oci, "cat /srv/ro/index.html; "
                    "touch /srv/ro/x 2>/dev/null && echo ro-writable || echo ro-refused; "
                    "echo new > /var/www/new.txt && echo rw-ok; cat /var/www/index.html; "
                    "grep ' /scratch ' /proc/mounts; stat -c %a /scratch; touch /srv/new/hi")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "hello from the host"
    assert lines[1] == "ro-refused"
    assert lines[2] == "rw-ok"
    assert lines[3] == "<h1>from the image</h1>"
    assert "tmpfs" in lines[4] and "size=1024k" in lines[4] and "noexec" in lines[4]
    assert lines[5] == "1770"
    assert (engine.roots.root / "volumes" / "site" / "_data" / "new.txt").read_text() == "new\n"
    assert (tmp_path / "made" / "by" / "v" / "hi").exists()
    assert not (host / "x").exists()


@pytest.mark.peer("runc")
def test_tmpfs_option_volume_mounted_while_used(engine, busybox_rootfs, tmp_path):
    vols = engine.volumes
    vols.create("fast", options={"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    data = engine.roots.root / "volumes" / "fast" / "_data"
    assert _fstype(data) is None  # mounted on first use, not at create
    a, b = cid(), cid()
    oci, _ = vols.prepare(a, mountspec.parse(["fast:/fast"], [], []), {}, busybox_rootfs)
    assert _fstype(data) == "tmpfs"
    st = os.statvfs(data)
    assert st.f_blocks * st.f_frsize == 1 << 20
    p = run_in_runc(tmp_path, busybox_rootfs, oci, "echo hi > /fast/f; grep ' /fast ' /proc/mounts")
    assert p.returncode == 0, p.stderr
    assert "tmpfs" in p.stdout and "size=1024k" in p.stdout
    assert (data / "f").read_text() == "hi\n"
    vols.prepare(b, mountspec.parse(["fast:/fast"], [], []), {}, busybox_rootfs)
    vols.detach(a)
    assert _fstype(data) == "tmpfs"  # b still uses it
    vols.detach(b)
    assert _fstype(data) is None
    vols.detach(b)  # idempotent


def test_bind_type_volume_options(engine, busybox_rootfs, tmp_path):
    host = tmp_path / "exported"
    host.mkdir()
    (host / "page").write_text("bound")
    vols = engine.volumes
    vols.create("bound", options={"type": "none", "o": "bind", "device": str(host)})
    c = cid()
    # --mount volume-opt creates the volume with those options on first use (the tutorial's NFS form)
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("y")
    specs = mountspec.parse(["bound:/b"], [f"type=volume,src=byopt,dst=/o,volume-opt=type=none,"
                                          f"volume-opt=o=bind,volume-opt=device={other}"], [])
    vols.prepare(c, specs, {}, busybox_rootfs)
    assert (engine.roots.root / "volumes" / "bound" / "_data" / "page").read_text() == "bound"
    assert (engine.roots.root / "volumes" / "byopt" / "_data" / "x").read_text() == "y"
    assert vols.inspect("byopt")["Options"] == {"type": "none", "o": "bind", "device": str(other)}
    vols.release(c, remove_anonymous=True)
    assert mounts_below(engine.roots.root) == []
    assert (host / "page").exists() and (other / "x").exists()  # unmounting never touches the data


def test_failed_option_mount_is_one_clear_error(engine, busybox_rootfs, tmp_path):
    vols = engine.volumes
    vols.create("broken", options={"type": "none", "o": "bind", "device": str(tmp_path / "missing")})
    with pytest.raises(DockyardError, match="failed to mount local volume: .*No such file or directory"):
        vols.prepare(cid(), mountspec.parse(["broken:/b"], [], []), {}, busybox_rootfs)
    assert mounts_below(engine.roots.root) == []


def test_in_use_rm_release_and_anonymous(engine, busybox_rootfs):
    vols = engine.volumes
    c = cid()
    image_config = {"Volumes": {"/var/lib/data": {}, "/cache": {}}}
    inspect = vols.reserve(c, mountspec.parse(["named:/data", "/anon"], [], ["/cache"]), image_config)
    anon = {m["Destination"]: m["Name"] for m in inspect if m["Type"] == "volume" and m["Name"] != "named"}
    # /cache is a tmpfs from the user, so the image's VOLUME /cache gets no volume
    assert set(anon) == {"/anon", "/var/lib/data"}
    assert all(len(n) == 64 for n in anon.values())
    # Docker's Mode: "z" for a named local volume, nothing for anonymous ones
    assert {m["Destination"]: m["Mode"] for m in inspect} == {
        "/data": "z", "/anon": "", "/var/lib/data": ""}
    assert vols.inspect(anon["/anon"])["Labels"] == {"com.docker.volume.anonymous": ""}
    # a restart reuses the same anonymous volumes
    again = vols.prepare(c, mountspec.parse(["named:/data", "/anon"], [], ["/cache"]), image_config,
                         busybox_rootfs)[1]
    assert {m["Destination"]: m.get("Name") for m in again if m["Type"] == "volume"} == {"/data": "named", **anon}
    assert vols.in_use("named") == [c]
    with pytest.raises(Conflict, match=f"remove named: volume is in use - \\[{c}\\]"):
        vols.remove("named")
    assert vols.exists("named")
    other = cid()
    vols.reserve(other, mountspec.parse([f"{anon['/anon']}:/shared"], [], []), {})
    vols.release(c, remove_anonymous=True)
    vols.release(c, remove_anonymous=True)  # idempotent
    assert vols.in_use("named") == []
    assert not vols.exists(anon["/var/lib/data"])
    assert vols.exists(anon["/anon"])  # still used by `other`
    assert vols.exists("named")  # named volumes outlive their containers
    vols.remove("named")
    assert not (engine.roots.root / "volumes" / "named").exists()


def test_reserve_failure_creates_nothing(engine, tmp_path):
    vols = engine.volumes
    with pytest.raises(InvalidArgument):
        vols.reserve(cid(), [mountspec.MountSpec(type="volume", source="good-vol", target="/a"),
                             mountspec.MountSpec(type="volume", source="bad", target="/b",
                                                 volume_opts={"colour": "red"})], {})
    with pytest.raises(InvalidArgument):
        vols.reserve(cid(), [mountspec.MountSpec(type="volume", source="good-vol", target="/a"),
                             mountspec.MountSpec(type="volume", source="b/ad", target="/b")], {})
    assert not vols.exists("good-vol")
    assert not (engine.roots.root / "volumes" / "good-vol").exists()
    assert json.loads(json.dumps(vols.list_volumes())) == []


def test_volumes_from_and_chown(engine, busybox_rootfs, tmp_path):
    vols = engine.volumes
    host = tmp_path / "h"
    host.mkdir()
    web = cid()
    vols.reserve(web, mountspec.parse([f"{host}:/srv/html:ro", "logs:/var/log/app", "/anon"], [], ["/tmp"]), {})
    web_name = engine.db.query_one("SELECT name FROM containers WHERE id=?", (web,))["name"]
    copied = vols.volumes_from([web_name])
    assert [(s.type, s.target, s.read_only) for s in copied] == [
        ("bind", "/srv/html", True), ("volume", "/var/log/app", False), ("volume", "/anon", False)]
    anon = copied[2].source
    assert [s.read_only for s in vols.volumes_from([web_name + ":ro"])] == [True, True, True]
    assert [s.read_only for s in vols.volumes_from([web_name + ":rw"])] == [False, False, False]
    side = cid()
    vols.reserve(side, copied, {})
    assert vols.in_use("logs") == sorted([web, side])
    # the sidecar shares the anonymous volume but did not create it: its rm -v leaves it alone
    vols.release(side, remove_anonymous=True)
    assert vols.exists(anon)
    vols.release(web, remove_anonymous=True)
    assert not vols.exists(anon) and vols.exists("logs")
    with pytest.raises(DockyardError, match="No such container"):
        vols.volumes_from(["nope"])
    with pytest.raises(InvalidArgument):
        vols.volumes_from([web_name + ":xx"])

    # U: the source belongs to the container's user afterwards
    owned = tmp_path / "owned"
    (owned / "d").mkdir(parents=True)
    (owned / "d" / "f").write_text("x")
    vols.prepare(cid(), mountspec.parse([f"{owned}:/o:U", "chowned:/c:U"], [], []), {"User": "nobody"},
                 busybox_rootfs)
    for p in (owned, owned / "d", owned / "d" / "f", engine.roots.root / "volumes" / "chowned" / "_data"):
        st = os.lstat(p)
        assert (st.st_uid, st.st_gid) == (65534, 65534), p
