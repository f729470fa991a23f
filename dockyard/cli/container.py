"""`dockyard container ...` and the Docker top-level verbs (run, ps, exec, logs, ...).

Parsing and printing only: every state change goes through ``engine.containers``.  Heavy imports
stay inside the commands so `ps` and `run` pay only for what they use.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from dockyard.cli import LazyGroup
from dockyard.errors import EXIT_ENGINE, DockyardError, InvalidArgument, NotFound

RUN_CONTEXT = {"allow_interspersed_args": False, "help_option_names": ["-h", "--help"]}


def _svc(state: Any) -> Any:
    return state.engine.containers


def _err(msg: str) -> None:
    click.echo(f"Error: {msg}", err=True)


def table(rows: list[list[str]], padding: int = 3) -> str:
    """Docker's tabwriter layout: columns padded to the widest cell plus ``padding``; last column bare."""
    if not rows:
        return ""
    n = max(len(r) for r in rows)
    widths = [0] * n
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + padding)
    return "\n".join("".join(c.ljust(widths[i]) for i, c in enumerate(r[:-1])) + (r[-1] if r else "")
                     for r in rows)


# ----------------------------------------------------------------------------------------------
# run / create
def _create_options(f: Any) -> Any:
    opts = [
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, help="Set environment variables (NAME=VALUE or NAME)."),
        click.option("--env-file", multiple=True, help="Read in a file of environment variables."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])."),
        click.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image."),
        click.option("-h", "--hostname", help="Container host name."),
        click.option("-l", "--label", multiple=True, help="Set meta data on a container."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("--rm", "auto_remove", is_flag=True, help="Remove the container when it exits."),
        click.option("--init", is_flag=True, help="Run an init inside the container that forwards signals and "
                                                 "reaps processes."),
        click.option("--restart", default="no", show_default=True,
                     help="Restart policy: no, on-failure[:max-retries], always, unless-stopped."),
        click.option("--health-cmd", help="Command to run to check health."),
        click.option("--health-interval", help="Time between running the check (ms|s|m|h) (default 30s)."),
        click.option("--health-timeout", help="Maximum time to allow one check to run (default 30s)."),
        click.option("--health-retries", type=int, help="Consecutive failures needed to report unhealthy."),
        click.option("--health-start-period", help="Start period for the container to initialize before "
                                                   "failures count (default 0s)."),
        click.option("--no-healthcheck", is_flag=True, help="Disable any container-specified HEALTHCHECK."),
        click.option("-m", "--memory", help="Memory limit (e.g. 512m, 1g)."),
        click.option("--memory-reservation", help="Memory soft limit."),
        click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 for unlimited swap."),
        click.option("--cpus", help="Number of CPUs."),
        click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)."),
        click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)."),
        click.option("--cpuset-mems", help="Memory nodes in which to allow execution (0-3, 0,1)."),
        click.option("--pids-limit", type=int, help="Tune container pids limit (-1 for unlimited)."),
        click.option("--ulimit", multiple=True, help="Ulimit options (name=soft[:hard])."),
        click.option("--cap-add", multiple=True, help="Add Linux capabilities (or ALL)."),
        click.option("--cap-drop", multiple=True, help="Drop Linux capabilities (or ALL)."),
        click.option("--privileged", is_flag=True, help="Give extended privileges to this container."),
        click.option("--read-only", is_flag=True, help="Mount the container's root filesystem as read only."),
        click.option("--security-opt", multiple=True,
                     help="Security options: no-new-privileges, seccomp=FILE, seccomp=unconfined."),
        click.option("--stop-signal", help="Signal to stop the container (default SIGTERM)."),
        click.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container."),
        click.option("--runtime", help="OCI runtime: dockyard, runc, crun or an absolute path."),
        click.option("--log-driver", help="Logging driver: json-file (default), k8s-file, none."),
        click.option("--log-opt", multiple=True, help="Log driver options: max-size=SIZE, max-file=N."),
        click.option("--platform", help="Set platform (os/arch[/variant]) the image must match."),
        click.option("--network", "--net", "network", multiple=True,
                     help="Connect a container to a network (none, host, NAME[:ip=IP,alias=NAME,mac=MAC]); repeatable."),
        click.option("-p", "--publish", multiple=True, help="Publish a container's port(s) to the host."),
        click.option("-v", "--volume", multiple=True,
                     help="Bind mount a host path or a named volume (SRC:DST[:OPTIONS]), or DST for an anonymous one."),
        click.option("--mount", "mount", multiple=True,
                     help="Attach a filesystem mount (type=bind|volume|tmpfs,source=...,target=...,...)."),
        click.option("--tmpfs", multiple=True, help="Mount a tmpfs directory (DST[:OPTIONS])."),
        click.option("--shm-size", help="Size of /dev/shm (e.g. 64m)."),
        click.option("--dns", multiple=True, help="Set custom DNS servers."),
        click.option("--dns-search", multiple=True, help="Set custom DNS search domains."),
        click.option("--dns-option", multiple=True, help="Set DNS options."),
        click.option("--network-alias", multiple=True, help="Add a network-scoped alias for the container."),
        click.option("--ip", help="IPv4 address (e.g. 172.30.100.104)."),
        click.option("--mac-address", help="Container MAC address (e.g. 92:d0:c6:0a:29:33)."),
        click.option("-P", "--publish-all", is_flag=True, help="Publish all exposed ports to random ports."),
        click.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)."),
        click.option("--pid", help="PID namespace to use: host or container:NAME."),
        click.option("--ipc", help="IPC namespace to use: host or container:NAME."),
        click.option("--cgroupns", type=click.Choice(["host", "private"]),
                     help="Cgroup namespace: private (default on cgroup v2 hosts) or host."),
        click.option("--pod", help="Run the container in an existing pod (dockyard pod create)."),
        click.option("--userns", help="User namespace: host, keep-id[:uid=N,gid=N], nomap, auto[:size=N]."),
        click.option("--uidmap", multiple=True, help="UID map for a new user namespace (CONTAINER:HOST:SIZE)."),
        click.option("--gidmap", multiple=True, help="GID map for a new user namespace (CONTAINER:HOST:SIZE)."),
        click.option("--volumes-from", multiple=True,
                     help="Mount volumes from the specified container(s) (CONTAINER[:ro|:rw])."),
        click.option("--pull", type=click.Choice(["missing", "never", "always", "newer"]), default="missing",
                     show_default=True, help="Pull image policy."),
        click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output."),
        click.option("--progress", type=click.Choice(["auto", "tty", "plain", "quiet"]), default="auto",
                     show_default=True, help="How to show pull progress (on stderr)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _build_options(image: str, command: tuple[str, ...], kw: dict[str, Any], attach: bool) -> Any:
    from dockyard.engine.containers import CreateOptions

    return CreateOptions(
        image=image, command=list(command), entrypoint=kw["entrypoint"], name=kw["name"], env=list(kw["env"]),
        env_files=list(kw["env_file"]), workdir=kw["workdir"], user=kw["user"], hostname=kw["hostname"],
        labels=list(kw["label"]), tty=kw["tty"], interactive=kw["interactive"], attach_streams=attach,
        auto_remove=kw["auto_remove"], init=kw["init"], restart=kw["restart"], health_cmd=kw["health_cmd"],
        health_interval=kw["health_interval"], health_timeout=kw["health_timeout"],
        health_retries=kw["health_retries"], health_start_period=kw["health_start_period"],
        no_healthcheck=kw["no_healthcheck"], memory=kw["memory"], memory_reservation=kw["memory_reservation"],
        memory_swap=kw["memory_swap"], cpus=kw["cpus"], cpu_shares=kw["cpu_shares"], cpuset_cpus=kw["cpuset_cpus"], cpuset_mems=kw["cpuset_mems"], pids_limit=kw["pids_limit"],
        ulimits=list(kw["ulimit"]), cap_add=list(kw["cap_add"]), cap_drop=list(kw["cap_drop"]),
        privileged=kw["privileged"], read_only=kw["read_only"], security_opt=list(kw["security_opt"]),
        stop_signal=kw["stop_signal"], stop_timeout=kw["stop_timeout"], runtime=kw["runtime"],
        log_driver=kw["log_driver"], log_opts=list(kw["log_opt"]), platform=kw["platform"], network=list(kw["network"]) or None,
        publish=list(kw["publish"]), volumes=list(kw["volume"]), dns=list(kw["dns"]), add_host=list(kw["add_host"]),
        pid=kw["pid"], ipc=kw["ipc"], cgroupns=kw["cgroupns"], volumes_from=list(kw["volumes_from"]),
        mounts=list(kw["mount"]), tmpfs=list(kw["tmpfs"]), shm_size=kw["shm_size"],
        network_aliases=list(kw["network_alias"]), ip=kw["ip"], mac_address=kw["mac_address"],
        dns_search=list(kw["dns_search"]), dns_options=list(kw["dns_option"]), publish_all=kw["publish_all"],
        userns=kw["userns"], uidmap=list(kw["uidmap"]), gidmap=list(kw["gidmap"]))


def _ensure_image(state: Any, image: str, pull: str, quiet: bool, progress: str = "auto") -> None:
    images = state.engine.images
    if pull == "never" or (pull == "missing" and images.exists(image)):
        if not images.exists(image):
            raise NotFound(f"No such image: {image}")
        return
    import contextlib

    from dockyard.cli.pull import ProgressPrinter

    # Pull progress goes to stderr, as Docker's run does: stdout belongs to the container.
    tty = progress == "tty" or (progress == "auto" and sys.stderr.isatty())
    # auto shows progress only on a terminal: scripts get the container's output and, should the
    # pull fail, a one-line error
    show = progress in ("tty", "plain") or tty
    with contextlib.redirect_stdout(sys.stderr):
        printer = ProgressPrinter(quiet=quiet or not show, tty=tty)
        try:
            state.engine.registry.pull(image, progress=printer)
        except DockyardError as e:
            raise NotFound(f"unable to find image {image!r} locally, and pulling it failed: {e}") from None
        finally:
            printer.close()


@click.command("create", context_settings=RUN_CONTEXT, help="Create a new container.")
@_create_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def create(state, image, command, **kw):
    _ensure_image(state, image, kw.pop("pull"), kw.pop("quiet"), kw.pop("progress"))
    cid = _create_container(state, kw.pop("pod"), _build_options(image, command, kw, attach=True))
    click.echo(cid)


def _create_container(state: Any, pod: str | None, opts: Any, start_pod: bool = False) -> str:
    if not pod:
        return str(_svc(state).create(opts))
    from dockyard.engine.pods import PodService

    pods = PodService(state.engine)
    if start_pod:
        pods.start_infra(pod)  # the namespaces a member joins exist only while the infra runs
    return pods.create_container(pod, opts)


@click.command("run", context_settings=RUN_CONTEXT, help="Create and run a new container from an image.")
@click.option("-d", "--detach", is_flag=True, help="Run container in background and print container ID.")
@click.option("-a", "--attach", "attach_streams", multiple=True, help="Attach to STDIN, STDOUT or STDERR.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy received signals to the process.")
@_create_options
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def run(state, detach, attach_streams, sig_proxy, image, command, **kw):
    if detach and kw["auto_remove"] and kw["restart"] not in ("no", ""):
        raise InvalidArgument("conflicting options: --restart and --rm")
    if kw["tty"] and not detach and not sys.stdin.isatty() and kw["interactive"]:
        raise InvalidArgument("the input device is not a TTY")
    from dockyard.engine.containers import PendingMonitor

    # The monitor's interpreter starts now, in parallel with the image lookup and the container's
    # creation (a pull only makes it wait longer).
    monitor = PendingMonitor()
    svc = _svc(state)
    try:
        _ensure_image(state, image, kw.pop("pull"), kw.pop("quiet"), kw.pop("progress"))
        cid = _create_container(state, kw.pop("pod"), _build_options(image, command, kw, attach=not detach),
                                start_pod=True)
    except BaseException:
        monitor.abandon()
        raise
    if detach:
        try:
            svc.start(cid, monitor=monitor)
        except DockyardError:
            _cleanup_failed(svc, cid, kw["auto_remove"])
            raise
        click.echo(cid)
        return 0
    try:
        handle = svc.start(cid, attach=True, monitor=monitor)
    except DockyardError:
        _cleanup_failed(svc, cid, kw["auto_remove"])
        raise
    return _attach_foreground(svc, handle, tty=kw["tty"], stdin=kw["interactive"], sig_proxy=sig_proxy,
                              on_start_error=lambda: _cleanup_failed(svc, cid, kw["auto_remove"]))


def _cleanup_failed(svc: Any, cid: str, auto_remove: bool) -> None:
    # A run that could not start leaves nothing behind (an explicit `create` keeps its container).
    import contextlib

    with contextlib.suppress(DockyardError):
        svc.remove(cid, force=True)


def _attach_foreground(svc: Any, handle: Any, *, tty: bool, stdin: bool, sig_proxy: bool,
                       on_start_error: Any = None) -> int:
    from dockyard.monitor.protocol import F_CLAIM_CLEANUP, connect, frame

    sock = connect(handle.attach_path)
    # This process cleans up after the exit (unmount, runtime delete, --rm) with the engine it has
    # loaded already, instead of the monitor starting the CLI again for it.
    sock.sendall(frame(F_CLAIM_CLEANUP))
    session = AttachSession(sock, tty=tty, stdin=stdin, sig_proxy=sig_proxy, keep_open=True)
    try:
        handle.wait_started()
    except DockyardError:
        sock.close()
        if on_start_error is not None:
            on_start_error()
        raise
    try:
        code = session.run()
        svc.cleanup(handle.container_id, monitor_done=lambda: _until_eof(sock))
    finally:
        sock.close()
    return code


def _until_eof(sock: Any) -> None:
    """The monitor ends its stream once the runtime has released the container's state."""
    sock.settimeout(120)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
@click.command("start", help="Start one or more stopped containers.")
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def start(state, attach, interactive, containers):
    svc = _svc(state)
    if attach or interactive:
        if len(containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        r = svc.inspect(containers[0])
        if r["State"]["Running"]:
            return _attach_running(svc, r["Id"], stdin=interactive, tty=bool(r["Config"]["Tty"]))
        handle = svc.start(containers[0], attach=True)
        return _attach_foreground(svc, handle, tty=bool(r["Config"]["Tty"]), stdin=interactive, sig_proxy=True)
    return _each(containers, lambda c: svc.start(c))


def _each(refs: tuple[str, ...], fn: Any, echo: bool = True) -> int:
    """Docker's multi-container verbs: act on each, print each name, report errors, exit 1 if any failed."""
    failed = False
    for ref in refs:
        try:
            fn(ref)
            if echo:
                click.echo(ref)
        except DockyardError as e:
            _err(str(e))
            failed = True
    if failed:
        sys.exit(1 if len(refs) > 1 else EXIT_ENGINE)
    return 0


@click.command("stop", help="Stop one or more running containers.")
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.option("-s", "--signal", help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def stop(state, timeout, signal, containers):
    svc = _svc(state)
    return _each(containers, lambda c: svc.stop(c, timeout, signal))


@click.command("restart", help="Restart one or more containers.")
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def restart(state, timeout, containers):
    svc = _svc(state)
    return _each(containers, lambda c: svc.restart(c, timeout))


@click.command("kill", help="Kill one or more running containers.")
@click.option("-s", "--signal", default="KILL", show_default=True, help="Signal to send to the container.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def kill(state, signal, containers):
    svc = _svc(state)
    return _each(containers, lambda c: svc.kill(c, signal))


@click.command("rm", help="Remove one or more containers.")
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL).")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container.")
@click.option("-l", "--link", is_flag=True, hidden=True)
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def rm(state, force, volumes, link, containers):
    svc = _svc(state)
    return _each(containers, lambda c: svc.remove(c, force=force, volumes=volumes))


@click.command("pause", help="Pause all processes within one or more containers.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def pause(state, containers):
    svc = _svc(state)
    return _each(containers, lambda c: svc.pause(c))


@click.command("unpause", help="Unpause all processes within one or more containers.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def unpause(state, containers):
    svc = _svc(state)
    return _each(containers, lambda c: svc.unpause(c))


@click.command("wait", help="Block until one or more containers stop, then print their exit codes.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def wait(state, containers):
    svc = _svc(state)
    return _each(containers, lambda c: click.echo(svc.wait(c)), echo=False)


@click.command("rename", help="Rename a container.")
@click.argument("container")
@click.argument("new_name")
@click.pass_obj
def rename(state, container, new_name):
    _svc(state).rename(container, new_name)


# ----------------------------------------------------------------------------------------------

@click.command("ls", help="List containers.")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output (name=, id=, label=, status=, ancestor=, exited=, health=).")
@click.option("--format", "fmt", help="Format output using a Go template, 'table TEMPLATE' or json.")
@click.option("-n", "--last", type=int, default=0, help="Show n last created containers (includes all states).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.pass_obj
def ps(state, all_, filters, fmt, last, latest, no_trunc, quiet, size):
    # A plain `ps` does not get here: dockyard/__main__.py answers it before click is imported.
    from dockyard.fastcli import ps_text

    click.echo(ps_text(state.engine, all_=all_, filters=list(filters), fmt=fmt, last=last, latest=latest,
                       no_trunc=no_trunc, quiet=quiet, size=size), nl=False)


# ----------------------------------------------------------------------------------------------
@click.command("inspect", help="Display detailed information on containers or images.")
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.option("--type", "type_", type=click.Choice(["container", "image"]), help="Only this type of object.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes for containers.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(state, fmt, type_, size, names):
    svc = _svc(state)
    out, errors = [], []
    for name in names:
        obj = None
        if type_ in (None, "container"):
            try:
                obj = svc.inspect(name, size=size)
            except NotFound:
                obj = None
        if obj is None and type_ in (None, "image"):
            try:
                obj = state.engine.images.inspect(name)
            except NotFound:
                obj = None
        if obj is None:
            what = {"container": "container", "image": "image"}.get(type_ or "", "object")
            errors.append(f"No such {what}: {name}")
            continue
        out.append(obj)
    _print_inspect(out, fmt)
    if errors:
        for e in errors:
            _err(e)
        sys.exit(1)


def _print_inspect(objs: list[dict[str, Any]], fmt: str | None) -> None:
    if fmt and fmt != "json":
        from dockyard.formatting import render

        for obj in objs:
            text = render(fmt, obj)
            click.echo(text[:-1] if text.endswith("\n") else text)
    else:
        click.echo(json.dumps(objs, indent=4))


@click.command("inspect", help="Display detailed information on one or more containers.")
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes.")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def container_inspect(state, fmt, size, containers):
    svc = _svc(state)
    out, errors = [], []
    for c in containers:
        try:
            out.append(svc.inspect(c, size=size))
        except NotFound as e:
            errors.append(str(e))
    _print_inspect(out, fmt)
    if errors:
        for e in errors:
            _err(e)
        sys.exit(1)


# ----------------------------------------------------------------------------------------------
@click.command("exec", context_settings=RUN_CONTEXT, help="Execute a command in a running container.")
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read in a file of environment variables.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>]).")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_obj
def exec_(state, detach, env, env_file, interactive, tty, user, workdir, privileged, container, command):
    from dockyard.engine import execs
    from dockyard.engine.containers import _read_env_file

    envs = [e for path in env_file for e in _read_env_file(path)] + list(env)
    if tty and not detach and interactive and not sys.stdin.isatty():
        raise InvalidArgument("the input device is not a TTY")
    return execs.run(state.engine, execs.ExecConfig(
        container=container, cmd=list(command), tty=tty, stdin=interactive, env=envs, user=user,
        workdir=workdir, privileged=privileged, detach=detach))


# ----------------------------------------------------------------------------------------------
@click.command("logs", help="Fetch the logs of a container.")
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs.")
@click.option("--since", help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m).")
@click.option("--until", help="Show logs before a timestamp or relative time.")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--details", is_flag=True, help="Show extra details provided to logs.")
@click.argument("container")
@click.pass_obj
def logs(state, follow, tail, since, until, timestamps, details, container):
    svc = _svc(state)
    if tail != "all" and not (tail.isdigit() or tail == "-1"):
        raise InvalidArgument(f"invalid value for --tail: {tail!r}")
    show_logs(svc, container, follow=follow, tail=None if tail in ("all", "-1") else int(tail),
              since=since, until=until, timestamps=timestamps)


# ----------------------------------------------------------------------------------------------
@click.command("attach", help="Attach local standard input, output, and error streams to a running container.")
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process.")
@click.option("--detach-keys", hidden=True)
@click.argument("container")
@click.pass_obj
def attach(state, no_stdin, sig_proxy, detach_keys, container):
    svc = _svc(state)
    r = svc.inspect(container)
    if not r["State"]["Running"]:
        raise InvalidArgument("you cannot attach to a stopped container, start it first")
    return _attach_running(svc, r["Id"], stdin=not no_stdin and bool(r["Config"]["OpenStdin"]),
                           tty=bool(r["Config"]["Tty"]), sig_proxy=sig_proxy)


def _attach_running(svc: Any, cid: str, *, stdin: bool, tty: bool, sig_proxy: bool = True) -> int:
    from dockyard.monitor.protocol import connect

    try:
        sock = connect(svc.run_dir(cid) / "attach")
    except OSError as e:
        raise DockyardError(f"cannot attach to container {cid[:12]}: {e.strerror}") from None
    return AttachSession(sock, tty=tty, stdin=stdin, sig_proxy=sig_proxy).run()


# ----------------------------------------------------------------------------------------------
@click.command("top", context_settings=RUN_CONTEXT, help="Display the running processes of a container.")
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(state, container, ps_args):
    header, rows = _svc(state).top(container, list(ps_args))
    click.echo(table([header] + rows))


@click.command("stats", help="Display a live stream of container(s) resource usage statistics.")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running).")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate output.")
@click.option("--format", "fmt", help="Format output using a Go template, 'table TEMPLATE' or json.")
@click.argument("containers", nargs=-1)
@click.pass_obj
def stats(state, all_, no_stream, no_trunc, fmt, containers):
    show_stats(_svc(state), list(containers), all_=all_, stream=not no_stream, no_trunc=no_trunc, fmt=fmt)


@click.command("diff", help="Inspect changes to files or directories on a container's filesystem.")
@click.argument("container")
@click.pass_obj
def diff(state, container):
    for kind, path in _svc(state).diff(container):
        click.echo(f"{kind} {path}")


@click.command("cp", help="Copy files/folders between a container and the local filesystem.\n\n"
                          "  dockyard cp CONTAINER:SRC_PATH DEST_PATH|-\n\n  dockyard cp SRC_PATH|- CONTAINER:DEST_PATH")
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output.")
@click.argument("src")
@click.argument("dest")
@click.pass_obj
def cp(state, archive, follow_link, quiet, src, dest):
    svc = _svc(state)
    s_ctr, s_path = _split_cp(src)
    d_ctr, d_path = _split_cp(dest)
    if s_ctr and d_ctr:
        raise InvalidArgument("copying between containers is not supported")
    if not s_ctr and not d_ctr:
        raise InvalidArgument("must specify at least one container source")
    if s_ctr:
        if d_path == "-":
            svc.copy_from_container_tar(s_ctr, s_path, sys.stdout.buffer)
        else:
            svc.copy_from_container(s_ctr, s_path, d_path, follow_link=follow_link)
    elif s_path == "-":
        svc.copy_tar_to_container(sys.stdin.buffer, d_ctr, d_path)
    else:
        svc.copy_to_container(s_path, d_ctr, d_path, archive=archive, follow_link=follow_link)


def _split_cp(arg: str) -> tuple[str | None, str]:
    """``CONTAINER:PATH`` -> (container, path); a local path (absolute, ./relative, or no colon) -> (None, path)."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None, arg
    ctr, _, path = arg.partition(":")
    return ctr, path


@click.command("port", help="List port mappings or a specific mapping for the container.")
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_obj
def port(state, container, private_port):
    r = _svc(state).inspect(container)
    ports = (r.get("NetworkSettings") or {}).get("Ports") or {}
    want = None
    if private_port:
        want = private_port if "/" in private_port else private_port + "/tcp"
    found = False
    for key, bindings in sorted(ports.items()):
        if want and key != want:
            continue
        for b in bindings or []:
            ip = b.get("HostIp") or "0.0.0.0"
            found = True
            if want:
                click.echo(f"{ip}:{b.get('HostPort')}")
            else:
                click.echo(f"{key} -> {ip}:{b.get('HostPort')}")
    if want and not found:
        raise NotFound(f"No public port '{want}' published for {container}")


@click.command("export", help="Export a container's filesystem as a tar archive.")
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
@click.argument("container")
@click.pass_obj
def export(state, output, container):
    from dockyard.image.layers import pack_directory

    svc = _svc(state)
    if not output and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    with svc.mounted_rootfs(container) as rootfs:
        if output:
            tmp = output + ".tmp"
            try:
                with open(tmp, "wb") as f:
                    pack_directory(rootfs, f)
                os.replace(tmp, output)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:
            pack_directory(rootfs, sys.stdout.buffer)
            sys.stdout.buffer.flush()


@click.command("commit", help="Create a new image from a container's changes.")
@click.option("-a", "--author", default="", help="Author.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-c", "--change", multiple=True, help="Apply Dockerfile instruction to the created image.")
@click.option("-p", "--pause/--no-pause", default=True, help="Pause container during commit.")
@click.argument("container")
@click.argument("repository", required=False)
@click.pass_obj
def commit(state, author, message, change, pause, container, repository):
    img = _svc(state).commit(container, repository, author=author, message=message, changes=list(change),
                             pause=pause)
    click.echo(img)


@click.command("prune", help="Remove all stopped containers.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, hidden=True)
@click.pass_obj
def prune(state, force, filters):
    if not force:
        click.echo("WARNING! This will remove all stopped containers.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    removed, space = _svc(state).prune()
    from dockyard.engine.containers import _human_size

    if removed:
        click.echo("Deleted Containers:")
        for cid in removed:
            click.echo(cid)
        click.echo("")
    click.echo(f"Total reclaimed space: {_human_size(space)}")


@click.command("cleanup", hidden=True, help="Release a stopped container's resources (run by its monitor).")
@click.argument("containers", nargs=-1, required=True)
@click.pass_obj
def cleanup(state, containers):
    svc = _svc(state)
    for c in containers:
        svc.cleanup(c)


@click.command("restore", help="Start the containers whose restart policy is always or unless-stopped "
                                "(for a boot unit: `dockyard container restore`).")
@click.pass_obj
def restore(state):
    for cid in _svc(state).restore():
        click.echo(cid)


# `container image ...` reaches the image group: the tutorial prunes images with `container image prune`.
@click.group(cls=LazyGroup, lazy={"image": "dockyard.cli.image:image"}, help="Manage containers.")
def container():
    pass


for _cmd in (run, create, start, stop, restart, kill, rm, pause, unpause, wait, rename, ps, exec_, logs, attach,
             top, stats, diff, cp, port, export, commit, prune, cleanup, restore):
    container.add_command(_cmd)
container.add_command(container_inspect, "inspect")
container.add_command(ps, "list")
container.add_command(exec_, "exec")


# ----------------------------------------------------------------------------------------------
DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


class AttachSession:
    """The client side of the monitor's attach socket: terminal in raw mode, stdin up, output down."""

    def __init__(self, sock: Any, *, tty: bool, stdin: bool, sig_proxy: bool, keep_open: bool = False) -> None:
        self.sock = sock
        self.keep_open = keep_open
        self.tty = tty
        self.stdin = stdin
        self.sig_proxy = sig_proxy

    def _send(self, kind: int, payload: bytes = b"") -> None:
        from dockyard.monitor.protocol import frame

        try:
            self.sock.sendall(frame(kind, payload))
        except OSError:
            pass

    def _resize(self, *_: Any) -> None:
        from dockyard.monitor.protocol import F_RESIZE

        try:
            size = os.get_terminal_size(sys.stdout.fileno())
        except OSError:
            return
        self._send(F_RESIZE, f"{size.lines} {size.columns}".encode())

    def run(self) -> int:
        import select
        import signal

        from dockyard.monitor import protocol as p

        in_fd = sys.stdin.fileno() if self.stdin else -1
        old_attrs = None
        if self.tty and in_fd >= 0 and os.isatty(in_fd):
            import termios
            import tty as ttymod

            old_attrs = termios.tcgetattr(in_fd)
            ttymod.setraw(in_fd)
        if self.tty:
            self._resize()
            signal.signal(signal.SIGWINCH, self._resize)
        elif self.sig_proxy:
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
                signal.signal(s, lambda n, _f: self._send(p.F_SIGNAL, str(n).encode()))
        out = sys.stdout.buffer
        err = sys.stderr.buffer
        buf = b""
        prev = b""
        detached = False
        code: int | None = None
        try:
            while code is None:
                fds = [self.sock.fileno()] + ([in_fd] if in_fd >= 0 else [])
                try:
                    ready, _, _ = select.select(fds, [], [])
                except InterruptedError:
                    continue
                if in_fd in ready:
                    data = os.read(in_fd, 65536)
                    if self.tty and DETACH_KEYS in prev + data:
                        # Docker's ctrl-p ctrl-q: leave the container running
                        self._send(p.F_STDIN, data[:max(0, (prev + data).index(DETACH_KEYS) - len(prev))])
                        detached = True
                        break
                    prev = data[-1:]
                    if data:
                        self._send(p.F_STDIN, data)
                    else:
                        self._send(p.F_STDIN_EOF)
                        in_fd = -1
                if self.sock.fileno() in ready:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                    while len(buf) >= p.HEADER:
                        kind, n = buf[0], int.from_bytes(buf[1:5], "big")
                        if len(buf) < p.HEADER + n:
                            break
                        payload, buf = buf[p.HEADER:p.HEADER + n], buf[p.HEADER + n:]
                        if kind == p.F_STDOUT:
                            out.write(payload)
                            out.flush()
                        elif kind == p.F_STDERR:
                            err.write(payload)
                            err.flush()
                        elif kind == p.F_EXIT:
                            code = int(payload or b"0")
        finally:
            if old_attrs is not None:
                import termios

                termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, old_attrs)
            if not self.keep_open:
                self.sock.close()
        if detached:
            if old_attrs is not None:
                sys.stderr.write("\r\nread escape sequence\r\n")
            return 0
        if code is None:
            raise DockyardError("lost the connection to the container's monitor")
        return code


# ----------------------------------------------------------------------------------------------
def _parse_time_arg(value: str, flag: str) -> float:
    """--since/--until: RFC 3339 time, Unix timestamp, or a Go duration before now."""
    from dockyard.engine.containers import parse_duration

    v = value.strip()
    try:
        return float(v)
    except ValueError:
        pass
    if v[:1].isdigit() and ("T" in v or "-" in v[4:5]):
        return _parse_rfc3339(v)
    return time_now() - parse_duration(v, flag) / 1e9


def time_now() -> float:
    import time

    return time.time()


def _parse_rfc3339(s: str) -> float:
    import calendar
    import re

    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d+))?)?)?(Z|[+-]\d\d:?\d\d)?$", s)
    if not m:
        raise InvalidArgument(f"invalid timestamp {s!r}")
    y, mo, d, h, mi, sec, frac, tz = m.groups()
    ts = calendar.timegm((int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0), 0, 0, 0))
    if frac:
        ts += float("0." + frac)
    if tz and tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        hh, mm = int(tz[1:3]), int(tz[-2:])
        ts -= sign * (hh * 3600 + mm * 60)
    return ts


def show_logs(svc: Any, ref: str, *, follow: bool, tail: int | None, since: str | None, until: str | None,
              timestamps: bool) -> None:
    from dockyard.engine import logs

    t_since = _parse_time_arg(since, "--since") if since else None
    t_until = _parse_time_arg(until, "--until") if until else None
    for e in logs.read(svc.engine, ref, follow=follow, tail=tail):
        if t_since is not None or t_until is not None:
            t = _parse_rfc3339(e.time) if e.time else 0.0
            if t_since is not None and t < t_since:
                continue
            if t_until is not None and t > t_until:
                continue
        dest = sys.stderr.buffer if e.stream == "stderr" else sys.stdout.buffer
        if timestamps:
            dest.write(e.time.encode() + b" ")
        dest.write(e.data)
        dest.flush()


# ----------------------------------------------------------------------------------------------
def _bytes_binary(n: float) -> str:
    """go-units BytesSize: binary units, as docker stats prints memory."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024.0
        i += 1
    return f"{n:.4g}{units[i]}"


STATS_HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
                 "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O", "BlockIO": "BLOCK I/O",
                 "PIDs": "PIDS"}
STATS_DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"


def show_stats(svc: Any, refs: list[str], *, all_: bool, stream: bool, no_trunc: bool, fmt: str | None) -> None:
    import time

    from dockyard.engine.containers import _human_size

    ids = [svc.resolve(r) for r in refs] if refs else [r["Id"] for r in svc.list_containers(all_=all_)]
    prev = {cid: (svc.stats(cid), time.monotonic()) for cid in ids}
    first = True
    while True:
        time.sleep(0.5 if first else 1.0)
        first = False
        rows = []
        for cid in ids:
            try:
                s = svc.stats(cid)
            except NotFound:
                continue
            now = time.monotonic()
            p, t0 = prev.get(cid, (s, now))
            prev[cid] = (s, now)
            wall = max(now - t0, 1e-6)
            cpu = max(0.0, (s["cpu_ns"] - p["cpu_ns"]) / 1e9 / wall * 100) if s["running"] else 0.0
            limit = s["mem_limit"] or 1
            rows.append({
                "ID": cid if no_trunc else cid[:12], "Container": cid if no_trunc else cid[:12], "Name": s["Name"],
                "CPUPerc": f"{cpu:.2f}%",
                "MemUsage": f"{_bytes_binary(s['mem_usage'])} / {_bytes_binary(s['mem_limit'])}",
                "MemPerc": f"{s['mem_usage'] * 100.0 / limit:.2f}%",
                "NetIO": f"{_human_size(s['net_rx'])} / {_human_size(s['net_tx'])}",
                "BlockIO": f"{_human_size(s['blk_read'])} / {_human_size(s['blk_write'])}",
                "PIDs": str(s["pids"]),
            })
        if stream:
            click.echo("\033[2J\033[H", nl=False)
        from dockyard.formatting import render_list

        click.echo(render_list(fmt, rows, STATS_DEFAULT, STATS_HEADERS), nl=False)
        if not stream:
            return
