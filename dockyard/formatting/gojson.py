"""Go's encoding/json output, byte for byte, for the three ways Docker's CLI prints JSON.

* the template function ``json`` is an Encoder with SetEscapeHTML(false): ``<``, ``>``, ``&`` stay;
* a list command's row (Docker's formatter contexts) marshals itself with json.Marshal over a map of
  its fields, so ``{{json .}}`` / ``--format json`` of a row escapes them (``"\\u003cnone\\u003e"``)
  and its keys come out sorted, whatever encoder wraps it;
* ``inspect`` without a format indents the daemon's JSON (written with SetEscapeHTML(false)) by four
  spaces, and ``--format json`` compacts it; both keep the daemon's key order.

Everywhere: U+2028/U+2029 are escaped (encoding/json does that unconditionally), other non-ASCII
stays UTF-8, an invalid byte (a surrogate-escaped one in Python) becomes ``\\ufffd``, floats print as
Go prints them, control characters get Go 1.22's short escapes (``\\b``, ``\\f``, ``\\n`` ...).
"""

from __future__ import annotations

import json
import re
from typing import Any

from dockyard.formatting.printing import MISSING, GoStruct, format_float

_FIXUPS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}
_ALWAYS = re.compile("[\u2028\u2029\ud800-\udfff]")
_WITH_HTML = re.compile("[\u2028\u2029\ud800-\udfff<>&]")


class Row(dict[str, Any]):
    """A list command's row given as a plain dict: a map to templates, but ``json`` marshals it the
    way Docker's row contexts marshal themselves (escaped, keys sorted)."""


class JSONError(Exception):
    """What encoding/json refuses (NaN, infinities, values it has no encoding for), Go's message."""


def _fix(m: re.Match[str]) -> str:
    return _FIXUPS.get(m.group(), "\\ufffd")


def encode_string(s: str, escape_html: bool) -> str:
    return (_WITH_HTML if escape_html else _ALWAYS).sub(_fix, json.dumps(s, ensure_ascii=False))


def marshal(v: Any, *, escape_html: bool = False, sort_maps: bool = True, indent: str = "") -> str:
    """Go's JSON of ``v``.  ``sort_maps``: plain dicts are Go maps (keys sorted); without it every dict
    keeps its order, as the daemon's struct-shaped JSON does.  ``indent``: json.MarshalIndent's."""
    out: list[str] = []
    _Encoder(out, sort_maps, indent).encode(v, escape_html, 0)
    return "".join(out)


class _Encoder:
    def __init__(self, out: list[str], sort_maps: bool, indent: str) -> None:
        self.out, self.sort_maps, self.indent = out, sort_maps, indent

    def encode(self, v: Any, esc: bool, depth: int) -> None:
        from dockyard.formatting.funcs import to_json_value
        from dockyard.formatting.printing import go_type_name

        if depth > 200:
            raise JSONError("json: unsupported value: encountered a cycle")
        out = self.out
        if isinstance(v, str):
            out.append(encode_string(v, esc))
            return
        if isinstance(v, Row) or not isinstance(v, (dict, list, tuple, int, float, type(None))):
            # A row context marshals itself with json.Marshal, over a map of its fields.
            is_context = v is not MISSING and (isinstance(v, Row) or hasattr(v, "__json__")
                                               or _is_method_marshalled(v))
            v = to_json_value(v)
            if is_context and isinstance(v, dict):
                esc, v = True, dict(sorted(v.items(), key=lambda kv: str(kv[0])))
                self._object(v.items(), esc, depth)
                return
            if isinstance(v, str):
                out.append(encode_string(v, esc))
                return
        if v is None:
            out.append("null")
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, int):
            out.append(str(int(v)))
        elif isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise JSONError(f"json: unsupported value: {format_float(v)}")
            out.append(format_float(v, "json"))
        elif isinstance(v, dict):
            sort = self.sort_maps and not isinstance(v, GoStruct)
            self._object(sorted(v.items(), key=lambda kv: str(kv[0])) if sort else v.items(), esc, depth)
        elif isinstance(v, (list, tuple)):
            self._open("[", "]", v, lambda x: self.encode(x, esc, depth + 1), depth)
        else:
            raise JSONError(f"json: unsupported type: {go_type_name(v)}")

    def _object(self, items: Any, esc: bool, depth: int) -> None:
        sep = ": " if self.indent else ":"

        def item(kv: tuple[Any, Any]) -> None:
            self.out.append(encode_string(str(kv[0]), esc))
            self.out.append(sep)
            self.encode(kv[1], esc, depth + 1)

        self._open("{", "}", list(items), item, depth)

    def _open(self, start: str, end: str, items: Any, each: Any, depth: int) -> None:
        out = self.out
        out.append(start)
        if not items:
            out.append(end)
            return
        inner = "\n" + self.indent * (depth + 1) if self.indent else ""
        for i, x in enumerate(items):
            out.append("," + inner if i else inner)
            each(x)
        if self.indent:
            out.append("\n" + self.indent * depth)
        out.append(end)


def _is_method_marshalled(v: Any) -> bool:
    """Objects ``to_json_value`` marshals by their exported methods: Docker's row contexts."""
    from dockyard.formatting.printing import is_stringer

    return getattr(type(v), "__dataclass_fields__", None) is None and not is_stringer(v)
