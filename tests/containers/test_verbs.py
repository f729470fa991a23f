"""The remaining verbs: top, stats, diff, cp, rename, pause/unpause, export, commit, prune, inspect of images."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile

from tests.containers.conftest import IMAGE, needs_runtime
from tests.helpers import wait_for

pytestmark = [needs_runtime]


def _start(ctr, name, script="sleep 600"):
    ctr("run", "-d", "--name", name, IMAGE, "sh", "-c", script, check=True)


def test_top_lists_container_processes(ctr):
    _start(ctr, "tp", "sleep 600 & sleep 700")
    wait_for(lambda: "sleep 700" in ctr("top", "tp").stdout, timeout=10, what="processes")
    out = ctr("top", "tp").stdout.splitlines()
    assert out[0].split()[:3] == ["UID", "PID", "PPID"]
    cmds = " ".join(out[1:])
    assert "sleep 600" in cmds and "sleep 700" in cmds
    out = ctr("container", "top", "tp", "-o", "pid,comm").stdout.splitlines()
    assert out[0].split() == ["PID", "COMMAND"]


def test_stats_no_stream(ctr):
    _start(ctr, "st")
    p = ctr("stats", "--no-stream")
    lines = p.stdout.splitlines()
    assert lines[0].split()[:3] == ["CONTAINER", "ID", "NAME"] and "MEM USAGE / LIMIT" in lines[0]
    assert "st" in lines[1] and "%" in lines[1]
    p = ctr("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", "st")
    assert p.stdout.strip() == "st 1"
    p = ctr("stats", "--no-stream", "--format", "json", "st")
    assert json.loads(p.stdout.splitlines()[0])["Name"] == "st"


def test_diff_reports_added_changed_deleted(ctr):
    _start(ctr, "df", "echo hi > /tmp/new; rm /etc/group; mkdir -p /opt/app; echo x > /opt/app/f; sleep 600")
    wait_for(lambda: "A /opt/app/f" in ctr("diff", "df").stdout, timeout=10, what="changes")
    lines = ctr("diff", "df").stdout.splitlines()
    assert "C /etc" in lines and "D /etc/group" in lines and "A /tmp/new" in lines and "C /tmp" in lines
    assert "A /opt" in lines and "A /opt/app" in lines
    assert not any(ln.endswith(("/etc/hosts", "/etc/hostname", "/etc/resolv.conf")) for ln in lines)
    ctr("stop", "-t", "0", "df", check=True)
    assert "D /etc/group" in ctr("diff", "df").stdout.splitlines()


def test_cp_both_directions(ctr, tmp_path):
    _start(ctr, "cp1", "mkdir /data; echo inside > /data/in.txt; sleep 600")
    wait_for(lambda: ctr("exec", "cp1", "cat", "/data/in.txt").stdout == "inside\n", timeout=10, what="file")
    src = tmp_path / "hostfile.txt"
    src.write_text("from host\n")
    assert ctr("cp", str(src), "cp1:/data/").returncode == 0
    assert ctr("exec", "cp1", "cat", "/data/hostfile.txt").stdout == "from host\n"
    assert ctr("cp", str(src), "cp1:/data/renamed.txt").returncode == 0
    assert ctr("exec", "cp1", "cat", "/data/renamed.txt").stdout == "from host\n"
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("nested")
    assert ctr("container", "cp", str(d), "cp1:/data").returncode == 0
    assert ctr("exec", "cp1", "cat", "/data/dir/sub/f").stdout == "nested"
    out = tmp_path / "out.txt"
    assert ctr("cp", "cp1:/data/in.txt", str(out)).returncode == 0
    assert out.read_text() == "inside\n"
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    assert ctr("cp", "cp1:/data", str(outdir)).returncode == 0
    assert (outdir / "data" / "in.txt").read_text() == "inside\n"
    # a symlink inside the container cannot point the copy at the host
    ctr("exec", "cp1", "ln", "-s", "/", "/data/escape", check=True)
    assert ctr("cp", str(src), "cp1:/data/escape/").returncode == 0
    assert ctr("exec", "cp1", "cat", "/hostfile.txt").stdout == "from host\n"
    p = ctr("cp", "cp1:/nonexistent", str(tmp_path / "x"))
    assert p.returncode != 0 and p.stderr.startswith("Error: ")
    # tar stream out
    p = subprocess.run(ctr_cmd(ctr, "cp", "cp1:/data/in.txt", "-"), capture_output=True)
    names = tarfile.open(fileobj=io.BytesIO(p.stdout)).getnames()
    assert names == ["in.txt"]
    # stopped containers too
    ctr("stop", "-t", "0", "cp1", check=True)
    out2 = tmp_path / "out2.txt"
    assert ctr("cp", "cp1:/data/renamed.txt", str(out2)).returncode == 0
    assert out2.read_text() == "from host\n"


def ctr_cmd(ctr, *args):
    from tests.helpers import dockyard_cmd

    return dockyard_cmd(ctr.root) + ["--runroot", str(ctr.runroot), *args]


def test_rename(ctr):
    _start(ctr, "old")
    assert ctr("rename", "old", "new").returncode == 0
    assert ctr("ps", "--format", "{{.Names}}").stdout.strip() == "new"
    assert json.loads(ctr("inspect", "new").stdout)[0]["Name"] == "/new"
    _start(ctr, "other")
    p = ctr("rename", "new", "other")
    assert p.returncode == 125 and "already in use" in p.stderr
    assert ctr("stop", "-t", "0", "new").returncode == 0


def test_pause_unpause(ctr):
    _start(ctr, "pz", "while :; do date +%s%N > /tmp/t; sleep 0.05; done")
    assert ctr("pause", "pz").stdout.strip() == "pz"
    st = json.loads(ctr("inspect", "pz").stdout)[0]["State"]
    assert st["Status"] == "paused" and st["Paused"] and st["Running"]
    assert "(Paused)" in ctr("ps").stdout
    p = ctr("exec", "pz", "true")
    assert p.returncode == 125 and "paused" in p.stderr
    assert ctr("pause", "pz").returncode != 0
    assert ctr("unpause", "pz").stdout.strip() == "pz"
    assert json.loads(ctr("inspect", "pz").stdout)[0]["State"]["Status"] == "running"
    # a paused container can still be stopped
    ctr("pause", "pz", check=True)
    assert ctr("stop", "-t", "1", "pz").returncode == 0
    assert json.loads(ctr("inspect", "pz").stdout)[0]["State"]["Status"] == "exited"


def test_export(ctr, tmp_path):
    _start(ctr, "ex", "echo exported > /marker; sleep 600")
    wait_for(lambda: ctr("exec", "ex", "cat", "/marker").stdout == "exported\n", timeout=10, what="marker")
    out = tmp_path / "fs.tar"
    assert ctr("export", "-o", str(out), "ex").returncode == 0
    with tarfile.open(out) as tf:
        names = tf.getnames()
        assert "marker" in names and "bin/busybox" in names
        assert tf.extractfile("marker").read() == b"exported\n"


def test_commit_makes_a_runnable_image(ctr):
    _start(ctr, "cm", "echo committed > /etc/motd; sleep 600")
    wait_for(lambda: ctr("exec", "cm", "cat", "/etc/motd").stdout == "committed\n", timeout=10, what="motd")
    p = ctr("commit", "-c", "CMD [\"cat\", \"/etc/motd\"]", "cm", "localhost/committed:v1")
    assert p.returncode == 0 and p.stdout.startswith("sha256:"), p.stderr
    assert json.loads(ctr("inspect", "cm").stdout)[0]["State"]["Running"]
    assert ctr("run", "--rm", "localhost/committed:v1").stdout == "committed\n"
    img = json.loads(ctr("inspect", "--type", "image", "localhost/committed:v1").stdout)[0]
    assert img["Id"] == p.stdout.strip()


def test_inspect_falls_back_to_images_and_type(ctr):
    img = json.loads(ctr("inspect", IMAGE).stdout)[0]
    assert img["Id"].startswith("sha256:") and "RepoTags" in img
    p = ctr("inspect", "--type", "container", IMAGE)
    assert p.returncode == 1 and "No such container" in p.stderr
    p = ctr("inspect", "nothing-by-this-name")
    assert p.returncode == 1 and "No such object: nothing-by-this-name" in p.stderr
    ctr("create", "--name", "ic", IMAGE, "true", check=True)
    assert ctr("inspect", "--format", "{{.Name}} {{.ImageName}}", "ic").stdout.strip() == f"/ic {IMAGE}"


def test_inspect_shape(ctr):
    _start(ctr, "shape")
    c = json.loads(ctr("inspect", "shape").stdout)[0]
    for k in ("Id", "Created", "Path", "Args", "State", "Image", "ImageName", "Name", "RestartCount", "LogPath",
              "Config", "HostConfig", "Mounts", "NetworkSettings"):
        assert k in c, k
    for k in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode", "Error",
              "StartedAt", "FinishedAt"):
        assert k in c["State"], k
    for k in ("Hostname", "User", "Env", "Cmd", "Entrypoint", "Image", "WorkingDir", "Labels"):
        assert k in c["Config"], k
    assert c["Path"] == "sh" and c["Args"][0] == "-c"
    assert c["State"]["Running"] and c["State"]["Pid"] > 0
    assert any(e.startswith("PATH=") for e in c["Config"]["Env"])
    out = ctr("container", "inspect", "shape", "--format", "{{range .Config.Env}}{{println .}}{{end}}").stdout
    assert "PATH=" in out
    assert ctr("inspect", "-f", "{{.Id}}", "shape").stdout.strip() == c["Id"]


def test_prune_removes_only_stopped(ctr):
    ctr("run", "--name", "done1", IMAGE, "true", check=True)
    ctr("create", "--name", "made", IMAGE, "true", check=True)
    _start(ctr, "alive")
    p = ctr("container", "prune", "-f")
    assert p.returncode == 0 and "Deleted Containers:" in p.stdout and "Total reclaimed space:" in p.stdout
    assert ctr("ps", "-a", "--format", "{{.Names}}").stdout.split() == ["alive"]
