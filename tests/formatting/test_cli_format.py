"""--format through the real CLI: output on stdout, a bad template is one `Error:` line and exit 125."""

from __future__ import annotations

import json


def test_version_format_template(dy):
    p = dy("version", "--format", "{{.Version}}|{{.Client.Os}}")
    assert p.returncode == 0, p.stderr
    version, os_name = p.stdout.rstrip("\n").split("|")
    assert version and os_name == "linux"
    assert p.stdout.endswith("\n") and p.stdout.count("\n") == 1


def test_info_format_range_and_json(dy):
    keys = dy("info", "--format", "{{range $k, $v := .}}{{$k}} {{end}}", check=True).stdout.split()
    assert keys == sorted(keys) and keys
    whole = json.loads(dy("info", "--format", "{{json .}}", check=True).stdout)
    assert sorted(whole) == keys


def test_unknown_field_and_function_fail_with_one_line(dy):
    p = dy("info", "--format", "{{.NoSuchField}}")
    assert p.returncode == 125
    assert p.stdout == ""
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("Error: ")
    assert 'map has no entry for key "NoSuchField"' in p.stderr

    p = dy("info", "--format", "{{nosuchfunc .}}")
    assert p.returncode == 125
    assert p.stderr == 'Error: template parsing error: template: :1: function "nosuchfunc" not defined\n'
