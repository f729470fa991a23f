"""`network` commands: create, ls, inspect, rm, prune, connect, disconnect (Docker's flags and output)."""

from __future__ import annotations

import click

from dockyard.cli import LazyGroup
from dockyard.cli._common import parse_filters, parse_pairs
from dockyard.cli.output import print_inspect, print_rows
from dockyard.errors import DockyardError


def _row(n: dict, trunc: bool) -> dict:
    return {
        "ID": n["Id"][:12] if trunc else n["Id"], "Name": n["Name"], "Driver": n["Driver"], "Scope": n["Scope"],
        "IPv6": n["EnableIPv6"], "Internal": n["Internal"], "CreatedAt": n["Created"],
        "Labels": ",".join(f"{k}={v}" for k, v in n["Labels"].items()),
    }


@click.group(cls=LazyGroup, help="Manage networks.")
def network():
    pass


@network.command("create", help="Create a network.")
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the network.")
@click.option("--subnet", help="Subnet in CIDR format, e.g. 10.5.0.0/16.")
@click.option("--gateway", help="IPv4 gateway for the subnet.")
@click.option("--ip-range", help="Allocate container addresses from a sub-range (CIDR).")
@click.option("--internal", is_flag=True, help="Restrict external access to the network.")
@click.option("--label", multiple=True, help="Set metadata on the network (KEY=VALUE).")
@click.option("-o", "--opt", multiple=True, help="Driver options (mtu=, com.docker.network.bridge.name=).")
@click.argument("name")
@click.pass_obj
def create(state, driver, subnet, gateway, ip_range, internal, label, opt, name):
    n = state.engine.networks.create(name, driver=driver, subnet=subnet, gateway=gateway, ip_range=ip_range,
                                     internal=internal, labels=parse_pairs(label, "label"),
                                     options=parse_pairs(opt, "option"))
    click.echo(n["Id"])


@network.command("ls", help="List networks.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output (driver, id, label, name, scope, type, dangling).")
@click.option("--format", "fmt", help="Format the output with a Go template, or json.")
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs.")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output.")
@click.pass_obj
def ls(state, filters, fmt, quiet, no_trunc):
    nets = state.engine.networks.list(parse_filters(filters, label_negation=False))
    rows = [_row(n, not no_trunc) for n in nets]
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    print_rows(rows, fmt, "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", {"ID": "NETWORK ID"})


network.add_command(ls, "list")


@network.command("inspect", help="Display detailed information on one or more networks.")
@click.option("-f", "--format", "fmt", help="Format the output with a Go template, or json.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def inspect(state, fmt, names):
    out = []
    err = None
    for name in names:
        try:
            out.append(state.engine.networks.inspect(name))
        except DockyardError as e:
            err = e
            click.echo(f"Error: {e}", err=True)
    print_inspect(out, fmt)
    if err is not None:
        raise SystemExit(err.exit_code)


@network.command("rm", help="Remove one or more networks.")
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist.")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def rm(state, force, names):
    from dockyard.errors import NotFound

    failed = None
    for name in names:
        try:
            click.echo(state.engine.networks.remove(name))
        except NotFound as e:
            if not force:
                failed = e
                click.echo(f"Error: {e}", err=True)
        except DockyardError as e:
            failed = e
            click.echo(f"Error: {e}", err=True)
    if failed is not None:
        raise SystemExit(failed.exit_code)


network.add_command(rm, "remove")


@network.command("prune", help="Remove all unused networks.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Filter (label=KEY[=VALUE]).")
@click.pass_obj
def prune(state, force, filters):
    if not force:
        click.echo("WARNING! This will remove all custom networks not used by at least one container.")
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    removed = state.engine.networks.prune(parse_filters(filters, label_negation=False))
    if removed:
        click.echo("Deleted Networks:")
        for name in removed:
            click.echo(name)


@network.command("connect", help="Connect a container to a network.")
@click.option("--alias", multiple=True, help="Add a network-scoped alias for the container.")
@click.option("--ip", help="IPv4 address for the container on this network.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.pass_obj
def connect(state, alias, ip, network_name, container):
    state.engine.networks.connect(network_name, container, aliases=list(alias), ip=ip)


@network.command("disconnect", help="Disconnect a container from a network.")
@click.option("-f", "--force", is_flag=True, help="Do not error if the container is not connected.")
@click.argument("network_name", metavar="NETWORK")
@click.argument("container")
@click.pass_obj
def disconnect(state, force, network_name, container):
    state.engine.networks.disconnect(network_name, container, force=force)

