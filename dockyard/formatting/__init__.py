"""Output formatting for ``--format``: Go's text/template as Docker and Podman use it, and tables.

``render`` formats one object (inspect, info, version); ``render_list`` formats the rows of a list
command (ps, images, volume ls ...) as Docker's CLI does: ``table`` prefix -> aligned columns under a
header row, ``json`` -> one JSON object per line, anything else -> the template once per row.
"""

from __future__ import annotations

import functools
from typing import Any

from dockyard.formatting.printing import MISSING, GoStruct

__all__ = ["GoStruct", "MISSING", "render", "render_list", "parse", "execute"]


@functools.lru_cache(maxsize=256)
def parse(text: str) -> Any:
    """Parse once per format string: ``ps`` renders the same template for every row."""
    from dockyard.errors import InvalidArgument
    from dockyard.formatting.funcs import FUNC_NAMES
    from dockyard.formatting.template import Parser, TemplateError

    try:
        return Parser(text, set(FUNC_NAMES)).parse()
    except TemplateError as e:
        raise InvalidArgument(f"template parsing error: {e}") from None
    except RecursionError:
        raise InvalidArgument("template parsing error: template: :1: nested too deeply") from None


def execute(tmpl: Any, obj: Any, missingkey: str = "error") -> str:
    from dockyard.errors import InvalidArgument
    from dockyard.formatting import template
    from dockyard.formatting.funcs import FUNCS

    try:
        return template.execute(tmpl, obj, FUNCS, missingkey)
    except template.TemplateError as e:
        raise InvalidArgument(f"template parsing error: {e}") from None


def render(fmt: str, obj: Any, *, missingkey: str = "error") -> str:
    """One object, as ``docker inspect/info/version --format``; the result ends with a newline.

    A missing map key is an error by default, as Docker's inspect makes it (it retries a failed
    template on the raw JSON with missingkey=error); pass ``missingkey="default"`` to print
    ``<no value>`` instead, Go's own default.
    """
    if fmt == "json":
        from dockyard.formatting.funcs import go_json

        return go_json(obj) + "\n"
    return execute(parse(fmt), obj, missingkey) + "\n"


def _list_format(fmt: str | None, default_fmt: str) -> tuple[str, bool]:
    """Docker's Format.preFormat: (template text, is table)."""
    if fmt is None or fmt == "" or fmt == "table":
        fmt = default_fmt if fmt != "table" or default_fmt.startswith("table") else "table " + default_fmt
    is_table = fmt.startswith("table")
    if is_table:
        text = fmt[len("table"):]
    elif fmt == "json":
        text = "{{json .}}"
    else:
        text = fmt
    # Users type "\t" in a shell string; Docker turns the two characters into a tab (and "\n").
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return text, is_table


def render_list(fmt: str | None, rows: list[Any], default_fmt: str, headers: dict[str, str] | None = None,
                *, missingkey: str = "error") -> str:
    """Rows of a list command.  ``headers`` titles the table columns by field name (``{"ID": "CONTAINER
    ID"}``); a field without one is titled from its name (``RunningFor`` -> ``RUNNING FOR``)."""
    text, is_table = _list_format(fmt, default_fmt)
    tmpl = parse(text)
    if any(type(r) is dict for r in rows):
        from dockyard.formatting.gojson import Row

        # Every list row is one of Docker's formatter contexts, whose json is json.Marshal's.
        rows = [Row(r) if type(r) is dict else r for r in rows]
    body = "".join(execute(tmpl, row, missingkey) + "\n" for row in rows)
    if not is_table:
        return body
    from dockyard.formatting import template
    from dockyard.formatting.funcs import HEADER_FUNCS
    from dockyard.formatting.table import HeaderContext, tabwrite

    # Docker renders the header with the row template against the titles and, like Docker, keeps
    # whatever was written before a failure there: the rows already proved the template works.
    header = template.execute_partial(tmpl, HeaderContext(headers or {}), HEADER_FUNCS)
    return tabwrite(header + "\n" + body)
