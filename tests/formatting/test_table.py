"""Table output: Docker's tabwriter settings (minwidth 10, padding 3, spaces), the header row and
how list formats are chosen (default, bare "table", "json", custom)."""

from __future__ import annotations

import pytest

from dockyard.errors import InvalidArgument
from dockyard.formatting import render_list
from dockyard.formatting.table import default_header, tabwrite

HEADERS = {"ID": "CONTAINER ID", "Names": "NAMES", "Image": "IMAGE"}
DEFAULT = "table {{.ID}}\\t{{.Image}}\\t{{.Names}}"
ROWS = [{"ID": "4f66ad9a0b2e", "Image": "nginx", "Names": "webserver", "RunningFor": "2 minutes ago"},
        {"ID": "9b1c", "Image": "docker.io/library/alpine:3.20", "Names": "a", "RunningFor": "1 hour ago"}]


def test_columns_are_widest_cell_plus_three_and_at_least_ten():
    assert tabwrite("a\tb\n") == "a         b\n"
    assert tabwrite("CONTAINER ID\tNAMES\nabc\tx\n") == "CONTAINER ID   NAMES\nabc            x\n"
    # The last cell of a line is never padded, and a line without tabs ends the block of columns.
    assert tabwrite("aaaaaaaaaaaaaa\tb\nc\n" "d\te\n") == "aaaaaaaaaaaaaa   b\nc\nd         e\n"


def test_wide_characters_count_two_columns():
    # Docker measures cells with go-runewidth: CJK is two columns wide, combining marks zero.
    assert tabwrite("名前\tx\nab\ty\n") == "名前      x\nab        y\n"
    assert tabwrite("e\u0301\tx\n") == "e\u0301         x\n"


def test_default_format_and_bare_table():
    want = ("CONTAINER ID   IMAGE                           NAMES\n"
            "4f66ad9a0b2e   nginx                           webserver\n"
            "9b1c           docker.io/library/alpine:3.20   a\n")
    assert render_list(None, ROWS, DEFAULT, HEADERS) == want
    assert render_list("table", ROWS, DEFAULT, HEADERS) == want
    assert render_list("", ROWS, DEFAULT, HEADERS) == want


def test_header_row_is_printed_without_rows():
    assert render_list(None, [], DEFAULT, HEADERS) == "CONTAINER ID   IMAGE     NAMES\n"
    assert render_list("{{.ID}}", [], DEFAULT, HEADERS) == ""


def test_custom_and_json_formats():
    assert render_list("{{.ID}}: {{.Names}}", ROWS, DEFAULT, HEADERS) == "4f66ad9a0b2e: webserver\n9b1c: a\n"
    assert render_list("json", ROWS[:1], DEFAULT, HEADERS) == (
        '{"ID":"4f66ad9a0b2e","Image":"nginx","Names":"webserver","RunningFor":"2 minutes ago"}\n')
    # Without the table prefix a tab stays a tab: no alignment, no header.
    assert render_list("{{.ID}}\\t{{.Names}}", ROWS, DEFAULT, HEADERS) == "4f66ad9a0b2e\twebserver\n9b1c\ta\n"


def test_header_for_fields_without_a_title_comes_from_the_name():
    out = render_list("table {{.Names}}\\t{{.RunningFor}}", ROWS, DEFAULT, HEADERS)
    assert out.splitlines()[0] == "NAMES       RUNNING FOR"
    assert [default_header(n) for n in ("ID", "CreatedAt", "IPAddress", "LocalVolumes", "Size")] == \
        ["ID", "CREATED AT", "IP ADDRESS", "LOCAL VOLUMES", "SIZE"]


def test_header_keeps_titles_through_functions_and_labels():
    class Row:
        def __init__(self, n):
            self.Names = n

        def Label(self, key: str) -> str:  # noqa: N802 - Go method name
            return "web" if key == "com.docker.compose.service" else ""

    rows = [Row("webserver")]
    out = render_list('table {{upper .Names}}\\t{{.Label "com.docker.compose.service"}}\\t{{json .Names}}',
                      rows, DEFAULT, HEADERS)
    # upper/json return the title unchanged; a label column is titled after the key's last part.
    assert out == 'NAMES       service   NAMES\nWEBSERVER   web       "webserver"\n'


def test_unknown_field_in_rows_is_an_error():
    with pytest.raises(InvalidArgument, match='map has no entry for key "Foo"'):
        render_list("table {{.Foo}}", ROWS, DEFAULT, HEADERS)

    class Row:
        ID = "x"

    with pytest.raises(InvalidArgument, match=r"can't evaluate field Foo in type \*test_table\.Row"):
        render_list("{{.Foo}}", [Row()], DEFAULT, HEADERS)
