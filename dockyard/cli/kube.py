"""`kube play|down|generate`, and Podman's older spellings `play kube` and `generate kube`."""

from __future__ import annotations

from typing import Any

import click

from dockyard.cli import LazyGroup


def _kube(state: Any) -> Any:
    from dockyard.kube.play import KubeService

    return KubeService(state.engine)


def _print_down(stopped: list[str], removed: list[str]) -> None:
    click.echo("Pods stopped:")
    for pid in stopped:
        click.echo(pid)
    click.echo("Pods removed:")
    for pid in removed:
        click.echo(pid)


@click.command("play", help="Create containers and pods from a Kubernetes YAML file (Pod, Deployment).")
@click.option("--replace", is_flag=True, help="Replace the pods the file describes if they exist.")
@click.option("--down", is_flag=True, help="Stop and remove the pods the file describes.")
@click.option("--start/--no-start", default=True, show_default=True, help="Start the pods after creating them.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
def play_cmd(state, replace, down, start, file):
    svc = _kube(state)
    if down:
        _print_down(*svc.down(file))
        return
    report, warnings = svc.play(file, replace=replace, start=start)
    for w in warnings:
        click.echo(f"WARNING: {w}", err=True)
    for vol in report.volumes:
        click.echo("Volume:")
        click.echo(vol)
        click.echo()
    for pod_id, ctrs in report.pods:
        click.echo("Pod:")
        click.echo(pod_id)
        if ctrs:
            click.echo("Container:" if len(ctrs) == 1 else "Containers:")
            for cid in ctrs:
                click.echo(cid)
        click.echo()


@click.command("down", help="Stop and remove the pods a Kubernetes YAML file describes.")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_obj
def down_cmd(state, file):
    _print_down(*_kube(state).down(file))


@click.command("generate", help="Generate Kubernetes YAML from containers or pods.")
@click.option("-f", "--filename", help="Write the YAML to this file instead of standard output.")
@click.option("-s", "--service", is_flag=True, help="Also generate a Service for the published ports.")
@click.option("-t", "--type", "kind", type=click.Choice(["pod", "deployment"]), default="pod", show_default=True,
              help="The kind of object to generate.")
@click.option("-r", "--replicas", type=int, default=1, show_default=True, help="Replicas of a deployment.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def generate_cmd(state, filename, service, kind, replicas, names):
    from dockyard.kube.generate import generate

    text = generate(state.engine, list(names), kind=kind, service=service, replicas=replicas)
    if filename:
        from dockyard.store.blobs import atomic_write

        atomic_write(filename, text.encode(), mode=0o644)
    else:
        click.echo(text, nl=False)


@click.group(cls=LazyGroup, help="Play containers, pods or volumes from a structured file (Kubernetes YAML).")
def kube():
    pass


kube.add_command(play_cmd, "play")
kube.add_command(down_cmd, "down")
kube.add_command(generate_cmd, "generate")


@click.group(cls=LazyGroup, help="Play a structured file: `play kube FILE` (Podman 3's spelling of `kube play`).")
def play():
    pass


play.add_command(play_cmd, "kube")


@click.group(cls=LazyGroup, help="Generate structured data: `generate kube NAME...`.")
def generate():
    pass


generate.add_command(generate_cmd, "kube")
