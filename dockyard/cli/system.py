from __future__ import annotations

import click

from dockyard.cli import LazyGroup
from dockyard.cli._common import parse_filters
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


def _reclaimable(n: int, total: int) -> str:
    from dockyard.formatting.containers import human_size

    return f"{human_size(n, 4)} ({n * 100 // total}%)" if total > 0 else human_size(n, 4)


@click.command("df", help="Show dockyard disk usage.")
@click.option("--format", "fmt", help="Format the output with a Go template, table or json.")
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage.")
@click.pass_obj
def df(state, fmt, verbose):
    from dockyard.cli.output import print_rows
    from dockyard.formatting.containers import human_size
    from dockyard.storage.df import disk_usage, summary

    du = disk_usage(state.engine)
    if verbose and not fmt:
        _df_verbose(du)
        return
    if fmt == "json" and verbose:
        import json

        click.echo(json.dumps(du))
        return
    rows = [{"Type": r["Type"], "TotalCount": str(r["TotalCount"]), "Active": str(r["Active"]),
             "Size": human_size(r["Size"], 4), "Reclaimable": _reclaimable(r["Reclaimable"], r["Size"])}
            for r in summary(du)]
    print_rows(rows, fmt, "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
               {"TotalCount": "TOTAL"})


def _df_verbose(du):
    import time

    from dockyard.engine.images import familiar
    from dockyard.formatting import render_list
    from dockyard.formatting.containers import human_duration, human_size

    now = time.time()
    rows = []
    for i in sorted(du["Images"], key=lambda x: x["Created"], reverse=True):
        for t in [familiar(t) for t in i["RepoTags"]] or ["<none>:<none>"]:
            repo, _, tag = t.rpartition(":")
            rows.append({"Repository": repo, "Tag": tag, "ID": i["Id"].split(":", 1)[-1][:12],
                         "CreatedSince": human_duration(now - i["Created"]) + " ago",
                         "Size": human_size(i["Size"], 4), "SharedSize": human_size(i["SharedSize"], 4),
                         "UniqueSize": human_size(i["Size"] - i["SharedSize"], 4), "Containers": str(i["Containers"])})
    click.echo("Images space usage:\n")
    click.echo(render_list("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
                           "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", rows, "",
                           {"ID": "IMAGE ID", "CreatedSince": "CREATED", "SharedSize": "SHARED SIZE",
                            "UniqueSize": "UNIQUE SIZE"}), nl=False)
    rows = []
    for c in du["Containers"]:
        if c["State"] == "running":
            status = "Up " + human_duration(now - c["StartedAt"])
        elif c["State"] == "created":
            status = "Created"
        else:
            status = f"Exited ({c['ExitCode']}) {human_duration(now - c['FinishedAt'])} ago"
        cmd = c["Command"]
        rows.append({"ID": c["Id"][:12], "Image": c["Image"], "Command": '"' + (cmd[:17] + "…" if len(cmd) > 20
                                                                             else cmd) + '"',
                     "LocalVolumes": str(len(c["Mounts"])), "Size": human_size(c["SizeRw"], 4),
                     "RunningFor": human_duration(now - c["Created"]) + " ago", "Status": status,
                     "Names": c["Names"][0].lstrip("/")})
    click.echo("\nContainers space usage:\n")
    click.echo(render_list("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t"
                           "{{.RunningFor}}\t{{.Status}}\t{{.Names}}", rows, "",
                           {"ID": "CONTAINER ID", "LocalVolumes": "LOCAL VOLUMES", "RunningFor": "CREATED"}), nl=False)
    rows = [{"Name": v["Name"], "Links": str(v["UsageData"]["RefCount"]), "Size": human_size(v["UsageData"]["Size"], 4)}
            for v in du["Volumes"]]
    click.echo("\nLocal Volumes space usage:\n")
    click.echo(render_list("table {{.Name}}\t{{.Links}}\t{{.Size}}", rows, "", {"Name": "VOLUME NAME"}), nl=False)
    click.echo("\nBuild cache usage: 0B\n")
    click.echo(render_list("table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t"
                           "{{.UsageCount}}\t{{.Shared}}", [], "",
                           {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "CreatedSince": "CREATED",
                            "LastUsedSince": "LAST USED", "UsageCount": "USAGE"}), nl=False)


@click.command("prune", help="Remove unused data: stopped containers, unused networks, dangling images.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("--volumes", is_flag=True, help="Prune volumes too.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (label=, label!=, until=).")
@click.pass_obj
def prune(state, all_, volumes, force, filters):
    from dockyard.formatting.containers import human_size
    from dockyard.storage.df import prune_system

    flt = parse_filters(filters)
    if not force:
        lines = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            lines.append("all volumes not used by at least one container")
        lines.append("all images without at least one container associated to them" if all_
                     else "all dangling images")
        lines.append("unused build cache")
        click.echo("WARNING! This will remove:\n" + "".join(f"  - {x}\n" for x in lines))
        if not click.confirm("Are you sure you want to continue?", default=False):
            return
    report = prune_system(state.engine, all_images=all_, volumes=volumes, filters=flt)
    for title, key in (("Deleted Containers:", "Containers"), ("Deleted Networks:", "Networks"),
                       ("Deleted Volumes:", "Volumes")):
        if report[key]:
            click.echo(title)
            for x in report[key]:
                click.echo(x)
            click.echo()
    if report["Images"]:
        click.echo("Deleted Images:")
        for entry in report["Images"]:
            for k, v in entry.items():
                click.echo(f"{k.lower()}: {v}")
        click.echo()
    click.echo(f"Total reclaimed space: {human_size(report['SpaceReclaimed'], 4)}")


system.add_command(df)
system.add_command(prune)


@click.command("service", help="Serve the Docker Engine API on a unix socket (default unix:///run/dockyard/dockyard.sock "
                               "for root, $XDG_RUNTIME_DIR/dockyard/dockyard.sock rootless).")
@click.option("-t", "--time", "idle", type=int, default=5, show_default=True, metavar="SECONDS",
              help="Exit after this many seconds without a request in progress (0: never).")
@click.argument("uri", required=False)
@click.pass_obj
def service(state, idle, uri):
    from dockyard.api.server import default_uri, serve
    from dockyard.errors import InvalidArgument

    if idle < 0:
        raise InvalidArgument("--time must not be negative")
    serve(uri or default_uri(), idle, state.root, state.runroot)


system.add_command(service)
