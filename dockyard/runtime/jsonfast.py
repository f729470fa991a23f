"""json.loads/json.dumps for the runtime's hot path, straight from the C accelerator `_json`.

Importing `json` costs ~10 ms of CPU on every container start: json.decoder and json.encoder
compile regular expressions at import, which pulls in re, enum, functools and collections.  The
actual parsing and serialising is done by `_json` (the C module `json` itself uses), which needs
none of that.  These two functions drive `_json` with exactly the settings `json.loads(s)` and
`json.dumps(obj)` use, so results are identical; anything unusual (invalid JSON, unserialisable
objects, bytes in another encoding) falls back to `json` itself, so errors and their messages are
the standard library's too.
"""

from __future__ import annotations

import _json

# Not `from typing import ...`: importing typing costs the runtime several ms per start.  mypy
# treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


class _DecoderSettings:
    # The attributes c_make_scanner reads, with json.JSONDecoder()'s defaults.
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _json.make_scanner(_DecoderSettings())  # type: ignore[arg-type]  # duck-typed settings
_WS = " \t\n\r"


def _not_serialisable(o: object) -> object:
    raise TypeError(o)


def loads(s: str | bytes) -> Any:
    try:
        text = s.decode() if isinstance(s, bytes) else s
        if text.startswith("\ufeff"):
            raise ValueError("BOM")
        start = len(text) - len(text.lstrip(_WS))
        obj, end = _scan(text, start)
        if text[end:].strip(_WS):
            raise ValueError("extra data")
        return obj
    except (ValueError, StopIteration, RecursionError, SystemError):
        # SystemError: `_json` builds its JSONDecodeError from json.decoder only when that is already
        # imported.  Parsing again with `json` gives the standard error.
        import json

        return json.loads(s)


def dumps(obj: object, sort_keys: bool = False) -> str:
    if isinstance(obj, (dict, list)):
        # json.dumps(obj)'s encoder: check_circular (a fresh markers dict, as json makes per call),
        # ensure_ascii, allow_nan, separators ", " and ": ".
        encode = _json.make_encoder({}, _not_serialisable, _json.encode_basestring_ascii, None, ": ", ", ",
                                    sort_keys, False, True)
        try:
            return "".join(encode(obj, 0))
        except (TypeError, ValueError, RecursionError):
            pass
    import json

    return json.dumps(obj, sort_keys=sort_keys)
