"""The tutorial's "Compose files" section with CR=dockyard, on images made offline (busybox httpd
standing in for nginx): up -d, the project network and name resolution by service name, a published
port on 127.0.0.1, healthchecks and depends_on ordering, replicas, .env interpolation, YAML anchors,
idempotent up, down (with -v), foreground up, and broken files refused with nothing created."""

from __future__ import annotations

import json
import socket
import textwrap
import urllib.request

import pytest

from tests.helpers import wait_for

IMAGE = "localhost/busybox"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write(path, text: str) -> None:
    path.write_text(textwrap.dedent(text))


def compose(cdy, proj, *args: str, check: bool = True, **kw):
    return cdy("compose", "--project-directory", str(proj), *args, check=check, **kw)


def inspect(cdy, name: str) -> dict:
    return json.loads(cdy("inspect", name, check=True).stdout)[0]


WEB = """\
    x-common: &common
      restart: "no"
      stop_grace_period: 1s
      labels:
        team: ${TEAM:-blue}
        tier: $TIER

    services:
      webserver:
        <<: *common
        image: localhost/busybox
        command: httpd -f -p 8080 -h /www
        ports:
          - target: 8080
            published: ${WEB_PORT}
            host_ip: 127.0.0.1
            protocol: tcp
            mode: ingress
        volumes:
          - source: ./data
            target: /www
            type: bind
            read_only: true
        environment:
          SOME_KEY: some-value
        healthcheck:
          test: wget -q --spider http://127.0.0.1:8080
          interval: 1s
          retries: 30
      client:
        <<: *common
        image: localhost/busybox
        command: ["sleep", "3600"]
        depends_on:
          webserver:
            condition: service_healthy
    """


def test_tutorial_webserver(cdy, proj):
    port = free_port()
    (proj / "data").mkdir()
    (proj / "data" / "index.html").write_text("hello from compose\n")
    write(proj / ".env", f"WEB_PORT={port}\nTIER=front\n")
    write(proj / "compose.yaml", WEB)
    name = proj.name
    try:
        p = compose(cdy, proj, "up", "-d")
        assert f"Network {name}_default  Created" in p.stderr

        ps = compose(cdy, proj, "ps", "--format", "json").stdout.splitlines()
        rows = {json.loads(x)["Service"]: json.loads(x) for x in ps}
        assert set(rows) == {"webserver", "client"}
        assert rows["webserver"]["Name"] == f"{name}-webserver-1"
        assert all(r["State"] == "running" for r in rows.values())

        # the published port answers on the host
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read().decode()
        assert body == "hello from compose\n"
        assert compose(cdy, proj, "port", "webserver", "8080").stdout == f"127.0.0.1:{port}\n"

        # services reach each other by service name on the project network
        out = compose(cdy, proj, "exec", "-T", "client", "wget", "-qO-", "http://webserver:8080/").stdout
        assert out == "hello from compose\n"

        # the tutorial's command: a container in the webserver's network namespace resolves webserver-1
        cid = cdy("container", "ls", "--filter", "name=webserver-1", "--quiet", check=True).stdout.strip()
        assert cid
        ns = cdy("container", "run", "--rm", f"--net=container:{cid}", IMAGE, "nslookup", "webserver-1", check=True)
        web = inspect(cdy, f"{name}-webserver-1")
        ip = web["NetworkSettings"]["Networks"][f"{name}_default"]["IPAddress"]
        assert ip in ns.stdout

        # the healthcheck, and depends_on service_healthy: the client started after a passing check
        health = json.loads(cdy("inspect", cid, "--format", "{{json .State.Health }}", check=True).stdout)
        assert health["Status"] == "healthy"
        first_pass = min(e["End"] for e in health["Log"] if e["ExitCode"] == 0)
        client = inspect(cdy, f"{name}-client-1")
        assert client["State"]["StartedAt"] >= first_pass

        # compose labels, .env interpolation with a default, the anchor's keys, read-only bind
        labels = web["Config"]["Labels"]
        assert labels["com.docker.compose.project"] == name
        assert labels["com.docker.compose.service"] == "webserver"
        assert labels["com.docker.compose.container-number"] == "1"
        assert labels["team"] == "blue" and labels["tier"] == "front"
        assert "SOME_KEY=some-value" in web["Config"]["Env"]
        assert web["Config"]["StopTimeout"] == 1
        denied = compose(cdy, proj, "exec", "-T", "webserver", "touch", "/www/x", check=False)
        assert denied.returncode != 0

        # up again with nothing changed keeps the containers; a changed value recreates that one
        ids = {r["Service"]: r["ID"] for r in rows.values()}
        compose(cdy, proj, "up", "-d")
        again = {json.loads(x)["Service"]: json.loads(x)["ID"]
                 for x in compose(cdy, proj, "ps", "--format", "json").stdout.splitlines()}
        assert again == ids
        p = compose(cdy, proj, "up", "-d", env={"TEAM": "red"})
        assert "Recreate" in p.stderr
        again = {json.loads(x)["Service"]: json.loads(x)["ID"]
                 for x in compose(cdy, proj, "ps", "--format", "json").stdout.splitlines()}
        assert again["webserver"] != ids["webserver"] and again["client"] != ids["client"]
        assert inspect(cdy, f"{name}-webserver-1")["Config"]["Labels"]["team"] == "red"
    finally:
        compose(cdy, proj, "down", "-t", "1", check=False)
    assert cdy("ps", "-aq", check=True).stdout == ""
    assert f"{name}_default" not in cdy("network", "ls", check=True).stdout


def test_replicas_limits_volumes(cdy, proj):
    write(proj / "compose.yaml", """\
        services:
          worker:
            image: localhost/busybox
            command: sleep 3600
            stop_signal: SIGKILL
            deploy:
              replicas: 3
              resources:
                reservations:
                  cpus: '0.25'
                  memory: 20M
                limits:
                  cpus: '0.50'
                  memory: 50M
            logging:
              driver: json-file
              options:
                max-file: "5"
                max-size: "10m"
            cap_drop: [ALL]
            cap_add: [CHOWN]
            volumes:
              - shared:/shared
              - type: volume
                target: /anon
            tmpfs: /scratch
            ulimits:
              nofile: {soft: 1024, hard: 2048}
        volumes:
          shared:
        """)
    name = proj.name
    try:
        compose(cdy, proj, "up", "-d")
        names = compose(cdy, proj, "ps", "--format", "{{.Name}}").stdout.split()
        assert names == [f"{name}-worker-{i}" for i in (1, 2, 3)]
        hc = inspect(cdy, f"{name}-worker-2")["HostConfig"]
        assert hc["Memory"] == 50 * 1024 * 1024 and hc["MemoryReservation"] == 20 * 1024 * 1024
        assert hc["NanoCpus"] == 500_000_000
        assert hc["LogConfig"] == {"Type": "json-file", "Config": {"max-file": "5", "max-size": "10m"}}
        assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == ["CHOWN"]
        assert {"Name": "nofile", "Soft": 1024, "Hard": 2048} in hc["Ulimits"]
        # the named volume is the project's and shared between replicas
        compose(cdy, proj, "exec", "-T", "--index", "1", "worker", "sh", "-c", "echo shared > /shared/f")
        out = compose(cdy, proj, "exec", "-T", "--index", "3", "worker", "cat", "/shared/f").stdout
        assert out == "shared\n"
        vols = cdy("volume", "ls", "--format", "{{.Name}}", check=True).stdout.split()
        assert f"{name}_shared" in vols
        # down keeps volumes (named and, as in Docker, the anonymous ones); down -v removes them
        compose(cdy, proj, "down")
        kept = cdy("volume", "ls", "-q", check=True).stdout.split()
        assert f"{name}_shared" in kept and len(kept) == 4
        cdy("volume", "rm", *[v for v in kept if v != f"{name}_shared"], check=True)
        compose(cdy, proj, "up", "-d")
        assert compose(cdy, proj, "exec", "-T", "worker", "cat", "/shared/f").stdout == "shared\n"
    finally:
        compose(cdy, proj, "down", "-v", check=False)
    assert cdy("volume", "ls", "-q", check=True).stdout.split() == []
    assert cdy("ps", "-aq", check=True).stdout == ""


@pytest.mark.parametrize("body, message", [
    ("services:\n  web:\n    image: localhost/busybox\n    ports: 8080\n",
     "services.web.ports: 8080 is not of type 'array'"),
    ("services:\n  web:\n    image: localhost/busybox\n    imagee: x\n",
     "services.web: additional properties 'imagee' not allowed"),
    ("services:\n  web:\n    image: [unclosed\n", "yaml:"),
    ("services:\n  web:\n    image: localhost/busybox\n    depends_on: [db]\n",
     "depends on service 'db' which is not defined"),
    ("services:\n  web:\n    image: localhost/busybox\n    sysctls: {net.core.somaxconn: 1024}\n",
     "services.web.sysctls is not supported"),
    ("services:\n  web:\n    image: localhost/busybox\n    cap_add: [NOT_A_CAP]\n", "NOT_A_CAP"),
    ("services:\n  web:\n    image: ${IMG:?the image must be set}\n", "the image must be set"),
    ("services:\n  a:\n    image: localhost/busybox\n    depends_on: [b]\n"
     "  b:\n    image: localhost/busybox\n    depends_on: [a]\n", "dependency cycle detected"),
])
def test_broken_files_create_nothing(cdy, proj, body, message):
    (proj / "compose.yaml").write_text(body)
    p = compose(cdy, proj, "up", "-d", check=False)
    assert p.returncode == 125
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], p.stderr
    assert cdy("ps", "-aq", check=True).stdout == ""
    assert f"{proj.name}_default" not in cdy("network", "ls", check=True).stdout


def test_foreground_up_run_and_config(cdy, proj):
    write(proj / "compose.yaml", """\
        services:
          setup:
            image: localhost/busybox
            command: sh -c 'echo setting up; echo $$GREETING'
            env_file: settings.env
          app:
            image: localhost/busybox
            entrypoint: ["sh", "-c"]
            command: ["echo app sees $$MODE; cat /run/secrets/token /app.conf /run/secrets/from_env /etc/inline"]
            environment:
              - MODE=${MODE:-dev}
            depends_on:
              setup:
                condition: service_completed_successfully
            secrets: [token, from_env]
            configs: [app.conf, {source: inline, target: /etc/inline}]
          debug:
            image: localhost/busybox
            profiles: [debug]
        secrets:
          token:
            file: ./token.txt
          from_env:
            environment: SECRET_FROM_ENV
        configs:
          app.conf:
            file: ./app.conf
          inline:
            content: inline config
        """)
    (proj / ".env").write_text("SECRET_FROM_ENV=env-secret\n")
    (proj / "settings.env").write_text("GREETING=hi from env_file\n")
    (proj / "token.txt").write_text("s3cret\n")
    (proj / "app.conf").write_text("conf\n")
    try:
        cfg = compose(cdy, proj, "config", "--services").stdout.split()
        assert cfg == ["setup", "app"]  # debug is behind an inactive profile
        assert "debug" in compose(cdy, proj, "--profile", "debug", "config", "--services").stdout.split()
        p = compose(cdy, proj, "up", timeout=120)
        lines = p.stdout.splitlines()
        assert "setup-1  | setting up" in lines
        assert "setup-1  | hi from env_file" in lines
        assert "app-1    | app sees dev" in lines
        assert "app-1    | s3cret" in lines and "app-1    | conf" in lines
        assert any(ln.startswith("app-1    | env-secret") for ln in lines), lines
        assert any("inline config" in ln for ln in lines), lines
        # the app started only after setup completed
        name = proj.name
        setup_done = inspect(cdy, f"{name}-setup-1")["State"]
        assert setup_done["ExitCode"] == 0
        assert inspect(cdy, f"{name}-app-1")["State"]["StartedAt"] >= setup_done["FinishedAt"]
        logs = compose(cdy, proj, "logs", "--no-log-prefix", "setup").stdout
        assert logs == "setting up\nhi from env_file\n"
        last = compose(cdy, proj, "logs", "-t", "--tail", "1", "setup").stdout
        assert last.startswith("setup-1  | 20") and last.endswith("Z hi from env_file\n")
        (proj / "prod.env").write_text("MODE=prod\n")
        cfg = cdy("compose", "--project-directory", str(proj), "--env-file", str(proj / "prod.env"), "config",
                  check=True).stdout
        assert "MODE: prod" in cfg
        run = compose(cdy, proj, "run", "--rm", "-T", "--no-deps", "setup", "echo", "one-off")
        assert run.stdout == "one-off\n"
        assert len(cdy("ps", "-aq", check=True).stdout.split()) == 2  # the --rm container is gone
        # --exit-code-from returns that service's exit code
        write(proj / "compose.override.yaml", """\
            services:
              setup:
                command: sh -c 'exit 3'
            """)
        p = compose(cdy, proj, "up", "--exit-code-from", "setup", "setup", check=False)
        assert p.returncode == 3, p.stderr
    finally:
        compose(cdy, proj, "down", check=False)
    assert cdy("ps", "-aq", check=True).stdout == ""


def test_multiple_files_project_name_and_ls(cdy, proj):
    write(proj / "base.yaml", """\
        services:
          web:
            image: localhost/busybox
            command: sleep 3600
            stop_signal: SIGKILL
            environment:
              A: "1"
              B: "1"
        """)
    write(proj / "override.yaml", """\
        services:
          web:
            environment:
              B: "2"
            networks:
              back:
                aliases: [api]
        networks:
          back:
        """)
    try:
        cdy("compose", "-f", str(proj / "base.yaml"), "-f", str(proj / "override.yaml"), "-p", "h9merge",
            "up", "-d", check=True)
        env = inspect(cdy, "h9merge-web-1")["Config"]["Env"]
        assert "A=1" in env and "B=2" in env
        assert "h9merge_back" in inspect(cdy, "h9merge-web-1")["NetworkSettings"]["Networks"]
        ls = cdy("compose", "ls", check=True).stdout
        assert "h9merge" in ls and "running(1)" in ls
        # the alias and the service name resolve on the named network
        r = cdy("container", "run", "--rm", "--network", "h9merge_back", IMAGE, "nslookup", "api", check=True)
        assert "Address" in r.stdout
        wait_for(lambda: cdy("compose", "-p", "h9merge", "ps", "-q").stdout.strip(), what="ps by project name")
    finally:
        # down by project name alone, without the files
        cdy("compose", "-p", "h9merge", "down", check=False)
    assert "h9merge_back" not in cdy("network", "ls", check=True).stdout


def test_build_and_lifecycle_verbs(cdy, proj):
    (proj / "app").mkdir()
    (proj / "app" / "Dockerfile").write_text(
        'FROM localhost/busybox\nARG MSG=default\nRUN echo "$MSG" > /msg\nCMD ["sleep", "3600"]\n')
    write(proj / "compose.yaml", """\
        services:
          app:
            build:
              context: ./app
              args:
                MSG: built-by-compose
            stop_signal: SIGKILL
        """)
    name = proj.name
    try:
        compose(cdy, proj, "create")
        assert compose(cdy, proj, "ps", "-a", "--format", "{{.State}}").stdout == "created\n"
        compose(cdy, proj, "start")
        assert compose(cdy, proj, "exec", "-T", "app", "cat", "/msg").stdout == "built-by-compose\n"
        assert f"localhost/{name}-app" in compose(cdy, proj, "images").stdout
        cid = compose(cdy, proj, "ps", "-q").stdout.strip()
        compose(cdy, proj, "pause")
        assert inspect(cdy, cid)["State"]["Status"] == "paused"
        compose(cdy, proj, "unpause")
        compose(cdy, proj, "stop")
        assert compose(cdy, proj, "ps", "-q").stdout == ""
        assert compose(cdy, proj, "ps", "-aq").stdout.strip() == cid
        compose(cdy, proj, "start")
        assert inspect(cdy, cid)["State"]["Running"]
        top = compose(cdy, proj, "top").stdout
        assert f"{name}-app-1" in top and "sleep" in top
        compose(cdy, proj, "kill")  # sends the signal and returns, as docker compose kill does
        assert compose(cdy, proj, "wait", "app").stdout == "137\n"
        compose(cdy, proj, "rm", "-f")
        assert compose(cdy, proj, "ps", "-aq").stdout == ""
    finally:
        compose(cdy, proj, "down", "--rmi", "local", check=False)
    assert f"{name}-app" not in cdy("images", check=True).stdout


def test_foreground_up_stops_on_interrupt(cdy, proj):
    import os
    import signal
    import subprocess

    from tests.helpers import REPO, dockyard_cmd

    write(proj / "compose.yaml", """\
        services:
          ticker:
            image: localhost/busybox
            command: sh -c 'trap "exit 0" TERM; echo started; while true; do sleep 0.2; done'
        """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([*dockyard_cmd(cdy.root), "--runroot", str(cdy.root / "run"), "compose",
                          "--project-directory", str(proj), "up"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=env, start_new_session=True)
    try:
        assert p.stdout is not None
        line = p.stdout.readline()
        assert line == "ticker-1  | started\n"
        os.kill(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
        assert "Gracefully stopping" in err
        state = inspect(cdy, f"{proj.name}-ticker-1")["State"]
        assert not state["Running"] and state["ExitCode"] == 0
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        compose(cdy, proj, "down", check=False)


def test_scale_orphans_no_deps_force_recreate(cdy, proj):
    def write_file(replicas: int, extra: str = "") -> None:
        (proj / "compose.yaml").write_text(textwrap.dedent(f"""\
            services:
              db:
                image: localhost/busybox
                command: sleep 3600
                stop_signal: SIGKILL
              app:
                image: localhost/busybox
                command: sleep 3600
                stop_signal: SIGKILL
                depends_on: [db]
                deploy:
                  replicas: {replicas}
            """) + extra)

    def names() -> list[str]:
        return compose(cdy, proj, "ps", "-a", "--format", "{{.Name}}").stdout.split()

    n = proj.name
    write_file(1, "  extra:\n    image: localhost/busybox\n    command: sleep 3600\n    stop_signal: SIGKILL\n")
    try:
        compose(cdy, proj, "up", "-d", "--no-deps", "app")
        assert names() == [f"{n}-app-1"]
        compose(cdy, proj, "up", "-d")
        assert names() == [f"{n}-app-1", f"{n}-db-1", f"{n}-extra-1"]
        first = compose(cdy, proj, "ps", "-q", "app").stdout
        write_file(3)
        p = compose(cdy, proj, "up", "-d")
        assert "orphan containers" in p.stderr and f"{n}-extra-1" in p.stderr
        assert first.strip() in compose(cdy, proj, "ps", "-q", "app").stdout.split()  # scaling keeps app-1
        assert names() == [f"{n}-app-1", f"{n}-app-2", f"{n}-app-3", f"{n}-db-1", f"{n}-extra-1"]
        write_file(2)
        compose(cdy, proj, "up", "-d", "--remove-orphans")
        assert names() == [f"{n}-app-1", f"{n}-app-2", f"{n}-db-1"]
        before = compose(cdy, proj, "ps", "-q", "db").stdout
        compose(cdy, proj, "up", "-d", "--force-recreate", "--no-deps", "db")
        assert compose(cdy, proj, "ps", "-q", "db").stdout != before
        compose(cdy, proj, "restart", "app")
        assert len(compose(cdy, proj, "ps", "-q").stdout.split()) == 3
        compose(cdy, proj, "scale", "app=1")
        assert names() == [f"{n}-app-1", f"{n}-db-1"]
        (proj / "in.txt").write_text("copied in\n")
        compose(cdy, proj, "cp", str(proj / "in.txt"), "app:/tmp/in.txt")
        compose(cdy, proj, "cp", "app:/tmp/in.txt", str(proj / "out.txt"))
        assert (proj / "out.txt").read_text() == "copied in\n"
    finally:
        compose(cdy, proj, "down", check=False)
    assert cdy("ps", "-aq", check=True).stdout == ""
