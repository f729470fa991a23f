"""--format semantics with their documented results: Go's text/template package documentation,
Docker's "Format command and log output" page, and where dockyard follows Docker rather than the Go
version Debian ships (range over an int and {{else with}} are Go 1.22/1.23; Docker's data is typed)."""

from __future__ import annotations

import dataclasses

import pytest

from dockyard.errors import InvalidArgument
from dockyard.formatting import GoStruct, parse, render, render_list
from tests.formatting.cases import INSPECT


def r(fmt: str, data=None, **kw) -> str:
    out = render(fmt, data if data is not None else {}, **kw)
    assert out.endswith("\n")
    return out[:-1]


# The examples of https://pkg.go.dev/text/template ("Examples" under Pipelines, and Text and spaces):
# each prints the quoted word "output".
GO_DOC_OUTPUT = [
    '{{"\\"output\\""}}',
    '{{`"output"`}}',
    '{{printf "%q" "output"}}',
    '{{"output" | printf "%q"}}',
    '{{printf "%q" (print "out" "put")}}',
    '{{"put" | printf "%s%s" "out" | printf "%q"}}',
    '{{"output" | printf "%s" | printf "%q"}}',
    '{{with "output"}}{{printf "%q" .}}{{end}}',
    '{{with $x := "output" | printf "%q"}}{{$x}}{{end}}',
    '{{with $x := "output"}}{{printf "%q" $x}}{{end}}',
    '{{with $x := "output"}}{{$x | printf "%q"}}{{end}}',
]


@pytest.mark.parametrize("fmt", GO_DOC_OUTPUT)
def test_go_documented_pipelines(fmt):
    assert r(fmt) == '"output"'


def test_go_documented_trim_markers():
    assert r("{{23 -}} < {{- 45}}") == "23<45"


def test_go_documented_truthiness():
    data = {"zero": 0, "empty": "", "nil": None, "list": [], "map": {}, "f": False, "s": GoStruct()}
    for k in ("zero", "empty", "nil", "list", "map", "f"):
        assert r(f"{{{{if .{k}}}}}T{{{{else}}}}F{{{{end}}}}", data) == "F", k
    # A struct is always true, even with no fields.
    assert r("{{if .s}}T{{else}}F{{end}}", data) == "T"


def test_map_range_is_in_sorted_key_order():
    data = {"m": {"zeta": 1, "alpha": 2, "mid": 3}}
    assert r("{{range $k, $v := .m}}{{$k}}={{$v}} {{end}}", data) == "alpha=2 mid=3 zeta=1 "
    assert r("{{.m}}", data) == "map[alpha:2 mid:3 zeta:1]"


def test_variables_scope_and_root():
    data = {"name": "root", "items": ["a", "b"]}
    assert r("{{range .items}}{{.}}@{{$.name}} {{end}}", data) == "a@root b@root "
    assert r("{{$x := 1}}{{range .items}}{{$x = .}}{{end}}{{$x}}", data) == "b"
    with pytest.raises(InvalidArgument, match='undefined variable "\\$y"'):
        r("{{if true}}{{$y := 1}}{{end}}{{$y}}", data)


def test_break_continue_and_comments():
    data = {"n": [1, 2, 3, 4]}
    assert r("{{range .n}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 4}}{{break}}{{end}}{{.}}{{end}}", data) == "13"
    assert r("a{{/* a comment */}}b{{- /* trimmed */ -}} c", data) == "abc"


def test_go_122_range_over_int_and_go_123_else_with():
    # Docker's CLI is built with a current Go; these are part of the language it accepts.
    assert r("{{range 3}}{{.}}{{end}}") == "012"
    assert r("{{range $i := 2}}[{{$i}}]{{end}}") == "[0][1]"
    data = {"a": "", "b": "bee"}
    assert r("{{with .a}}A{{else with .b}}{{.}}{{else}}none{{end}}", data) == "bee"
    assert r("{{with .a}}A{{else with .a}}B{{else}}none{{end}}", data) == "none"


def test_define_template_block():
    assert r('{{define "row"}}<{{.}}>{{end}}{{range .}}{{template "row" .}}{{end}}', ["a", "b"]) == "<a><b>"
    assert r('{{block "b" .}}[{{.}}]{{end}}', "x") == "[x]"


def test_go_printing_of_values():
    data = {
        "m": {"b": 2, "a": [1, None]}, "l": ["x", 1, 2.5, True, None], "f": 1e6, "g": 0.1, "i": 3, "n": None,
        "s": GoStruct(Name="web", Running=True, Ports=["80/tcp"], Nested=GoStruct(X=1)),
    }
    assert r("{{.m}}", data) == "map[a:[1 <nil>] b:2]"
    assert r("{{.l}}", data) == "[x 1 2.5 true <nil>]"
    assert r("{{.f}} {{.g}} {{.i}}", data) == "1e+06 0.1 3"
    assert r("{{.n}}|{{print .n}}", data) == "<no value>|<nil>"
    assert r("{{.s}}", data) == "{web true [80/tcp] {1}}"
    assert r('{{printf "%+v" .s}}', data) == "{Name:web Running:true Ports:[80/tcp] Nested:{X:1}}"
    assert r("{{json .s}}", data) == '{"Name":"web","Running":true,"Ports":["80/tcp"],"Nested":{"X":1}}'


def test_gostruct_missing_field_is_an_error_and_keeps_field_order():
    s = GoStruct({"Zeta": 1, "Alpha": 2}, go_type="types.ContainerState")
    assert r("{{json .}}", s) == '{"Zeta":1,"Alpha":2}'
    with pytest.raises(InvalidArgument, match="can't evaluate field Nope in type types.ContainerState"):
        r("{{.Nope}}", s)


def test_plain_dict_json_sorts_keys_like_a_go_map():
    assert r("{{json .}}", {"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'


def test_printf_verbs():
    assert r('{{printf "%-10s|%5d|%05.1f|%x|%q|%v|%t" "ab" 42 3.14159 255 "q" .l true}}', {"l": [1, 2]}) == \
        'ab        |   42|003.1|ff|"q"|[1 2]|true'
    assert r('{{printf "%d %s"}}') == "%!d(MISSING) %!s(MISSING)"
    assert r('{{printf "%d" "x"}}') == "%!d(string=x)"
    assert r('{{printf "%s" 1 2}}') == "%!s(int=1)%!(EXTRA int=2)"


# Docker's documented functions (docs.docker.com/engine/cli/formatting), on inspect-shaped data.
DOCKER_DATA = {
    "Args": ["-g", "daemon off;"], "Name": "/WebServer", "Image": "nginx:1-alpine",
    "Mounts": [{"Type": "volume", "Name": "data", "Destination": "/data", "RW": True}],
    "NetworkSettings": {"Networks": {"bridge": {"IPAddress": "172.17.0.2"}, "net2": {"IPAddress": "10.0.0.3"}}},
}


@pytest.mark.parametrize("fmt,want", [
    ('{{join .Args " , "}}', "-g , daemon off;"),
    ("{{json .Mounts}}", '[{"Destination":"/data","Name":"data","RW":true,"Type":"volume"}]'),
    ("{{lower .Name}}", "/webserver"),
    ('{{split .Image ":"}}', "[nginx 1-alpine]"),
    ("{{title .Name}}", "/WebServer"),
    ('{{title "hello docker world"}}', "Hello Docker World"),
    ("{{upper .Name}}", "/WEBSERVER"),
    ("{{range .NetworkSettings.Networks}}{{println .IPAddress}}{{end}}", "172.17.0.2\n10.0.0.3\n"),
    ("{{pad .Image 2 1}}|", "  nginx:1-alpine |"),
    ('{{pad "" 2 1}}|', "|"),
    ("{{truncate .Image 5}}", "nginx"),
    ("{{truncate .Image 50}}", "nginx:1-alpine"),
])
def test_docker_documented_functions(fmt, want):
    assert r(fmt, DOCKER_DATA) == want


def test_join_needs_a_list_of_strings():
    with pytest.raises(InvalidArgument, match=r"wrong type for value; expected \[\]string; got \[\]interface \{\}"):
        r('{{join .l ","}}', {"l": ["a", 1]})


def test_unknown_field_and_function_errors_name_them():
    with pytest.raises(InvalidArgument) as e:
        r("{{.Config.Nope}}", INSPECT)
    assert str(e.value) == ('template parsing error: template: :1:9: executing "" at <.Config.Nope>: '
                            'map has no entry for key "Nope"')
    with pytest.raises(InvalidArgument) as e:
        r("{{foo .Id}}", INSPECT)
    assert str(e.value) == 'template parsing error: template: :1: function "foo" not defined'
    with pytest.raises(InvalidArgument, match="unclosed action"):
        r("{{.Id", INSPECT)
    # Go's own default prints <no value> for a missing map key; Docker's inspect makes it an error.
    assert r("{{.Config.Nope}}", INSPECT, missingkey="default") == "<no value>"
    assert "\n" not in str(e.value)


class Row:
    """A ps-like row: Go methods are Python methods; arguments are typed by annotation."""

    def __init__(self, cid: str, labels: dict[str, str]) -> None:
        self._id = cid
        self._labels = labels
        self.Secret = None

    def ID(self) -> str:  # noqa: N802 - Go's method name
        return self._id

    def Label(self, name: str) -> str:  # noqa: N802
        return self._labels.get(name, "")

    def Labels(self) -> str:  # noqa: N802
        return ",".join(f"{k}={v}" for k, v in sorted(self._labels.items()))

    @property
    def Short(self) -> str:  # noqa: N802
        return self._id[:3]


def test_methods_with_arguments_and_properties():
    row = Row("abcdef", {"com.example.tier": "web"})
    assert r('{{.ID}} {{.Label "com.example.tier"}} {{.Label "nope"}}|{{.Short}}', row) == "abcdef web |abc"
    assert r('{{"com.example.tier" | .Label}}', row) == "web"
    assert r("{{json .}}", row) == '{"ID":"abcdef","Labels":"com.example.tier=web","Secret":null,"Short":"abc"}'
    with pytest.raises(InvalidArgument, match="wrong number of args for Label: want 1 got 0"):
        r("{{.Label}}", row)
    with pytest.raises(InvalidArgument, match=r"wrong type for value; expected string; got int"):
        r("{{1 | .Label}}", row)
    with pytest.raises(InvalidArgument, match=r"expected string; found 1"):
        r("{{.Label 1}}", row)
    # Unexported Python state is not reachable from a template.
    for name in ("_id", "__class__", "_labels"):
        with pytest.raises(InvalidArgument):
            r("{{." + name + "}}", row)


def test_dataclass_rows_print_as_structs():
    @dataclasses.dataclass
    class Port:
        IP: str
        Port: int

    assert r("{{.}} {{.IP}} {{json .}}", Port("0.0.0.0", 80)) == '{0.0.0.0 80} 0.0.0.0 {"IP":"0.0.0.0","Port":80}'


def test_bare_json_and_newline():
    assert render("json", {"b": 1, "a": None}) == '{"a":null,"b":1}\n'
    assert render("{{.a}}", {"a": "x"}) == "x\n"
    # inspect-like formats keep a typed backslash-n as is: only a Go string literal turns it into a newline.
    assert render("{{.a}}\\n", {"a": "x"}) == "x\\n\n"
    assert render('{{printf "%s\\n" .a}}', {"a": "x"}) == "x\n\n"


def test_parse_is_cached():
    parse.cache_clear()
    rows = [{"ID": str(i)} for i in range(50)]
    render_list("{{.ID}}", rows, "table {{.ID}}")
    render_list("{{.ID}}", rows, "table {{.ID}}")
    assert parse.cache_info().misses == 1
