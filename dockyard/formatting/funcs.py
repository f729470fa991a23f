"""Template functions: Go's text/template built-ins and the ones Docker's CLI adds.

Each function is described by the Go parameter types it declares (``Func.params``) so arguments are
checked the way Go checks them: ``upper 1`` fails with "wrong type for value; expected string; got int".
"""

from __future__ import annotations

import unicodedata
from typing import Any

from dockyard.formatting.printing import (
    MISSING,
    Byte,
    GoStruct,
    StringList,
    go_type_name,
    is_stringer,
    sprint,
    sprintf,
    sprintln,
)
from dockyard.formatting.template import Func, _Exec, _is_int, method_params, truth

# --- comparison (Go's eq/ne/lt/le/gt/ge) ------------------------------------------------------

_BAD_TYPE = "invalid type for comparison"
_BAD_CMP = "incompatible types for comparison"


def _kind(v: Any) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if _is_int(v):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return None


def _is_nil(v: Any) -> bool:
    return v is None or v is MISSING


def eq(arg1: Any, *args: Any) -> bool:
    if not args:
        raise _Exec("missing argument for comparison")
    k1 = _kind(arg1)
    for a in args:
        k2 = _kind(a)
        if k1 != k2:
            if not _is_nil(arg1) and not _is_nil(a):
                raise _Exec(_BAD_CMP)
            continue
        if k1 is not None:
            if arg1 == a:
                return True
            continue
        if _is_nil(arg1) or _is_nil(a):
            if _is_nil(arg1) == _is_nil(a):
                return True
            continue
        if isinstance(arg1, (list, tuple, dict)) or isinstance(a, (list, tuple, dict)):
            if go_type_name(arg1) != go_type_name(a):
                raise _Exec(sprintf("non-comparable types %s: %v, %s: %v", arg1, go_type_name(arg1),
                                    go_type_name(a), a))
            raise _Exec(sprintf("non-comparable type %s: %v", a, go_type_name(a)))
        if arg1 is a or arg1 == a:
            return True
    return False


def ne(arg1: Any, arg2: Any) -> bool:
    return not eq(arg1, arg2)


def lt(arg1: Any, arg2: Any) -> bool:
    k1 = _kind(arg1)
    if k1 is None:
        raise _Exec(_BAD_TYPE)
    k2 = _kind(arg2)
    if k2 is None:
        raise _Exec(_BAD_TYPE)
    if k1 != k2:
        raise _Exec(_BAD_CMP)
    if k1 == "bool":
        raise _Exec(_BAD_TYPE)
    return bool(arg1 < arg2)


def le(arg1: Any, arg2: Any) -> bool:
    return lt(arg1, arg2) or eq(arg1, arg2)


def gt(arg1: Any, arg2: Any) -> bool:
    return not le(arg1, arg2)


def ge(arg1: Any, arg2: Any) -> bool:
    return not lt(arg1, arg2)


# --- len, index, slice, not, call -------------------------------------------------------------


def go_len(v: Any) -> int:
    if v is MISSING:
        # What Go's reflection says when asked the type of no value.
        raise _Exec("reflect: call of reflect.Value.Type on zero Value")
    if v is None:
        raise _Exec("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, tuple, bytes)) or (isinstance(v, dict) and not isinstance(v, GoStruct)):
        return len(v)
    raise _Exec(f"len of type {go_type_name(v)}")


def _index_arg(i: Any, cap: int) -> int:
    if _is_nil(i):
        raise _Exec("cannot index slice/array with nil")
    if not _is_int(i):
        raise _Exec(f"cannot index slice/array with type {go_type_name(i)}")
    if i < 0 or i > cap:
        raise _Exec(f"index out of range: {i}")
    return int(i)


def index(item: Any, *indexes: Any) -> Any:
    if _is_nil(item):
        raise _Exec("index of untyped nil")
    for i in indexes:
        if item is None:
            raise _Exec("index of nil pointer")
        if isinstance(item, str):
            b = item.encode()
            x = _index_arg(i, len(b))
            if x >= len(b):
                raise _Exec("reflect: string index out of range")
            item = Byte(b[x])
        elif isinstance(item, (list, tuple)):
            x = _index_arg(i, len(item))
            if x >= len(item):
                raise _Exec("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, dict) and not isinstance(item, GoStruct):
            if _is_nil(i):
                raise _Exec("value is nil; should be of type string")
            if not isinstance(i, str):
                raise _Exec(f"value has type {go_type_name(i)}; should be string")
            item = item.get(i)
        else:
            raise _Exec(f"can't index item of type {go_type_name(item)}")
    return item


def go_slice(item: Any, *indexes: Any) -> Any:
    if _is_nil(item):
        raise _Exec("slice of untyped nil")
    if len(indexes) > 3:
        raise _Exec(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _Exec("cannot 3-index slice a string")
        seq: Any = item.encode()
    elif isinstance(item, (list, tuple)):
        seq = item
    else:
        raise _Exec(f"can't slice item of type {go_type_name(item)}")
    idx = [0, len(seq), len(seq)]
    for n, i in enumerate(indexes):
        idx[n] = _index_arg(i, len(seq))
    if idx[0] > idx[1]:
        raise _Exec(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _Exec(f"invalid slice index: {idx[1]} > {idx[2]}")
    part = seq[idx[0]:idx[1]]
    return part.decode(errors="replace") if isinstance(part, bytes) else list(part)


def go_not(v: Any) -> bool:
    return not truth(v)


def call(fn: Any, *args: Any) -> Any:
    if _is_nil(fn):
        raise _Exec("call of nil")
    if not callable(fn):
        raise _Exec(f"non-function of type {go_type_name(fn)}")
    return fn(*args)


# --- escaping ----------------------------------------------------------------------------------


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*("<no value>" if a is None or a is MISSING else a for a in args))


def html(*args: Any) -> str:
    s = _eval_args(args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\0", "\ufffd"))


def js(*args: Any) -> str:
    out = []
    for ch in _eval_args(args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=":
            out.append(f"\\u{ord(ch):04X}")
        elif ord(ch) < 0x20 or (ord(ch) >= 0x80 and not ch.isprintable()):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_eval_args(args), safe="")


# --- Docker's functions -------------------------------------------------------------------------


def to_json_value(v: Any) -> Any:
    """What Go's encoding/json would see: row objects become their exported fields and methods."""
    if v is MISSING:
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, dict):
        return v
    if isinstance(v, (list, tuple)):
        return v
    if hasattr(v, "__json__"):
        return v.__json__()
    fields = getattr(type(v), "__dataclass_fields__", None)
    if fields is not None:
        return {name: getattr(v, name) for name in fields}
    if is_stringer(v):
        return str(v)
    # Docker marshals a row context as every exported method taking no arguments, by name.
    out: dict[str, Any] = {}
    for name in sorted(dir(v)):
        if not name[:1].isupper():
            continue
        attr = getattr(v, name)
        if callable(attr):
            if method_params(attr)[0]:
                continue
            attr = attr()
        out[name] = attr
    return out


def go_json(v: Any) -> str:
    """Docker's ``json``: an Encoder with SetEscapeHTML(false), compact (see gojson for rows)."""
    from dockyard.formatting.gojson import JSONError, marshal

    try:
        return marshal(v)
    except JSONError as e:
        raise _Exec(str(e)) from None


def split(s: str, sep: str) -> list[str]:
    if sep == "":
        return StringList(s)
    return StringList(s.split(sep))


def join(elems: list[str] | None, sep: str) -> str:
    return sep.join(elems or [])


def _map_case(s: str, upper: bool) -> str:
    # Go maps rune by rune; Python's full case mapping would turn "ß" into "SS".
    out = []
    for ch in s:
        m = ch.upper() if upper else ch.lower()
        if len(m) != 1:
            # Only full mappings expand; the simple mapping Go uses is the first char for "İ" -> "i"
            # and none at all for the upper-case expansions ("ß" -> "SS").
            m = ch if upper else m[0]
        out.append(m)
    return "".join(out)


def upper(s: str) -> str:
    return _map_case(s, True)


def lower(s: str) -> str:
    return _map_case(s, False)


def _is_separator(ch: str) -> bool:
    if ord(ch) <= 0x7F:
        return not (ch.isascii() and (ch.isalnum() or ch == "_"))
    if ch.isalpha() or unicodedata.category(ch) == "Nd":
        return False
    return ch.isspace()


def title(s: str) -> str:
    """strings.Title: the first letter of every word (after a separator) in title case."""
    out = []
    prev = " "
    for ch in s:
        if _is_separator(prev):
            t = ch.title()
            out.append(t if len(t) == 1 else ch)
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def pad(s: str, prefix: int, suffix: int) -> str:
    if s == "":
        return s
    if prefix < 0 or suffix < 0:
        raise _Exec("strings: negative Repeat count")
    return " " * prefix + s + " " * suffix


def truncate(s: str, length: int) -> str:
    b = s.encode()
    if len(b) < length:
        return s
    if length < 0:
        raise _Exec(f"runtime error: slice bounds out of range [:{length}]")
    return b[:length].decode(errors="ignore")


def _header_identity(v: Any, *_: Any) -> Any:
    return v


# --- the function map ---------------------------------------------------------------------------

_V = "value"

BUILTINS: dict[str, Func] = {
    "and": Func(None, [_V], _V, builtin=True),
    "or": Func(None, [_V], _V, builtin=True),
    "not": Func(go_not, [_V], builtin=True),
    "len": Func(go_len, [_V], builtin=True),
    "index": Func(index, [_V], _V, builtin=True),
    "slice": Func(go_slice, [_V], _V, builtin=True),
    "call": Func(call, [_V], _V, builtin=True),
    "print": Func(sprint, [], "any", builtin=True),
    "printf": Func(sprintf, ["string"], "any", builtin=True),
    "println": Func(sprintln, [], "any", builtin=True),
    "html": Func(html, [], "any", builtin=True),
    "js": Func(js, [], "any", builtin=True),
    "urlquery": Func(urlquery, [], "any", builtin=True),
    "eq": Func(eq, [_V], _V, builtin=True),
    "ne": Func(ne, [_V, _V], builtin=True),
    "lt": Func(lt, [_V, _V], builtin=True),
    "le": Func(le, [_V, _V], builtin=True),
    "gt": Func(gt, [_V, _V], builtin=True),
    "ge": Func(ge, [_V, _V], builtin=True),
}

DOCKER: dict[str, Func] = {
    "json": Func(go_json, ["any"]),
    "split": Func(split, ["string", "string"]),
    "join": Func(join, ["[]string", "string"]),
    "title": Func(title, ["string"]),
    "lower": Func(lower, ["string"]),
    "upper": Func(upper, ["string"]),
    "pad": Func(pad, ["string", "int", "int"]),
    "truncate": Func(truncate, ["string", "int"]),
}

FUNCS: dict[str, Func] = {**BUILTINS, **DOCKER}
FUNC_NAMES = frozenset(FUNCS)

# Docker renders a table's header row with the same template but these functions replaced, so
# that a column stays titled "NAMES" rather than "names" or ["NAMES"]; `pad` is kept for alignment.
HEADER_FUNCS: dict[str, Func] = {
    **FUNCS,
    "json": Func(_header_identity, ["string"]),
    "split": Func(_header_identity, ["string", "string"]),
    "join": Func(_header_identity, ["string", "string"]),
    "title": Func(_header_identity, ["string"]),
    "lower": Func(_header_identity, ["string"]),
    "upper": Func(_header_identity, ["string"]),
    "truncate": Func(_header_identity, ["string", "int"]),
}
