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
from tests.formatting.cases import (
    CASES,
    DATA,
    JSON_MODES,
    JSON_VALUES,
    LIST_CASES,
    LIST_DATA,
    MISSINGKEY_ERROR_CASES,
    PS_DEFAULT,
    PS_HEADERS,
)
from tests.formatting.fuzzgen import templates

HARNESS = Path(__file__).parent / "goharness" / "main.go"
ALL = [(t, d, "") for t, d in CASES] + [(t, d, "error") for t, d in MISSINGKEY_ERROR_CASES]
RANDOM = templates(3000, seed=20261130)
MARSHAL = [(mode, i) for mode in JSON_MODES for i in range(len(JSON_VALUES))]


@pytest.fixture(scope="module")
def go_results(tmp_path_factory):
    work = tmp_path_factory.mktemp("goharness")
    shutil.copy(HARNESS, work / "main.go")
    (work / "go.mod").write_text("module goharness\n\ngo 1.19\n")
    # A private build cache: nothing outside the temp dir is written, and no network is used.
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", GOTOOLCHAIN="local", GOCACHE=str(work / "cache"))
    subprocess.run(["go", "build", "-o", str(work / "harness"), "."], cwd=work, env=env, check=True,
                   capture_output=True, timeout=600)
    cases = [{"tmpl": t, "data": DATA[d], "missingkey": mk} for t, d, mk in ALL]
    # Docker turns a bare "table" into the command's default table format before rendering.
    cases += [{"tmpl": PS_DEFAULT if f == "table" else f, "data": LIST_DATA[d], "list": True,
               "headers": PS_HEADERS} for f, d in LIST_CASES]
    cases += [{"tmpl": t, "data": DATA["misc"]} for t in RANDOM]
    cases += [{"tmpl": "", "data": JSON_VALUES[i], "marshal": mode} for mode, i in MARSHAL]
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


@pytest.mark.peer("go")
@pytest.mark.parametrize("i", range(len(LIST_CASES)), ids=[f"{d}:{f[:60]}" for f, d in LIST_CASES])
def test_list_same_as_docker_formatter(go_results, i):
    from dockyard.errors import InvalidArgument
    from dockyard.formatting import render_list

    fmt, data = LIST_CASES[i]
    go = go_results[len(ALL) + i]
    try:
        out, err = render_list(fmt, LIST_DATA[data], PS_DEFAULT, PS_HEADERS, missingkey="default"), ""
    except InvalidArgument as e:
        out, err = "", str(e).removeprefix("template parsing error: ")
    assert (out, err) == ("" if go["err"] else go["out"], go["err"])


@pytest.mark.peer("go")
def test_random_templates_same_as_go(go_results):
    base = len(ALL) + len(LIST_CASES)
    bad = []
    for i, text in enumerate(RANDOM):
        go = go_results[base + i]
        got = render_py(text, DATA["misc"], "")
        if got != ("" if go["err"] else go["out"], go["err"]):
            bad.append(f"{text!r}\n  go: {go}\n  py: {got}")
    assert not bad, f"{len(bad)} of {len(RANDOM)} differ; first:\n" + "\n".join(bad[:5])


@pytest.mark.peer("go")
@pytest.mark.parametrize("mode,i", MARSHAL, ids=[f"{m}-{i}" for m, i in MARSHAL])
def test_json_same_as_go(go_results, mode, i):
    from dockyard.formatting.gojson import marshal

    go = go_results[len(ALL) + len(LIST_CASES) + len(RANDOM) + MARSHAL.index((mode, i))]
    assert not go["err"]
    got = marshal(JSON_VALUES[i], escape_html=mode == "marshal", indent="    " if mode == "indent" else "")
    assert got == go["out"]
