"""dockyard build against real peers: buildah builds the same Containerfile to the same config, and
the built image goes through a real registry (distribution) to skopeo and back."""

# ruff: noqa: F811 - pytest fixtures imported from tests.registry_peer are redefined as parameters
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.build.conftest import RUNTIME, write
from tests.registry_peer import registry, registry_env  # noqa: F401

pytestmark = [pytest.mark.peer(RUNTIME) if RUNTIME != "dockyard" else pytest.mark.peer(),
              pytest.mark.skipif(os.geteuid() != 0, reason="builds mount overlayfs")]

CONTAINERFILE = """\
FROM scratch
ARG V=3
COPY busybox /bin/busybox
ENV PATH=/bin A="x y"
WORKDIR /app/$V
USER 1000:1000
EXPOSE 80 53/udp
LABEL a=b "c d"=e
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/busybox"]
CMD ["sh", "-c", "echo hi"]
"""
FIELDS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels", "StopSignal")


def _oci_config(layout, ref: str = "") -> dict:
    index = json.loads((layout / "index.json").read_text())
    man = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    return json.loads((layout / "blobs/sha256" / man["config"]["digest"].split(":")[1]).read_text())


@pytest.mark.peer("buildah")
def test_same_config_as_buildah(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Containerfile": CONTAINERFILE})
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", ctx / "busybox")
    store = ["--root", str(tmp_path / "bh-root"), "--runroot", str(tmp_path / "bh-run"), "--storage-driver", "vfs"]
    b = subprocess.run(["buildah", *store, "bud", "-t", "cmp", str(ctx)], capture_output=True, text=True, timeout=300)
    assert b.returncode == 0, b.stderr
    subprocess.run(["buildah", *store, "push", "cmp", f"oci:{tmp_path / 'bh-oci'}:cmp"], check=True,
                   capture_output=True, timeout=300)
    theirs = _oci_config(tmp_path / "bh-oci")["config"]
    theirs.get("Labels", {}).pop("io.buildah.version", None)
    dyb("build", "-t", "cmp", str(ctx), check=True)
    dyb("save", "--format", "oci-dir", "-o", str(tmp_path / "dy-oci"), "cmp", check=True)
    ours_full = _oci_config(tmp_path / "dy-oci")
    ours = ours_full["config"]
    assert {k: ours.get(k) for k in FIELDS} == {k: theirs.get(k) for k in FIELDS}
    assert len(ours_full["rootfs"]["diff_ids"]) == 1
    r = dyb("run", "--rm", "--user", "0", "cmp", check=True)
    assert r.stdout == "hi\n"


@pytest.mark.peer("docker-registry", "skopeo")
def test_push_to_registry_and_inspect_with_skopeo(dyb, tmp_path, registry, registry_env, dy_root):
    reg = registry()
    df = ("FROM localhost/busybox\nLABEL org.opencontainers.image.title=demo\nRUN echo pushed > /pushed\n"
          "EXPOSE 8080\nCMD [\"cat\", \"/pushed\"]\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": df})
    name = f"127.0.0.1:{reg.port}/demo/built:1"
    dyb("build", "-t", name, "--annotation", "org.opencontainers.image.source=https://example.com/x", str(ctx),
        check=True, env=registry_env)
    dyb("push", "--tls-verify=false", name, check=True, env=registry_env)
    p = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{name}"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["Labels"] == {"org.opencontainers.image.title": "demo"}
    assert len(info["Layers"]) == 2
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}"],
                                    capture_output=True, text=True, timeout=120, check=True).stdout)
    assert raw["annotations"] == {"org.opencontainers.image.source": "https://example.com/x"}
    cfg = json.loads(subprocess.run(["skopeo", "inspect", "--config", "--tls-verify=false", f"docker://{name}"],
                                    capture_output=True, text=True, timeout=120, check=True).stdout)
    assert cfg["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert [h.get("empty_layer", False) for h in cfg["history"]][-4:] == [True, False, True, True]
    # Read back by a fresh store: pulled and run.
    other = tmp_path / "other"
    other.mkdir()
    from tests.helpers import run_cli

    env = {**registry_env, "DOCKYARD_RUNTIME": RUNTIME}
    write(ctx, {"Dockerfile": f"FROM {name}\nRUN echo child >> /pushed\n"})
    p = run_cli("--runroot", str(other / "run"), "build", "--tls-verify=false", "-t", "child", str(ctx), root=other,
                check=True, env=env)
    assert f"Trying to pull {name}..." in p.stdout
    r = run_cli("--runroot", str(other / "run"), "run", "--rm", "child", root=other, check=True, env=env)
    assert r.stdout == "pushed\nchild\n"


def test_network_modes(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nRUN ls /sys/class/net | sort | tr '\\n' ' '\n"})
    p = dyb("build", "--no-cache", str(ctx), check=True)
    assert "eth0 lo" in p.stdout, "by default a step has its own namespace on the default bridge"
    p = dyb("build", "--no-cache", "--network", "none", str(ctx), check=True)
    assert "lo " in p.stdout and "eth0" not in p.stdout


COPY_FORMS = """\
FROM scratch
COPY busybox /bin/busybox
COPY dir /d1/
COPY dir /d2
COPY dir/ /d3/nested/
COPY x.txt /renamed.txt
COPY x.txt y.txt /multi/
COPY *.txt /glob/
COPY --chown=5:6 other /owned/
COPY --chmod=0640 x.txt /chmodded
WORKDIR /w
COPY x.txt rel
COPY other ./o2
"""


def _tree(root) -> list[str]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            link = os.readlink(p) if os.path.islink(p) else ""
            out.append(f"{os.path.relpath(p, root)} {oct(st.st_mode)} {st.st_uid}:{st.st_gid} {link}")
    return sorted(out)


@pytest.mark.peer("buildah")
def test_copy_semantics_match_buildah(dyb, tmp_path):
    """Every COPY form (file, directory contents, rename, several sources, glob, --chown, --chmod, relative
    to WORKDIR) gives the same tree, modes and owners as buildah bud."""
    ctx = write(tmp_path / "ctx", {"Containerfile": COPY_FORMS, "dir/a": "a\n", "dir/sub/b": "b\n",
                                   "x.txt": "x\n", "y.txt": "y\n", "other/o": "o\n"})
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", ctx / "busybox")
    os.chmod(ctx / "dir/sub/b", 0o600)
    os.chmod(ctx / "other", 0o750)
    os.symlink("a", ctx / "dir/link")
    store = ["--root", str(tmp_path / "bh-root"), "--runroot", str(tmp_path / "bh-run"), "--storage-driver", "vfs"]
    subprocess.run(["buildah", *store, "bud", "-q", "-t", "m", str(ctx)], check=True, capture_output=True, timeout=300)
    ctr = subprocess.run(["buildah", *store, "from", "m"], check=True, capture_output=True, text=True,
                         timeout=120).stdout.strip()
    try:
        mnt = subprocess.run(["buildah", *store, "mount", ctr], check=True, capture_output=True, text=True,
                             timeout=120).stdout.strip()
        theirs = _tree(mnt)
    finally:
        subprocess.run(["buildah", *store, "umount", ctr], capture_output=True, timeout=120)
        subprocess.run(["buildah", *store, "rm", ctr], capture_output=True, timeout=120)
    dest = tmp_path / "dy-out"
    dyb("build", "-o", f"type=local,dest={dest}", str(ctx), check=True)
    assert _tree(dest) == theirs


def test_run_step_container_flags(dyb, tmp_path):
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nRUN grep CapEff /proc/self/status; "
                                                 "grep myhost /etc/hosts; grep nameserver /etc/resolv.conf\n"})
    p = dyb("build", "--cap-drop", "all", "--cap-add", "NET_RAW", "--add-host", "myhost:10.1.2.3",
            "--dns", "192.0.2.53", str(ctx), check=True)
    assert "CapEff:\t0000000000002000" in p.stdout
    assert "10.1.2.3\tmyhost" in p.stdout and "nameserver 192.0.2.53" in p.stdout


def test_run_step_volume_memory_and_env(dyb, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input.txt").write_text("from the host\n")
    ctx = write(tmp_path / "ctx", {"Dockerfile": "FROM localhost/busybox\nRUN cat /mnt/host/input.txt > /got "
                                                 "&& echo written > /mnt/host/out.txt\n"
                                                 "RUN cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes"
                                                 " 2>/dev/null; true\n"})
    p = dyb("build", "-v", f"{shared}:/mnt/host", "-m", "64m", "--env", "FROM_FLAG=yes", "-t", "vm", str(ctx),
            check=True)
    assert "67108864" in p.stdout
    assert (shared / "out.txt").read_text() == "written\n"
    r = dyb("run", "--rm", "vm", "sh", "-c", "cat /got; test -e /mnt && echo mnt-present; echo $FROM_FLAG",
            check=True)
    assert r.stdout == "from the host\nyes\n", "neither the volume nor its mount point is in the image"
