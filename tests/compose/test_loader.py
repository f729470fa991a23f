"""Reading compose files without an engine: interpolation, .env, normalisation, merging, profiles,
and the errors a broken file gets."""

from __future__ import annotations

import textwrap

import pytest

from dockyard.compose import convert, loader
from dockyard.errors import DockyardError, InvalidArgument


def load(tmp_path, body: str, env: dict[str, str] | None = None, **kw):
    (tmp_path / "compose.yaml").write_text(textwrap.dedent(body))
    return loader.load(project_dir=str(tmp_path), environ=env or {}, **kw)


@pytest.mark.parametrize("text, env, want", [
    ("$A", {"A": "1"}, "1"),
    ("${A}", {"A": "1"}, "1"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("${A:+alt}", {"A": "x"}, "alt"),
    ("${A:+alt}", {"A": ""}, ""),
    ("${A+alt}", {"A": ""}, "alt"),
    ("$$A", {"A": "1"}, "$A"),
    ("${A:-${B:-inner}}", {}, "inner"),
    ("pre-${A}-post", {"A": "mid"}, "pre-mid-post"),
    ("cost: 5$", {}, "cost: 5$"),
])
def test_interpolation(text, env, want):
    assert loader.Interpolator(env).expand(text, "x") == want


def test_interpolation_errors():
    with pytest.raises(InvalidArgument, match="required variable A is missing a value: need A"):
        loader.Interpolator({}).expand("${A:?need A}", "x")
    with pytest.raises(InvalidArgument, match="required variable A"):
        loader.Interpolator({"A": ""}).expand("${A:?}", "x")
    assert loader.Interpolator({"A": ""}).expand("${A?}", "x") == ""
    with pytest.raises(InvalidArgument, match="invalid interpolation format"):
        loader.Interpolator({}).expand("${A", "x")
    with pytest.raises(InvalidArgument, match="invalid interpolation format"):
        loader.Interpolator({}).expand("${-x}", "x")


def test_dotenv(tmp_path):
    (tmp_path / ".env").write_text(textwrap.dedent("""\
        # a comment
        export A=plain value # trailing comment
        B='single $A #kept'
        C="double ${A}\\nline"
        D=${A}-again
        EMPTY=
        """))
    got = loader.read_dotenv(str(tmp_path / ".env"), {})
    assert got == {"A": "plain value", "B": "single $A #kept", "C": "double plain value\nline",
                   "D": "plain value-again", "EMPTY": ""}


def test_env_file_shell_wins_and_warnings(tmp_path):
    (tmp_path / ".env").write_text("TAG=fromfile\nOTHER=o\n")
    p = load(tmp_path, """\
        services:
          web:
            image: "busybox:${TAG}"
            environment: ["X=${OTHER}", "Y=${MISSING}", PASS]
        """, env={"TAG": "fromshell", "PASS": "through"})
    assert p.services["web"]["image"] == "busybox:fromshell"
    assert p.services["web"]["environment"] == {"X": "o", "Y": "", "PASS": None}
    assert any('"MISSING" variable is not set' in w for w in p.warnings)
    opts = convert.create_options(p, "web", 1)
    assert "PASS=through" in opts.env and "X=o" in opts.env


def test_normalisation_and_anchors(tmp_path):
    p = load(tmp_path, """\
        x-base: &base
          image: busybox
          labels: {a: "1"}
        services:
          web:
            <<: *base
            x-note: ignored
            command: sh -c 'echo "hi there"'
            ports: ["8080:80", "127.0.0.1:9000:90/udp", "7000"]
            volumes: ["./data:/data:ro", "named:/n", "/anon"]
            depends_on: [db]
          db:
            <<: *base
        volumes:
          named:
        """)
    web = p.services["web"]
    assert "x-note" not in web and web["labels"] == {"a": "1"}
    assert web["command"] == ["sh", "-c", 'echo "hi there"']
    assert web["ports"] == [{"target": "80", "protocol": "tcp", "published": "8080"},
                            {"target": "90", "protocol": "udp", "published": "9000", "host_ip": "127.0.0.1"},
                            {"target": "7000", "protocol": "tcp"}]
    assert web["volumes"][0] == {"type": "bind", "source": str(tmp_path / "data"), "target": "/data",
                                 "read_only": True, "bind": {"create_host_path": True}}
    assert web["volumes"][1] == {"type": "volume", "source": "named", "target": "/n"}
    assert web["volumes"][2] == {"type": "volume", "target": "/anon"}
    assert web["depends_on"] == {"db": {"condition": "service_started", "required": True}}
    assert loader.order(p.services) == ["db", "web"]
    opts = convert.create_options(p, "web", 2)
    assert opts.name == f"{p.name}-web-2"
    assert opts.publish == ["8080:80/tcp", "127.0.0.1:9000:90/udp", "7000/tcp"]
    assert f"type=volume,target=/n,source={p.name}_named" in opts.mounts
    assert opts.network == [f"{p.name}_default:alias=web,alias={p.name}-web-2,alias=web-2"]


def test_config_hash_ignores_spelling(tmp_path):
    a = load(tmp_path, "services:\n  w:\n    image: busybox\n    environment: [A=1]\n    command: echo hi\n")
    b = load(tmp_path, "services:\n  w:\n    image: busybox\n    environment: {A: 1}\n    command: [echo, hi]\n")
    assert convert.config_hash(a.services["w"]) == convert.config_hash(b.services["w"])


def test_merge_and_profiles(tmp_path):
    (tmp_path / "a.yaml").write_text("services:\n  w:\n    image: busybox\n    command: [a]\n"
                                     "    environment: {A: '1', B: '1'}\n    ports: ['80:80']\n"
                                     "  dbg:\n    image: busybox\n    profiles: [debug]\n")
    (tmp_path / "b.yaml").write_text("services:\n  w:\n    command: [b]\n    environment: {B: '2'}\n"
                                     "    ports: ['81:81']\n")
    files = [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    p = loader.load(files, environ={})
    w = p.services["w"]
    assert w["command"] == ["b"] and w["environment"] == {"A": "1", "B": "2"}
    assert [x["published"] for x in w["ports"]] == ["80", "81"]
    assert "dbg" not in p.services and "dbg" in p.disabled
    assert "dbg" in loader.load(files, environ={}, profiles=["debug"]).services
    assert "dbg" in loader.load(files, environ={"COMPOSE_PROFILES": "debug"}).services
    assert loader.load(files, environ={"COMPOSE_PROJECT_NAME": "other"}).name == "other"
    assert loader.load(files, environ={}, project_name="given").name == "given"


@pytest.mark.parametrize("body, message", [
    ("services:\n  w:\n    image: busybox\n    networks: [nope]\n", "undefined network nope"),
    ("services:\n  w:\n    image: busybox\n    volumes: ['data:/d']\n", "undefined volume data"),
    ("services:\n  w:\n    image: busybox\n    secrets: [s]\n", "undefined secret s"),
    ("services:\n  w:\n    image: busybox\n    restart: sometimes\n", "invalid restart policy 'sometimes'"),
    ("services:\n  w:\n    command: x\n", "neither an image nor a build context"),
    ("include: [other.yaml]\nservices: {}\n", "top-level 'include' is not supported"),
    ("services:\n  w:\n    image: busybox\n    ports: [{published: 80}]\n", "services.w.ports\\[0\\]: target is required"),
    ("- a\n- b\n", "top-level object must be a mapping"),
    ("services:\n  w:\n    image: a\n    image: b\n", "line 4 column 5: mapping key 'image' already defined"),
])
def test_broken(tmp_path, body, message):
    with pytest.raises(DockyardError, match=message):
        p = load(tmp_path, body)
        for s in p.services:
            convert.create_options(p, s, 1)
            convert.check_keys(s, p.services[s], lambda m: None)


def test_file_discovery(tmp_path, monkeypatch):
    (tmp_path / "docker-compose.yml").write_text("services:\n  w:\n    image: busybox\n")
    (tmp_path / "docker-compose.override.yml").write_text("services:\n  w:\n    command: [over]\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)  # found in a parent directory, as Docker Compose finds it
    p = loader.load(environ={})
    assert p.config_files == [str(tmp_path / "docker-compose.yml"), str(tmp_path / "docker-compose.override.yml")]
    assert p.services["w"]["command"] == ["over"] and p.working_dir == str(tmp_path)
    (sub / "other.yaml").write_text("services:\n  o:\n    image: busybox\n")
    p = loader.load(environ={"COMPOSE_FILE": "other.yaml"})
    assert list(p.services) == ["o"] and p.name == "sub"
    with pytest.raises(DockyardError, match="no such file or directory"):
        loader.load(["missing.yaml"], environ={})


def test_healthcheck_forms(tmp_path):
    p = load(tmp_path, """\
        services:
          a:
            image: busybox
            healthcheck: {test: ["CMD", "wget", "-q", "http://x/a b"], interval: 2s, retries: 4, start_period: 1s}
          b:
            image: busybox
            healthcheck: {test: ["CMD-SHELL", "exit 0"]}
          c:
            image: busybox
            healthcheck: {disable: true}
          d:
            image: busybox
            healthcheck: {test: ["NONE"]}
        """)
    a = convert.create_options(p, "a", 1)
    assert a.health_cmd == "wget -q 'http://x/a b'" and a.health_interval == "2s" and a.health_retries == 4
    assert a.health_start_period == "1s"
    assert convert.create_options(p, "b", 1).health_cmd == "exit 0"
    assert convert.create_options(p, "c", 1).no_healthcheck and convert.create_options(p, "d", 1).no_healthcheck


def test_entrypoint_list_and_network_mode(tmp_path):
    p = load(tmp_path, """\
        services:
          a:
            image: busybox
            entrypoint: ["sh", "-c"]
            command: ["echo hi"]
          b:
            image: busybox
            network_mode: "service:a"
          c:
            image: busybox
            entrypoint: /bin/true
        """)
    a = convert.create_options(p, "a", 1)
    assert a.entrypoint == "sh" and a.command == ["-c", "echo hi"]
    assert convert.create_options(p, "b", 1).network == f"container:{p.name}-a-1"
    c = convert.create_options(p, "c", 1)
    assert c.entrypoint == "/bin/true" and c.command == []


def test_file_on_stdin(tmp_path, monkeypatch):
    import io
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("services:\n  w:\n    image: busybox\n"))
    p = loader.load(["-"], environ={})
    assert list(p.services) == ["w"] and p.working_dir == str(tmp_path) and p.name == tmp_path.name.lower()


def test_service_options_map_to_run_options(tmp_path):
    p = load(tmp_path, """\
        services:
          s:
            image: busybox
            hostname: h
            user: "1000:1000"
            working_dir: /w
            read_only: true
            tmpfs: [/run, /tmp:size=1m]
            privileged: true
            init: true
            stop_signal: SIGQUIT
            stop_grace_period: 1m30s
            ulimits: {nproc: 512, nofile: {soft: 10, hard: 20}}
            security_opt: [no-new-privileges:true]
            cap_add: [NET_ADMIN]
            cap_drop: [MKNOD]
            restart: on-failure:3
            dns: 10.0.0.1
            extra_hosts: {db.local: 10.0.0.2}
            logging: {driver: json-file, options: {max-size: 1m, max-file: "2"}}
            env_file: [{path: ./missing.env, required: false}]
            labels: [a=b]
            deploy:
              resources: {limits: {cpus: "1.5", memory: 64M, pids: 50}, reservations: {memory: 16M}}
              restart_policy: {condition: any}
        """)
    o = convert.create_options(p, "s", 1)
    assert (o.hostname, o.user, o.workdir, o.read_only, o.privileged, o.init) == ("h", "1000:1000", "/w", True, True, True)
    assert o.tmpfs == ["/run", "/tmp:size=1m"] and o.stop_signal == "SIGQUIT" and o.stop_timeout == 90
    assert sorted(o.ulimits) == ["nofile=10:20", "nproc=512:512"]
    assert o.security_opt == ["no-new-privileges:true"] and o.cap_add == ["NET_ADMIN"] and o.cap_drop == ["MKNOD"]
    assert o.restart == "on-failure:3"  # restart wins over deploy.restart_policy
    assert o.dns == ["10.0.0.1"] and o.add_host == ["db.local:10.0.0.2"]
    assert o.log_driver == "json-file" and sorted(o.log_opts) == ["max-file=2", "max-size=1m"]
    assert o.env_files == []  # an optional env_file that does not exist is skipped
    assert (o.cpus, o.memory, o.pids_limit, o.memory_reservation) == ("1.5", "64M", 50, "16M")
    assert "a=b" in o.labels and "com.docker.compose.service=s" in o.labels
    warned: list[str] = []
    convert.check_keys("s", {"image": "x", "deploy": {"placement": {}}, "develop": {}}, warned.append)
    assert warned == ["services.s.develop is ignored by dockyard compose",
                      "services.s.deploy.placement only applies to a Swarm and is ignored"]


@pytest.mark.parametrize("body, message", [
    ("servicess: {}\n", "(top level): additional properties 'servicess' not allowed"),
    ("services:\n  w:\n    image: busybox\n    environment: 5\n", "services.w.environment: 5 is not of type"),
    ("services:\n  w:\n    image: busybox\n    depends_on: {d: {condition: service_up}}\n",
     "services.w.depends_on.d.condition: 'service_up' is not one of"),
    ("services:\n  w:\n    image: busybox\n    ulimits: {nofile: {soft: 1}}\n",
     "services.w.ulimits.nofile: 'hard' is a required property"),
    ("services:\n  w:\n    image: busybox\n    deploy: {replicas: many}\n",
     "services.w.deploy.replicas: 'many' is not an integer"),
    ("services:\n  w:\n    image: busybox\n    healthcheck: {tset: [CMD, 'true']}\n",
     "services.w.healthcheck: additional properties 'tset' not allowed"),
    ("services:\n  w:\n    image: busybox\n    networks: {n: {aliases: a}}\nnetworks: {n: }\n",
     "services.w.networks.n.aliases: 'a' is not of type 'array'"),
    ("services:\n  w:\n    image: busybox\n    volumes: [{type: bind, source: .}]\n",
     "services.w.volumes.0: 'target' is a required property"),
    ("services:\n  w:\n    image: busybox\n    devices: [/dev/fuse]\n", "services.w.devices is not supported"),
    ("services:\n  w:\n    image: busybox\n    extends: {service: x}\n", "services.w.extends is not supported"),
    ("services:\n  w:\n    image: busybox\n    deploy: {resources: {reservations: {devices: []}}}\n",
     "services.w.deploy.resources.reservations.devices is not supported"),
])
def test_schema_errors_name_the_path(tmp_path, body, message):
    with pytest.raises(DockyardError) as e:
        p = load(tmp_path, body)
        for s in p.services:
            convert.check_keys(s, p.services[s], lambda m: None)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_schema_accepts_every_form_dockyard_runs(tmp_path):
    p = load(tmp_path, """\
        version: "3.9"
        name: demo
        x-top: {any: thing}
        services:
          s:
            image: busybox
            x-note: 1
            build: {context: ., args: [A=1], labels: {l: v}, tags: [t]}
            command: [echo, hi]
            entrypoint: sh -c
            environment: {A: 1, B: true, C: null}
            env_file: [a.env, {path: b.env, required: false}]
            ports: [80, "81:81", {target: 82, published: "8082", protocol: udp}]
            expose: ["90", 91]
            volumes: [/anon, {type: tmpfs, target: /t, tmpfs: {size: 1000}}]
            networks: {n: {aliases: [x], ipv4_address: 10.9.0.9}, m: null}
            depends_on: {d: {condition: service_healthy}, e: null}
            healthcheck: {test: "true", interval: 1s, retries: "3"}
            deploy: {replicas: "2", resources: {limits: {cpus: 0.5, memory: 64M}}, placement: {constraints: []}}
            ulimits: {nproc: "512", nofile: {soft: 10, hard: "20"}}
            logging: {driver: json-file, options: {max-file: 2}}
            secrets: [sec, {source: sec, target: /x}]
            labels: [a=b]
            extra_hosts: ["h:1.2.3.4"]
            stop_grace_period: 5s
            read_only: "true"
            develop: {watch: []}
          d: {image: busybox}
          e: {image: busybox}
        networks:
          n: {ipam: {config: [{subnet: 10.9.0.0/24}]}, labels: [x=y]}
          m:
        volumes: {v: null, w: {external: true}}
        secrets: {sec: {file: ./s.txt}}
        configs: {c: {content: hello}}
        """)
    assert p.name == "demo" and p.services["s"]["deploy"]["replicas"] == "2"


def test_every_handled_key_is_in_the_schema():
    from dockyard.compose.schema import SERVICE

    assert convert.HANDLED | convert.IGNORED <= set(SERVICE["properties"])
