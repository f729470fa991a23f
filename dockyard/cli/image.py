"""`dockyard image ...` and its Docker top-level aliases (images, rmi, tag, save, load, import, history)."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from dockyard.cli import LazyGroup
from dockyard.cli.output import print_rows

# Docker's list formats (cli/command/formatter/image.go, cli/command/image/formatter_history.go).
IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = ("table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t"
                        "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}")
IMAGES_RAW = "repository: {{ .Repository }}\ntag: {{.Tag}}\n{digest}image_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n"
IMAGES_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                  "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE", "Containers": "CONTAINERS",
                  "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE", "UniqueSize": "UNIQUE SIZE"}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_TABLE_NON_HUMAN = "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}
QUIET = "{{.ID}}"
# Before this, history dates are not shown in human units (Docker's formatter does the same).
_HISTORY_EPOCH = 946684800  # 2000-01-01T00:00:00Z


def _go_time(ts: int) -> str:
    """Go's time.Unix(ts, 0).String(), in the local zone: ``2024-01-02 03:04:05 +0000 UTC``."""
    from datetime import datetime

    return datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M:%S %z %Z")


def _go_rfc3339(ts: int) -> str:
    """Go's time.Unix(ts, 0).Format(time.RFC3339), in the local zone (``Z`` for UTC)."""
    from datetime import datetime

    t = datetime.fromtimestamp(ts).astimezone()
    off = t.strftime("%z")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ("Z" if off in ("+0000", "-0000") else f"{off[:3]}:{off[3:]}")


def _marshal(row: Any, fields: tuple[str, ...]) -> dict[str, str]:
    """What Docker's row contexts marshal to: their fields by name (templates' ``json .``)."""
    return {f: getattr(row, f)() for f in fields}


class ImageRow:
    """One ``images`` row, Docker's imageContext: its methods are the template's fields."""

    go_type = "*formatter.imageContext"
    _JSON = ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size", "Tag",
             "UniqueSize", "VirtualSize")

    def __init__(self, img: Any, repo: str, tag: str, digest: str, trunc: bool, now: float) -> None:
        from dockyard.engine.images import parse_created

        self._img, self._repo, self._tag, self._digest, self._trunc, self._now = img, repo, tag, digest, trunc, now
        self._created = int(parse_created(img.created))

    def __json__(self) -> dict[str, str]:
        return _marshal(self, self._JSON)

    def ID(self) -> str:  # noqa: N802 - the template's field names are Go's
        from dockyard.formatting.containers import truncate_id

        return truncate_id(self._img.id) if self._trunc else str(self._img.id)

    def Repository(self) -> str:  # noqa: N802
        return self._repo

    def Tag(self) -> str:  # noqa: N802
        return self._tag

    def Digest(self) -> str:  # noqa: N802
        return self._digest

    def CreatedSince(self) -> str:  # noqa: N802
        from dockyard.formatting.containers import human_duration

        return human_duration(self._now - self._created) + " ago"

    def CreatedAt(self) -> str:  # noqa: N802
        return _go_time(self._created)

    def Size(self) -> str:  # noqa: N802
        from dockyard.formatting.containers import human_size

        return human_size(self._img.size, 3)

    def VirtualSize(self) -> str:  # noqa: N802
        from dockyard.formatting.containers import human_size

        return human_size(self._img.size, 4)

    def Containers(self) -> str:  # noqa: N802
        return "N/A"  # Docker's list leaves usage counts out (-1) unless asked through the API

    def SharedSize(self) -> str:  # noqa: N802
        return "N/A"

    def UniqueSize(self) -> str:  # noqa: N802
        return "N/A"

    # Not in Docker's imageContext (there they are template errors); as on ps, volumes and networks.
    def Labels(self) -> str:  # noqa: N802
        return ",".join(sorted(f"{k}={v}" for k, v in self._img.labels.items()))

    def Label(self, name: str) -> str:  # noqa: N802
        return str(self._img.labels.get(name, ""))


def image_rows(img: Any, *, show_digests: bool, need_digest: bool, trunc: bool, now: float) -> list[ImageRow]:
    """Docker's rows for one image: one per (repository, tag), times its digests when they are
    shown; digest-only repositories get a ``<none>`` tag; an image with neither is ``<none> <none>``."""
    from dockyard.engine.images import familiar

    tags, digests = img.repo_tags, img.repo_digests
    if not tags and not digests:
        return [ImageRow(img, "<none>", "<none>", "<none>", trunc, now)]
    def by_repo(refs: list[str], split: Any) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for ref in refs:
            repo, _, rest = split(familiar(ref))
            out.setdefault(repo, []).append(rest)
        return out

    by_repo_tags = by_repo(tags, lambda r: r.rpartition(":"))
    by_repo_digests = by_repo(digests, lambda r: r.partition("@"))
    rows = []
    for repo in sorted(by_repo_tags):
        repo_digests = by_repo_digests.pop(repo, [])  # never a row of their own then
        if not need_digest:
            repo_digests = []
        for tag in sorted(by_repo_tags[repo]):
            rows += [ImageRow(img, repo, tag, dg, trunc, now) for dg in repo_digests or ["<none>"]]
    for repo in sorted(by_repo_digests):
        if show_digests:
            rows += [ImageRow(img, repo, "<none>", dg, trunc, now) for dg in by_repo_digests[repo]]
        else:
            rows.append(ImageRow(img, repo, "<none>", "", trunc, now))
    return rows


def images_format(fmt: str | None, quiet: bool, digests: bool) -> str:
    """Docker's NewImageFormat."""
    fmt = fmt or "table"
    if fmt == "table":
        return QUIET if quiet else IMAGES_TABLE_DIGESTS if digests else IMAGES_TABLE
    if fmt == "raw":
        return "image_id: {{.ID}}" if quiet else IMAGES_RAW.replace("{digest}", "digest: {{.Digest}}\n" if digests else "")
    if fmt.startswith("table") and digests and "{{.Digest}}" not in fmt:
        fmt += "\t{{.Digest}}"
    return fmt


class HistoryRow:
    """One ``history`` row, Docker's historyContext."""

    go_type = "*image.historyContext"
    _JSON = ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")

    def __init__(self, entry: dict[str, Any], trunc: bool, human: bool, now: float) -> None:
        self._e, self._trunc, self._human, self._now = entry, trunc, human, now

    def __json__(self) -> dict[str, str]:
        return _marshal(self, self._JSON)

    def ID(self) -> str:  # noqa: N802
        from dockyard.formatting.containers import truncate_id

        return truncate_id(self._e["Id"]) if self._trunc else str(self._e["Id"])

    def CreatedAt(self) -> str:  # noqa: N802
        return _go_rfc3339(int(self._e["Created"]))

    def CreatedSince(self) -> str:  # noqa: N802
        from dockyard.formatting.containers import human_duration

        if not self._human:
            return self.CreatedAt()
        if self._e["Created"] <= _HISTORY_EPOCH:
            return ""
        return human_duration(self._now - self._e["Created"]) + " ago"

    def CreatedBy(self) -> str:  # noqa: N802
        from dockyard.formatting.containers import ellipsis

        created_by = str(self._e["CreatedBy"]).replace("\t", " ")
        return ellipsis(created_by, 45) if self._trunc else created_by

    def Size(self) -> str:  # noqa: N802
        from dockyard.formatting.containers import human_size

        return human_size(self._e["Size"], 3) if self._human else str(self._e["Size"])

    def Comment(self) -> str:  # noqa: N802
        return str(self._e["Comment"])


class _GoBool(click.ParamType):
    """A bool flag value as Docker's pflag takes it: ``--human=false`` and also ``-H=false`` (click hands
    a short option's value over with the ``=``)."""

    name = "boolean"

    def convert(self, value: Any, param: Any, ctx: Any) -> bool:
        if isinstance(value, bool):
            return value
        return bool(click.BOOL.convert(str(value).removeprefix("="), param, ctx))


GO_BOOL = _GoBool()


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
    from dockyard.engine.images import parse_created

    images = _engine(state).images.list_images(all_images=all_, filters=list(filters), repository=repository)
    images.sort(key=lambda i: (parse_created(i.created), i.added), reverse=True)
    template = images_format(fmt, quiet, digests)
    need_digest = digests or "{{.Digest}}" in template
    now = time.time()
    rows = [row for img in images for row in image_rows(img, show_digests=digests, need_digest=need_digest,
                                                        trunc=not no_trunc, now=now)]
    print_rows(rows, template, IMAGES_TABLE, IMAGES_HEADERS)


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
    from dockyard.cli.output import print_inspect

    print_inspect(out, fmt)
    if errors:
        for e in errors:
            click.echo(f"Error: {e}", err=True)
        sys.exit(1)


@click.command("history", help="Show the history of an image.")
@click.argument("image")
@click.option("-H", "--human", type=GO_BOOL, default=True, show_default=True,
              help="Print sizes and dates in human readable format (-H=false for raw numbers).")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", help="Format output with a Go template, 'table TEMPLATE' or json.")
@click.pass_obj
def image_history(state, image, human, no_trunc, quiet, fmt):
    entries = _engine(state).images.history(image)
    fmt = fmt or "table"
    if fmt == "table":
        fmt = QUIET if quiet else HISTORY_TABLE if human else HISTORY_TABLE_NON_HUMAN
    now = time.time()
    print_rows([HistoryRow(e, not no_trunc, human, now) for e in entries], fmt, HISTORY_TABLE, HISTORY_HEADERS)


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
    from dockyard.errors import DockyardError, NotFound

    svc = _engine(state).images
    failed = fatal = False
    for name in images:
        try:
            for entry in svc.remove(name, force=force):
                for k, v in entry.items():
                    click.echo(f"{k}: {v}")
        except DockyardError as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
            fatal = fatal or not isinstance(e, NotFound)
    # As Docker: with -f, images that do not exist are reported but do not fail the command.
    if failed and (fatal or not force):
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
    from dockyard.formatting.containers import human_size

    report, freed = _engine(state).images.prune(all_images=all_, filters=list(filters))
    if report:
        click.echo("Deleted Images:")
        for entry in report:
            for k, v in entry.items():
                click.echo(f"{k.lower()}: {v}")
        click.echo("")
    # go-units HumanSize: 4 significant digits, where the lists use 3.
    click.echo(f"Total reclaimed space: {human_size(freed, 4)}")


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
    "build": "dockyard.cli.build:build",
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
