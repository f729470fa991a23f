from __future__ import annotations

import click

from dockyard.cli import LazyGroup
from dockyard.cli.output import print_format


@click.command(help="Show the dockyard version information.")
@click.option("-f", "--format", "fmt", help="Format the output as json or a Go template.")
@click.pass_obj
def version(state, fmt):
    v = state.engine.system.version()
    if fmt:
        print_format({"Client": v, "Server": v, **v}, fmt)
        return
    for k in ("Version", "ApiVersion", "PythonVersion", "Os", "Arch", "KernelVersion"):
        click.echo(f"{k + ':':<15}{v[k]}")


@click.command(help="Display system-wide information: host, cgroups, storage, runtimes.")
@click.option("-f", "--format", "fmt", help="Format the output as json or a Go template.")
@click.pass_obj
def info(state, fmt):
    print_format(state.engine.system.info(), fmt, default="yaml")


@click.group(cls=LazyGroup, help="Manage dockyard itself.")
def system():
    pass


system.add_command(info)
