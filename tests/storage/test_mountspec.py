"""Mount flag parsing: Docker's grammar and Docker's error sentences, nothing touched on disk."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.storage import mountspec as ms


def test_bind_volume_and_anonymous_forms(tmp_path):
    b = ms.parse_volume("/srv/www:/usr/share/nginx/html:ro")
    assert (b.type, b.source, b.target, b.read_only, b.mode, b.create_source) == (
        "bind", "/srv/www", "/usr/share/nginx/html", True, "ro", True)
    v = ms.parse_volume("nginx-data:/data:rw,nocopy")
    assert (v.type, v.source, v.read_only, v.nocopy) == ("volume", "nginx-data", False, True)
    a = ms.parse_volume("/cache")
    assert a.anonymous and a.target == "/cache"
    rel = ms.parse_volume("./data:/x:ro,Z,U,rshared", cwd=str(tmp_path))
    assert rel.source == str(tmp_path / "data") and rel.relabel == "Z" and rel.chown
    assert rel.propagation == "rshared"


@pytest.mark.parametrize("raw,msg", [
    ("/a:/b:foo", "invalid mode: foo"),
    ("/a:/b:ro,rw", "invalid mode: ro,rw"),
    ("/a:rw", "invalid volume specification: '/a:rw'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    (":/x", "invalid volume specification: ':/x'"),
    ("/x:rel", "invalid volume specification: '/x:rel': invalid mount config for type \"bind\": "
               "invalid mount path: 'rel' mount path must be absolute"),
    ("vol:/", "invalid volume specification: 'vol:/': invalid mount config for type \"volume\": "
              "invalid specification: destination can't be '/'"),
    ("a/b:/c", "includes invalid characters for a local volume name"),
    ("x:/c", "volume name is too short"),
    ("vol:/c:rshared", "field BindOptions must not be specified"),
])
def test_volume_errors(raw, msg):
    with pytest.raises(InvalidArgument) as e:
        ms.parse_volume(raw)
    assert msg in str(e.value)
    assert "\n" not in str(e.value)


def test_mount_forms(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    b = ms.parse_mount(f"type=bind,source={src},target=/x,readonly,bind-propagation=rslave")
    assert (b.type, b.source, b.read_only, b.propagation, b.create_source) == ("bind", str(src), True,
                                                                               "rslave", False)
    # The tutorial's NFS example: a quoted CSV field carries commas in volume-opt=o=...
    nfs = ms.parse_mount('type=volume,source=nfsvolume,target=/usr/share/nginx/html,volume-driver=local,'
                         'volume-opt=type=nfs,"volume-opt=o=addr=10.0.0.1,rw,nfsvers=4",volume-opt=device=:/srv')
    assert nfs.volume_opts == {"type": "nfs", "o": "addr=10.0.0.1,rw,nfsvers=4", "device": ":/srv"}
    assert nfs.source == "nfsvolume" and nfs.driver == "local"
    t = ms.parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert (t.tmpfs_size, t.tmpfs_mode) == (1 << 20, 0o1770)
    assert ms.tmpfs_data(t) == ["noexec", "nosuid", "nodev", f"size={1 << 20}", "mode=1770"]
    assert ms.parse_mount("type=volume,dst=/anon").anonymous


@pytest.mark.parametrize("raw,msg", [
    ("type=bind,src=data,dst=/x", 'invalid mount config for type "bind": invalid mount path: '
                                  "'data' mount path must be absolute"),
    ("type=bind,src=/nonexistent-dockyard-src,dst=/x", 'invalid mount config for type "bind": '
                                                       "bind source path does not exist: /nonexistent-dockyard-src"),
    ("type=bind,src=/tmp,dst=/x,bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
    ("type=bind,src=/tmp,dst=/", "destination can't be '/'"),
    ("type=bind,src=/tmp", "target is required"),
    ("type=tmpfs,dst=/x,bind-propagation=shared", "cannot mix 'bind-*' options with mount type 'tmpfs'"),
    ("type=bind,src=/tmp,dst=/x,volume-nocopy", "cannot mix 'volume-*' options with mount type 'bind'"),
    ("type=tmpfs,dst=/x,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
    ("type=bind,src=/tmp,dst=/x,ro=maybe", "invalid value for ro: maybe"),
    ("type=foo,dst=/x", 'invalid mount config for type "foo": mount type unknown'),
    ("type=volume,src=a/b,dst=/x", "includes invalid characters"),
    ("type=volume,dst=/x,ro", "must not set ReadOnly mode when using anonymous volumes"),
    ("type=tmpfs,src=x,dst=/x", "field Source must not be specified"),
    ("type=bind,src=/tmp,dst=/x,bind-propagation=sideways", "invalid propagation mode: sideways"),
    ("type=bind,src=/tmp,dst=/x,flag", "invalid field 'flag' must be a key=value pair"),
])
def test_mount_errors(raw, msg):
    with pytest.raises(InvalidArgument) as e:
        ms.parse_mount(raw)
    assert msg in str(e.value)


def test_tmpfs_shm_and_duplicates():
    t = ms.parse_tmpfs("/run:exec,size=64m")
    assert ms.tmpfs_data(t) == ["nosuid", "nodev", "exec", "size=64m"]
    with pytest.raises(InvalidArgument, match="invalid tmpfs option 'bogus'"):
        ms.parse_tmpfs("/run:bogus")
    with pytest.raises(InvalidArgument, match="mount path must be absolute"):
        ms.parse_tmpfs("run")
    specs = ms.parse([], [], [], shm_size="128m")
    assert specs[0].target == "/dev/shm" and specs[0].tmpfs_size == 128 << 20
    # a user mount at /dev/shm wins over --shm-size
    assert len(ms.parse([], [], ["/dev/shm"], shm_size="1m")) == 1
    with pytest.raises(InvalidArgument, match='invalid argument "x" for "--shm-size" flag'):
        ms.parse([], [], [], shm_size="x")
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /data"):
        ms.parse(["a1:/data"], ["type=volume,src=b1,dst=/data/"], [])


def test_roundtrip_and_override_defaults():
    s = ms.parse_mount("type=volume,src=v1,dst=/x,volume-opt=type=tmpfs,volume-opt=device=tmpfs")
    assert ms.MountSpec.from_dict(s.to_dict()) == s
    defaults = [{"destination": "/dev/shm", "type": "tmpfs"}, {"destination": "/proc", "type": "proc"}]
    extra = [{"destination": "/dev/shm/", "type": "tmpfs", "options": ["size=1"]}]
    assert ms.override_defaults(defaults, extra) == [defaults[1], extra[0]]


def test_volumes_from():
    assert ms.parse_volumes_from("web") == ("web", "")
    assert ms.parse_volumes_from("web:ro") == ("web", "ro")
    with pytest.raises(InvalidArgument):
        ms.parse_volumes_from("web:xx")
