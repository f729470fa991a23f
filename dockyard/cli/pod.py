"""`pod` commands: create, ps, inspect, start, stop, restart, kill, rm, top (Podman's flags and output)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from dockyard.cli import LazyGroup
from dockyard.cli._common import parse_pairs
from dockyard.cli.output import print_inspect, print_rows
from dockyard.errors import DockyardError


def _pods(state: Any) -> Any:
    from dockyard.engine.pods import PodService

    return PodService(state.engine)


@click.group(cls=LazyGroup, help="Manage pods.")
def pod():
    pass


@pod.command("create", help="Create a new empty pod.")
@click.option("--name", help="Assign a name to the pod.")
@click.option("-p", "--publish", multiple=True, help="Publish a port or a range of ports from the pod to the host.")
@click.option("-l", "--label", multiple=True, help="Set metadata on a pod (KEY=VALUE).")
@click.option("--hostname", help="Set the pod's hostname.")
@click.option("--share", default="ipc,net,uts", show_default=True,
              help="Namespaces to share among the pod's containers (ipc, net, uts).")
@click.option("--infra/--no-infra", default=True, help="Create an infra container to hold the namespaces.")
@click.option("--infra-image", help="Image of the infra container (default: localhost/dockyard-pause).")
@click.option("--network", "--net", "network", multiple=True, help="Connect the pod to a network.")
@click.argument("name_arg", required=False, metavar="[NAME]")
@click.pass_obj
def create(state, name, publish, label, hostname, share, infra, infra_image, network, name_arg):
    share_list = [s.strip() for s in share.split(",") if s.strip()] if share != "none" else []
    pod_id = _pods(state).create(name or name_arg, publish=list(publish), labels=parse_pairs(label, "label"),
                                 hostname=hostname, share=share_list, network=list(network), infra=infra,
                                 infra_image=infra_image)
    click.echo(pod_id)


def _row(p: dict[str, Any], no_trunc: bool) -> dict[str, Any]:
    from dockyard.engine.images import parse_created
    from dockyard.formatting.containers import human_duration

    created = parse_created(p["Created"])
    ago = human_duration(time.time() - created) + " ago" if created else p["Created"]
    trunc = (lambda s: s) if no_trunc else (lambda s: s[:12])
    return {"Id": trunc(p["Id"]), "ID": trunc(p["Id"]), "Name": p["Name"], "Status": p["State"], "Created": ago,
            "InfraId": trunc(p["InfraContainerID"]), "InfraID": trunc(p["InfraContainerID"]),
            "NumberOfContainers": p["NumContainers"], "Labels": p["Labels"],
            "Containers": [{"Id": c["Id"], "Names": c["Name"], "Status": c["State"]} for c in p["Containers"]]}


@pod.command("ps", help="List pods.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (name=, id=, label=, status=).")
@click.option("--format", "fmt", help="Format output using a Go template, 'table TEMPLATE' or json.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the pod IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate pod and infra IDs.")
@click.pass_obj
def ps(state, filters, fmt, quiet, no_trunc):
    pods = _pods(state).list_pods(list(filters))
    if quiet:
        for p in pods:
            click.echo(p["Id"] if no_trunc else p["Id"][:12])
        return
    rows = [_row(p, no_trunc or fmt == "json") for p in pods]
    print_rows(rows, fmt, "table {{.Id}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraId}}\t{{.NumberOfContainers}}",
               {"Id": "POD ID", "InfraId": "INFRA ID", "NumberOfContainers": "# OF CONTAINERS"})


pod.add_command(ps, "ls")
pod.add_command(ps, "list")


@pod.command("inspect", help="Display detailed information on one or more pods.")
@click.option("-f", "--format", "fmt", help="Format the output using a Go template or json.")
@click.argument("pods", nargs=-1, required=True)
@click.pass_obj
def inspect(state, fmt, pods):
    out, failed = [], False
    svc = _pods(state)
    for ref in pods:
        try:
            out.append(svc.inspect(ref))
        except DockyardError as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
    if out:
        print_inspect(out, fmt)
    if failed:
        sys.exit(125)


def _refs(state: Any, pods: tuple[str, ...], all_: bool) -> tuple[str, ...]:
    if all_ and pods:
        raise click.UsageError("--all and pod names cannot be used together")
    if all_:
        return tuple(p["Id"] for p in _pods(state).list_pods())
    if not pods:
        raise click.UsageError("requires at least 1 pod name or --all")
    return pods


def _each(refs: tuple[str, ...], fn: Any) -> None:
    failed = False
    for ref in refs:
        try:
            click.echo(fn(ref))
        except DockyardError as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
    if failed:
        sys.exit(125)


@pod.command("start", help="Start one or more pods.")
@click.argument("pods", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Act on all pods.")
@click.pass_obj
def start(state, pods, all_):
    _each(_refs(state, pods, all_), _pods(state).start)


@pod.command("stop", help="Stop one or more pods.")
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the containers.")
@click.argument("pods", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Act on all pods.")
@click.pass_obj
def stop(state, timeout, pods, all_):
    svc = _pods(state)
    _each(_refs(state, pods, all_), lambda ref: svc.stop(ref, timeout))


@pod.command("restart", help="Restart one or more pods.")
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the containers.")
@click.argument("pods", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Act on all pods.")
@click.pass_obj
def restart(state, timeout, pods, all_):
    svc = _pods(state)
    _each(_refs(state, pods, all_), lambda ref: svc.restart(ref, timeout))


@pod.command("kill", help="Send a signal to the containers of one or more pods.")
@click.option("-s", "--signal", default="KILL", show_default=True, help="Signal to send.")
@click.argument("pods", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Act on all pods.")
@click.pass_obj
def kill(state, signal, pods, all_):
    svc = _pods(state)
    _each(_refs(state, pods, all_), lambda ref: svc.kill(ref, signal))


@pod.command("rm", help="Remove one or more pods and their containers.")
@click.option("-f", "--force", is_flag=True, help="Stop and remove running pods.")
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the containers.")
@click.option("-i", "--ignore", is_flag=True, help="Ignore pods that do not exist.")
@click.argument("pods", nargs=-1)
@click.option("-a", "--all", "all_", is_flag=True, help="Act on all pods.")
@click.pass_obj
def rm(state, force, timeout, ignore, pods, all_):
    svc = _pods(state)
    pods = _refs(state, pods, all_)
    if ignore:
        pods = tuple(p for p in pods if svc.exists(p))
    _each(pods, lambda ref: svc.remove(ref, force=force, timeout=timeout))


@pod.command("exists", help="Exit 0 if the pod exists, 1 if not.")
@click.argument("pod_ref", metavar="POD")
@click.pass_obj
def exists(state, pod_ref):
    sys.exit(0 if _pods(state).exists(pod_ref) else 1)


@pod.command("prune", help="Remove all stopped pods and their containers.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.pass_obj
def prune(state, force):
    if not force and sys.stdin.isatty():
        click.confirm("WARNING! This will remove all stopped/exited pods. Are you sure you want to continue?",
                      abort=True)
    for pod_id in _pods(state).prune():
        click.echo(pod_id)


@pod.command("top", context_settings={"ignore_unknown_options": True},
             help="Display the running processes of the containers in a pod.")
@click.argument("pod_ref", metavar="POD")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def top(state, pod_ref, ps_args):
    from dockyard.cli.container import table

    header, rows = _pods(state).top(pod_ref, list(ps_args))
    click.echo(table([header] + rows))
