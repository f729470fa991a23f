"""Go's fmt package, as far as templates reach it: ``%v`` printing of values and ``Sprintf``.

Python values stand for the Go values ``json.Unmarshal`` would produce (dict -> map[string]interface{},
list -> []interface{}, None -> nil), except that ints stay ints.  A ``GoStruct`` is a dict the caller
wants printed the way Go prints a struct, ``{v1 v2}``, with its fields in insertion order.
"""

from __future__ import annotations

import math
from typing import Any


class GoStruct(dict):
    """A dict that behaves like a Go struct: printed ``{v1 v2}``, and a missing field is an error.

    ``go_type`` names the type in error messages, as Go names ``*formatter.ContainerContext``.
    """

    go_type = "struct"

    def __init__(self, *args: Any, go_type: str | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if go_type is not None:
            self.go_type = go_type


class _Missing:
    """Go's invalid reflect.Value: a map key that is not there, the result of nothing."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


class Byte(int):
    """A Go ``uint8``: what indexing a string gives."""

    go_type = "uint8"


class StringList(list):
    """A Go ``[]string`` (what ``split`` returns), as opposed to a JSON list's ``[]interface {}``."""

    go_type = "[]string"


def is_stringer(v: Any) -> bool:
    """An object with its own ``__str__`` is a Go Stringer: fmt prints what String() returns."""
    t = type(v)
    return t.__str__ is not object.__str__ and not isinstance(v, (str, int, float, dict, list, tuple))


def public_fields(obj: Any) -> list[tuple[str, Any]]:
    """The exported (capitalised) fields of a plain object, for struct printing and ``json``."""
    if isinstance(obj, GoStruct):
        return list(obj.items())
    fields = getattr(type(obj), "__dataclass_fields__", None)
    if fields is not None:
        return [(name, getattr(obj, name)) for name in fields]
    names = getattr(obj, "__dict__", {})
    return [(k, v) for k, v in names.items() if k[:1].isupper()]


def go_type_name(v: Any) -> str:
    """The Go type a value stands for, as error messages and ``%!d(type=value)`` name it."""
    if v is None or v is MISSING:
        return "interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, Byte):
        return "uint8"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, GoStruct):
        return v.go_type
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, StringList):
        return "[]string"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if callable(v) and not hasattr(v, "__dict__"):
        return "func"
    return getattr(v, "go_type", None) or f"*{type(v).__module__.rsplit('.', 1)[-1]}.{type(v).__name__}"


def format_float(f: float, verb: str = "g", prec: int = -1) -> str:
    """strconv.FormatFloat for 'g' (shortest when prec < 0), 'e' and 'f'."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if verb in "eEfF" or prec >= 0:
        if verb in "gG" and prec == 0:
            prec = 1
        s = f"{f:.{prec if prec >= 0 else 6}{verb}}"
        return s
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    from decimal import Decimal

    sign = "-" if f < 0 else ""
    t = Decimal(repr(abs(f))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    nd = len(digits)
    dp = nd + int(t.exponent)
    exp = dp - 1
    # fmt's %v switches to exponent form outside [1e-4, 1e+06); encoding/json outside [1e-6, 1e+21).
    if exp < (-6 if verb == "json" else -4) or exp >= (21 if verb == "json" else 6):
        mant = digits[0] + ("." + digits[1:] if nd > 1 else "")
        e = "E" if verb == "G" else "e"
        if verb == "json":
            return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp)}"
        return f"{sign}{mant}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= nd:
        return sign + digits + "0" * (dp - nd)
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def sprint_value(v: Any, verb: str = "v", plus: bool = False, depth: int = 0) -> str:
    """fmt's ``%v`` (and ``%+v`` with ``plus``) of one value."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, GoStruct):
        return _struct(list(v.items()), plus, depth)
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _sort_key(kv[0]))
        inner = " ".join(f"{sprint_value(k, verb, plus, depth + 1)}:{sprint_value(x, verb, plus, depth + 1)}"
                         for k, x in items)
        return f"map[{inner}]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(sprint_value(x, verb, plus, depth + 1) for x in v) + "]"
    if isinstance(v, (bytes, bytearray)):
        return "[" + " ".join(str(b) for b in v) + "]"
    if is_stringer(v):
        return str(v)
    if callable(v) and not hasattr(v, "__dict__"):
        return f"{v!r}"
    return _struct(public_fields(v), plus, depth)


def _struct(fields: list[tuple[str, Any]], plus: bool, depth: int) -> str:
    if plus:
        return "{" + " ".join(f"{k}:{sprint_value(x, 'v', True, depth + 1)}" for k, x in fields) + "}"
    return "{" + " ".join(sprint_value(x, "v", False, depth + 1) for _, x in fields) + "}"


def _sort_key(k: Any) -> tuple[int, Any]:
    # fmtsort orders keys of one kind; mixed kinds cannot come from JSON, but must not crash.
    if isinstance(k, bool):
        return (0, k)
    if isinstance(k, (int, float)):
        return (1, k)
    return (2, str(k))


def sprint(*args: Any) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out = []
    prev_string = True
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_value(a))
        prev_string = is_string
    return "".join(out)


def sprintln(*args: Any) -> str:
    return " ".join(sprint_value(a) for a in args) + "\n"


# --- Sprintf -----------------------------------------------------------------------------------

def quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote: Go escapes, printable Unicode kept as is."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\x{c:02x}")
        elif c < 0x7F or (not ascii_only and ch.isprintable()):
            out.append(ch)
        elif 0xD800 <= c <= 0xDFFF:
            out.append("\\ufffd")
        elif c < 0x10000:
            out.append(f"\\u{c:04x}")
        else:
            out.append(f"\\U{c:08x}")
    out.append('"')
    return "".join(out)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


class _Spec:
    __slots__ = ("minus", "plus", "plusv", "sharp", "space", "zero", "width", "prec")

    def __init__(self) -> None:
        self.minus = self.plus = self.plusv = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.prec: int | None = None


def _pad(s: str, spec: _Spec, zero: bool | None = None) -> str:
    """Pad to the width (counted in runes, as Go does), on the left unless '-'; the '0' flag pads
    with zeros, except where the caller already placed them after a sign (``zero=False``)."""
    if spec.width is None or len(s) >= spec.width:
        return s
    n = spec.width - len(s)
    if spec.minus:
        return s + " " * n
    if spec.zero if zero is None else zero:
        return "0" * n + s
    return " " * n + s


def _fmt_int(n: int, verb: str, spec: _Spec) -> str:
    if verb == "c":
        return _pad(chr(n) if 0 <= n <= 0x10FFFF else "\ufffd", spec)
    if verb == "q":
        ch = chr(n) if 0 <= n <= 0x10FFFF else "\ufffd"
        return _pad("'" + quote(ch)[1:-1].replace('\\"', '"').replace("'", "\\'") + "'", spec)
    if verb == "U":
        s = f"U+{n & 0xFFFFFFFFFFFFFFFF:04X}"  # Go prints the rune as an unsigned 64-bit value
        if spec.sharp and 0 <= n <= 0x10FFFF and chr(n).isprintable():
            s += f" '{chr(n)}'"
        return _pad(s, spec)
    base = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}[verb]
    digits = {2: "b", 8: "o", 10: "d", 16: "x"}[base]
    body = format(abs(n), digits)
    if verb == "X":
        body = body.upper()
    if spec.prec is not None:
        body = "" if spec.prec == 0 and n == 0 else body.rjust(spec.prec, "0")
    prefix = ""
    if verb == "O":
        prefix = "0o"
    elif spec.sharp:
        prefix = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "")
        if verb == "o" and body.startswith("0"):
            prefix = ""
    sign = "-" if n < 0 else "+" if spec.plus else " " if spec.space else ""
    s = sign + prefix + body
    if spec.zero and not spec.minus and spec.prec is None and spec.width and len(s) < spec.width:
        return sign + prefix + "0" * (spec.width - len(s)) + body
    return _pad(s, spec, zero=False)


def _fmt_float(f: float, verb: str, spec: _Spec) -> str:
    if verb == "v":
        verb = "g"
    if verb in "xX":
        s = _hex_float(f, spec.prec)
        if verb == "X":
            s = s.upper()
    elif verb in "gG" and spec.prec is None:
        s = format_float(f, verb)
        if spec.sharp and "." not in s and "e" not in s.lower() and "Inf" not in s and "NaN" not in s:
            s += "."
    else:
        prec = 6 if spec.prec is None else spec.prec
        s = format_float(f, verb, prec)
        if spec.sharp and verb in "gG" and "." not in s:
            s += "."
        if "inf" in s or "nan" in s:
            s = format_float(f)
    if spec.plus and not s.startswith("-") and s != "NaN":
        s = "+" + s
    elif spec.space and not s.startswith("-"):
        s = " " + s
    if spec.zero and not spec.minus and spec.width and len(s) < spec.width and s.lstrip("+- ")[:1].isdigit():
        sign = s[0] if s[0] in "+- " else ""
        return sign + "0" * (spec.width - len(s)) + s[len(sign):]
    return _pad(s, spec, zero=False)


def _hex_float(f: float, prec: int | None) -> str:
    """strconv's 'x' format: 0x1.f4p+09, mantissa trimmed (or rounded to ``prec`` hex digits)."""
    if math.isnan(f) or math.isinf(f):
        return format_float(f)
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        mant, exp = "0", 0
    else:
        m, e = math.frexp(abs(f))  # abs(f) = m * 2**e, 0.5 <= m < 1
        bits = int(m * (1 << 53))  # 53 significant bits, leading 1 first
        exp = e - 1
        frac = bits - (1 << 52)
        digits = f"{frac:013x}"
        if prec is not None and prec < 13:
            shift = 4 * (13 - prec)
            q, r = divmod(frac, 1 << shift)
            half = 1 << (shift - 1)
            if r > half or (r == half and q & 1):
                q += 1
            if q >> (4 * prec):  # rounding carried into the leading digit
                q = 0
                exp += 1
            digits = f"{q:0{prec}x}" if prec else ""
        else:
            digits = digits.rstrip("0") if prec is None else digits + "0" * (prec - 13)
        mant = "1" + ("." + digits if digits else "")
    return f"{sign}0x{mant}p{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _fmt_str(s: str, verb: str, spec: _Spec) -> str:
    if spec.prec is not None and verb in "sqv":
        s = s[: spec.prec]
    if verb in ("s", "v"):
        return _pad(s, spec)
    if verb == "q":
        if spec.sharp and "`" not in s and all(c == "\t" or c.isprintable() for c in s):
            return _pad("`" + s + "`", spec)
        return _pad(quote(s, ascii_only=spec.plus), spec)
    if verb in ("x", "X"):
        b = s.encode()
        if spec.prec is not None:
            b = b[: spec.prec]
        sep = " " if spec.space else ""
        parts = []
        for i, byte in enumerate(b):
            h = f"{byte:02x}" if verb == "x" else f"{byte:02X}"
            if spec.sharp and (spec.space or i == 0):
                h = ("0x" if verb == "x" else "0X") + h
            parts.append(h)
        return _pad(sep.join(parts), spec)
    raise _BadVerb


class _BadVerb(Exception):
    pass


def _fmt_arg(a: Any, verb: str, spec: _Spec) -> str:
    if a is MISSING:
        a = None
    if verb == "T":
        return _pad("<nil>" if a is None else go_type_name(a), spec)
    if a is None:
        if verb == "v":
            return _pad("<nil>", spec)
        raise _BadVerb
    if verb == "v" and spec.sharp:
        return _pad(go_syntax(a), spec)
    if is_stringer(a) and verb in "vsqxX":
        return _fmt_str(str(a), "s" if verb == "v" else verb, spec)
    if isinstance(a, bool):
        if verb in "tv":
            return _pad("true" if a else "false", spec)
        raise _BadVerb
    if isinstance(a, int):
        if verb in "dvboOxXcqU":
            return _fmt_int(a, verb, spec)
        raise _BadVerb
    if isinstance(a, float):
        if verb in "veEfFgGxX":
            return _fmt_float(a, verb, spec)
        raise _BadVerb
    if isinstance(a, str):
        if verb in "svqxX":
            return _fmt_str(a, verb, spec)
        raise _BadVerb
    if isinstance(a, (list, tuple)):
        # Width and flags apply to each element, not to the brackets.
        return "[" + " ".join(_fmt_elem(x, verb, spec) for x in a) + "]"
    if isinstance(a, dict) and not isinstance(a, GoStruct):
        items = sorted(a.items(), key=lambda kv: _sort_key(kv[0]))
        return "map[" + " ".join(f"{_fmt_elem(k, verb, spec)}:{_fmt_elem(x, verb, spec)}" for k, x in items) + "]"
    fields = public_fields(a)
    if spec.plusv:
        inner = " ".join(f"{k}:{_fmt_elem(x, verb, spec)}" for k, x in fields)
    else:
        inner = " ".join(_fmt_elem(x, verb, spec) for _, x in fields)
    return "{" + inner + "}"


def _fmt_elem(x: Any, verb: str, spec: _Spec) -> str:
    # Elements of a composite take the verb and flags but not the width: Go pads each element,
    # which is what passing the same spec does; only a bad verb is reported per element.
    inner = _Spec()
    for k in _Spec.__slots__:
        setattr(inner, k, getattr(spec, k))
    if x is None or x is MISSING:
        return "<nil>"  # written as is: no verb, width or flags apply
    try:
        return _fmt_arg(x, verb, inner)
    except _BadVerb:
        return _bad_verb(verb, x, inner)


def _bad_verb(verb: str, a: Any, spec: _Spec | None = None) -> str:
    if a is None or a is MISSING:
        return f"%!{verb}(<nil>)"
    # Go prints the value with %v under the same flags, width and precision.
    shown = _fmt_arg(a, "v", spec) if spec is not None else sprint_value(a)
    return f"%!{verb}({go_type_name(a)}={shown})"


def go_syntax(a: Any, depth: int = 0) -> str:
    """``%#v``: Go-syntax representation, for the types JSON data can hold."""
    if a is None or a is MISSING:
        return "interface {}(nil)" if depth else "<nil>"
    if isinstance(a, bool):
        return "true" if a else "false"
    if isinstance(a, int):
        return str(a)
    if isinstance(a, float):
        return format_float(a)
    if isinstance(a, str):
        return quote(a)
    if isinstance(a, GoStruct):
        return a.go_type + "{" + ", ".join(f"{k}:{go_syntax(v, depth + 1)}" for k, v in a.items()) + "}"
    if isinstance(a, dict):
        items = sorted(a.items(), key=lambda kv: _sort_key(kv[0]))
        inner = ", ".join(f"{quote(str(k))}:{go_syntax(v, depth + 1)}" for k, v in items)
        return "map[string]interface {}{" + inner + "}"
    if isinstance(a, (list, tuple)):
        return go_type_name(a) + "{" + ", ".join(go_syntax(x, depth + 1) for x in a) + "}"
    return sprint_value(a, plus=True)


def sprintf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf with Go's verbs, flags, width/precision (``*`` too) and its error notation."""
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        spec = _Spec()
        while i < n and fmt[i] in "+-# 0":
            c = fmt[i]
            if c == "+":
                spec.plus = True
            elif c == "-":
                spec.minus = True
                spec.zero = False
            elif c == "#":
                spec.sharp = True
            elif c == " ":
                spec.space = True
            elif not spec.minus:
                spec.zero = True
            i += 1
        bad_width = bad_prec = False
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                spec.width = args[argi]
                if spec.width < 0:
                    spec.minus, spec.zero, spec.width = True, False, -spec.width
            else:
                bad_width = True
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                spec.width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    spec.prec = args[argi] if args[argi] >= 0 else None
                else:
                    bad_prec = True
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[start:i]) if i > start else 0
        if bad_width:
            out.append("%!(BADWIDTH)")
        if bad_prec:
            out.append("%!(BADPREC)")
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "v" and spec.plus:
            # %+v names struct fields; it does not sign numbers.
            spec.plus, spec.plusv = False, True
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        a = args[argi]
        argi += 1
        try:
            out.append(_fmt_arg(a, verb, spec))
        except _BadVerb:
            out.append(_bad_verb(verb, a, spec))
    if argi < len(args):
        extra = ", ".join("<nil>" if a is None or a is MISSING else f"{go_type_name(a)}={sprint_value(a)}"
                          for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
