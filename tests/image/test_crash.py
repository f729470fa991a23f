"""A load killed mid-unpack leaves no image and no layer; concurrent writers keep the store consistent."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import tarfile
import threading

from tests.helpers import REPO, dockyard_cmd, wait_for
from tests.image.helpers import bootstrap, inspect, store_state
from tests.image.test_archives import oci_archive


def _big_layer(n_files: int = 60, size: int = 4 << 20) -> bytes:
    buf = io.BytesIO()
    chunk = b"\0" * size
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(n_files):
            ti = tarfile.TarInfo(f"data/f{i:03d}")
            ti.size = size
            tf.addfile(ti, io.BytesIO(chunk))
    return buf.getvalue()


def test_kill_during_unpack_leaves_nothing_half_done(dy, tmp_path):
    archive = tmp_path / "big.tar"
    archive.write_bytes(oci_archive([_big_layer()], name="example.com/big:1"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([*dockyard_cmd(dy.root), "load", "-i", str(archive)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    layers = dy.root / "layers"
    try:
        wait_for(lambda: layers.is_dir() and any(n.startswith(".tmp-") for n in os.listdir(layers)),
                 timeout=60, interval=0.01, what="the unpack to start")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    state = store_state(dy.root)
    assert state["images"] == []
    # Only an unpack temp dir may remain, never a layer directory under its final name.
    assert all(n.startswith(".tmp-") for n in state["layers"])
    # The next writer clears the dead writer's debris (its pid is gone) and the same load succeeds.
    p = dy("load", "-i", str(archive), check=True)
    assert p.stdout.strip() == "Loaded image: example.com/big:1"
    assert [n for n in os.listdir(layers) if n.startswith(".")] == []
    assert os.path.getsize(os.path.join(inspect(dy, "example.com/big:1")["GraphDriver"]["Data"]["UpperDir"],
                                        "data/f059")) == 4 << 20


def test_concurrent_writers(dy, tmp_path):
    bootstrap(dy)
    saved = tmp_path / "bb.tar"
    dy("save", "-o", str(saved), "busybox", check=True)
    results: list[int] = []

    def work(i: int) -> None:
        if i % 3 == 0:
            p = dy("image", "bootstrap", "busybox")
        elif i % 3 == 1:
            p = dy("load", "-i", str(saved))
        else:
            p = dy("tag", "busybox", f"copy:{i}")
        results.append(p.returncode)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0] * 9
    state = store_state(dy.root)
    assert len(state["images"]) == 1 and len(state["layers"]) == 1
    assert len(state["blobs"]) == 3  # config, manifest, layer: the archive's other forms are not kept
    assert sorted(inspect(dy, "busybox")["RepoTags"]) == sorted(
        ["localhost/busybox:latest"] + [f"copy:{i}" for i in (2, 5, 8)])
