"""Go's text/template: lexer, parser and executor, following the Go package's documented semantics.

The structure mirrors Go's (text/template/parse lex.go + parse.go, text/template exec.go) so behaviour
and error messages can be checked against it case by case: the same token kinds, the same node kinds
with the same String() forms (they appear in execution errors as ``at <...>``), the same rules for
truthiness, variable scope, map iteration order and argument checking.

Values follow the model in ``printing``: Python data stands for what ``json.Unmarshal`` gives Go,
``MISSING`` is Go's invalid value (an absent map key), ``None`` a nil interface.
"""

from __future__ import annotations

import math
from types import BuiltinFunctionType, FunctionType, MethodDescriptorType
from typing import Any

from dockyard.formatting.printing import MISSING, GoStruct, go_type_name, quote, sprint_value
from dockyard.formatting.table import HeaderText, default_header

_PLAIN = (str, int, float, list, tuple, bytes, dict)
_FUNCTION_TYPES = (FunctionType, BuiltinFunctionType, MethodDescriptorType)

# --- errors -----------------------------------------------------------------------------------


class TemplateError(Exception):
    """A parse or execution error; the message is Go's, one line."""


class _Exec(Exception):
    """Raised by builtin functions: becomes ``error calling NAME: msg``."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


# --- lexer ------------------------------------------------------------------------------------

# Token kinds, named after Go's itemType constants.
ERROR, BOOL, CHAR, CHARCONST, ASSIGN, DECLARE, EOF, FIELD, IDENT, LDELIM, LPAREN, NUMBER, PIPE, \
    RAWSTRING, RDELIM, RPAREN, SPACE, STRING, TEXT, VARIABLE, DOT, NIL, COMMENT = range(23)
KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"}
KW = 100  # keyword tokens carry their word as the value

SPACE_CHARS = " \t\r\n"


class Token:
    __slots__ = ("typ", "val", "pos", "line")

    def __init__(self, typ: int, val: str, pos: int, line: int) -> None:
        self.typ = typ
        self.val = val
        self.pos = pos
        self.line = line


class _StopLex(Exception):
    pass


def _char_u(c: str) -> str:
    """Go's %#U of a rune."""
    return f"U+{ord(c):04X} '{c}'" if c.isprintable() else f"U+{ord(c):04X}"


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdigit()


class Lexer:
    """Splits a template into tokens as Go's lexer does, trim markers and comments included."""

    def __init__(self, text: str, name: str = "") -> None:
        self.text = text
        self.name = name
        self.tokens: list[Token] = []
        self.paren_depth = 0
        self._lex()

    def _line(self, pos: int) -> int:
        return 1 + self.text.count("\n", 0, pos)

    def _emit(self, typ: int, val: str, pos: int) -> None:
        self.tokens.append(Token(typ, val, pos, self._line(pos)))

    def _error(self, msg: str, pos: int) -> None:
        # Like Go's lexer, an error is a token: the parser reports it when it gets there, so an
        # earlier token's problem is the one reported.
        self._emit(ERROR, msg, pos)
        raise _StopLex

    def _lex(self) -> None:
        try:
            self._lex_all()
        except _StopLex:
            self._emit(EOF, "", len(self.text))

    def _lex_all(self) -> None:
        t = self.text
        pos = 0
        n = len(t)
        while True:
            j = t.find("{{", pos)
            if j < 0:
                if pos < n:
                    self._emit(TEXT, t[pos:], pos)
                self._emit(EOF, "", n)
                return
            trim_left = t[j + 2:j + 3] == "-" and t[j + 3:j + 4] != "" and t[j + 3:j + 4] in SPACE_CHARS
            text_end = j
            if trim_left:
                text_end = len(t[pos:j].rstrip(SPACE_CHARS)) + pos
            if text_end > pos:
                self._emit(TEXT, t[pos:text_end], pos)
            self._emit(LDELIM, "{{", j)
            pos = j + 2 + (2 if trim_left else 0)
            if t.startswith("/*", pos):
                pos = self._comment(pos, j)
                continue
            pos = self._inside_action(pos)

    def _after_rdelim(self, pos: int, trim: bool) -> int:
        if trim:
            while pos < len(self.text) and self.text[pos] in SPACE_CHARS:
                pos += 1
        return pos

    def _at_rdelim(self, pos: int) -> tuple[bool, bool, int]:
        """(at delimiter, trim marker, position after the delimiter)."""
        t = self.text
        if t.startswith(" -}}", pos) or (t[pos:pos + 1] in ("\t", "\r", "\n") and t.startswith("-}}", pos + 1)):
            return True, True, pos + 4
        if t.startswith("}}", pos):
            return True, False, pos + 2
        return False, False, pos

    def _comment(self, pos: int, start: int) -> int:
        end = self.text.find("*/", pos + 2)
        if end < 0:
            self._error("unclosed comment", start)
        pos = end + 2
        at, trim, after = self._at_rdelim(pos)
        if not at:
            self._error("comment ends before closing delimiter", start)
        self._emit(COMMENT, self.text[start:after], start)
        self._emit(RDELIM, "}}", pos)
        return self._after_rdelim(after, trim)

    def _inside_action(self, pos: int) -> int:
        t = self.text
        n = len(t)
        self.paren_depth = 0
        while True:
            at, trim, after = self._at_rdelim(pos)
            if at:
                if self.paren_depth:
                    self._error("unclosed left paren", pos)
                self._emit(RDELIM, "}}", pos)
                return self._after_rdelim(after, trim)
            if pos >= n:
                self._error("unclosed action", pos)
            c = t[pos]
            if c in SPACE_CHARS:
                start = pos
                while pos < n and t[pos] in SPACE_CHARS:
                    pos += 1
                # A space right before "-}}" belongs to the trim marker.
                if t.startswith("-}}", pos) and pos - start == 1:
                    pos = start
                    at, trim, after = True, True, start + 4
                    self._emit(RDELIM, "}}", start)
                    return self._after_rdelim(after, trim)
                if t.startswith("-}}", pos):
                    pos -= 1
                self._emit(SPACE, t[start:pos], start)
            elif c == "=":
                self._emit(ASSIGN, "=", pos)
                pos += 1
            elif c == ":":
                if not t.startswith(":=", pos):
                    self._error("expected :=", pos)
                self._emit(DECLARE, ":=", pos)
                pos += 2
            elif c == "|":
                self._emit(PIPE, "|", pos)
                pos += 1
            elif c == '"':
                pos = self._quote(pos)
            elif c == "`":
                end = t.find("`", pos + 1)
                if end < 0:
                    self._error("unterminated raw quoted string", pos)
                self._emit(RAWSTRING, t[pos:end + 1], pos)
                pos = end + 1
            elif c == "$":
                pos = self._field_or_var(pos, VARIABLE)
            elif c == "'":
                pos = self._char(pos)
            elif c == "." and pos + 1 < n and t[pos + 1].isdigit():
                pos = self._number(pos)
            elif c == ".":
                pos = self._field_or_var(pos, FIELD)
            elif c in "+-" or c.isdigit():
                pos = self._number(pos)
            elif _is_alnum(c):
                pos = self._identifier(pos)
            elif c == "(":
                self._emit(LPAREN, "(", pos)
                self.paren_depth += 1
                pos += 1
            elif c == ")":
                self._emit(RPAREN, ")", pos)
                self.paren_depth -= 1
                if self.paren_depth < 0:
                    self._error("unexpected right paren U+0029 ')'", pos)
                pos += 1
            elif ord(c) < 0x80 and c.isprintable():
                self._emit(CHAR, c, pos)
                pos += 1
            else:
                self._error(f"unrecognized character in action: {_char_u(c)}", pos)

    def _at_terminator(self, pos: int) -> bool:
        t = self.text
        if pos >= len(t):
            return True
        c = t[pos]
        if c in SPACE_CHARS or c in ".,|:()":
            return True
        return t.startswith("}}", pos)

    def _word(self, pos: int) -> int:
        while pos < len(self.text) and _is_alnum(self.text[pos]):
            pos += 1
        return pos

    def _field_or_var(self, pos: int, typ: int) -> int:
        start = pos
        if self._at_terminator(pos + 1):
            self._emit(DOT if typ == FIELD else VARIABLE, self.text[pos], pos)
            return pos + 1
        pos = self._word(pos + 1)
        if not self._at_terminator(pos):
            self._error(f"bad character {_char_u(self.text[pos])}", pos)
        self._emit(typ, self.text[start:pos], start)
        return pos

    def _identifier(self, pos: int) -> int:
        start = pos
        pos = self._word(pos)
        if not self._at_terminator(pos):
            self._error(f"bad character {_char_u(self.text[pos])}", pos)
        word = self.text[start:pos]
        if word in KEYWORDS:
            self._emit(KW, word, start)
        elif word in ("true", "false"):
            self._emit(BOOL, word, start)
        elif word == "nil":
            self._emit(NIL, word, start)
        else:
            self._emit(IDENT, word, start)
        return pos

    def _quote(self, pos: int) -> int:
        t = self.text
        i = pos + 1
        while True:
            if i >= len(t) or t[i] == "\n":
                self._error("unterminated quoted string", pos)
            if t[i] == "\\":
                if i + 1 >= len(t) or t[i + 1] == "\n":
                    self._error("unterminated quoted string", pos)
                i += 2
                continue
            if t[i] == '"':
                break
            i += 1
        self._emit(STRING, t[pos:i + 1], pos)
        return i + 1

    def _char(self, pos: int) -> int:
        t = self.text
        i = pos + 1
        while True:
            if i >= len(t) or t[i] == "\n":
                self._error("unterminated character constant", pos)
            if t[i] == "\\":
                i += 2
                continue
            if t[i] == "'":
                break
            i += 1
        self._emit(CHARCONST, t[pos:i + 1], pos)
        return i + 1

    def _number(self, pos: int) -> int:
        t = self.text
        start = pos
        if t[pos] in "+-":
            pos += 1
        digits = "0123456789_"
        if t.startswith(("0x", "0X"), pos):
            pos += 2
            digits = "0123456789abcdefABCDEF_"
        elif t.startswith(("0o", "0O"), pos):
            pos += 2
            digits = "01234567_"
        elif t.startswith(("0b", "0B"), pos):
            pos += 2
            digits = "01_"
        while pos < len(t) and t[pos] in digits:
            pos += 1
        if pos < len(t) and t[pos] == ".":
            pos += 1
            while pos < len(t) and t[pos] in digits:
                pos += 1
        exps = "pP" if len(digits) == 23 else "eE"
        if pos < len(t) and t[pos] in exps:
            pos += 1
            if pos < len(t) and t[pos] in "+-":
                pos += 1
            while pos < len(t) and t[pos] in "0123456789_":
                pos += 1
        if pos < len(t) and t[pos] == "i":
            pos += 1
        if pos < len(t) and _is_alnum(t[pos]):
            self._error(f"bad number syntax: {quote(t[start:pos + 1])}", start)
        self._emit(NUMBER, t[start:pos], start)
        return pos


# --- Go literal decoding ----------------------------------------------------------------------

_SIMPLE_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", "'": "'", '"': '"'}


def go_unquote(s: str) -> str:
    """strconv.Unquote for "..." , `...` and '.' literals."""
    if s[0] == "`":
        return s[1:-1].replace("\r", "")
    q = s[0]
    body = s[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        e = body[i + 1] if i + 1 < len(body) else ""
        if e in _SIMPLE_ESC and (e != "'" or q == "'") and (e != '"' or q == '"'):
            out.append(_SIMPLE_ESC[e])
            i += 2
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            hexs = body[i + 2:i + 2 + width]
            if len(hexs) != width or any(h not in "0123456789abcdefABCDEF" for h in hexs):
                raise ValueError(s)
            v = int(hexs, 16)
            if e != "x" and (v > 0x10FFFF or 0xD800 <= v <= 0xDFFF):
                raise ValueError(s)
            out.append(chr(v))
            i += 2 + width
        elif e in "01234567":
            octs = body[i + 1:i + 4]
            if len(octs) != 3 or any(o not in "01234567" for o in octs) or int(octs, 8) > 255:
                raise ValueError(s)
            out.append(chr(int(octs, 8)))
            i += 4
        else:
            raise ValueError(s)
    r = "".join(out)
    if q == "'" and len(r) != 1:
        raise ValueError(s)
    return r


# --- nodes ------------------------------------------------------------------------------------


class Node:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:  # pragma: no cover - every node overrides
        return ""


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos = pos
        self.text = text

    def __str__(self) -> str:
        return repr(self.text)


class DotNode(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class NilNode(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "nil"


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        self.pos = pos
        self.value = value

    def __str__(self) -> str:
        return "true" if self.value else "false"


class NumberNode(Node):
    __slots__ = ("text", "is_int", "is_float", "int_val", "float_val")

    def __init__(self, pos: int, text: str, is_int: bool = False, is_float: bool = False, int_val: int = 0, float_val: float = 0.0) -> None:
        self.pos = pos
        self.text = text
        self.is_int = is_int
        self.is_float = is_float
        self.int_val = int_val
        self.float_val = float_val

    def __str__(self) -> str:
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        self.pos = pos
        self.quoted = quoted
        self.text = text

    def __str__(self) -> str:
        return self.quoted


class FieldNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


class VariableNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos = pos
        self.ident = ident

    def __str__(self) -> str:
        return ".".join(self.ident)


class IdentifierNode(Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos = pos
        self.name = name

    def __str__(self) -> str:
        return self.name


class ChainNode(Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos: int, node: Node, fields: list[str]) -> None:
        self.pos = pos
        self.node = node
        self.fields = fields

    def __str__(self) -> str:
        s = str(self.node)
        if isinstance(self.node, PipeNode):
            s = f"({s})"
        return s + "".join("." + f for f in self.fields)


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos: int, args: list[Node] | None = None) -> None:
        self.pos = pos
        self.args = [] if args is None else args

    def __str__(self) -> str:
        parts = []
        for a in self.args:
            parts.append(f"({a})" if isinstance(a, PipeNode) else str(a))
        return " ".join(parts)


class PipeNode(Node):
    __slots__ = ("is_assign", "decl", "cmds")

    def __init__(self, pos: int, is_assign: bool = False, decl: list[VariableNode] | None = None, cmds: list[CommandNode] | None = None) -> None:
        self.pos = pos
        self.is_assign = is_assign
        self.decl = [] if decl is None else decl
        self.cmds = [] if cmds is None else cmds

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    __slots__ = ("pipe",)

    def __init__(self, pos: int, pipe: PipeNode) -> None:
        self.pos = pos
        self.pipe = pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node] | None = None) -> None:
        self.pos = pos
        self.nodes = [] if nodes is None else nodes

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class BranchNode(Node):
    """An if, range or with (``kind``)."""

    __slots__ = ("kind", "pipe", "body", "else_list")

    def __init__(self, pos: int, kind: str, pipe: PipeNode, body: ListNode, else_list: ListNode | None) -> None:
        self.pos = pos
        self.kind = kind
        self.pipe = pipe
        self.body = body
        self.else_list = else_list

    def __str__(self) -> str:
        s = "{{" + self.kind + " " + str(self.pipe) + "}}" + str(self.body)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


class TemplateNode(Node):
    __slots__ = ("name", "pipe")

    def __init__(self, pos: int, name: str, pipe: PipeNode | None) -> None:
        self.pos = pos
        self.name = name
        self.pipe = pipe

    def __str__(self) -> str:
        return "{{template " + quote(self.name) + (" " + str(self.pipe) if self.pipe else "") + "}}"


class BreakNode(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{break}}"


class ContinueNode(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{continue}}"


class _End(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{end}}"


class _Else(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "{{else}}"


# --- parser -----------------------------------------------------------------------------------


class Template:
    """A parsed template and the named templates it defines."""

    def __init__(self, name: str, text: str, root: ListNode, defs: dict[str, ListNode]) -> None:
        self.name = name
        self.text = text
        self.root = root
        self.defs = defs


class Parser:
    def __init__(self, text: str, funcs: set[str], name: str = "") -> None:
        self.name = name
        self.text = text
        self.funcs = funcs
        self.tokens = Lexer(text, name).tokens
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.defs: dict[str, ListNode] = {}

    # token stream
    def next(self) -> Token:
        tok = self.tokens[self.i]
        if self.i < len(self.tokens) - 1:
            self.i += 1
        return tok

    def backup(self, k: int = 1) -> None:
        self.i -= k

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next_non_space(self) -> Token:
        tok = self.next()
        while tok.typ in (SPACE, COMMENT):
            tok = self.next()
        return tok

    def peek_non_space(self) -> Token:
        j = self.i
        while self.tokens[j].typ in (SPACE, COMMENT):
            j += 1
        self.i = j
        return self.tokens[j]

    def error(self, msg: str, tok: Token | None = None) -> None:
        tok = tok or self.tokens[max(self.i - 1, 0)]
        raise TemplateError(f"template: {self.name}:{tok.line}: {msg}")

    def expect(self, typ: int, context: str) -> Token:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: Token, context: str) -> None:
        if tok.typ == ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action"):]  # not "unclosed action in action"
            self.error(tok.val + extra, tok)
        self.error(f"unexpected {describe(tok)} in {context}", tok)

    # grammar
    def parse(self) -> Template:
        root = ListNode(self.peek().pos)
        while self.peek().typ != EOF:
            if self.peek().typ == LDELIM:
                save = self.i
                self.next()
                tok = self.next_non_space()
                if tok.typ == KW and tok.val == "define":
                    self.parse_definition()
                    continue
                self.i = save
            n = self.text_or_action()
            if isinstance(n, (_End, _Else)):
                self.error(f"unexpected {n}")
            if n is not None:
                root.nodes.append(n)
        return Template(self.name, self.text, root, self.defs)

    def parse_definition(self) -> None:
        tok = self.next_non_space()
        if tok.typ not in (STRING, RAWSTRING):
            self.unexpected(tok, "define clause")
        name = self._unquote(tok)
        self.expect(RDELIM, "define clause")
        body, end = self.item_list()
        if not isinstance(end, _End):
            self.error(f"unexpected {end} in define clause")
        self.defs[name] = body

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != EOF:
            n = self.text_or_action()
            if isinstance(n, (_End, _Else)):
                return lst, n
            if n is not None:
                lst.nodes.append(n)
        self.error("unexpected EOF")
        raise AssertionError("unreachable")

    def text_or_action(self) -> Node | None:
        tok = self.next_non_space()
        if tok.typ == TEXT:
            return TextNode(tok.pos, tok.val)
        if tok.typ == LDELIM:
            if self.peek().typ == COMMENT:
                self.next()
                self.expect(RDELIM, "comment")
                return None
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")
        return None

    def action(self) -> Node:
        tok = self.next_non_space()
        if tok.typ == KW:
            kw = tok.val
            if kw == "block":
                return self.block_control(tok)
            if kw == "break":
                return self.break_control(tok, BreakNode, "break")
            if kw == "continue":
                return self.break_control(tok, ContinueNode, "continue")
            if kw == "else":
                return self.else_control(tok)
            if kw == "end":
                self.expect(RDELIM, "end")
                return _End(tok.pos)
            if kw in ("if", "range", "with"):
                return self.control(kw, tok)
            if kw == "template":
                return self.template_control(tok)
            if kw == "define":
                self.error("unexpected <define> in command", tok)
        self.backup()
        tok = self.peek()
        return ActionNode(tok.pos, self.pipeline("command", RDELIM))

    def break_control(self, tok: Token, cls: type, word: str) -> Node:
        self.expect(RDELIM, word)
        if self.range_depth == 0:
            self.error(f"{{{{{word}}}}} outside {{{{range}}}}", tok)
        return cls(tok.pos)

    def else_control(self, tok: Token) -> Node:
        peek = self.peek_non_space()
        if peek.typ == KW and peek.val in ("if", "with"):
            # "{{else if ...": parsed as {{else}}{{if ...}}...{{end}}{{end}} sharing one {{end}}.
            return _Else(peek.pos)
        self.expect(RDELIM, "else")
        return _Else(tok.pos)

    def control(self, kind: str, tok: Token) -> Node:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(kind, RDELIM)
            if kind == "range":
                self.range_depth += 1
            body, nxt = self.item_list()
            if kind == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, _Else):
                peek = self.peek()
                if (kind == "if" and peek.typ == KW and peek.val == "if") or \
                        (kind == "with" and peek.typ == KW and peek.val == "with"):
                    kwtok = self.next()
                    else_list = ListNode(nxt.pos, [self.control(kind, kwtok)])
                else:
                    else_list, nxt2 = self.item_list()
                    if not isinstance(nxt2, _End):
                        self.error(f"expected end; found {nxt2}")
            return BranchNode(tok.pos, kind, pipe, body, else_list)
        finally:
            del self.vars[mark:]

    def block_control(self, tok: Token) -> Node:
        name_tok = self.next_non_space()
        if name_tok.typ not in (STRING, RAWSTRING):
            self.unexpected(name_tok, "block clause")
        name = self._unquote(name_tok)
        pipe = self.pipeline("block clause", RDELIM)
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        self.vars = saved_vars
        if not isinstance(end, _End):
            self.error(f"unexpected {end} in block clause")
        self.defs[name] = body
        return TemplateNode(name_tok.pos, name, pipe)

    def template_control(self, tok: Token) -> Node:
        name_tok = self.next_non_space()
        if name_tok.typ not in (STRING, RAWSTRING):
            self.unexpected(name_tok, "template clause")
        name = self._unquote(name_tok)
        pipe = None
        if self.next_non_space().typ != RDELIM:
            self.backup()
            pipe = self.pipeline("template clause", RDELIM)
        return TemplateNode(name_tok.pos, name, pipe)

    def _unquote(self, tok: Token) -> str:
        try:
            return go_unquote(tok.val)
        except ValueError:
            self.error(f"invalid syntax: {tok.val}", tok)
            raise AssertionError("unreachable") from None

    def pipeline(self, context: str, end: int) -> PipeNode:
        tok = self.peek_non_space()
        pipe = PipeNode(tok.pos)
        # Variable declarations: "$x :=", "$x =", "$i, $e :=" (range only).
        while True:
            v = self.peek_non_space()
            if v.typ != VARIABLE:
                break
            save = self.i
            self.next()
            nxt = self.peek_non_space()
            if nxt.typ in (ASSIGN, DECLARE):
                self.next()
                pipe.is_assign = nxt.typ == ASSIGN
                pipe.decl.append(VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                break
            if nxt.typ == CHAR and nxt.val == ",":
                self.next()
                pipe.decl.append(VariableNode(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (VARIABLE, RDELIM, RPAREN):
                        continue
                    self.error("range can only initialize variables")
                self.error(f"too many declarations in {context}")
            self.i = save
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                if not pipe.cmds:
                    self.error(f"missing value for {context}", tok)
                for i, c in enumerate(pipe.cmds[1:], 1):
                    first = c.args[0]
                    if isinstance(first, (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                        self.error(f"non executable command in pipeline stage {i + 1}", tok)
                return pipe
            if tok.typ in (BOOL, CHARCONST, DOT, FIELD, IDENT, NUMBER, NIL, RAWSTRING, STRING,
                           VARIABLE, LPAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            tok = self.next()
            if tok.typ == SPACE:
                continue
            if tok.typ in (RDELIM, RPAREN):
                self.backup()  # the pipeline ends here; its caller takes the delimiter
            elif tok.typ != PIPE:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.error("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == FIELD:
            pos = self.peek().pos  # Go positions a chain at its first ".Field" after the term
            fields: list[str] = []
            while self.peek().typ == FIELD:
                fields.extend(self.next().val[1:].split("."))
            if isinstance(node, FieldNode):
                return FieldNode(pos, node.ident + fields)
            if isinstance(node, VariableNode):
                return VariableNode(pos, node.ident + fields)
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.error(f"unexpected . after term {quote(str(node))}")
            return ChainNode(pos, node, fields)
        return node

    def term(self) -> Node | None:
        tok = self.next_non_space()
        t = tok.typ
        if t == IDENT:
            if tok.val not in self.funcs:
                self.error(f'function "{tok.val}" not defined', tok)
            return IdentifierNode(tok.pos, tok.val)
        if t == DOT:
            return DotNode(tok.pos)
        if t == NIL:
            return NilNode(tok.pos)
        if t == VARIABLE:
            parts = tok.val.split(".")
            if parts[0] not in self.vars:
                self.error(f'undefined variable "{parts[0]}"', tok)
            return VariableNode(tok.pos, parts)
        if t == FIELD:
            return FieldNode(tok.pos, tok.val[1:].split("."))
        if t == BOOL:
            return BoolNode(tok.pos, tok.val == "true")
        if t in (CHARCONST, NUMBER):
            return self.number(tok)
        if t == LPAREN:
            return self.pipeline("parenthesized pipeline", RPAREN)
        if t in (STRING, RAWSTRING):
            return StringNode(tok.pos, tok.val, self._unquote(tok))
        self.backup()
        return None

    def number(self, tok: Token) -> NumberNode:
        text = tok.val
        node = NumberNode(tok.pos, text)
        if tok.typ == CHARCONST:
            try:
                node.int_val = ord(go_unquote(text))
            except ValueError:
                self.error(f"malformed character constant: {text}", tok)
            node.is_int = node.is_float = True
            node.float_val = float(node.int_val)
            return node
        if text.endswith("i"):
            self.error(f"illegal number syntax: {text!r}".replace("'", '"'), tok)
        try:
            node.int_val = _parse_go_int(text)
            node.is_int = True
            node.is_float = True
            node.float_val = float(node.int_val)
            return node
        except ValueError:
            pass
        try:
            f = _parse_go_float(text)
        except ValueError:
            self.error(f'illegal number syntax: "{text}"', tok)
            raise AssertionError("unreachable") from None
        node.is_float = True
        node.float_val = f
        if math.isfinite(f) and f == int(f):
            node.is_int = True
            node.int_val = int(f)
        return node


def _parse_go_int(text: str) -> int:
    s = text
    sign = 1
    if s[:1] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if "_" in s and not (s.startswith(("0x", "0X", "0o", "0O", "0b", "0B")) or s[:1] != "0"):
        raise ValueError(text)
    if "__" in s or s.endswith("_"):
        raise ValueError(text)
    if len(s) > 1 and s[0] == "0" and s[1] in "01234567_":
        return sign * int(s[1:].replace("_", ""), 8)
    return sign * int(s, 0)


def _parse_go_float(text: str) -> float:
    s = text.replace("_", "")
    if s.lstrip("+-").startswith(("0x", "0X")):
        return float.fromhex(s)
    if not s or s.lstrip("+-")[:1] not in "0123456789.":
        raise ValueError(text)
    return float(s)


def describe(tok: Token) -> str:
    """How Go's parser names a token in 'unexpected X in Y'."""
    if tok.typ == EOF:
        return "EOF"
    if tok.typ == ERROR:
        return tok.val
    if tok.typ in (KW, DOT, NIL):
        return f"<{tok.val}>"
    if len(tok.val) > 10:
        return quote(tok.val[:10]) + "..."
    return quote(tok.val)


# --- executor ---------------------------------------------------------------------------------

MAX_DEPTH = 100  # Go allows 100000 nested template calls; Python's stack does not.


class Func:
    """A template function.  ``params`` are Go-ish type tags: string, int, float, bool, []string,
    any (interface{}, a nil is fine) and value (reflect.Value: even a missing value is passed)."""

    __slots__ = ("fn", "params", "variadic", "builtin")

    def __init__(self, fn: Any, params: list[str], variadic: str | None = None, builtin: bool = False) -> None:
        self.fn = fn
        self.params = params
        self.variadic = variadic
        self.builtin = builtin


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def truth(v: Any) -> bool:
    """Go's isTrue: empty values are false; structs are always true."""
    if v is MISSING or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, GoStruct):
        return True
    if isinstance(v, (str, list, tuple, dict, bytes)):
        return len(v) > 0
    return True


class State:
    def __init__(self, tmpl: Template, funcs: dict[str, Func], out: list[str], missingkey: str,
                 depth: int = 0) -> None:
        self.tmpl = tmpl
        self.funcs = funcs
        self.out = out
        self.missingkey = missingkey
        self.node: Node | None = None
        self.vars: list[list[Any]] = []
        self.depth = depth
        # Whether dot is an element of a map or slice: Go then knows its type only as interface {},
        # which is the type its error messages name.
        self.dot_iface = False

    # errors
    def at(self, node: Node) -> None:
        self.node = node

    def errorf(self, msg: str) -> None:
        name = self.tmpl.name
        if self.node is None:
            raise TemplateError(f"template: {name}: {msg}")
        pos = self.node.pos
        text = self.tmpl.text[:pos]
        line = 1 + text.count("\n")
        nl = text.rfind("\n")
        col = pos if nl < 0 else pos - nl - 1
        context = str(self.node)
        raise TemplateError(f'template: {name}:{line}:{col}: executing "{name}" at <{context}>: {msg}')

    # variables
    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    def set_top_var(self, n: int, value: Any) -> None:
        self.vars[len(self.vars) - n][1] = value

    def var_value(self, name: str) -> Any:
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        self.errorf(f"undefined variable: {name}")

    # walking
    def walk(self, dot: Any, node: Node) -> None:
        self.at(node)
        if isinstance(node, TextNode):
            self.out.append(node.text)
        elif isinstance(node, ActionNode):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise _Break
        elif isinstance(node, ContinueNode):
            raise _Continue
        else:  # pragma: no cover - the parser makes no other nodes
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot: Any, node: BranchNode) -> None:
        mark = self.mark()
        saved_iface = self.dot_iface
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if truth(val):
                if node.kind == "with":
                    self.dot_iface = False
                    self.walk(val, node.body)
                else:
                    self.walk(dot, node.body)
            elif node.else_list is not None:
                self.dot_iface = saved_iface
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)
            self.dot_iface = saved_iface

    def walk_range(self, dot: Any, node: BranchNode) -> None:
        self.at(node)
        outer = self.mark()
        saved_iface = self.dot_iface
        try:
            val = self.eval_pipeline(dot, node.pipe)
            mark = self.mark()
            decl = node.pipe.decl

            def one(index: Any, elem: Any) -> bool:
                if decl:
                    if node.pipe.is_assign:
                        self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
                    else:
                        self.set_top_var(1, elem)
                if len(decl) > 1:
                    if node.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem)
                    else:
                        self.set_top_var(2, index)
                self.dot_iface = isinstance(val, (list, tuple, dict)) and not isinstance(val, GoStruct)
                try:
                    self.walk(elem, node.body)
                except _Continue:
                    pass
                finally:
                    self.pop(mark)
                    self.dot_iface = saved_iface
                return True

            items: list[tuple[Any, Any]] | None = None
            if isinstance(val, (list, tuple)):
                items = list(enumerate(val))
            elif isinstance(val, dict) and not isinstance(val, GoStruct):
                from dockyard.formatting.printing import _sort_key

                items = [(k, val[k]) for k in sorted(val, key=_sort_key)]
            elif _is_int(val):
                if len(decl) > 1:
                    self.errorf(f"can't use {val} to iterate over more than one variable")
                items = [(i, i) for i in range(val)]
            elif val is MISSING:
                items = []
            else:
                self.errorf(f"range can't iterate over {sprint_value(val)}")
            assert items is not None
            if items:
                try:
                    for k, e in items:
                        one(k, e)
                except _Break:
                    pass
                return
            if node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(outer)

    def walk_template(self, dot: Any, node: TemplateNode) -> None:
        self.at(node)
        body = self.tmpl.defs.get(node.name)
        if body is None:
            self.errorf(f'template "{node.name}" not defined')
        if self.depth >= MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_DEPTH})")
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else MISSING
        sub = State(self.tmpl, self.funcs, self.out, self.missingkey, self.depth + 1)
        sub.push("$", new_dot)
        assert body is not None
        sub.walk(new_dot, body)

    # evaluation
    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.at(pipe)
        value: Any = _FINAL_MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            # A nil interface is dug out to nothing, as Go does after each command.
            if value is None:
                value = MISSING
        for v in pipe.decl:
            if pipe.is_assign:
                self.set_var(v.ident[0], value)
            else:
                self.push(v.ident[0], value)
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not _FINAL_MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            self.at(first)
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final, self.dot_iface)
        if isinstance(first, ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, StringNode):
            return first.text
        self.errorf(f"can't evaluate command {first}")

    def ideal_constant(self, n: NumberNode) -> Any:
        self.at(n)
        t = n.text
        is_hex_int = t.lstrip("+-")[:2].lower() == "0x" and "p" not in t.lower()
        if n.is_float and not is_hex_int and not t.startswith("'") and any(c in t for c in ".eEpP"):
            return n.float_val
        if n.is_int:
            if not -(2 ** 63) <= n.int_val < 2 ** 63:
                self.errorf(f"{t} overflows int")
            return n.int_val
        return n.float_val

    def eval_chain(self, dot: Any, chain: ChainNode, args: list[Node], final: Any) -> Any:
        self.at(chain)
        if not chain.fields:
            self.errorf("internal error: no fields in eval_chain")
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "nil", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable(self, dot: Any, var: VariableNode, args: list[Node], final: Any) -> Any:
        self.at(var)
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: Node, ident: list[str], args: list[Node],
                         final: Any, iface: bool = False) -> Any:
        n = len(ident)
        for i in range(n - 1):
            prev = receiver
            receiver = self.eval_field(dot, ident[i], node, [], _FINAL_MISSING, receiver, iface)
            iface = isinstance(prev, (dict, list, tuple)) and not isinstance(prev, GoStruct)
        return self.eval_field(dot, ident[n - 1], node, args, final, receiver, iface)

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node], final: Any,
                   receiver: Any, iface: bool = False) -> Any:
        if receiver is MISSING:
            if self.missingkey == "error":
                self.errorf(f'nil data; no entry for key "{name}"')
            return MISSING
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = len(args) > 1 or final is not _FINAL_MISSING
        if isinstance(receiver, HeaderText):
            return HeaderText(default_header(name))
        # Methods come before fields and map keys, as in Go; only exported (capitalised) names,
        # which also keeps Python internals (_x, __class__) out of reach of a template.
        if name[:1].isupper() and type(receiver) not in _PLAIN:
            method = getattr(type(receiver), name, None)
            if isinstance(method, _FUNCTION_TYPES):
                bound = getattr(receiver, name)
                return self.eval_call(dot, bound, False, node, name, args, final, method_params(bound))
        if isinstance(receiver, GoStruct):
            if name in receiver:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver[name]
        elif isinstance(receiver, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver or hasattr(type(receiver), "__missing__"):
                return receiver[name]
            if self.missingkey == "error":
                self.errorf(f'map has no entry for key "{name}"')
            if self.missingkey == "zero":
                return None
            return MISSING
        elif not isinstance(receiver, _PLAIN) and name[:1].isupper():
            if hasattr(type(receiver), name) or name in getattr(receiver, "__dict__", {}):
                try:
                    value = getattr(receiver, name)
                except Exception as e:  # a property raising is Go's method returning an error
                    self.errorf(f"error calling {name}: {e}")
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return value
        self.errorf(f"can't evaluate field {name} in type {'interface {}' if iface else go_type_name(receiver)}")

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node], final: Any) -> Any:
        self.at(node)
        f = self.funcs.get(node.name)
        if f is None:
            self.errorf(f'"{node.name}" is not a defined function')
        assert f is not None
        return self.eval_call(dot, f, f.builtin, cmd, node.name, args, final, None)

    def eval_call(self, dot: Any, fun: Any, builtin: bool, node: Node, name: str, args: list[Node],
                  final: Any, sig: tuple[list[str], str | None] | None) -> Any:
        args = args[1:]  # args[0] names the function or method
        if isinstance(fun, Func):
            params, variadic, fn = fun.params, fun.variadic, fun.fn
        else:
            params, variadic = sig if sig is not None else ([], "any")
            fn = fun
        num_in = len(args) + (0 if final is _FINAL_MISSING else 1)
        if variadic is not None:
            if num_in < len(params):
                self.errorf(f"wrong number of args for {name}: want at least {len(params)} got {num_in}")
        elif num_in != len(params):
            self.errorf(f"wrong number of args for {name}: want {len(params)} got {num_in}")

        def param(i: int) -> str:
            return params[i] if i < len(params) else (variadic or "any")

        # and/or short-circuit: later operands are not evaluated once the result is known.
        if builtin and name in ("and", "or"):
            v: Any = MISSING
            for a in args:
                v = self.eval_arg(dot, "value", a)
                if truth(v) == (name == "or"):
                    return v
            if final is not _FINAL_MISSING:
                v = final
            return v
        argv = [self.eval_arg(dot, param(i), a) for i, a in enumerate(args)]
        if final is not _FINAL_MISSING:
            argv.append(self.validate_type(final, param(len(argv))))
        try:
            return fn(*argv)
        except _Exec as e:
            self.at(node)
            self.errorf(f"error calling {name}: {e}")
        except TemplateError:
            raise
        except Exception as e:  # a Python method failing is a Go method returning an error
            self.at(node)
            self.errorf(f"error calling {name}: {e}")

    def validate_type(self, value: Any, typ: str) -> Any:
        if value is MISSING:
            if typ in ("nil", "value"):
                return MISSING
            if typ in ("any", "[]string"):
                return None
            self.errorf(f"invalid value; expected {typ}")
        if typ in ("any", "value", "nil"):
            return value
        ok = {
            "string": lambda v: isinstance(v, str),
            "int": _is_int,
            "float": lambda v: isinstance(v, float),
            "bool": lambda v: isinstance(v, bool),
            "[]string": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
        }[typ](value)
        if not ok:
            got = "interface {}" if value is None else go_type_name(value)
            self.errorf(f"wrong type for value; expected {typ}; got {got}")
        return value

    def eval_arg(self, dot: Any, typ: str, n: Node) -> Any:
        self.at(n)
        if isinstance(n, DotNode):
            return self.validate_type(dot, typ)
        if isinstance(n, NilNode):
            if typ == "value":
                return MISSING  # reflect.Zero(reflect.Value): no value at all
            if typ in ("any", "[]string"):
                return None
            self.errorf(f"cannot assign nil to {typ}")
        if isinstance(n, FieldNode):
            return self.validate_type(
                self.eval_field_chain(dot, dot, n, n.ident, [n], _FINAL_MISSING, self.dot_iface), typ)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable(dot, n, [], _FINAL_MISSING), typ)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), typ)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, [n], _FINAL_MISSING), typ)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain(dot, n, [], _FINAL_MISSING), typ)
        if typ == "bool":
            if isinstance(n, BoolNode):
                return n.value
            self.errorf(f"expected bool; found {n}")
        if typ == "int":
            if isinstance(n, NumberNode) and n.is_int:
                return n.int_val
            self.errorf(f"expected integer; found {n}")
        if typ == "float":
            if isinstance(n, NumberNode) and n.is_float:
                return n.float_val
            self.errorf(f"expected float; found {n}")
        if typ == "string":
            if isinstance(n, StringNode):
                return n.text
            self.errorf(f"expected string; found {n}")
        if typ in ("any", "value", "nil"):
            if isinstance(n, BoolNode):
                return n.value
            if isinstance(n, NumberNode):
                return self.ideal_constant(n)
            if isinstance(n, StringNode):
                return n.text
        self.errorf(f"can't handle {n} for arg of type {typ}")

    def print_value(self, node: Node, v: Any) -> None:
        self.at(node)
        if v is MISSING or v is None:
            self.out.append("<no value>")
            return
        if callable(v) and not isinstance(v, type) and not hasattr(v, "__dict__") and not isinstance(v, Func):
            self.errorf(f"can't print {node} of type func")
        self.out.append(sprint_value(v))


class _FinalMissing:
    """Go's missingVal: no piped-in final argument."""


_FINAL_MISSING = _FinalMissing()


_PARAM_CACHE: dict[Any, tuple[list[str], str | None]] = {}
_TYPE_TAGS = {"str": "string", "int": "int", "bool": "bool", "float": "float"}


def method_params(method: Any) -> tuple[list[str], str | None]:
    """Go parameter type tags of a Python method, from its annotations (str/int/bool/float; anything
    else takes any value).  Read from the code object: ``inspect`` costs more to import than a
    ``ps`` row takes to render."""
    fn = getattr(method, "__func__", method)
    cached = _PARAM_CACHE.get(fn)
    if cached is not None:
        return cached
    code = getattr(fn, "__code__", None)
    if code is None:
        return [], "any"
    n = code.co_argcount
    names = code.co_varnames[:n]
    skip = 1 if getattr(method, "__self__", None) is not None else 0
    ann = getattr(fn, "__annotations__", {}) or {}
    required = n - len(getattr(fn, "__defaults__", None) or ())

    def tag(name: str) -> str:
        a = ann.get(name)
        return _TYPE_TAGS.get(a if isinstance(a, str) else getattr(a, "__name__", ""), "any")

    variadic = tag(code.co_varnames[n + code.co_kwonlyargcount]) if code.co_flags & 0x04 else None
    result = ([tag(x) for x in names[skip:required]], variadic)
    _PARAM_CACHE[fn] = result
    return result


def execute(tmpl: Template, data: Any, funcs: dict[str, Func], missingkey: str = "default") -> str:
    out: list[str] = []
    st = State(tmpl, funcs, out, missingkey)
    if data is None:
        data = MISSING  # Go's reflect.ValueOf(nil): no value at all, not a nil interface
    st.push("$", data)
    try:
        st.walk(data, tmpl.root)
    except RecursionError:
        raise TemplateError(f"template: {tmpl.name}: template nested too deeply") from None
    return "".join(out)


def execute_partial(tmpl: Template, data: Any, funcs: dict[str, Func]) -> str:
    """Execute and keep what was written before an error, as Docker does for table headers."""
    out: list[str] = []
    st = State(tmpl, funcs, out, "default")
    st.push("$", data)
    try:
        st.walk(data, tmpl.root)
    except (TemplateError, RecursionError):
        pass
    return "".join(out)


def parse(text: str, funcs: set[str], name: str = "") -> Template:
    return Parser(text, funcs, name).parse()
