"""`dockyard image ...` and its Docker top-level aliases (images, rmi, tag, save, load, import, history)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from dockyard.cli import LazyGroup

SHA_LEN = len("sha256:")


# -- presentation helpers (Docker's go-units and tabwriter behaviour) ---------------------------------
def human_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3): decimal units, 3 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    while size >= 1000.0 and i < len(units) - 1:
        size /= 1000.0
        i += 1
    return f"{size:.3g}{units[i]}"


def human_duration(seconds: float) -> str:
    """go-units HumanDuration."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(round(seconds / 3600))
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(ts: float) -> str:
    if ts <= 0:
        return "N/A"
    return human_duration(time.time() - ts) + " ago"


def table(rows: list[list[str]]) -> str:
    """Docker's tabwriter (minwidth 10, padding 3); the last column is not padded."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + 3, 10)
    out = []
    for r in rows:
        line = "".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])) + (r[-1] if r else "")
        out.append(line.rstrip() if not r[-1] else line)
    return "\n".join(out)


def _header_for(field: str) -> str:
    special = {"ID": "IMAGE ID", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
               "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}
    return special.get(field, field.upper())


def print_rows(rows: list[dict[str, Any]], fmt: str) -> None:
    """--format for list commands: a Go template per row, `table TEMPLATE` with headers, or json."""
    import re

    from dockyard.formatting import render

    if fmt == "json":
        # Docker prints one JSON object per line.
        for r in rows:
            click.echo(json.dumps(r))
        return
    if fmt.startswith("table"):
        body = fmt[len("table"):].strip()
        header = re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: _header_for(m.group(1)), body)
        header = header.replace("\\t", "\t")
        body = body.replace("\\t", "\t")
        lines = [header.split("\t")] + [render(body, r).rstrip("\n").split("\t") for r in rows]
        click.echo(table(lines))
        return
    for r in rows:
        click.echo(render(fmt.replace("\\t", "\t").replace("\\n", "\n"), r).rstrip("\n"))


def _os_errors(f: Any) -> Any:
    """Report file-system failures (no space, unwritable -o path...) as one error line, not a traceback."""
    import functools

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from dockyard.errors import DockyardError

        try:
            return f(*args, **kwargs)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise DockyardError(f"{where}{(e.strerror or str(e)).lower()}") from None
    return wrapper


def _engine(state: Any) -> Any:
    return state.engine


def _split_created(created: str) -> float:
    from dockyard.engine.images import parse_created

    return parse_created(created)


# -- images -------------------------------------------------------------------------------------------
@click.command("ls", help="List images.")
@click.argument("repository", required=False)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all images (default hides intermediate images).")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("-f", "--filter", "filters", multiple=True,
              help="Filter output: dangling=, label=, reference=, before=, since=.")
@click.option("--format", "fmt", help="Format output with a Go template, 'table TEMPLATE' or json.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.pass_obj
def image_ls(state, repository, all_, digests, filters, fmt, no_trunc, quiet):
    from dockyard.engine.images import familiar, repository_matches

    images = _engine(state).images.list_images(all_images=all_, filters=list(filters))
    if repository:
        images = [i for i in images if any(repository_matches(repository, t) for t in i.repo_tags)]
    images.sort(key=lambda i: (_split_created(i.created), i.added), reverse=True)
    rows: list[dict[str, Any]] = []

    for img in images:
        iid = img.id if no_trunc else img.short_id
        created = _split_created(img.created)
        base = {"ID": iid, "CreatedSince": since(created),
                "CreatedAt": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(created)),
                "Size": human_size(img.size), "VirtualSize": human_size(img.size),
                "SharedSize": "N/A", "UniqueSize": "N/A", "Containers": "N/A", "Digest": "<none>"}
        digest_by_repo = {d.split("@")[0]: d.split("@")[1] for d in img.repo_digests}
        tags = img.repo_tags
        if repository:
            tags = [t for t in tags if repository_matches(repository, t)]
        if not tags:
            row = dict(base, Repository="<none>", Tag="<none>")
            if img.repo_digests:
                row["Repository"] = familiar(img.repo_digests[0]).split("@")[0]
                row["Digest"] = img.repo_digests[0].split("@")[1]
            rows.append(row)
        for t in sorted(tags):
            fam = familiar(t)
            repo, _, tag = fam.rpartition(":")
            rows.append(dict(base, Repository=repo, Tag=tag,
                             Digest=digest_by_repo.get(t.rpartition(":")[0], "<none>")))
    if quiet:
        seen: list[str] = []
        for r in rows:
            if r["ID"] not in seen:
                seen.append(r["ID"])
        if fmt:
            print_rows([r for r in rows if r["ID"] in seen], fmt)
        else:
            for i in seen:
                click.echo(i)
        return
    if fmt:
        print_rows(rows, fmt)
        return
    cols = ["Repository", "Tag"] + (["Digest"] if digests else []) + ["ID", "CreatedSince", "Size"]
    header = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    click.echo(table([header] + [[r[c] for c in cols] for r in rows]))


@click.command("inspect", help="Display detailed information on one or more images.")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--format", "fmt", help="Format the output using a Go template.")
@click.pass_obj
def image_inspect(state, images, fmt):
    from dockyard.errors import NotFound

    svc = _engine(state).images
    out, errors = [], []
    for name in images:
        try:
            out.append(svc.inspect(name))
        except NotFound as e:
            errors.append(str(e))
    if fmt and fmt != "json":
        from dockyard.formatting import render

        for obj in out:
            click.echo(render(fmt, obj).rstrip("\n"))
    else:
        click.echo(json.dumps(out, indent=4))
    if errors:
        for e in errors:
            click.echo(f"Error: {e}", err=True)
        sys.exit(1)


@click.command("history", help="Show the history of an image.")
@click.argument("image")
@click.option("-H", "--human", default=True, show_default=True, help="Print sizes and dates in human readable format.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", help="Format output with a Go template, 'table TEMPLATE' or json.")
@click.pass_obj
def image_history(state, image, human, no_trunc, quiet, fmt):
    entries = _engine(state).images.history(image)
    human = str(human).lower() not in ("false", "0")
    rows = []
    for e in entries:
        iid = e["Id"]
        if iid != "<missing>" and not no_trunc:
            iid = iid[SHA_LEN:SHA_LEN + 12]
        created_by = e["CreatedBy"].replace("\t", " ")
        if not no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append({
            "ID": iid,
            "CreatedSince": since(e["Created"]) if human else
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["Created"])),
            "CreatedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e["Created"])),
            "CreatedBy": created_by,
            "Size": human_size(e["Size"]) if human else str(e["Size"]),
            "Comment": e["Comment"],
            "Tags": e["Tags"],
        })
    if quiet:
        for r in rows:
            click.echo(r["ID"])
        return
    if fmt:
        print_rows(rows, fmt)
        return
    cols = ["ID", "CreatedSince", "CreatedBy", "Size", "Comment"]
    header = ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    click.echo(table([header] + [[r[c] for c in cols] for r in rows]))


@click.command("tag", help="Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.")
@click.argument("source")
@click.argument("target")
@click.pass_obj
def image_tag(state, source, target):
    _engine(state).images.tag(source, target)


@click.command("rm", help="Remove one or more images.")
@click.argument("images", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image.")
@click.option("--no-prune", is_flag=True, help="Accepted for compatibility; untagged parents are never kept.")
@click.pass_obj
def image_rm(state, images, force, no_prune):
    from dockyard.errors import DockyardError

    svc = _engine(state).images
    failed = False
    for name in images:
        try:
            for entry in svc.remove(name, force=force):
                for k, v in entry.items():
                    click.echo(f"{k}: {v}")
        except DockyardError as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)


@click.command("prune", help="Remove unused images.")
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones.")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation.")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (label=, label!=, until=).")
@click.pass_obj
def image_prune(state, all_, force, filters):
    if not force:
        what = ("all images without at least one container associated to them" if all_
                else "all dangling images")
        click.echo(f"WARNING! This will remove {what}.")
        if not click.confirm("Are you sure you want to continue?", default=False, prompt_suffix=" "):
            return
    report, freed = _engine(state).images.prune(all_images=all_, filters=list(filters))
    if report:
        click.echo("Deleted Images:")
        for entry in report:
            for k, v in entry.items():
                click.echo(f"{k.lower()}: {v}")
        click.echo("")
    click.echo(f"Total reclaimed space: {human_size(freed)}")


@click.command("save", help="Save one or more images to a tar archive (streamed to STDOUT by default).")
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", help="Write to a file (or directory for oci-dir/docker-dir), instead of STDOUT.")
@click.option("--format", "fmt", default="docker-archive", show_default=True,
              type=click.Choice(["docker-archive", "oci-archive", "oci-dir", "docker-dir"]),
              help="Archive format.")
@click.option("-m", "--multi-image-archive", is_flag=True, help="Accepted for Podman compatibility (always on).")
@click.pass_obj
@_os_errors
def image_save(state, images, output, fmt, multi_image_archive):
    from dockyard.errors import InvalidArgument

    if output is None and fmt in ("docker-archive", "oci-archive"):
        if sys.stdout.isatty():
            raise InvalidArgument("cowardly refusing to save to a terminal. Use the -o flag or redirect")
        sys.stdout.flush()
        _engine(state).images.save(list(images), fmt, stream=sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    _engine(state).images.save(list(images), fmt, output=output)


@click.command("load", help="Load images from a tar archive or STDIN (docker-archive or OCI, gzip detected).")
@click.option("-i", "--input", "input_", help="Read from a tar archive file (or layout directory) instead of STDIN.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@click.pass_obj
@_os_errors
def image_load(state, input_, quiet):
    from dockyard.errors import InvalidArgument

    svc = _engine(state).images
    if input_:
        loaded = svc.load(path=input_)
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        loaded = svc.load(src=sys.stdin.buffer)
    if not quiet:
        for name in loaded:
            if name.startswith("sha256:"):
                click.echo(f"Loaded image ID: {name}")
            else:
                click.echo(f"Loaded image: {name}")


@click.command("import", help="Import the contents from a tarball (file, URL or - for STDIN) to create a "
                                "filesystem image.")
@click.argument("source")
@click.argument("repository", required=False)
@click.option("-c", "--change", "changes", multiple=True, help="Apply a Dockerfile instruction to the image.")
@click.option("-m", "--message", default="", help="Set the commit message for the imported image.")
@click.option("--platform", help="Set the platform (os/arch[/variant]) of the image.")
@click.pass_obj
@_os_errors
def image_import(state, source, repository, changes, message, platform):
    from dockyard.errors import NotFound

    svc = _engine(state).images
    if source == "-":
        img = svc.import_tar(sys.stdin.buffer, repository, list(changes), message, platform)
    elif "://" in source:
        img = svc.import_url(source, repository, list(changes), message, platform)
    else:
        try:
            f = open(source, "rb")
        except FileNotFoundError:
            raise NotFound(f"open {source}: no such file or directory") from None
        with f:
            img = svc.import_tar(f, repository, list(changes), message or "", platform)
    click.echo(img.id)


@click.command("bootstrap", help="Build a base image offline: busybox (host's busybox-static) or "
                                 "debian[:SUITE] (debootstrap minbase from the host's Debian mirror).")
@click.argument("what")
@click.pass_obj
@_os_errors
def image_bootstrap(state, what):
    img = _engine(state).images.bootstrap(what)
    click.echo(img.id)


@click.command("exists", help="Check if an image exists in local storage (exit 0 if it does, 1 if not).")
@click.argument("image")
@click.pass_obj
def image_exists(state, image):
    sys.exit(0 if _engine(state).images.exists(image) else 1)


@click.command("untag", help="Remove one or more names from a locally-stored image (all names if none given).")
@click.argument("image")
@click.argument("names", nargs=-1)
@click.pass_obj
def image_untag(state, image, names):
    svc = _engine(state).images
    svc.untag(image, list(names) or svc.get(image).repo_tags)


IMAGE_LAZY = {
    "pull": "dockyard.cli.pull:pull",
    "push": "dockyard.cli.pull:push",
}


@click.group("image", cls=LazyGroup, lazy=IMAGE_LAZY, help="Manage images.")
def image():
    pass


for _cmd in (image_ls, image_inspect, image_history, image_tag, image_rm, image_prune, image_save,
             image_load, image_import, image_bootstrap, image_exists, image_untag):
    image.add_command(_cmd)
image.add_command(image_ls, "list")
image.add_command(image_rm, "remove")

# Top-level aliases Docker accepts.
images = image_ls
rmi = image_rm
