"""`volume` commands: create, ls, inspect, rm, prune (Docker's flags and output)."""

from __future__ import annotations

import sys

import click

from dockyard.cli import LazyGroup
from dockyard.cli._common import parse_filters, parse_pairs
from dockyard.cli.output import print_format, print_json, print_rows
from dockyard.errors import DockyardError


@click.group(cls=LazyGroup, help="Manage volumes.")
def volume():
    pass


@volume.command("create", help="Create a volume.")
@click.option("-d", "--driver", default="local", show_default=True, help="Specify volume driver name.")
@click.option("--label", multiple=True, help="Set metadata for a volume (KEY=VALUE).")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options (type=, o=, device=).")
@click.argument("name", required=False)
@click.pass_obj
def create(state, driver, label, opt, name):
    v = state.engine.volumes.create(name, driver=driver, labels=parse_pairs(label, "label"), options=parse_pairs(opt, "option"))
    click.echo(v["Name"])


@volume.command("ls", help="List volumes.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (dangling, driver, label, name).")
@click.option("--format", "fmt", help="Format the output with a Go template, table or json.")
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names.")
@click.pass_obj
def ls(state, filters, fmt, quiet):
    vols = state.engine.volumes.list_volumes(parse_filters(filters))
    if quiet:
        for v in vols:
            click.echo(v["Name"])
        return
    rows = []
    for v in vols:
        labels = v["Labels"] or {}
        rows.append({"Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"], "Mountpoint": v["Mountpoint"],
                     "CreatedAt": v["CreatedAt"], "Labels": ",".join(f"{k}={val}" for k, val in labels.items()),
                     "Links": "N/A", "Size": "N/A"})
    print_rows(rows, fmt, "table {{.Driver}}\t{{.Name}}", {"Name": "VOLUME NAME"})


volume.add_command(ls, "list")


@volume.command("inspect", help="Display detailed information on one or more volumes.")
@click.option("-f", "--format", "fmt", help="Format the output with a Go template or json.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(state, fmt, names):
    out, failed = [], False
    for n in names:
        try:
            out.append(state.engine.volumes.inspect(n))
        except DockyardError as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
    if fmt and fmt != "json":
        for v in out:
            print_format(v, fmt)
            click.echo()
    else:
        print_json(out)
    if failed:
        sys.exit(1)


@volume.command("rm", help="Remove one or more volumes.")
@click.option("-f", "--force", is_flag=True, help="Remove containers using the volume too; ignore missing ones.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(state, force, names):
    failed = False
    for n in names:
        try:
            state.engine.volumes.remove(n, force=force)
            click.echo(n)
        except DockyardError as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


volume.add_command(rm, "remove")


@volume.command("prune", help="Remove unused volumes.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused volumes (the default here).")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Filter (label=KEY[=VALUE], label!=..., until=...).")
@click.pass_obj
def prune(state, all_, force, filters):
    flt = parse_filters(filters)
    if not force:
        click.echo("WARNING! This will remove all local volumes not used by at least one container.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    removed, space = state.engine.volumes.prune(flt)
    if removed:
        click.echo("Deleted Volumes:")
        for n in removed:
            click.echo(n)
        click.echo()
    from dockyard.formatting.containers import human_size

    click.echo(f"Total reclaimed space: {human_size(space, 4)}")
