"""Render every case in cases.py with Go's own text/template and with dockyard's, and compare
output and error text byte for byte.  The Go program is built from goharness/main.go in a temp dir."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dockyard.formatting.funcs import FUNC_NAMES, FUNCS
from dockyard.formatting.template import Parser, TemplateError, execute
from tests.formatting.cases import CASES, DATA, MISSINGKEY_ERROR_CASES

HARNESS = Path(__file__).parent / "goharness" / "main.go"
ALL = [(t, d, "") for t, d in CASES] + [(t, d, "error") for t, d in MISSINGKEY_ERROR_CASES]


@pytest.fixture(scope="module")
def go_results(tmp_path_factory):
    work = tmp_path_factory.mktemp("goharness")
    shutil.copy(HARNESS, work / "main.go")
    (work / "go.mod").write_text("module goharness\n\ngo 1.19\n")
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local")
    subprocess.run(["go", "build", "-o", str(work / "harness"), "."], cwd=work, env=env, check=True,
                   capture_output=True, timeout=600)
    cases = [{"tmpl": t, "data": DATA[d], "missingkey": mk} for t, d, mk in ALL]
    p = subprocess.run([str(work / "harness")], input=json.dumps(cases), capture_output=True, text=True,
                       check=True, timeout=120)
    return json.loads(p.stdout)


def render_py(text: str, data, missingkey: str) -> tuple[str, str]:
    try:
        tmpl = Parser(text, set(FUNC_NAMES)).parse()
        return execute(tmpl, data, FUNCS, missingkey or "default"), ""
    except TemplateError as e:
        return "", str(e)


@pytest.mark.peer("go")
@pytest.mark.parametrize("i", range(len(ALL)), ids=[f"{d}{'-' + mk if mk else ''}:{t[:60]}" for t, d, mk in ALL])
def test_same_as_go(go_results, i):
    text, data, missingkey = ALL[i]
    go = go_results[i]
    out, err = render_py(text, DATA[data], missingkey)
    assert (out, err) == ("" if go["err"] else go["out"], go["err"])
