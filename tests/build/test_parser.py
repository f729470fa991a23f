"""The Dockerfile grammar on its own: continuations, directives, comments, forms, heredocs, substitution."""

from __future__ import annotations

import pytest

from dockyard.build.parser import DockerfileError, expand, expand_words, parse


def test_continuations_comments_and_flags():
    df = parse("FROM busybox\n"
               "# a comment\n"
               "RUN --mount=type=secret,id=a \\\n"
               "    # comment inside a continuation is dropped\n"
               "\n"
               "    echo one \\\n"
               "    && echo two\n"
               "copy --chown=1:2 a b\n")
    run = df.instructions[1]
    assert run.cmd == "RUN" and run.line == 3
    assert run.flags == {"mount": ["type=secret,id=a"]}
    assert run.rest.split() == ["echo", "one", "&&", "echo", "two"]
    cp = df.instructions[2]
    assert cp.cmd == "COPY" and cp.flag("chown") == "1:2" and cp.rest == "a b"


def test_escape_directive_and_json_form():
    df = parse("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo ok\nCMD [\"a\", \"b c\"]\n")
    assert df.escape == "`"
    assert df.instructions[1].rest == "dir c:\\   && echo ok"
    assert df.instructions[2].json_args() == ["a", "b c"]
    assert parse("FROM x\nCMD echo [x]\n").instructions[1].json_args() is None


def test_heredoc():
    df = parse("FROM x\nRUN <<EOF\necho a\necho b\nEOF\nCOPY <<-'F' /f\n\thello $X\n\tF\nUSER u\n")
    run, cp, user = df.instructions[1:]
    assert run.heredocs[0].body == "echo a\necho b\n"
    assert cp.heredocs[0].body == "hello $X\n" and not cp.heredocs[0].expand
    assert user.cmd == "USER" and user.line == 9


def test_substitution():
    env = {"A": "1", "EMPTY": "", "P": "/srv"}
    assert expand("$A-${A}-${NOPE:-d}-${EMPTY:-e}-${EMPTY-f}-${A:+alt}-${NOPE:+x}", env) == "1-1-d-e--alt-"
    assert expand("'$A' \"$A\" \\$A", env) == "$A 1 $A"
    assert expand_words('a "b c" ${P}/x \'\'', env) == ["a", "b c", "/srv/x", ""]
    with pytest.raises(DockerfileError):
        expand("${NOPE:?must be set}", env)


@pytest.mark.parametrize("text,msg", [
    ("FROM x\nFROB y\n", "line 2: unknown instruction: FROB"),
    ("RUN true\n", "line 1: no build stage"),
    ("", "no instructions"),
    ("FROM x\nCOPY --nope=1 a b\n", "line 2: unknown flag for COPY: --nope"),
    ("FROM x\nRUN <<EOF\necho\n", "heredoc EOF is not terminated"),
    ("# escape=x\nFROM y\n", "invalid escape token"),
])
def test_errors_name_the_line(text, msg):
    with pytest.raises(DockerfileError, match=msg.replace("(", r"\(")):
        parse(text)


def test_bom_and_crlf():
    df = parse("\ufeffFROM x\r\nRUN a \\\r\n  b\r\n")
    assert [i.cmd for i in df.instructions] == ["FROM", "RUN"]
    assert df.instructions[1].rest.split() == ["a", "b"]
