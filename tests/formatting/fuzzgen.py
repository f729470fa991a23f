"""Random templates for the Go differential test: every operand, function, verb, trim marker and
control structure combined at random (seeded, so a failure is reproducible).

`join` and `slice` with computed indexes are left out: there dockyard deliberately follows Docker's typed
data (a JSON list of strings is a []string, a JSON number an int) where Go sees interface{} values."""

from __future__ import annotations

import random

OPERANDS = [".A", ".B", ".C", ".D", ".E", ".Empty", ".Zero", ".Nil", ".Missing", ".L", ".N", ".M", ".Mixed",
            ".Nested", ".Nested.x", ".Nested.x.y.z", "$", ".", "1", "-2", "2.5", "1e3", "0x10", "'a'", '"s"',
            '"three"', "`raw`", "true", "false", "nil", "$x", ".S", ".Unicode", ".F", ".G", ".H", "(len .L)",
            "(index .L 0)"]
FUNCS1 = ["len", "not", "print", "println", "json", "upper", "lower", "title", "html", "js", "urlquery"]
FUNCS2 = ["eq", "ne", "lt", "le", "gt", "ge", "and", "or", "index", "print", "printf", "split", "truncate"]
VERBS = ["%v", "%d", "%s", "%q", "%x", "%5.2f", "%-4v|", "%+v", "%T", "%t", "%06.1f", "%e", "%g", "%c", "%U",
         "%o", "%#v", "%X", "%8.3s", "%-6d"]
RANGE_OVER = [".L", ".M", ".N", ".Mixed", ".EmptyList", ".Missing", ".Nested", ".C"]


def _operand(r: random.Random, depth: int) -> str:
    if depth < 2 and r.random() < 0.15:
        return "(" + _pipeline(r, depth + 1) + ")"
    return r.choice(OPERANDS)


def _command(r: random.Random, depth: int) -> str:
    k = r.random()
    if k < 0.35:
        return _operand(r, depth)
    if k < 0.55:
        return r.choice(FUNCS1) + " " + _operand(r, depth)
    if k < 0.8:
        return r.choice(FUNCS2) + " " + _operand(r, depth) + " " + _operand(r, depth)
    if k < 0.95:
        verbs = "".join(r.choice(VERBS) for _ in range(r.randint(1, 3)))
        return f'printf "{verbs}" ' + " ".join(_operand(r, depth) for _ in range(r.randint(0, 3)))
    return "pad " + _operand(r, depth) + " 1 2"


def _pipeline(r: random.Random, depth: int = 0) -> str:
    cmds = [_command(r, depth)]
    while r.random() < 0.2:
        cmds.append(r.choice(["print", "len", 'printf "%v"', "upper", "json", "not", 'printf "%d" 1', "index .L"]))
    return " | ".join(cmds)


def _body(r: random.Random, depth: int = 0) -> str:
    def lt() -> str:
        return r.choice(["{{", "{{- ", "{{ "])

    def rt() -> str:
        return r.choice(["}}", " -}}", " }}"])

    parts = []
    for _ in range(r.randint(1, 4)):
        k = r.random()
        if k < 0.3:
            parts.append(r.choice([" ", "x", "\n", " a \n ", "\t"]))
        elif k < 0.65 or depth > 2:
            parts.append(lt() + _pipeline(r) + rt())
        elif k < 0.75:
            els = (lt() + "else" + rt() + _body(r, depth + 1)) if r.random() < 0.5 else ""
            parts.append(lt() + "if " + _pipeline(r) + rt() + _body(r, depth + 1) + els + "{{end}}")
        elif k < 0.85:
            decl = r.choice(["", "$i, $e := ", "$e := "])
            els = ("{{else}}" + _body(r, depth + 1)) if r.random() < 0.3 else ""
            parts.append(lt() + "range " + decl + r.choice(RANGE_OVER) + rt() + _body(r, depth + 1) + els + "{{end}}")
        elif k < 0.95:
            parts.append(lt() + "with " + _pipeline(r) + rt() + _body(r, depth + 1) + "{{end}}")
        else:
            parts.append("{{$x = " + _pipeline(r) + "}}")
    return "".join(parts)


def templates(n: int, seed: int) -> list[str]:
    r = random.Random(seed)
    return ["{{$x := .A}}" + _body(r) for _ in range(n)]
