"""The tutorial's "Data persistence" section end to end through the CLI, with busybox httpd
standing in for nginx (same paths), plus the mount flags' bad input through `run`."""

from __future__ import annotations

import json
import os
import socket

import pytest

from tests.conftest import requires_root
from tests.helpers import wait_for

pytestmark = [requires_root, pytest.mark.peer("runc")]

PAGE = "<h1>Hello from a persistent volume!</h1>\n"
HTML = "/usr/share/nginx/html"


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "index.html").write_text(PAGE)
    return d


def _httpd(cli, *args: str) -> str:
    p = cli("container", "run", "--rm", "-d", "--name", "webserver", *args, "localhost/busybox",
            "httpd", "-f", "-p", "80", "-h", HTML, check=True)
    return p.stdout.strip()


def _page(cli) -> str:
    def fetch():
        p = cli("exec", "webserver", "wget", "-qO-", "http://127.0.0.1:80/")
        return p.stdout if p.returncode == 0 else None

    return wait_for(fetch, timeout=30, what="httpd to answer")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bind_mount_example(cli, data_dir):
    cwd = os.getcwd()
    os.chdir(data_dir.parent)
    try:
        _httpd(cli, "-v", "./data:/usr/share/nginx/html:ro")
    finally:
        os.chdir(cwd)
    assert _page(cli) == PAGE
    info = json.loads(cli("inspect", "webserver", check=True).stdout)[0]
    assert info["Mounts"] == [{"Type": "bind", "Source": str(data_dir), "Destination": HTML, "Mode": "ro",
                               "RW": False, "Propagation": "rprivate"}]
    # the page is the host file: an update shows at once
    (data_dir / "index.html").write_text("<h1>Updated</h1>\n")
    assert _page(cli) == "<h1>Updated</h1>\n"
    # a :ro mount refuses writes
    p = cli("exec", "webserver", "sh", "-c", f"echo x > {HTML}/index.html")
    assert p.returncode != 0 and "Read-only file system" in p.stderr
    assert (data_dir / "index.html").read_text() == "<h1>Updated</h1>\n"
    cli("stop", "webserver", check=True)
    wait_for(lambda: cli("ps", "-aq").stdout.strip() == "", timeout=30, what="--rm to remove the container")


def test_named_volume_example(cli, data_dir, tmp_path):
    assert cli("volume", "create", "nginx-data", check=True).stdout == "nginx-data\n"
    cli("container", "run", "--rm", "-v", "nginx-data:/volume-data", "-v", f"{data_dir}:/mount-data:ro",
        "localhost/busybox", "cp", "/mount-data/index.html", "/volume-data/index.html", check=True)
    assert cli("ps", "-aq").stdout.strip() == ""
    vol = cli.root / "volumes" / "nginx-data" / "_data"
    assert (vol / "index.html").read_text() == PAGE

    cid = cli("container", "run", "-d", "--name", "webserver", "-v", f"nginx-data:{HTML}", "localhost/busybox",
              "httpd", "-f", "-p", "80", "-h", HTML, check=True).stdout.strip()
    assert _page(cli) == PAGE
    info = json.loads(cli("inspect", "webserver", check=True).stdout)[0]
    assert info["Mounts"] == [{"Type": "volume", "Name": "nginx-data", "Source": str(vol), "Destination": HTML,
                               "Driver": "local", "Mode": "z", "RW": True, "Propagation": ""}]
    # a volume in use cannot be removed
    p = cli("volume", "rm", "nginx-data")
    assert p.returncode == 1 and f"remove nginx-data: volume is in use - [{cid}]" in p.stderr
    assert cli("volume", "ls", "--filter", "dangling=false", "-q", check=True).stdout == "nginx-data\n"
    # stop and start again: same page
    cli("stop", "webserver", check=True)
    cli("start", "webserver", check=True)
    assert _page(cli) == PAGE
    # --volumes-from with :ro, as in the sidecar example
    p = cli("container", "run", "--rm", "--volumes-from", "webserver:ro", "localhost/busybox", "sh", "-c",
            f"cat {HTML}/index.html; touch {HTML}/x")
    assert p.stdout == PAGE and p.returncode != 0 and "Read-only file system" in p.stderr
    # removed and run again: the page survived in the volume
    cli("rm", "-f", "webserver", check=True)
    assert cli("volume", "ls", "--filter", "dangling=true", "-q", check=True).stdout == "nginx-data\n"
    _httpd(cli, "-v", f"nginx-data:{HTML}")
    assert _page(cli) == PAGE
    cli("stop", "webserver", check=True)
    wait_for(lambda: cli("ps", "-aq").stdout.strip() == "", timeout=30, what="--rm to remove the container")
    assert cli("volume", "rm", "nginx-data", check=True).stdout == "nginx-data\n"
    assert not vol.exists()


def test_copy_up_anonymous_volumes_and_tmpfs(cli):
    # a new named volume over /etc starts with the image's /etc, once; later runs never overwrite it
    p = cli("run", "--rm", "-v", "etc-vol:/etc", "localhost/busybox", "cat", "/etc/passwd", check=True)
    assert p.stdout.startswith("root:x:0:0:")
    vol = cli.root / "volumes" / "etc-vol" / "_data"
    assert (vol / "passwd").exists()
    (vol / "passwd").write_text("changed\n")
    assert cli("run", "--rm", "-v", "etc-vol:/etc", "localhost/busybox", "cat", "/etc/passwd",
               check=True).stdout == "changed\n"
    # anonymous volumes: kept by a plain rm, removed by rm -v and by --rm
    cli("run", "--name", "anon", "-v", "/cache", "localhost/busybox", "sh", "-c", "echo hi > /cache/f", check=True)
    (m,) = json.loads(cli("inspect", "anon", check=True).stdout)[0]["Mounts"]
    assert m["Type"] == "volume" and len(m["Name"]) == 64
    assert json.loads(cli("volume", "inspect", m["Name"], check=True).stdout)[0]["Labels"] == {
        "com.docker.volume.anonymous": ""}
    cli("rm", "-v", "anon", check=True)
    assert cli("volume", "ls", "-q", check=True).stdout == "etc-vol\n"
    cli("run", "--rm", "-v", "/cache", "localhost/busybox", "true", check=True)
    assert cli("volume", "ls", "-q", check=True).stdout == "etc-vol\n"
    # --tmpfs, --mount type=tmpfs and --shm-size
    p = cli("run", "--rm", "--tmpfs", "/run:size=1m", "--mount", "type=tmpfs,dst=/scratch,tmpfs-mode=1770",
            "--shm-size", "2m", "localhost/busybox", "grep", "-E", " /(run|scratch|dev/shm) ", "/proc/mounts",
            check=True)
    lines = {ln.split()[1]: ln for ln in p.stdout.splitlines()}
    assert "size=1024k" in lines["/run"] and "noexec" in lines["/run"]
    assert "mode=1770" in lines["/scratch"]
    assert "size=2048k" in lines["/dev/shm"]


def test_option_volume_mounted_while_running(cli):
    cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", "fast", check=True)
    data = cli.root / "volumes" / "fast" / "_data"
    cli("run", "-d", "--name", "holder", "-v", "fast:/fast", "localhost/busybox", "sleep", "600", check=True)
    p = cli("exec", "holder", "grep", " /fast ", "/proc/mounts", check=True)
    assert "tmpfs" in p.stdout and "size=1024k" in p.stdout
    assert os.path.ismount(data)
    cli("stop", "-t", "1", "holder", check=True)
    wait_for(lambda: not os.path.ismount(data), timeout=30, what="the volume's mount to go with its last user")
    cli("rm", "holder", check=True)


@pytest.mark.parametrize("args,msg", [
    (["--mount", "type=bind,src=data,dst=/x"],
     "invalid mount config for type \"bind\": invalid mount path: 'data' mount path must be absolute"),
    (["--mount", "type=bind,src=/nonexistent-dockyard,dst=/x"],
     'invalid mount config for type "bind": bind source path does not exist: /nonexistent-dockyard'),
    (["-v", "/tmp:/x:bogus"], "invalid mode: bogus"),
    (["--mount", "type=volume,src=v1,dst=/x,bogus=1"], "unexpected key 'bogus' in 'bogus=1'"),
    (["-v", "vol1:/"], "destination can't be '/'"),
    (["--mount", "type=bind,src=/tmp,dst=/"], "destination can't be '/'"),
    (["-v", "a/b:/x"], '"a/b" includes invalid characters for a local volume name'),
    (["--mount", "type=volume,src=v2,dst=/x,volume-opt=colour=red"], 'invalid option: "colour"'),
    (["-v", "v3:/data", "-v", "v4:/data"], "Duplicate mount point: /data"),
])
def test_bad_mount_input_creates_nothing(cli, args, msg):
    p = cli("run", "--rm", *args, "localhost/busybox", "true")
    assert p.returncode == 125
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and msg in p.stderr
    assert cli("ps", "-aq").stdout.strip() == ""
    assert cli("volume", "ls", "-q").stdout == ""
