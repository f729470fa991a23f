"""Dockerfile features beyond the basics: heredocs, ADD (archives, URLs), COPY --from an image,
RUN --mount=type=cache/bind, ONBUILD, SHELL, ENTRYPOINT/CMD reset, -o type=local, confinement."""

from __future__ import annotations

import http.server
import io
import json
import os
import socketserver
import tarfile
import threading

import pytest

from tests.build.conftest import RUNTIME, write

pytestmark = [pytest.mark.peer(RUNTIME) if RUNTIME != "dockyard" else pytest.mark.peer(),
              pytest.mark.skipif(os.geteuid() != 0, reason="builds mount overlayfs")]


def run_out(dyb, image: str, script: str) -> str:
    return dyb("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", script, check=True).stdout


def test_heredocs(dyb, tmp_path):
    df = """\
FROM localhost/busybox
ARG WHO=world
RUN <<EOF
set -e
echo "line one" > /script-out
echo "line two" >> /script-out
EOF
COPY <<MOTD /etc/motd
hello ${WHO}
MOTD
RUN cat <<-'END' > /quoted
\tliteral $WHO
\tEND
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    dyb("build", "-t", "hd", str(ctx), check=True)
    assert run_out(dyb, "hd", "cat /script-out /etc/motd /quoted") == \
        "line one\nline two\nhello world\nliteral $WHO\n"


def test_add_archive_url_and_plain_file(dyb, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("pkg/bin/tool", b"#!/bin/sh\necho tool\n"), ("pkg/README", b"readme\n")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.uid, ti.gid = len(data), 0o755, 123, 456
            tf.addfile(ti, io.BytesIO(data))
        link = tarfile.TarInfo("pkg/link")
        link.type, link.linkname = tarfile.SYMTYPE, "README"
        tf.addfile(link)
    (ctx / "pkg.tar.gz").write_bytes(buf.getvalue())
    (ctx / "notes.txt").write_text("plain\n")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's API
            body = b"downloaded\n"
            self.send_response(200 if self.path == "/files/data.txt" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = socketserver.TCPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        write(ctx, {"Dockerfile": f"FROM localhost/busybox\nADD pkg.tar.gz /opt/\nADD notes.txt /opt/\n"
                                  f"ADD {url}/files/data.txt /dl/\n"})
        dyb("build", "-t", "add", str(ctx), check=True)
        out = run_out(dyb, "add", "/opt/pkg/bin/tool; cat /opt/pkg/link /opt/notes.txt /dl/data.txt; "
                                  "stat -c '%u:%g %a' /opt/pkg/README /dl/data.txt /opt; readlink /opt/pkg/link")
        assert out == "tool\nreadme\nplain\ndownloaded\n123:456 755\n0:0 600\n0:0 755\nREADME\n"
        write(ctx, {"Dockerfile": f"FROM localhost/busybox\nADD {url}/missing /x\n"})
        p = dyb("build", str(ctx))
        assert p.returncode == 125 and "cannot download" in p.stderr and "404" in p.stderr
    finally:
        srv.shutdown()
        srv.server_close()


def test_copy_from_image_and_shell_and_entrypoint_reset(dyb, tmp_path):
    df = """\
FROM scratch
COPY --from=localhost/busybox /bin/busybox /bin/busybox
SHELL ["/bin/busybox", "sh", "-ec"]
RUN /bin/busybox mkdir /made && /bin/busybox echo via-shell > /made/x
CMD ["inherited"]
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    dyb("build", "-t", "base1", str(ctx), check=True)
    assert dyb("run", "--rm", "base1", "/bin/busybox", "cat", "/made/x", check=True).stdout == "via-shell\n"
    write(ctx, {"Dockerfile": "FROM base1\nENTRYPOINT [\"/bin/busybox\", \"echo\", \"ep\"]\n"})
    dyb("build", "-t", "child1", str(ctx), check=True)
    c = json.loads(dyb("image", "inspect", "child1", check=True).stdout)[0]["Config"]
    assert c["Entrypoint"] == ["/bin/busybox", "echo", "ep"] and not c.get("Cmd")
    assert c["Shell"] == ["/bin/busybox", "sh", "-ec"]
    assert dyb("run", "--rm", "child1", check=True).stdout == "ep\n"


def test_run_mount_cache_and_bind(dyb, tmp_path):
    df = """\
FROM localhost/busybox
RUN --mount=type=cache,target=/var/cache/app echo x >> /var/cache/app/runs && wc -l < /var/cache/app/runs
RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/in.txt > /copied
"""
    ctx = write(tmp_path / "ctx", {"Dockerfile": df, "data/in.txt": "bound\n"})
    p1 = dyb("build", "-t", "mnt", str(ctx), check=True)
    p2 = dyb("build", "--no-cache", "-t", "mnt", str(ctx), check=True)
    assert "\n1\n" in p1.stdout and "\n2\n" in p2.stdout, "the cache mount persists between builds"
    out = run_out(dyb, "mnt", "cat /copied; ls -A /var/cache/app 2>&1; ls /mnt 2>&1 | wc -l")
    assert out.startswith("bound\n")
    assert "runs" not in out, "the cache mount's content is not in the image"


def test_onbuild_triggers_run_in_the_child(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nONBUILD RUN echo triggered > /trig\n"
                                                 "ONBUILD COPY child.txt /child.txt\n",
                                   "child.txt": "from child context\n"})
    dyb("build", "-t", "obbase", str(ctx), check=True)
    write(ctx, {"Dockerfile": "FROM obbase\nRUN cat /trig\n"})
    p = dyb("build", "-t", "obchild", str(ctx), check=True)
    assert "STEP 2/4: RUN echo triggered > /trig" in p.stdout
    assert run_out(dyb, "obchild", "cat /trig /child.txt") == "triggered\nfrom child context\n"
    assert not json.loads(dyb("image", "inspect", "obchild", check=True).stdout)[0]["Config"].get("OnBuild")


def test_output_local_directory(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile.slim": "FROM localhost/busybox\nRUN echo exported > /e.txt\n"})
    dest = tmp_path / "myimage-1"
    dyb("build", "-t", "myimage:1", "-f", str(ctx / "Dockerfile.slim"), "-o", f"type=local,dest={dest}", str(ctx),
        check=True)
    assert (dest / "e.txt").read_text() == "exported\n"
    assert (dest / "bin" / "busybox").is_file()


def test_symlinks_cannot_reach_the_host(dyb, tmp_path):
    host_target = tmp_path / "host-only"
    outside = tmp_path / "outside.txt"
    outside.write_text("host secret\n")
    ctx = write(tmp_path / "ctx", {"f.txt": "f\n"})
    os.symlink(str(outside), ctx / "escape")
    os.symlink("../outside.txt", ctx / "escape2")
    write(ctx, {"Dockerfile": f"FROM localhost/busybox\nRUN ln -s {host_target} /esc\nCOPY f.txt /esc/\n"})
    dyb("build", "-t", "conf", str(ctx), check=True)
    assert not host_target.exists(), "a COPY through an image symlink wrote to the host"
    assert run_out(dyb, "conf", f"cat {host_target}/f.txt") == "f\n"
    for link in ("escape", "escape2"):
        write(ctx, {"Dockerfile": f"FROM localhost/busybox\nCOPY {link} /x\n"})
        p = dyb("build", str(ctx))
        assert p.returncode == 125, f"COPY of a context symlink pointing outside ({link}) must fail"
        assert "host secret" not in dyb("run", "--rm", "localhost/busybox", "true").stdout


def test_copy_keeps_user_xattrs(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nCOPY tagged.txt /tagged.txt\n",
                                   "tagged.txt": "x\n"})
    try:
        os.setxattr(ctx / "tagged.txt", "user.origin", b"context")
    except OSError as e:
        pytest.skip(f"user xattrs unsupported here: {e}")
    dyb("build", "-t", "xa", str(ctx), check=True)
    out = tmp_path / "xa.tar"
    dyb("save", "--format", "oci-archive", "-o", str(out), "xa", check=True)
    with tarfile.open(out) as tf:
        index = json.load(tf.extractfile("index.json"))
        man = json.load(tf.extractfile("blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]))
        last = man["layers"][-1]["digest"].split(":")[1]
        with tarfile.open(fileobj=tf.extractfile(f"blobs/sha256/{last}")) as layer:
            m = layer.getmember("tagged.txt")
    assert m.pax_headers.get("SCHILY.xattr.user.origin") == "context"


def test_named_build_context(dyb, tmp_path):
    extra = write(tmp_path / "extra", {"conf/app.conf": "from the named context\n"})
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nCOPY --from=configs conf/app.conf /etc/app.conf\n"})
    dyb("build", "--build-context", f"configs={extra}", "-t", "named", str(ctx), check=True)
    assert dyb("run", "--rm", "named", "cat", "/etc/app.conf", check=True).stdout == "from the named context\n"
    bad = dyb("build", "--build-context", "configs=docker-image://busybox", str(ctx))
    assert bad.returncode == 125 and "only local directories" in bad.stderr
