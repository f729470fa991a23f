"""cli.output: JSON as Docker's CLI prints it for inspect/info/version, through the real CLI and direct."""

from __future__ import annotations

import json

import pytest

from dockyard.cli.output import print_format, print_inspect, print_json
from dockyard.errors import InvalidArgument

OBJ = {"Name": "web", "Cmd": ["sh", "-c", "a && b > c"], "Labels": {"z": "1", "a": "é\u2028"}, "Empty": {}}


def test_default_json_is_indented_by_four_spaces_in_order(capsys):
    print_format(OBJ, None)
    out = capsys.readouterr().out
    assert out == ('{\n    "Name": "web",\n    "Cmd": [\n        "sh",\n        "-c",\n        "a && b > c"\n    ],\n'
                   '    "Labels": {\n        "z": "1",\n        "a": "é\\u2028"\n    },\n    "Empty": {}\n}\n')


def test_format_json_is_one_compact_line(capsys):
    print_format(OBJ, "json")
    assert capsys.readouterr().out == \
        '{"Name":"web","Cmd":["sh","-c","a && b > c"],"Labels":{"z":"1","a":"é\\u2028"},"Empty":{}}\n'


def test_empty_format_means_the_default(capsys):
    print_format({"a": 1}, "", default="yaml")
    assert capsys.readouterr().out == "a: 1\n"


def test_print_inspect_like_docker(capsys):
    print_inspect([], None)
    assert capsys.readouterr().out == "[]\n"
    print_inspect([{"a": "<1>"}, {"a": 2}], "json")
    assert capsys.readouterr().out == '[{"a":"<1>"},{"a":2}]\n'
    print_inspect([{"a": 1}, {"a": 2}], "{{.a}}")
    assert capsys.readouterr().out == "1\n2\n"
    print_inspect([], "{{.a}}")
    assert capsys.readouterr().out == "\n"
    print_json([{"a": 1}])
    assert capsys.readouterr().out == '[\n    {\n        "a": 1\n    }\n]\n'


def test_unencodable_value_is_one_error():
    with pytest.raises(InvalidArgument, match="json: unsupported value: NaN"):
        print_format({"x": float("nan")}, "json")


def test_info_and_version_format_json_through_the_cli(dy):
    for cmd in ("info", "version"):
        out = dy(cmd, "--format", "json", check=True).stdout
        assert out.count("\n") == 1 and out.endswith("}\n"), out[:200]
        assert isinstance(json.loads(out), dict)
