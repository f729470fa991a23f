"""Printing helpers shared by every command: JSON, YAML-ish, Go templates and tables."""

from __future__ import annotations

import json
from typing import Any

import click


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=4, default=str))


def print_format(obj: Any, fmt: str | None, default: str = "json") -> None:
    """Print ``obj`` as the user asked: ``json``, a Go template, or the command's default."""
    if fmt is None:
        fmt = default
    if fmt == "json":
        print_json(obj)
    elif fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).rstrip())
    else:
        from dockyard.formatting import render

        click.echo(render(fmt, obj), nl=False)


def print_rows(rows: list[Any], fmt: str | None, default_fmt: str, headers: dict[str, str] | None = None) -> None:
    """A list command's output as Docker prints it: ``table ...`` aligned under a header row,
    ``json`` one object per line, any other template once per row; ``None`` -> ``default_fmt``."""
    from dockyard.formatting import render_list

    click.echo(render_list(fmt, rows, default_fmt, headers), nl=False)
