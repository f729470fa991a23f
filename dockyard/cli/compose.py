"""`dockyard compose ...`: Docker Compose's verbs and flags.

Parsing and printing only: the project is read by ``dockyard.compose.loader`` and every state
change goes through ``dockyard.compose.project`` (engine calls).  Progress lines go to stderr, as
Docker Compose prints them; stdout carries only what a script reads (ps, config, logs ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
from typing import Any

import click

from dockyard.errors import DockyardError, InvalidArgument, NotFound

CTX = {"help_option_names": ["-h", "--help"]}


def _err(msg: str) -> None:
    click.echo(msg, err=True)


class ComposeState:
    def __init__(self, cli_state: Any, files: list[str], project_name: str | None, project_dir: str | None,
                 env_files: list[str], profiles: list[str]) -> None:
        self.cli = cli_state
        self.files = files
        self.project_name = project_name
        self.project_dir = project_dir
        self.env_files = env_files
        self.profiles = profiles
        self._compose: Any = None

    @property
    def engine(self) -> Any:
        return self.cli.engine

    def load(self, services: list[str] | None = None, *, need_file: bool = True) -> Any:
        """The project; with ``need_file`` false, a project known only by name (``down -p x``) is fine."""
        from dockyard.compose.loader import Project, load
        from dockyard.compose.project import Compose

        try:
            project = load(self.files, project_name=self.project_name, project_dir=self.project_dir,
                           env_files=self.env_files, profiles=self.profiles, services=services)
        except NotFound:
            name = self.project_name or os.environ.get("COMPOSE_PROJECT_NAME")
            if need_file or self.files or not name:
                raise
            project = Project(name=name, working_dir=os.getcwd(), config_files=[], services={}, networks={},
                              volumes={}, secrets={}, configs={}, environment=dict(os.environ))
        for w in project.warnings:
            _err(f"WARN[0000] {w}")
        return Compose(self.engine, project, report=_report, warn=lambda m: _err(f"WARN[0000] {m}"))


def _report(line: str) -> None:
    click.echo(f" \u2714 {line}" if sys.stderr.isatty() else line, err=True)


@click.group("compose", context_settings=CTX, help="Define and run multi-container applications.")
@click.option("-f", "--file", "files", multiple=True, help="Compose configuration files.")
@click.option("-p", "--project-name", help="Project name.")
@click.option("--project-directory", help="Alternate working directory (default: the first file's directory).")
@click.option("--env-file", "env_files", multiple=True, help="Alternate environment files.")
@click.option("--profile", "profiles", multiple=True, help="Profiles to enable.")
@click.option("--ansi", type=click.Choice(["never", "always", "auto"]), default="auto", hidden=True)
@click.option("--progress", hidden=True)
@click.option("--parallel", type=int, hidden=True)
@click.pass_context
def compose(ctx: click.Context, files: tuple[str, ...], project_name: str | None, project_directory: str | None,
            env_files: tuple[str, ...], profiles: tuple[str, ...], ansi: str, progress: str | None,
            parallel: int | None) -> None:
    ctx.obj = ComposeState(ctx.obj, list(files), project_name, project_directory, list(env_files), list(profiles))


# -- up / down ---------------------------------------------------------------------------------------
@compose.command("up", context_settings=CTX, help="Create and start containers.")
@click.option("-d", "--detach", is_flag=True, help="Run containers in the background.")
@click.option("--build", is_flag=True, help="Build images before starting containers.")
@click.option("--no-build", is_flag=True, help="Don't build an image, even if it's missing.")
@click.option("--force-recreate", is_flag=True, help="Recreate containers even if their configuration is unchanged.")
@click.option("--no-recreate", is_flag=True, help="Don't recreate containers that exist.")
@click.option("--no-deps", is_flag=True, help="Don't start linked services.")
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not in the compose file.")
@click.option("--pull", type=click.Choice(["always", "missing", "never"]), help="Pull image before running.")
@click.option("-t", "--timeout", type=int, help="Shutdown timeout in seconds.")
@click.option("--wait", is_flag=True, help="Wait for services to be running|healthy. Implies detached mode.")
@click.option("--no-log-prefix", is_flag=True, help="Don't print prefix in logs.")
@click.option("--abort-on-container-exit", is_flag=True, help="Stop all containers if any container was stopped.")
@click.option("--exit-code-from", help="Return the exit code of the selected service container. "
              "Implies --abort-on-container-exit.")
@click.argument("services", nargs=-1)
@click.pass_obj
def up(st: ComposeState, detach: bool, build: bool, no_build: bool, force_recreate: bool, no_recreate: bool,
       no_deps: bool, remove_orphans: bool, pull: str | None, timeout: int | None, wait: bool, no_log_prefix: bool,
       abort_on_container_exit: bool, exit_code_from: str | None, services: tuple[str, ...]) -> int:
    if exit_code_from and (detach or wait):
        raise InvalidArgument("--exit-code-from cannot be combined with --detach or --wait")
    if build and no_build:
        raise InvalidArgument("--build and --no-build are incompatible")
    if force_recreate and no_recreate:
        raise InvalidArgument("--force-recreate and --no-recreate are incompatible")
    c = st.load(list(services))
    c.up(list(services) or None, build=build, no_build=no_build, force_recreate=force_recreate,
         no_recreate=no_recreate, no_deps=no_deps, remove_orphans=remove_orphans, pull=pull, timeout=timeout,
         wait=wait)
    if exit_code_from and exit_code_from not in c.project.services:
        raise NotFound(f"no such service: {exit_code_from}")
    if detach or wait:
        return 0
    _attach(c, list(services) or None, prefix=not no_log_prefix,
            stop_on_exit=abort_on_container_exit or bool(exit_code_from), timeout=timeout)
    if exit_code_from:
        return int(c.engine.containers.wait(c.container_for(exit_code_from)["Id"]))
    return 0


def _attach(c: Any, services: list[str] | None, *, prefix: bool, stop_on_exit: bool, timeout: int | None) -> None:
    """`up` in the foreground: every container's output, prefixed, until all have stopped; Ctrl-C stops them."""
    import signal

    from dockyard.engine import logs

    containers = c.containers(services, all_=True)
    names = [_short(x) for x in containers]
    _err("Attaching to " + ", ".join(names))
    width = max((len(n) for n in names), default=0)
    lock = threading.Lock()
    stop = threading.Event()
    out = sys.stdout.buffer

    def follow(ctr: dict[str, Any], label: str) -> None:
        pre = f"{label.ljust(width)}  | ".encode() if prefix else b""
        try:
            for e in logs.read(c.engine, ctr["Id"], follow=True, tail=None, keep_going=lambda: not stop.is_set()):
                with lock:
                    for line in e.data.splitlines(keepends=True):
                        out.write(pre + line if line.endswith(b"\n") else pre + line + b"\n")
                    out.flush()
        except DockyardError:
            return
        if stop.is_set():
            return
        with contextlib.suppress(DockyardError, KeyError):
            code = c.engine.containers.wait(ctr["Id"])
            with lock:
                out.write(f"{label} exited with code {code}\n".encode())
                out.flush()

    def on_term(_sig: int, _frm: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    threads = [threading.Thread(target=follow, args=(x, n), daemon=True) for x, n in zip(containers, names, strict=True)]
    try:
        # started inside the try: an interrupt right after the first output line still stops them
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
            if stop_on_exit and any(not t.is_alive() for t in threads):
                break
    except KeyboardInterrupt:
        _err("Gracefully stopping... (press Ctrl+C again to force)")
    stop.set()
    c.each(services, lambda x: c.engine.containers.stop(x["Id"], timeout=timeout), "Stopped",
           states=("running", "paused", "restarting"), reverse=True)


def _short(ctr: dict[str, Any]) -> str:
    from dockyard.compose.convert import L_NUMBER, L_ONEOFF, L_SERVICE

    lab = ctr["Labels"]
    if lab.get(L_ONEOFF) == "True":
        return str(ctr["Names"][0].lstrip("/"))
    return f"{lab.get(L_SERVICE)}-{lab.get(L_NUMBER)}"


@compose.command("create", context_settings=CTX, help="Creates containers for a service.")
@click.option("--build", is_flag=True, help="Build images before starting containers.")
@click.option("--no-build", is_flag=True, help="Don't build an image, even if it's missing.")
@click.option("--force-recreate", is_flag=True, help="Recreate containers even if their configuration is unchanged.")
@click.option("--no-recreate", is_flag=True, help="Don't recreate containers that exist.")
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not in the compose file.")
@click.option("--pull", type=click.Choice(["always", "missing", "never"]), help="Pull image before running.")
@click.argument("services", nargs=-1)
@click.pass_obj
def create(st: ComposeState, build: bool, no_build: bool, force_recreate: bool, no_recreate: bool,
           remove_orphans: bool, pull: str | None, services: tuple[str, ...]) -> None:
    st.load(list(services)).up(list(services) or None, build=build, no_build=no_build,
                               force_recreate=force_recreate, no_recreate=no_recreate,
                               remove_orphans=remove_orphans, pull=pull, start=False)


@compose.command("wait", context_settings=CTX, help="Block until the first service container stops.")
@click.option("--down-project", is_flag=True, help="Drops project when the first container stops.")
@click.argument("services", nargs=-1, required=True)
@click.pass_obj
def wait(st: ComposeState, down_project: bool, services: tuple[str, ...]) -> int:
    c = st.load(need_file=False)
    cs = c.containers(list(services), all_=True)
    if not cs:
        raise NotFound(f"no containers for services {', '.join(services)}")
    codes = [c.engine.containers.wait(x["Id"]) for x in cs]
    for code in codes:
        click.echo(code)
    if down_project:
        c.down()
    return 0


@compose.command("down", context_settings=CTX, help="Stop and remove containers, networks.")
@click.option("-v", "--volumes", is_flag=True, help="Remove named volumes declared in the file and anonymous volumes.")
@click.option("--remove-orphans", is_flag=True, help="Remove containers for services not in the compose file.")
@click.option("--rmi", type=click.Choice(["local", "all"]), help="Remove images used by services.")
@click.option("-t", "--timeout", type=int, help="Shutdown timeout in seconds.")
@click.pass_obj
def down(st: ComposeState, volumes: bool, remove_orphans: bool, rmi: str | None, timeout: int | None) -> None:
    st.load(need_file=False).down(volumes=volumes, remove_orphans=remove_orphans, rmi=rmi, timeout=timeout)


# -- ps / ls / logs / config ---------------------------------------------------------------------------
def _ps_rows(c: Any, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    import time

    from dockyard.compose.convert import L_SERVICE
    from dockyard.formatting.containers import displayable_ports, human_duration

    out = []
    now = time.time()
    for r in rows:
        out.append({
            "RunningFor": human_duration(now - r["Created"]) + " ago",
            "ID": r["Id"], "Name": r["Names"][0].lstrip("/"), "Image": r["Image"], "Command": json.dumps(r["Command"]),
            "Project": c.project.name, "Service": r["Labels"].get(L_SERVICE, ""), "Created": r["Created"],
            "State": r["State"], "Status": r["Status"], "Health": _health(r["Status"]),
            "ExitCode": _exit_code(r["Status"]), "Labels": r["Labels"],
            "Ports": displayable_ports(r["Ports"]) if r["Ports"] else "",
            "Publishers": [{"URL": p.get("IP", ""), "TargetPort": p.get("PrivatePort"),
                            "PublishedPort": p.get("PublicPort", 0), "Protocol": p.get("Type")} for p in r["Ports"]],
        })
    return out


def _health(status: str) -> str:
    for h in ("healthy", "unhealthy", "starting"):
        if f"({h})" in status or f"(health: {h})" in status:
            return h
    return ""


def _exit_code(status: str) -> int:
    if status.startswith("Exited ("):
        return int(status[len("Exited ("):].split(")")[0])
    return 0


@compose.command("ps", context_settings=CTX, help="List containers.")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all stopped containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.option("--format", "fmt", help="Format output using a Go template, 'table', or json.")
@click.option("--services", "only_services", is_flag=True, help="Display services.")
@click.option("--status", "statuses", multiple=True, help="Filter services by status.")
@click.argument("services", nargs=-1)
@click.pass_obj
def ps(st: ComposeState, all_: bool, quiet: bool, fmt: str | None, only_services: bool, statuses: tuple[str, ...],
       services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    rows = c.containers(list(services) or None, all_=all_ or bool(statuses), oneoff=None)
    if statuses:
        rows = [r for r in rows if r["State"] in statuses]
    if quiet:
        for r in rows:
            click.echo(r["Id"])
        return
    if only_services:
        from dockyard.compose.convert import L_SERVICE

        for s in dict.fromkeys(r["Labels"].get(L_SERVICE) for r in rows):
            click.echo(s)
        return
    data = _ps_rows(c, rows)
    if fmt == "json":
        for d in data:
            click.echo(json.dumps(d))
        return
    from dockyard.cli.output import print_rows

    print_rows(data, fmt, _PS_TABLE, _PS_HEADERS)


_PS_TABLE = "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}"
_PS_HEADERS = {"Name": "NAME", "Image": "IMAGE", "Command": "COMMAND", "Service": "SERVICE", "Status": "STATUS",
               "Ports": "PORTS", "RunningFor": "CREATED", "ID": "CONTAINER ID", "State": "STATE", "Project": "PROJECT", "Health": "HEALTH"}


@compose.command("ls", context_settings=CTX, help="List running compose projects.")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all stopped Compose projects.")
@click.option("-q", "--quiet", is_flag=True, help="Only display project names.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="Output format.")
@click.pass_obj
def ls(st: ComposeState, all_: bool, quiet: bool, fmt: str) -> None:
    from dockyard.compose.convert import L_FILES, L_PROJECT

    projects: dict[str, dict[str, Any]] = {}
    for r in st.engine.containers.list_containers(all_=True, filters=[f"label={L_PROJECT}"]):
        p = projects.setdefault(r["Labels"][L_PROJECT], {"states": {}, "files": r["Labels"].get(L_FILES, "")})
        p["states"][r["State"]] = p["states"].get(r["State"], 0) + 1
    rows = []
    for name in sorted(projects):
        p = projects[name]
        if not all_ and "running" not in p["states"]:
            continue
        status = ", ".join(f"{s}({n})" for s, n in sorted(p["states"].items()))
        rows.append({"Name": name, "Status": status, "ConfigFiles": p["files"]})
    if quiet:
        for r in rows:
            click.echo(r["Name"])
    elif fmt == "json":
        click.echo(json.dumps(rows))
    else:
        from dockyard.cli.container import table

        click.echo(table([["NAME", "STATUS", "CONFIG FILES"]] + [[r["Name"], r["Status"], r["ConfigFiles"]]
                                                                   for r in rows]))


@compose.command("logs", context_settings=CTX, help="View output from containers.")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs for each container.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--no-log-prefix", is_flag=True, help="Don't print prefix in logs.")
@click.option("--index", type=int, help="Index of the container if the service has multiple replicas.")
@click.argument("services", nargs=-1)
@click.pass_obj
def logs_(st: ComposeState, follow: bool, tail: str, timestamps: bool, no_log_prefix: bool, index: int | None,
          services: tuple[str, ...]) -> None:
    from dockyard.compose.convert import L_NUMBER
    from dockyard.engine import logs

    if tail != "all" and not tail.isdigit():
        raise InvalidArgument(f"invalid value for --tail: {tail!r}")
    n = None if tail == "all" else int(tail)
    c = st.load(need_file=False)
    cs = c.containers(list(services) or None, all_=True, oneoff=None)
    if index is not None:
        cs = [x for x in cs if x["Labels"].get(L_NUMBER) == str(index)]
    width = max((len(_short(x)) for x in cs), default=0)
    lock = threading.Lock()
    out = sys.stdout.buffer

    def emit(label: str, e: Any) -> None:
        pre = b"" if no_log_prefix else f"{label.ljust(width)}  | ".encode()
        ts = (e.time + " ").encode() if timestamps else b""
        for line in e.data.splitlines(keepends=True):
            out.write(pre + ts + line + (b"" if line.endswith(b"\n") else b"\n"))

    if not follow:
        entries = []
        for x in cs:
            entries += [(e.time, _short(x), e) for e in logs.read(c.engine, x["Id"], tail=n)]
        entries.sort(key=lambda t: t[0])
        for _t, label, e in entries:
            emit(label, e)
        out.flush()
        return

    def run(x: dict[str, Any]) -> None:
        for e in logs.read(c.engine, x["Id"], follow=True, tail=n):
            with lock:
                emit(_short(x), e)
                out.flush()

    threads = [threading.Thread(target=run, args=(x,), daemon=True) for x in cs]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)


@compose.command("config", context_settings=CTX, help="Parse, resolve and render the compose file in canonical format.")
@click.option("-q", "--quiet", is_flag=True, help="Only validate the configuration, don't print anything.")
@click.option("--services", "list_services", is_flag=True, help="Print the service names, one per line.")
@click.option("--volumes", "list_volumes", is_flag=True, help="Print the volume names, one per line.")
@click.option("--networks", "list_networks", is_flag=True, help="Print the network names, one per line.")
@click.option("--profiles", "list_profiles", is_flag=True, help="Print the profile names, one per line.")
@click.option("--images", "list_images", is_flag=True, help="Print the image names, one per line.")
@click.option("--hash", "hash_", help="Print the service config hash, one per line (SERVICE or '*').")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", help="Format the output.")
@click.argument("services", nargs=-1)
@click.pass_obj
def config(st: ComposeState, quiet: bool, list_services: bool, list_volumes: bool, list_networks: bool,
           list_profiles: bool, list_images: bool, hash_: str | None, fmt: str, services: tuple[str, ...]) -> None:
    from dockyard.compose import convert

    c = st.load(list(services))
    p = c.project
    for s, svc in p.services.items():
        convert.check_keys(s, svc, lambda m: _err(f"WARN[0000] {m}"))
    if quiet:
        return
    if list_services:
        click.echo("\n".join(p.services))
    elif list_volumes:
        click.echo("\n".join(p.volumes)) if p.volumes else None
    elif list_networks:
        click.echo("\n".join(p.networks)) if p.networks else None
    elif list_profiles:
        profs = sorted({x for svc in [*p.services.values(), *p.disabled.values()] for x in svc.get("profiles") or []})
        click.echo("\n".join(profs)) if profs else None
    elif list_images:
        click.echo("\n".join(convert.image_name(p, s) for s in p.services))
    elif hash_:
        for s in (p.services if hash_ == "*" else hash_.split(",")):
            if s not in p.services:
                raise NotFound(f"no such service: {s}")
            click.echo(f"{s} {convert.config_hash(p.services[s])}")
    elif fmt == "json":
        click.echo(json.dumps(p.to_dict(), indent=2))
    else:
        import yaml

        click.echo(yaml.safe_dump(p.to_dict(), sort_keys=False, default_flow_style=False), nl=False)


# -- images --------------------------------------------------------------------------------------------
@compose.command("pull", context_settings=CTX, help="Pull service images.")
@click.option("--ignore-pull-failures", is_flag=True, help="Pull what it can and ignores images with pull failures.")
@click.option("-q", "--quiet", is_flag=True, help="Pull without printing progress information.")
@click.argument("services", nargs=-1)
@click.pass_obj
def pull(st: ComposeState, ignore_pull_failures: bool, quiet: bool, services: tuple[str, ...]) -> None:
    st.load(list(services)).pull(list(services) or None, ignore_failures=ignore_pull_failures)


@compose.command("build", context_settings=CTX, help="Build or rebuild services.")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image.")
@click.option("--pull", is_flag=True, help="Always attempt to pull a newer version of the image.")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables for services.")
@click.option("-q", "--quiet", is_flag=True, help="Don't print anything to STDOUT.")
@click.argument("services", nargs=-1)
@click.pass_obj
def build(st: ComposeState, no_cache: bool, pull: bool, build_args: tuple[str, ...], quiet: bool,
          services: tuple[str, ...]) -> None:
    args = {}
    for a in build_args:
        k, sep, v = a.partition("=")
        if sep:
            args[k] = v
        elif k in os.environ:
            args[k] = os.environ[k]
    st.load(list(services)).build(list(services) or None, no_cache=no_cache, pull=pull, build_args=args, quiet=quiet)


@compose.command("images", context_settings=CTX, help="List images used by the created containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", help="Format the output.")
@click.argument("services", nargs=-1)
@click.pass_obj
def images(st: ComposeState, quiet: bool, fmt: str, services: tuple[str, ...]) -> None:
    from dockyard.cli.container import table

    c = st.load(need_file=False)
    rows = []
    for x in c.containers(list(services) or None, all_=True, oneoff=None):
        info = c.engine.images.inspect(x["ImageID"])
        tags = info.get("RepoTags") or ["<none>:<none>"]
        repo, _, tag = tags[0].rpartition(":")
        rows.append({"ContainerName": x["Names"][0].lstrip("/"), "Repository": repo, "Tag": tag,
                     "ID": info["Id"], "Size": info.get("Size", 0)})
    if quiet:
        for iid in dict.fromkeys(r["ID"] for r in rows):
            click.echo(iid)
    elif fmt == "json":
        click.echo(json.dumps(rows))
    else:
        from dockyard.formatting.containers import human_size

        click.echo(table([["CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"]] + [
            [r["ContainerName"], r["Repository"], r["Tag"], r["ID"].removeprefix("sha256:")[:12],
             human_size(r["Size"])] for r in rows]))


# -- lifecycle verbs -------------------------------------------------------------------------------------
_LIVE = ("running", "paused", "restarting")


@compose.command("start", context_settings=CTX, help="Start services.")
@click.argument("services", nargs=-1)
@click.pass_obj
def start(st: ComposeState, services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    sel = list(services) or None
    c.each(sel, lambda x: c.engine.containers.start(x["Id"]), "Started", states=("created", "exited"))


@compose.command("stop", context_settings=CTX, help="Stop services.")
@click.option("-t", "--timeout", type=int, help="Specify a shutdown timeout in seconds.")
@click.argument("services", nargs=-1)
@click.pass_obj
def stop(st: ComposeState, timeout: int | None, services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    c.each(list(services) or None, lambda x: c.engine.containers.stop(x["Id"], timeout=timeout), "Stopped",
           states=_LIVE, reverse=True)


@compose.command("restart", context_settings=CTX, help="Restart service containers.")
@click.option("-t", "--timeout", type=int, help="Specify a shutdown timeout in seconds.")
@click.option("--no-deps", is_flag=True, help="Don't restart dependent services.")
@click.argument("services", nargs=-1)
@click.pass_obj
def restart(st: ComposeState, timeout: int | None, no_deps: bool, services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    c.each(list(services) or None, lambda x: c.engine.containers.restart(x["Id"], timeout=timeout), "Started")


@compose.command("kill", context_settings=CTX, help="Force stop service containers.")
@click.option("-s", "--signal", "sig", default="SIGKILL", help="SIGNAL to send to the container.")
@click.option("--remove-orphans", is_flag=True, hidden=True)
@click.argument("services", nargs=-1)
@click.pass_obj
def kill(st: ComposeState, sig: str, remove_orphans: bool, services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    c.each(list(services) or None, lambda x: c.engine.containers.kill(x["Id"], sig.removeprefix("SIG")), "Killed",
           states=_LIVE, reverse=True)


@compose.command("rm", context_settings=CTX, help="Removes stopped service containers.")
@click.option("-f", "--force", is_flag=True, help="Don't ask to confirm removal.")
@click.option("-s", "--stop", "stop_first", is_flag=True, help="Stop the containers, if required, before removing.")
@click.option("-v", "--volumes", is_flag=True, help="Remove any anonymous volumes attached to containers.")
@click.argument("services", nargs=-1)
@click.pass_obj
def rm(st: ComposeState, force: bool, stop_first: bool, volumes: bool, services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    sel = list(services) or None
    if stop_first:
        c.each(sel, lambda x: c.engine.containers.stop(x["Id"]), "Stopped", states=_LIVE, reverse=True)
    victims = [x for x in c.containers(sel, all_=True) if x["State"] not in _LIVE]
    if not victims:
        _err("No stopped containers")
        return
    if not force and sys.stdin.isatty():
        names = ", ".join(x["Names"][0].lstrip("/") for x in victims)
        if not click.confirm(f"Going to remove {names}\nAre you sure?", default=False, err=True):
            return
    for x in victims:
        c.engine.containers.remove(x["Id"], volumes=volumes)
        _report(f"Container {x['Names'][0].lstrip('/')}  Removed")


@compose.command("pause", context_settings=CTX, help="Pause services.")
@click.argument("services", nargs=-1)
@click.pass_obj
def pause(st: ComposeState, services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    c.each(list(services) or None, lambda x: c.engine.containers.pause(x["Id"]), "Paused", states=("running",))


@compose.command("unpause", context_settings=CTX, help="Unpause services.")
@click.argument("services", nargs=-1)
@click.pass_obj
def unpause(st: ComposeState, services: tuple[str, ...]) -> None:
    c = st.load(need_file=False)
    c.each(list(services) or None, lambda x: c.engine.containers.unpause(x["Id"]), "Unpaused", states=("paused",))


@compose.command("top", context_settings=CTX, help="Display the running processes.")
@click.argument("services", nargs=-1)
@click.pass_obj
def top(st: ComposeState, services: tuple[str, ...]) -> None:
    from dockyard.cli.container import table

    c = st.load(need_file=False)
    for x in c.containers(list(services) or None, all_=False):
        titles, procs = c.engine.containers.top(x["Id"], [])
        click.echo(x["Names"][0].lstrip("/"))
        click.echo(table([titles] + procs))
        click.echo()


@compose.command("port", context_settings=CTX, help="Print the public port for a port binding.")
@click.option("--protocol", default="tcp", type=click.Choice(["tcp", "udp", "sctp"]), help="tcp or udp.")
@click.option("--index", default=1, type=int, help="Index of the container if service has multiple replicas.")
@click.argument("service")
@click.argument("private_port")
@click.pass_obj
def port(st: ComposeState, protocol: str, index: int, service: str, private_port: str) -> None:
    c = st.load([service])
    x = c.container_for(service, index)
    ports = c.engine.containers.inspect(x["Id"])["NetworkSettings"].get("Ports") or {}
    binds = ports.get(f"{private_port}/{protocol}") or []
    if not binds:
        raise NotFound(f"no port {private_port}/{protocol} for container {x['Names'][0].lstrip('/')}")
    b = binds[0]
    click.echo(f"{b.get('HostIp') or '0.0.0.0'}:{b['HostPort']}")


# -- exec / run ------------------------------------------------------------------------------------------
@compose.command("exec", context_settings={**CTX, "allow_interspersed_args": False},
                 help="Execute a command in a running container.")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: Run command in the background.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--index", default=1, type=int, help="Index of the container if service has multiple replicas.")
@click.option("-T", "--no-tty", "no_tty", is_flag=True, help="Disable pseudo-TTY allocation.")
@click.option("-i", "--interactive", is_flag=True, default=True, hidden=True)
@click.option("-t", "--tty", is_flag=True, hidden=True)
@click.option("-u", "--user", help="Run the command as this user.")
@click.option("-w", "--workdir", help="Path to workdir directory for this command.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the process.")
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(st: ComposeState, detach: bool, env: tuple[str, ...], index: int, no_tty: bool, interactive: bool,
          tty: bool, user: str | None, workdir: str | None, privileged: bool, service: str,
          command: tuple[str, ...]) -> int:
    from dockyard.engine import execs

    c = st.load([service])  # naming a service enables it even behind an inactive profile
    x = c.container_for(service, index)
    if x["State"] != "running":
        raise InvalidArgument(f"container {x['Names'][0].lstrip('/')} is not running")
    use_tty = not no_tty and sys.stdin.isatty() and sys.stdout.isatty() and not detach
    return execs.run(c.engine, execs.ExecConfig(
        container=x["Id"], cmd=list(command), tty=use_tty, stdin=not detach, env=list(env), user=user,
        workdir=workdir, privileged=privileged, detach=detach))


@compose.command("run", context_settings={**CTX, "allow_interspersed_args": False},
                 help="Run a one-off command on a service.")
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("--rm", "remove", is_flag=True, help="Automatically remove the container when it exits.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("-l", "--label", multiple=True, help="Add or override a label.")
@click.option("--name", help="Assign a name to the container.")
@click.option("-T", "--no-TTY", "no_tty", is_flag=True, help="Disable pseudo-TTY allocation.")
@click.option("-i", "--interactive", is_flag=True, default=True, hidden=True)
@click.option("-u", "--user", help="Run as specified username or uid.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("--entrypoint", help="Override the entrypoint of the image.")
@click.option("--no-deps", is_flag=True, help="Don't start linked services.")
@click.option("--service-ports", is_flag=True, help="Run with the service's ports published to the host.")
@click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host.")
@click.option("--build", is_flag=True, help="Build image before starting container.")
@click.argument("service")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(st: ComposeState, detach: bool, remove: bool, env: tuple[str, ...], label: tuple[str, ...], name: str | None,
        no_tty: bool, interactive: bool, user: str | None, workdir: str | None, entrypoint: str | None,
        no_deps: bool, service_ports: bool, publish: tuple[str, ...], build: bool, service: str,
        command: tuple[str, ...]) -> int:
    import secrets
    import shlex

    from dockyard.cli.container import _attach_foreground, _cleanup_failed
    from dockyard.compose import convert
    from dockyard.engine.containers import PendingMonitor

    c = st.load([service])
    p = c.project
    if service not in p.services:
        raise NotFound(f"no such service: {service}")
    deps = [d for d in c._select([service]) if d != service]
    if deps and not no_deps:
        c.up(deps)
    else:
        c.ensure_networks([service])
        c.ensure_volumes([service])
    c.ensure_image(service, build=build)
    cname = name or f"{p.name}-{service}-run-{secrets.token_hex(6)}"
    labels = dict(lb.partition("=")[::2] for lb in label)
    opts = convert.create_options(p, service, 1, oneoff=True, name=cname, command=list(command) or None,
                                  entrypoint=shlex.split(entrypoint) if entrypoint is not None else None,
                                  extra_env=list(env), labels=labels)
    opts.auto_remove = remove
    if not service_ports:
        opts.publish = []
    opts.publish += list(publish)
    if user is not None:
        opts.user = user
    if workdir is not None:
        opts.workdir = workdir
    tty = not no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    opts.tty = tty and not detach
    opts.interactive = not detach and interactive
    opts.attach_streams = not detach
    svc = c.engine.containers
    monitor = PendingMonitor()
    try:
        cid = svc.create(opts)
        c.inject_files(service, cid)
    except BaseException:
        monitor.abandon()
        raise
    if detach:
        try:
            svc.start(cid, monitor=monitor)
        except DockyardError:
            _cleanup_failed(svc, cid, remove)
            raise
        click.echo(cname)
        return 0
    try:
        handle = svc.start(cid, attach=True, monitor=monitor)
    except DockyardError:
        _cleanup_failed(svc, cid, remove)
        raise
    return int(_attach_foreground(svc, handle, tty=opts.tty, stdin=opts.interactive, sig_proxy=True,
                                  on_start_error=lambda: _cleanup_failed(svc, cid, remove)))


@compose.command("version", context_settings=CTX, help="Show the Docker Compose version information.")
@click.option("-f", "--format", "fmt", type=click.Choice(["pretty", "json"]), default="pretty", help="Format the output.")
@click.option("--short", is_flag=True, help="Shows only Compose's version number.")
def version(fmt: str, short: bool) -> None:
    from dockyard.compose.convert import COMPOSE_VERSION

    if short:
        click.echo(COMPOSE_VERSION)
    elif fmt == "json":
        click.echo(json.dumps({"version": f"v{COMPOSE_VERSION}"}))
    else:
        click.echo(f"Docker Compose version v{COMPOSE_VERSION} (dockyard compose)")


@compose.command("cp", context_settings=CTX, help="Copy files/folders between a service container and the local filesystem.")
@click.option("--index", default=1, type=int, help="Index of the container if service has multiple replicas.")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.argument("src")
@click.argument("dest")
@click.pass_obj
def cp(st: ComposeState, index: int, follow_link: bool, src: str, dest: str) -> None:
    c = st.load()
    svc = c.engine.containers

    def split(arg: str) -> tuple[str | None, str]:
        head, sep, path = arg.partition(":")
        if sep and head in c.project.services:
            return head, path
        return None, arg

    s_svc, s_path = split(src)
    d_svc, d_path = split(dest)
    if (s_svc is None) == (d_svc is None):
        raise InvalidArgument("copying between services or between local paths is not supported: "
                              "one of SRC and DEST must be SERVICE:PATH")
    if s_svc is not None:
        svc.copy_from_container(c.container_for(s_svc, index)["Id"], s_path, d_path, follow_link=follow_link)
    else:
        assert d_svc is not None
        svc.copy_to_container(s_path, c.container_for(d_svc, index)["Id"], d_path, follow_link=follow_link)


@compose.command("scale", context_settings=CTX, help="Scale services.")
@click.option("--no-deps", is_flag=True, help="Don't start linked services.")
@click.argument("scales", nargs=-1, required=True)
@click.pass_obj
def scale(st: ComposeState, no_deps: bool, scales: tuple[str, ...]) -> None:
    wanted: dict[str, int] = {}
    for item in scales:
        name, sep, count = item.partition("=")
        if not sep or not count.isdigit():
            raise InvalidArgument(f"invalid scale specifier {item!r}: expected SERVICE=REPLICAS")
        wanted[name] = int(count)
    c = st.load(list(wanted))
    for name, n in wanted.items():
        if name not in c.project.services:
            raise NotFound(f"no such service: {name}")
        svc = c.project.services[name]
        svc.pop("scale", None)
        svc["deploy"] = {**(svc.get("deploy") or {}), "replicas": n}
    c.up(list(wanted), no_deps=no_deps)
