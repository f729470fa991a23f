"""Where Docker's JSON escapes <, > and &: inside a list row's own JSON, not in the json function of a
value, not in inspect output (test_go_differential.py checks the encodings against Go itself)."""

from __future__ import annotations

import json

from dockyard.formatting import GoStruct, render, render_list
from dockyard.formatting.containers import ContainerRow
from dockyard.formatting.gojson import marshal

SUMMARY = {"Id": "4f66ad9a0b2e" + "0" * 52, "Names": ["/web"], "Image": "nginx", "Command": "sh -c 'a && b'",
           "Created": 1700000000, "State": "running", "Status": "Up 2 minutes", "Labels": {"x": "<y>"},
           "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]}


def test_ps_json_rows_escape_like_docker_contexts():
    row = ContainerRow(SUMMARY, now=1700000120)
    line = render_list("json", [row], "table {{.ID}}")
    assert '"Ports":"0.0.0.0:8080-\\u003e80/tcp"' in line
    assert '"Labels":"x=\\u003cy\\u003e"' in line
    assert "<" not in line and ">" not in line and "&" not in line
    keys = list(json.loads(line))
    assert keys == sorted(keys)
    # The same row through {{json .}} inside a table: still the row's own JSON.
    assert render_list("table {{json .}}", [row], "").splitlines()[1] == line.rstrip("\n")


def test_json_of_a_rows_field_is_not_escaped():
    row = ContainerRow(SUMMARY, now=1700000120)
    assert render_list("{{json .Ports}}", [row], "") == '"0.0.0.0:8080->80/tcp"\n'


def test_dict_rows_are_contexts_too():
    rows = [{"Name": "v1", "Labels": "a=<b>&c", "Driver": "local"}]
    assert render_list("json", rows, "table {{.Name}}") == \
        '{"Driver":"local","Labels":"a=\\u003cb\\u003e\\u0026c","Name":"v1"}\n'
    assert render_list("{{.Labels}}", rows, "") == "a=<b>&c\n"


def test_inspect_json_function_keeps_html_characters():
    obj = {"Config": GoStruct(Cmd=["sh", "-c", "a && b > c"], Labels={"z": "1", "a": "<2>"})}
    assert render("{{json .Config}}", obj) == '{"Cmd":["sh","-c","a && b > c"],"Labels":{"a":"<2>","z":"1"}}\n'
    assert render("json", obj) == '{"Config":{"Cmd":["sh","-c","a && b > c"],"Labels":{"a":"<2>","z":"1"}}}\n'


def test_string_rules():
    assert marshal("\u2028\u2029") == '"\\u2028\\u2029"'
    assert marshal("é🐳") == '"é🐳"'
    # A byte that is not UTF-8 (surrogate-escaped by Python) comes out as Go writes it.
    assert marshal(b"a\xffb".decode("utf-8", "surrogateescape")) == '"a\\ufffdb"'
    assert marshal("\b\f\x00") == '"\\b\\f\\u0000"'
    assert marshal({"k": [1.0, 1e21]}, indent="    ") == '{\n    "k": [\n        1,\n        1e+21\n    ]\n}'


def test_dict_order_kept_when_asked():
    assert marshal({"b": 1, "a": {"d": 1, "c": 2}}, sort_maps=False) == '{"b":1,"a":{"d":1,"c":2}}'
