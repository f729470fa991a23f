"""Printing helpers shared by every command: JSON, YAML-ish, Go templates and tables.

JSON comes out as Docker's CLI writes it (see docs/formatting.md): what stands for the daemon's JSON
(inspect, info, version) keeps its key order and its ``<``, ``>``, ``&``; it is indented by four
spaces when no format was asked for and one compact line with ``--format json``.
"""

from __future__ import annotations

from typing import Any

import click


def _daemon_json(obj: Any, indent: str) -> str:
    from dockyard.errors import InvalidArgument
    from dockyard.formatting.gojson import JSONError, marshal

    try:
        return marshal(obj, sort_maps=False, indent=indent)
    except JSONError as e:
        raise InvalidArgument(str(e)) from None


def print_json(obj: Any) -> None:
    """``docker inspect`` without a format: the JSON indented by four spaces (json.Indent)."""
    click.echo(_daemon_json(obj, "    "))


def print_format(obj: Any, fmt: str | None, default: str = "json") -> None:
    """Print ``obj`` as the user asked: ``json`` (one compact line, as ``docker info/version --format
    json``), ``yaml``, a Go template; no format (``None`` or ``""``) -> ``default``, where ``json`` is
    the indented form."""
    if not fmt:
        if default == "json":
            print_json(obj)
            return
        fmt = default
    if fmt == "json":
        click.echo(_daemon_json(obj, ""))
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip())
    else:
        from dockyard.formatting import render

        click.echo(render(fmt, obj), nl=False)


def print_inspect(objs: list[Any], fmt: str | None) -> None:
    """What ``docker inspect`` prints for the objects found: no format -> an indented JSON array
    (``[]`` when none), ``json`` -> that array on one line, a template -> one line per object (and an
    empty line when no object was found, as Docker's template inspector flushes)."""
    if not fmt:
        print_json(list(objs))
    elif fmt == "json":
        click.echo(_daemon_json(list(objs), ""))
    else:
        from dockyard.formatting import render

        click.echo("".join(render(fmt, obj) for obj in objs) or "\n", nl=False)


def print_rows(rows: list[Any], fmt: str | None, default_fmt: str, headers: dict[str, str] | None = None) -> None:
    """A list command's output as Docker prints it: ``table ...`` aligned under a header row,
    ``json`` one object per line, any other template once per row; ``None`` -> ``default_fmt``."""
    from dockyard.formatting import render_list

    click.echo(render_list(fmt, rows, default_fmt, headers), nl=False)
