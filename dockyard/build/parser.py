"""Dockerfile/Containerfile syntax: logical lines, instructions, flags, and variable substitution.

The grammar follows Docker's reference: parser directives (``# escape=``, ``# syntax=``) only at the
very top, the escape character continuing a line, comment lines dropped even inside a continued
instruction, JSON (exec) or shell form arguments, heredocs (``<<EOF``) for RUN/COPY/ADD, and
``$VAR``/``${VAR}``/``${VAR:-word}``/``${VAR:+word}`` expanded in the instructions Docker expands.
Every error names the file's line, so a broken Dockerfile fails before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.errors import InvalidArgument

INSTRUCTIONS = ("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL")
# Instructions whose arguments the builder expands (Docker's "Environment replacement" list, plus ARG
# defaults); RUN/CMD/ENTRYPOINT are left to the shell in the container.
EXPANDED = ("ADD", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR", "ARG")
# Flags each instruction accepts (name -> may repeat).
FLAGS: dict[str, dict[str, bool]] = {
    "FROM": {"platform": False},
    "RUN": {"mount": True, "network": False, "security": False},
    "COPY": {"from": False, "chown": False, "chmod": False, "link": False, "parents": False, "exclude": True},
    "ADD": {"chown": False, "chmod": False, "link": False, "checksum": False, "keep-git-dir": False,
            "exclude": True},
    "HEALTHCHECK": {"interval": False, "timeout": False, "start-period": False, "start-interval": False,
                    "retries": False},
}

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\2")


class DockerfileError(InvalidArgument):
    pass


@dataclass
class Heredoc:
    name: str
    body: str
    expand: bool  # unquoted delimiter: the body is subject to expansion
    strip_tabs: bool


@dataclass
class Instruction:
    cmd: str  # upper case
    rest: str  # the arguments after flags, continuations joined
    line: int  # first line in the file
    original: str  # the instruction as written (continuations joined), for history and errors
    flags: dict[str, list[str]] = field(default_factory=dict)
    heredocs: list[Heredoc] = field(default_factory=list)

    def flag(self, name: str) -> str | None:
        v = self.flags.get(name)
        return v[-1] if v else None

    def json_args(self) -> list[str] | None:
        """The exec (JSON array) form's arguments, or None for the shell form."""
        s = self.rest.strip()
        if not s.startswith("["):
            return None
        try:
            v = json.loads(s)
        except ValueError:
            return None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return v
        return None

    def fail(self, msg: str) -> DockerfileError:
        return DockerfileError(f"line {self.line}: {self.cmd} {msg}")


@dataclass
class Dockerfile:
    instructions: list[Instruction]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    lines = text.removeprefix("\ufeff").splitlines()  # editors' byte-order mark, as Docker skips it
    escape = "\\"
    directives: dict[str, str] = {}
    i = 0
    # Directives are only recognised before the first comment, blank line or instruction.
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i].strip())
        if not m or m.group(1).lower() in directives:
            break
        key, val = m.group(1).lower(), m.group(2)
        if key not in ("escape", "syntax", "check"):
            break
        if key == "escape":
            if val not in ("\\", "`"):
                raise DockerfileError(f"{name}: line {i + 1}: invalid escape token {val!r}: it must be \\ or `")
            escape = val
        directives[key] = val
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            i += 1
            continue
        start = i
        parts: list[str] = []
        cur = raw
        while True:
            s = cur.rstrip()
            if s.endswith(escape):
                parts.append(s[:-1])
                i += 1
                # Skip comment and blank lines inside the continuation, as Docker does.
                while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
                    i += 1
                if i >= len(lines):
                    break
                cur = lines[i]
                continue
            parts.append(cur)
            i += 1
            break
        logical = "".join(parts).strip()
        word, _, rest = logical.partition(" ")
        if "\t" in word:
            word, _, more = word.partition("\t")
            rest = more + " " + rest
        cmd = word.upper()
        if cmd not in INSTRUCTIONS:
            raise DockerfileError(f"{name}: line {start + 1}: unknown instruction: {word}")
        ins = Instruction(cmd, rest.strip(), start + 1, logical)
        _split_flags(ins, name)
        if cmd in ("RUN", "COPY", "ADD") and ins.json_args() is None:
            for m in _HEREDOC.finditer(ins.rest):
                body: list[str] = []
                while i < len(lines):
                    line = lines[i].lstrip("\t") if m.group(1) else lines[i]
                    if line == m.group(3):
                        break
                    body.append(line)
                    i += 1
                if i >= len(lines):
                    raise DockerfileError(f"{name}: line {start + 1}: heredoc {m.group(3)} is not terminated")
                i += 1
                ins.heredocs.append(Heredoc(m.group(3), "".join(b + "\n" for b in body),
                                            expand=not m.group(2), strip_tabs=bool(m.group(1))))
        out.append(ins)
    if not out:
        raise DockerfileError(f"{name}: the file has no instructions")
    first = next((x for x in out if x.cmd != "ARG"), None)
    if first is None or first.cmd != "FROM":
        bad = first or out[0]
        raise DockerfileError(f"{name}: line {bad.line}: no build stage: the first instruction "
                              f"(other than ARG) must be FROM, not {bad.cmd}")
    return Dockerfile(out, escape, directives)


def _split_flags(ins: Instruction, name: str) -> None:
    allowed = FLAGS.get(ins.cmd, {})
    rest = ins.rest
    while rest.startswith("--"):
        word, _, after = rest.partition(" ")
        key, eq, val = word[2:].partition("=")
        if key not in allowed:
            raise DockerfileError(f"{name}: line {ins.line}: unknown flag for {ins.cmd}: --{key}")
        if not eq and key not in ("link", "parents", "keep-git-dir"):
            raise DockerfileError(f"{name}: line {ins.line}: {ins.cmd} flag --{key} needs a value (--{key}=...)")
        vals = ins.flags.setdefault(key, [])
        if vals and not allowed[key]:
            raise DockerfileError(f"{name}: line {ins.line}: {ins.cmd} flag --{key} given twice")
        vals.append(val if eq else "true")
        rest = after.lstrip()
    ins.rest = rest


# -- variable substitution (Docker's shell lexer, the subset Dockerfiles use) ---------------------------
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def expand(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word, quotes removed and variables expanded (ENV/LABEL values, WORKDIR, USER ...)."""
    return "".join(_lex(text, env, escape, split=False))


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Whitespace-separated words (quotes keep spaces), each with quotes removed and variables expanded."""
    return _lex(text, env, escape, split=True)


def _lex(text: str, env: Mapping[str, str], escape: str, split: bool) -> list[str]:
    words: list[str] = []
    cur: list[str] = []
    have = False  # an empty quoted string still makes a word
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if split and c in " \t\n":
            if cur or have:
                words.append("".join(cur))
                cur, have = [], False
            i += 1
            continue
        if c == escape:
            if i + 1 < n:
                cur.append(text[i + 1])
                i += 2
            else:
                cur.append(c)
                i += 1
            continue
        if c == "'":
            j = text.find("'", i + 1)
            if j < 0:
                raise DockerfileError(f"unexpected end of statement while looking for matching single-quote: {text}")
            cur.append(text[i + 1:j])
            have = True
            i = j + 1
            continue
        if c == '"':
            i += 1
            have = True
            while i < n and text[i] != '"':
                if text[i] == escape and i + 1 < n and text[i + 1] in ('"', "$", escape):
                    cur.append(text[i + 1])
                    i += 2
                elif text[i] == "$":
                    val, i = _var(text, i, env, escape)
                    cur.append(val)
                else:
                    cur.append(text[i])
                    i += 1
            if i >= n:
                raise DockerfileError(f"unexpected end of statement while looking for matching double-quote: {text}")
            i += 1
            continue
        if c == "$":
            val, i = _var(text, i, env, escape)
            cur.append(val)
            continue
        cur.append(c)
        i += 1
    if cur or have or not split:
        words.append("".join(cur))
    return words


def _var(text: str, i: int, env: Mapping[str, str], escape: str) -> tuple[str, int]:
    """Expand the variable reference at text[i] == '$'; returns (value, index after it)."""
    n = len(text)
    if i + 1 >= n:
        return "$", i + 1
    if text[i + 1] == "{":
        close = _closing_brace(text, i + 2)
        if close < 0:
            raise DockerfileError(f"missing '}}' in {text!r}")
        inner = text[i + 2:close]
        m = _NAME.match(inner)
        if not m:
            raise DockerfileError(f"bad substitution: ${{{inner}}}")
        name, op = m.group(0), inner[m.end():]
        val = env.get(name)
        if not op:
            return val or "", close + 1
        for mod in (":-", ":+", ":?", "-", "+", "?"):
            if op.startswith(mod):
                word = expand(op[len(mod):], env, escape)
                is_set = val is not None and (val != "" or ":" not in mod)
                if mod.endswith("-"):
                    return (val if is_set else word) or "", close + 1
                if mod.endswith("+"):
                    return (word if is_set else ""), close + 1
                if not is_set:
                    raise DockerfileError(f"{name}: {word or 'is not allowed to be unset'}")
                return val or "", close + 1
        raise DockerfileError(f"unsupported modifier ({op[:2]}) in substitution ${{{inner}}}")
    m = _NAME.match(text, i + 1)
    if not m:
        return "$", i + 1
    return env.get(m.group(0), ""), m.end()


def _closing_brace(text: str, j: int) -> int:
    depth = 1
    while j < len(text):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
        j += 1
    return -1


def parse_kv_mount(spec: str) -> dict[str, str]:
    """``type=secret,id=x,required`` -> dict (a bare key means ``true``, as BuildKit reads it)."""
    out: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        k, eq, v = item.partition("=")
        out[k.strip().lower()] = v.strip() if eq else "true"
    return out
