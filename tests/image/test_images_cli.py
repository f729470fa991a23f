"""images / inspect / tag / rmi / history / prune / import / bootstrap busybox, through the real CLI."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile

import pytest

from dockyard import host
from tests.conftest import requires_root
from tests.helpers import unique_name
from tests.image.helpers import bootstrap, dy_binary, inspect, store_state


def _rows(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def _rootfs_tar(rootfs, compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for child in sorted(os.listdir(rootfs)):
            tf.add(rootfs / child, arcname=child)
    return gzip.compress(buf.getvalue()) if compress else buf.getvalue()


def test_bootstrap_busybox_is_a_working_configured_image(dy):
    image_id = bootstrap(dy)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    out = dy("images", check=True).stdout
    rows = _rows(out)
    assert rows[0] == ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    assert rows[1][:3] == ["localhost/busybox", "latest", image_id[7:19]]
    assert re.fullmatch(r"[\d.]+MB", rows[1][4])
    info = inspect(dy, "busybox")  # short name finds localhost/busybox like Podman does
    assert info["Id"] == image_id
    assert info["RepoTags"] == ["localhost/busybox:latest"]
    assert info["Config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") and "/bin" in e for e in info["Config"]["Env"])
    assert info["Os"] == "linux" and info["Architecture"] == host.go_arch()
    assert len(info["RootFS"]["Layers"]) == 1
    # Bootstrapping again gives the same image: content and times come from the host binary.
    assert bootstrap(dy) == image_id


@requires_root
def test_bootstrapped_layer_runs_busybox(dy):
    bootstrap(dy)
    layer = inspect(dy, "localhost/busybox")["GraphDriver"]["Data"]["UpperDir"]
    p = subprocess.run(["chroot", layer, "/bin/sh", "-c", "echo hello from $(basename $(readlink /bin/ls))"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "hello from busybox"


def test_tag_and_rmi_semantics(dy):
    image_id = bootstrap(dy)
    dy("tag", "busybox", "myapp:1", check=True)
    dy("image", "tag", image_id[7:19], "quay.io/team/app:2", check=True)
    rows = _rows(dy("images").stdout)
    assert sorted(r[0] + ":" + r[1] for r in rows[1:]) == ["localhost/busybox:latest", "myapp:1", "quay.io/team/app:2"]
    assert {r[2] for r in rows[1:]} == {image_id[7:19]}

    p = dy("rmi", image_id[7:19])
    assert p.returncode == 1
    assert "must be forced" in p.stderr and "multiple repositories" in p.stderr

    p = dy("rmi", "myapp:1", check=True)
    assert p.stdout.strip() == "Untagged: myapp:1"
    p = dy("image", "rm", "nosuch:tag")
    assert p.returncode == 1 and "No such image: nosuch:tag" in p.stderr

    before = store_state(dy.root)
    assert before["layers"] and before["blobs"]
    p = dy("rmi", "-f", image_id[7:19], check=True)
    assert p.stdout.splitlines() == ["Untagged: localhost/busybox:latest", "Untagged: quay.io/team/app:2",
                                     f"Deleted: {image_id}"]
    assert store_state(dy.root) == {"images": [], "layers": [], "blobs": []}
    assert dy("tag", "busybox", "x:1").returncode == 125


def _container_using(dy, image_id: str) -> str:
    """A container of this image: the real `create` when the containers area has it, else its row."""
    if dy("create", "--help").returncode == 0:
        p = dy("create", "--name", "user1", "busybox", "true")
        assert p.returncode == 0, p.stderr
        return p.stdout.strip()
    db = sqlite3.connect(dy.root / "dockyard.db")
    try:
        db.execute("SELECT 1 FROM containers")
    except sqlite3.OperationalError:
        db.execute("CREATE TABLE containers (id TEXT PRIMARY KEY, image_id TEXT NOT NULL)")
    cid = "c0ffee" * 10 + "abcd"
    values = {"id": cid, "image_id": image_id}
    for _, name, _type, notnull, default, _pk in db.execute("PRAGMA table_info(containers)"):
        if notnull and default is None and name not in values:
            values[name] = 0 if "INT" in _type or "REAL" in _type else name
    db.execute(f"INSERT INTO containers ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
               tuple(values.values()))
    db.commit()
    db.close()
    return cid


def test_rmi_refuses_image_used_by_container(dy):
    image_id = bootstrap(dy)
    short = image_id[7:19]
    cid = _container_using(dy, image_id)
    p = dy("rmi", "busybox")
    assert p.returncode == 1
    assert p.stderr == ('Error: conflict: unable to remove repository reference "busybox" (must force) - '
                        f"container {cid[:12]} is using its referenced image {short}\n")
    p = dy("rmi", short)
    assert p.returncode == 1
    assert p.stderr == (f"Error: conflict: unable to delete {short} (must be forced) - "
                        f"image is being used by stopped container {cid[:12]}\n")
    p = dy("image", "prune", "-a", "-f", check=True)
    assert p.stdout == "Total reclaimed space: 0B\n"
    assert inspect(dy, image_id)["Id"] == image_id
    # Forced, as Docker: the name goes and the image stays, dangling, for the container.
    p = dy("rmi", "-f", "busybox", check=True)
    assert p.stdout == "Untagged: localhost/busybox:latest\n"
    assert inspect(dy, image_id)["RepoTags"] == []
    assert dy("images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}", check=True).stdout == f"<none> <none> {short}\n"
    # Missing images with -f are reported but do not fail the command (Docker's rule).
    p = dy("rmi", "-f", "nosuch:1")
    assert p.returncode == 0 and p.stderr == "Error: No such image: nosuch:1\n"
    assert dy("rmi", "nosuch:1").returncode == 1


@requires_root
def test_rmi_of_an_image_a_running_container_uses(dy):
    """By ID Docker cannot force it; by name -f only untags; the container keeps running."""
    image_id = bootstrap(dy)
    short = image_id[7:19]
    p = dy("run", "-d", "--name", unique_name("rmi"), "busybox", "sleep", "600")
    if p.returncode != 0:
        pytest.skip(f"containers cannot run here: {p.stderr.strip()}")
    cid = p.stdout.strip()
    try:
        p = dy("rmi", "-f", short)
        assert p.returncode == 1
        assert p.stderr == (f"Error: conflict: unable to delete {short} (cannot be forced) - "
                            f"image is being used by running container {cid[:12]}\n")
        p = dy("rmi", "-f", "busybox", check=True)
        assert p.stdout == "Untagged: localhost/busybox:latest\n"
        assert dy("inspect", "--format", "{{.State.Running}}", cid, check=True).stdout.strip() == "true"
        assert dy("exec", cid, "echo", "still here", check=True).stdout == "still here\n"
    finally:
        dy("rm", "-f", cid)
    # Once the container is gone, the dangling image is pruned with its content.
    p = dy("image", "prune", "-f", check=True)
    assert p.stdout.splitlines()[:2] == ["Deleted Images:", f"deleted: {image_id}"]
    assert store_state(dy.root) == {"images": [], "layers": [], "blobs": []}


def test_images_flags_and_filters(dy, busybox_rootfs):
    base = bootstrap(dy)
    dy("tag", "busybox", "other:1", check=True)
    tar = _rootfs_tar(busybox_rootfs)
    web = dy_binary(dy, "import", "--change", "LABEL tier=web owner=me", "-", "web:1", input=tar)[1].decode().strip()

    # One line per row, as Docker prints them: an image with two names is listed twice, newest first.
    assert dy("images", "-q", check=True).stdout.split() == [web[7:19], base[7:19], base[7:19]]
    assert dy("images", "-q", "--no-trunc", check=True).stdout.split()[0].startswith("sha256:")
    assert dy("images", "-q", "--filter", "label=tier=web", check=True).stdout.split() == [web[7:19]]
    assert dy("images", "-q", "--filter", "label=owner", check=True).stdout.split() == [web[7:19]]
    assert dy("images", "-q", "--filter", "label=tier=db", check=True).stdout.split() == []
    assert dy("images", "-q", "--filter", "reference=oth*", check=True).stdout.split() == [base[7:19]]
    assert dy("images", "-q", "--filter", "dangling=true", check=True).stdout.split() == []
    assert dy("images", "-q", "--filter", "since=localhost/busybox", check=True).stdout.split() == [web[7:19]]
    assert dy("images", "-q", "--filter", "before=web:1", check=True).stdout.split() == [base[7:19]] * 2
    assert dy("images", "-q", "other", check=True).stdout.split() == [base[7:19]]
    assert dy("images", "-q", "busybox:latest", check=True).stdout.split() == [base[7:19]]
    assert dy("images", "-q", "busybox:nope", check=True).stdout.split() == []
    p = dy("images", "--filter", "bogus=1")
    assert p.returncode == 125 and "invalid filter" in p.stderr
    rows = _rows(dy("images", "--digests", check=True).stdout)
    assert rows[0] == ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"]
    assert rows[1][2] == "<none>"
    full = _rows(dy("images", "--no-trunc", check=True).stdout)
    assert {r[2] for r in full[1:]} == {base, web}

    # Retagging web:1 onto busybox leaves the imported image dangling.
    dy("tag", "busybox", "web:1", check=True)
    assert dy("images", "-q", "--filter", "dangling=true", check=True).stdout.split() == [web[7:19]]
    rows = _rows(dy("images", check=True).stdout)
    assert ["<none>", "<none>", web[7:19]] in [r[:3] for r in rows]


def test_images_format_template(dy):
    bootstrap(dy)
    p = dy("images", "--format", "{{.Repository}}:{{.Tag}}")
    if p.returncode != 0 and "not implemented" in p.stderr:
        pytest.skip("Go templates (dockyard.formatting) have not landed yet")
    assert p.stdout.strip() == "localhost/busybox:latest"
    p = dy("images", "--format", "table {{.Repository}}\t{{.ID}}", check=True)
    rows = _rows(p.stdout)
    assert rows[0] == ["REPOSITORY", "IMAGE ID"]
    assert rows[1][0] == "localhost/busybox"
    p = dy("images", "--format", "json", check=True)
    assert [json.loads(line)["Repository"] for line in p.stdout.splitlines()] == ["localhost/busybox"]


def _human_size(n: float, precision: int = 3) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.{precision}g}{unit}"
        n /= 1000
    raise AssertionError


UTC = {"TZ": "UTC"}


def test_images_exact_output(dy, busybox_rootfs):
    """Byte for byte what Docker prints: tabwriter columns (min width 10, padding 3), headers from the
    fields, json rows with Docker's keys (sorted) and escaping, Label columns titled by the key."""
    base = bootstrap(dy)
    dy("tag", "busybox", "other:1", check=True)
    size = _human_size(inspect(dy, base)["Size"])
    virtual = _human_size(inspect(dy, base)["Size"], 4)
    bid = base[7:19]
    out = dy("images", "--format", "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}", check=True).stdout
    assert out == ("REPOSITORY          TAG       IMAGE ID       SIZE\n"
                   f"localhost/busybox   latest    {bid}   {size}\n"
                   f"other               1         {bid}   {size}\n")
    # "table" is the default table; --digests adds the DIGEST column.
    default = dy("images", check=True).stdout.splitlines()
    since = default[1][45:].split("   ")[0]
    assert re.fullmatch(r"\d+ \w+ ago|About an? \w+ ago", since)
    width = max(len(since) + 3, 10)
    assert default == ["REPOSITORY          TAG       IMAGE ID       " + "CREATED".ljust(width) + "SIZE",
                       f"localhost/busybox   latest    {bid}   " + since.ljust(width) + size,
                       f"other               1         {bid}   " + since.ljust(width) + size]
    assert dy("images", "--format", "table", check=True).stdout.splitlines()[0] == default[0]
    assert dy("images", "--digests", check=True).stdout.splitlines()[0].startswith(
        "REPOSITORY          TAG       DIGEST    IMAGE ID       CREATED")
    assert dy("images", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}", check=True).stdout == \
        "localhost/busybox:latest <none>\nother:1 <none>\n"

    lines = dy("images", "--format", "json", "busybox", check=True, env=UTC).stdout.splitlines()
    assert len(lines) == 1
    since = json.loads(lines[0])["CreatedSince"]
    assert re.fullmatch(r"\d+ \w+ ago|About an? \w+ ago", since)
    created = inspect(dy, base)["Created"]
    created_at = created[:10] + " " + created[11:19] + " +0000 UTC"
    assert lines[0] == (f'{{"Containers":"N/A","CreatedAt":"{created_at}","CreatedSince":"{since}",'
                        f'"Digest":"\\u003cnone\\u003e","ID":"{bid}","Repository":"localhost/busybox",'
                        f'"SharedSize":"N/A","Size":"{size}","Tag":"latest","UniqueSize":"N/A",'
                        f'"VirtualSize":"{virtual}"}}')
    assert dy("images", "-q", "--format", "{{.Tag}}", check=True).stdout == "latest\n1\n"  # --format wins

    tar = _rootfs_tar(busybox_rootfs)
    web = dy_binary(dy, "import", "--change", "LABEL com.example.tier=web", "-", "web:1", input=tar)[1].decode()
    out = dy("images", "--filter", "label=com.example.tier", "--format",
             'table {{.Repository}}\t{{.Label "com.example.tier"}}\t{{.ID}}', check=True).stdout
    assert out == f"REPOSITORY   tier      IMAGE ID\nweb          web       {web.strip()[7:19]}\n"
    p = dy("images", "--format", "{{.Nope}}")
    assert p.returncode == 125
    assert p.stderr == ('Error: template parsing error: template: :1:2: executing "" at <.Nope>: '
                        "can't evaluate field Nope in type *formatter.imageContext\n")


def test_history_exact_output(dy):
    image_id = bootstrap(dy)
    iid = image_id[7:19]
    full = dy("history", "--no-trunc", "--format", "{{.CreatedBy}}", "busybox", check=True).stdout.rstrip("\n")
    short = full[:44] + "…"
    size = inspect(dy, image_id)["Size"]
    out = dy("history", "--format", "table {{.ID}}\t{{.CreatedBy}}\t{{.Size}}", "busybox", check=True).stdout
    assert out == ("IMAGE          CREATED BY" + " " * 38 + "SIZE\n"
                   f"{iid}   {short}   {_human_size(size)}\n")
    created = inspect(dy, image_id)["Created"][:19] + "Z"
    line = dy("history", "-H=false", "--format", "json", "busybox", check=True, env=UTC).stdout
    assert line == (f'{{"Comment":"","CreatedAt":"{created}","CreatedBy":"{short}","CreatedSince":"{created}",'
                    f'"ID":"{iid}","Size":"{size}"}}\n')
    header = dy("history", "--human=false", "busybox", check=True).stdout.splitlines()[0]
    assert header.split() == ["IMAGE", "CREATED", "AT", "CREATED", "BY", "SIZE", "COMMENT"]


def test_history(dy):
    image_id = bootstrap(dy)
    rows = _rows(dy("history", "busybox", check=True).stdout)
    assert rows[0] == ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    assert rows[1][0] == image_id[7:19]
    assert rows[1][2].startswith("dockyard image bootstrap busybox") and rows[1][2].endswith("…")
    assert re.fullmatch(r"[\d.]+MB", rows[1][3])
    long = dy("image", "history", "--no-trunc", "busybox", check=True).stdout
    assert image_id in long and "from /" in long
    assert dy("history", "-q", "busybox", check=True).stdout.split() == [image_id[7:19]]
    p = dy("history", "nosuch")
    assert p.returncode == 125 and "No such image" in p.stderr


def test_import_with_changes_and_message(dy, busybox_rootfs, tmp_path):
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(_rootfs_tar(busybox_rootfs, compress=True))
    p = dy("import", "-c", 'CMD ["/bin/echo", "hi"]', "-c", "ENV A=1 B=two", "-c", "WORKDIR /srv",
           "-c", "EXPOSE 8080", "-c", "USER nobody", "-m", "my rootfs", str(tarball), "imported:v1", check=True)
    image_id = p.stdout.strip()
    info = inspect(dy, "imported:v1")
    assert info["Id"] == image_id
    cfg = info["Config"]
    assert cfg["Cmd"] == ["/bin/echo", "hi"]
    assert cfg["Env"] == ["A=1", "B=two"]
    assert cfg["WorkingDir"] == "/srv" and cfg["User"] == "nobody"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert info["Comment"] == "my rootfs"
    hist = dy("history", "--no-trunc", "--format", "{{.Comment}}", "imported:v1")
    if hist.returncode == 0:
        assert hist.stdout.strip() == "my rootfs"
    layer = info["GraphDriver"]["Data"]["UpperDir"]
    assert os.path.isfile(os.path.join(layer, "bin", "busybox"))
    p = dy("import", "-c", "FROBNICATE x", str(tarball))
    assert p.returncode == 125 and "not a valid change command" in p.stderr


def test_import_rejects_hostile_tar_and_leaves_nothing(dy, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("../../escape")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    bad = tmp_path / "bad.tar"
    bad.write_bytes(buf.getvalue())
    p = dy("import", str(bad), "bad:1")
    assert p.returncode == 125
    assert "contains '..'" in p.stderr and p.stderr.count("\n") == 1
    assert store_state(dy.root) == {"images": [], "layers": [], "blobs": []}
    assert not (tmp_path.parent / "escape").exists()


def test_prune(dy, busybox_rootfs):
    base = bootstrap(dy)
    tar = _rootfs_tar(busybox_rootfs)
    def imp(*args):
        return dy_binary(dy, "import", *args, "-", input=tar)[1].decode().strip()

    dangling = imp("-c", "LABEL keep=no")
    kept = imp("-c", "LABEL keep=yes")
    # Without -f it asks; "no" keeps everything.
    p = dy("image", "prune", input="n\n", check=True)
    assert "WARNING! This will remove all dangling images." in p.stdout
    assert len(store_state(dy.root)["images"]) == 3
    p = dy("image", "prune", "-f", "--filter", "label=keep=no", check=True)
    assert p.stdout.splitlines()[:2] == ["Deleted Images:", f"deleted: {dangling}"]
    # Its only layer is shared with the other import, so nothing on disk was freed yet.
    assert p.stdout.splitlines()[-1] == "Total reclaimed space: 0B"
    assert sorted(store_state(dy.root)["images"]) == sorted([base, kept])
    p = dy("image", "prune", "-f", check=True)
    assert f"deleted: {kept}" in p.stdout
    assert re.search(r"Total reclaimed space: [\d.]+MB", p.stdout)
    # A shared layer stays while an image still uses it.
    assert store_state(dy.root)["images"] == [base]
    assert os.path.isdir(inspect(dy, base)["GraphDriver"]["Data"]["UpperDir"])
    p = dy("image", "prune", "-a", "-f", check=True)
    assert "untagged: localhost/busybox:latest" in p.stdout and f"deleted: {base}" in p.stdout
    assert store_state(dy.root) == {"images": [], "layers": [], "blobs": []}


def test_bad_references_and_unknown_bootstrap(dy):
    p = dy("image", "inspect", "UPPER/case")
    assert p.returncode == 1 and p.stdout.strip() == "[]"
    p = dy("image", "bootstrap", "alpine")
    assert p.returncode == 125 and "unknown bootstrap image" in p.stderr
    if shutil.which("busybox"):
        bootstrap(dy)
        p = dy("tag", "busybox", "bad@@name")
        assert p.returncode == 125 and "invalid reference format" in p.stderr


def test_import_from_url(dy, busybox_rootfs, tmp_path):
    import functools
    import http.server
    import threading

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "rootfs.tar.gz").write_bytes(_rootfs_tar(busybox_rootfs, compress=True))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rootfs.tar.gz"
        p = dy("import", "-c", "CMD sh", url, "fromurl:1", check=True)
        info = inspect(dy, "fromurl:1")
        assert info["Id"] == p.stdout.strip()
        assert info["Comment"] == f"Imported from {url}"
        assert info["Config"]["Cmd"] == ["/bin/sh", "-c", "sh"]
        p = dy("import", url.replace("rootfs", "missing"))
        assert p.returncode == 125 and "HTTP 404" in p.stderr
    finally:
        server.shutdown()
        server.server_close()
    p = dy("import", "ftp://example.invalid/x.tar")
    assert p.returncode == 125 and "only http:// and https://" in p.stderr


def test_prune_until(dy, busybox_rootfs):
    base = bootstrap(dy)  # created when the host's busybox was built: long ago
    fresh = dy_binary(dy, "import", "-", "fresh:1", input=_rootfs_tar(busybox_rootfs))[1].decode().strip()
    p = dy("image", "prune", "-a", "-f", "--filter", "until=1h", check=True)
    assert f"deleted: {base}" in p.stdout and fresh not in p.stdout
    assert store_state(dy.root)["images"] == [fresh]
    p = dy("image", "prune", "-f", "--filter", "until=tomorrow")
    assert p.returncode == 125 and "invalid until filter" in p.stderr


def test_prune_sweeps_old_unreferenced_blobs(dy):
    from dockyard.store.blobs import BlobStore

    base = bootstrap(dy)
    store = BlobStore(dy.root / "blobs", dy.root / "tmp")
    old = store.put_bytes(b"left by a pull that died" * 1000)
    fresh = store.put_bytes(b"a pull still in progress")
    os.utime(store.path(old), (1_000_000, 1_000_000))
    p = dy("image", "prune", "-f", check=True)
    assert p.stdout.strip() == "Total reclaimed space: 24kB"
    assert not store.has(old) and store.has(fresh) and store.has(base)


def test_exists_and_untag(dy):
    image_id = bootstrap(dy)
    assert dy("image", "exists", "busybox").returncode == 0
    assert dy("image", "exists", "nosuch").returncode == 1
    dy("tag", "busybox", "a:1", check=True)
    dy("tag", "busybox", "b:1", check=True)
    dy("image", "untag", "busybox", "a:1", check=True)
    assert sorted(inspect(dy, image_id)["RepoTags"]) == ["b:1", "localhost/busybox:latest"]
    p = dy("image", "untag", image_id, "c:1")
    assert p.returncode == 125 and "tag not known" in p.stderr
    dy("image", "untag", image_id, check=True)
    assert inspect(dy, image_id)["RepoTags"] == []
    assert dy("images", "-q", "--filter", "dangling=true", check=True).stdout.split() == [image_id[7:19]]
