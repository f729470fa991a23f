"""Output formatting: Go text/template (as Docker and Podman use it) and table layout."""

from __future__ import annotations

from typing import Any


def render(fmt: str, obj: Any) -> str:
    # Placeholder until the Go template engine lands: `{{json .}}` only.
    import json

    if fmt.strip() in ("{{json .}}", "{{ json . }}"):
        return json.dumps(obj) + "\n"
    from dockyard.errors import InvalidArgument

    raise InvalidArgument(f"template formatting is not implemented yet: {fmt!r}")
