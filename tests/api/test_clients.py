"""Real Docker clients against `dockyard system service`: the docker CLI and docker-py."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import IMAGE, needs_docker
from tests.helpers import unique_name


@needs_docker
def test_docker_cli_version_ps_images_networks_volumes(api):
    v = api.docker("version", "--format", "{{json .Server}}")
    assert v.returncode == 0, v.stderr
    server = json.loads(v.stdout)
    assert server["ApiVersion"] and server["Os"] == "linux"
    ps = api.docker("ps", "-a")
    assert ps.returncode == 0 and ps.stdout.startswith("CONTAINER ID")
    images = api.docker("images")
    assert images.returncode == 0
    assert any(line.split()[:2] == [IMAGE, "latest"] for line in images.stdout.splitlines())
    nets = api.docker("network", "ls", "--format", "{{.Name}}")
    assert nets.returncode == 0 and {"bridge", "host", "none"} <= set(nets.stdout.split())
    vol = unique_name("vol")
    try:
        assert api.docker("volume", "create", vol).stdout.strip() == vol
        ls = api.docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}")
        assert f"local {vol}" in ls.stdout.splitlines()
        assert json.loads(api.docker("volume", "inspect", vol).stdout)[0]["Name"] == vol
    finally:
        assert api.docker("volume", "rm", vol).returncode == 0
    assert vol not in api.docker("volume", "ls", "-q").stdout.split()


@needs_docker
def test_docker_cli_run_rm_output_and_exit_code(api):
    p = api.docker("run", "--rm", "--pull", "never", IMAGE, "echo", "hi")
    assert (p.returncode, p.stdout) == (0, "hi\n"), p.stderr
    p = api.docker("run", "--rm", "--pull", "never", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n")
    p = api.docker("run", "--rm", "-i", "--pull", "never", IMAGE, "cat", input="from stdin\n")
    assert (p.returncode, p.stdout) == (0, "from stdin\n"), p.stderr
    # --rm: nothing left
    assert api.docker("ps", "-aq").stdout.strip() == ""


@needs_docker
def test_docker_cli_detached_logs_exec_inspect_rm(api):
    name = unique_name("web")
    p = api.docker("run", "-d", "--name", name, "-e", "GREETING=hello", "--pull", "never", IMAGE,
                   "sh", "-c", "echo started; echo oops >&2; exec sleep 300")
    assert p.returncode == 0, p.stderr
    cid = p.stdout.strip()
    assert len(cid) == 64
    try:
        from tests.helpers import wait_for

        wait_for(lambda: "started" in api.docker("logs", name).stdout, timeout=30, what="the log line")
        logs = api.docker("logs", name)
        assert (logs.stdout, logs.stderr) == ("started\n", "oops\n")
        assert api.docker("logs", "--tail", "0", name).stdout == ""
        ex = api.docker("exec", name, "sh", "-c", 'echo "$GREETING from exec"; echo e >&2; exit 5')
        assert (ex.returncode, ex.stdout, ex.stderr) == (5, "hello from exec\n", "e\n")
        ex = api.docker("exec", "-i", name, "cat", input="piped\n")
        assert (ex.returncode, ex.stdout) == (0, "piped\n")
        ex = api.docker("exec", "-u", "nobody", "-w", "/tmp", name, "sh", "-c", "echo $(id -u) $PWD")
        assert ex.stdout == "65534 /tmp\n"
        assert api.docker("exec", name, "nosuchcommand").returncode == 127
        st = api.docker("inspect", "-f", "{{.State.Status}} {{.Name}} {{.Id}}", name)
        assert st.stdout.split() == ["running", "/" + name, cid]
        ps = api.docker("ps", "--filter", f"name={name}", "--format", "{{.Names}} {{.Status}}")
        assert ps.stdout.startswith(f"{name} Up")
        assert api.docker("top", name).stdout.count("sleep 300") == 1
        # the dockyard CLI sees the same container
        assert api.cli("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true"
    finally:
        rm = api.docker("rm", "-f", name)
    assert rm.returncode == 0 and rm.stdout.strip() == name
    missing = api.docker("inspect", name)
    assert missing.returncode == 1 and "No such object" in missing.stderr


@needs_docker
def test_docker_cli_errors(api):
    p = api.docker("rm", "nosuchcontainer")
    assert p.returncode != 0 and "No such container: nosuchcontainer" in p.stderr
    p = api.docker("run", "--rm", "--pull", "never", IMAGE, "nosuchcommand")
    assert p.returncode in (126, 127)


@pytest.fixture
def client(api):
    docker = pytest.importorskip("docker")
    c = docker.DockerClient(base_url=api.uri, timeout=120)
    try:
        yield c
    finally:
        c.close()


def test_docker_py_containers_and_images(api, client):
    out = client.containers.run(IMAGE, ["sh", "-c", "echo hi; echo there"], remove=True)
    assert out == b"hi\nthere\n"
    name = unique_name("py")
    c = client.containers.run(IMAGE, ["sh", "-c", "echo up; exec sleep 300"], name=name, detach=True,
                              labels={"made-by": "docker-py"})
    try:
        from tests.helpers import wait_for

        assert c.name == name
        listed = client.containers.list(filters={"label": "made-by=docker-py"})
        assert [x.id for x in listed] == [c.id]
        wait_for(lambda: c.logs() == b"up\n", timeout=30, what="docker-py logs")
        code, output = c.exec_run(["sh", "-c", "echo exec; exit 2"])
        assert (code, output) == (2, b"exec\n")
        c.reload()
        assert c.status == "running" and c.labels["made-by"] == "docker-py"
        c.stop(timeout=1)
        c.reload()
        assert c.status == "exited"
    finally:
        c.remove(force=True)
    assert name not in [x.name for x in client.containers.list(all=True)]
    tags = [t for img in client.images.list() for t in img.tags]
    assert f"{IMAGE}:latest" in tags
    img = client.images.get(IMAGE)
    assert img.id.startswith("sha256:")
    assert client.ping() is True
    assert client.version()["ApiVersion"]


@needs_docker
def test_docker_cli_cp_start_attach_wait(api, tmp_path):
    name = unique_name("cp")
    assert api.docker("create", "--name", name, "--pull", "never", IMAGE, "sh", "-c",
                      "cat /tmp/in.txt; exit 4").returncode == 0
    try:
        src = tmp_path / "in.txt"
        src.write_text("copied in\n")
        cp = api.docker("cp", str(src), f"{name}:/tmp/")
        assert cp.returncode == 0, cp.stderr
        # start -a: attach before start, output and exit code come back
        st = api.docker("start", "-a", name)
        assert (st.returncode, st.stdout) == (4, "copied in\n")
        assert api.docker("wait", name).stdout.strip() == "4"
        out = tmp_path / "out"
        out.mkdir()
        cp = api.docker("cp", f"{name}:/tmp/in.txt", str(out))
        assert cp.returncode == 0, cp.stderr
        assert (out / "in.txt").read_text() == "copied in\n"
        missing = api.docker("cp", f"{name}:/nope", str(out))
        assert missing.returncode != 0 and "Could not find the file /nope" in missing.stderr
    finally:
        api.docker("rm", "-f", name)


@needs_docker
def test_docker_cli_run_it_and_exec_it_on_a_terminal(api):
    from tests.containers.ptyrun import run_on_pty

    env = {"DOCKER_HOST": api.uri, "DOCKER_CONFIG": str(api.root / "docker-config")}
    code, out = run_on_pty(["/usr/local/bin/docker", "run", "-it", "--rm", "--pull", "never", IMAGE, "sh"],
                           b"echo $((6*7)); stty size; exit 3\n", rows=33, cols=101, env=env)
    assert code == 3 and b"\r\n42\r\n" in out and b"33 101" in out, out
    name = unique_name("it")
    assert api.docker("run", "-d", "--name", name, "--pull", "never", IMAGE, "sleep", "300").returncode == 0
    try:
        code, out = run_on_pty(["/usr/local/bin/docker", "exec", "-it", name, "sh"], b"echo $((6*8)); tty; exit 5\n",
                               env=env)
        assert code == 5 and b"\r\n48\r\n" in out and b"/dev/pts/" in out, out
    finally:
        api.docker("rm", "-f", name)
    assert api.docker("ps", "-aq").stdout.strip() == ""


@needs_docker
def test_docker_cli_info_and_logs_follow(api):
    info = api.docker("info", "--format", "{{.ServerVersion}} {{.Images}} {{.OSType}}")
    assert info.returncode == 0 and info.stdout.split()[1:] == ["1", "linux"], info.stderr
    name = unique_name("follow")
    p = api.docker("run", "-d", "--name", name, "--pull", "never", IMAGE, "sh", "-c",
                   "for i in 1 2 3; do echo line$i; sleep 0.5; done; echo bye >&2")
    assert p.returncode == 0, p.stderr
    try:
        # follows until the container exits, then ends by itself
        f = api.docker("logs", "-f", "-t", name, timeout=60)
        assert f.returncode == 0
        assert [ln.split(" ", 1)[1] for ln in f.stdout.splitlines()] == ["line1", "line2", "line3"]
        assert f.stderr.split(" ", 1)[1] == "bye\n"
        assert api.docker("wait", name).stdout.strip() == "0"
    finally:
        api.docker("rm", "-f", name)


@needs_docker
def test_docker_cli_diff_commit_system_df(api):
    name = unique_name("cm")
    ref = f"localhost/{name}:v1"
    p = api.docker("run", "--name", name, "--pull", "never", IMAGE, "sh", "-c", "echo x > /newfile")
    assert p.returncode == 0, p.stderr
    try:
        assert "A /newfile" in api.docker("diff", name).stdout.splitlines()
        c = api.docker("commit", "-m", "from the api", "-a", "tester", name, ref)
        assert c.returncode == 0 and c.stdout.startswith("sha256:"), c.stderr
        assert api.docker("run", "--rm", "--pull", "never", ref, "cat", "/newfile").stdout == "x\n"
        assert api.docker("image", "inspect", "-f", "{{.Comment}}", ref).stdout.strip() == "from the api"
        df = api.docker("system", "df", "--format", "{{.Type}} {{.TotalCount}}")
        assert df.returncode == 0 and "Images 2" in df.stdout.splitlines()
    finally:
        api.docker("rm", "-f", name)
        api.docker("rmi", ref)


@needs_docker
def test_docker_cli_export_import(api, tmp_path):
    name = unique_name("ex")
    ref = f"localhost/{name}:flat"
    assert api.docker("run", "--name", name, "--pull", "never", IMAGE, "sh", "-c", "echo kept > /marker").returncode == 0
    tar = tmp_path / "fs.tar"
    try:
        ex = api.docker("export", "-o", str(tar), name)
        assert ex.returncode == 0 and tar.stat().st_size > 100_000, ex.stderr
        im = api.docker("import", "-c", "CMD [\"cat\", \"/marker\"]", str(tar), ref)
        assert im.returncode == 0 and im.stdout.strip().startswith("sha256:"), im.stderr
        assert api.docker("run", "--rm", "--pull", "never", ref).stdout == "kept\n"
    finally:
        api.docker("rm", "-f", name)
        api.docker("rmi", ref)


DOCKERFILE = """FROM localhost/busybox
ARG WHO=nobody
COPY hello.txt /hello.txt
RUN echo "built by $WHO" > /by.txt && cat /by.txt
CMD ["cat", "/hello.txt", "/by.txt"]
"""


def test_build_with_docker_cli_and_docker_py(api, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "hello.txt").write_text("hello-ctx\n")
    name = unique_name("built")
    try:
        import os

        if os.path.exists("/usr/local/bin/docker"):
            import subprocess

            p = subprocess.run(["/usr/local/bin/docker", "build", "--build-arg", "WHO=cli", "-t", f"{name}:cli",
                                str(ctx)], capture_output=True, text=True, timeout=300,
                               env={**api.env(), "DOCKER_BUILDKIT": "0"})
            assert p.returncode == 0, p.stderr
            assert "built by cli\n" in p.stdout and "Successfully built " in p.stdout
            run = api.docker("run", "--rm", "--pull", "never", f"{name}:cli")
            assert run.stdout == "hello-ctx\nbuilt by cli\n"
        docker = pytest.importorskip("docker")
        client = docker.DockerClient(base_url=api.uri, timeout=300)
        try:
            img, logs = client.images.build(path=str(ctx), tag=f"{name}:py", buildargs={"WHO": "py"})
            assert any("built by py" in (x.get("stream") or "") for x in logs)
            assert client.containers.run(img.id, remove=True) == b"hello-ctx\nbuilt by py\n"
            with pytest.raises(docker.errors.BuildError):
                (ctx / "Dockerfile").write_text("FROM localhost/busybox\nRUN exit 3\n")
                client.images.build(path=str(ctx), tag=f"{name}:bad")
        finally:
            client.close()
    finally:
        for t in ("cli", "py"):
            api.cli("rmi", f"{name}:{t}")


@needs_docker
def test_docker_cli_parallel_runs(api):
    """Concurrent requests run in threads of one process: state changes must not race each other
    (the engine's host network lock is per process)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int):
        return api.docker("run", "--rm", "--pull", "never", IMAGE, "sh", "-c", f"echo run{i}; exit {i}")

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(one, range(1, 6)))
    assert [(r.returncode, r.stdout) for r in results] == [(i, f"run{i}\n") for i in range(1, 6)], \
        [r.stderr for r in results]
    assert api.docker("ps", "-aq").stdout.strip() == ""
