"""The ps placeholders: Docker's wording for durations and sizes, its port column, truncation."""

from __future__ import annotations

import json

import pytest

from dockyard.errors import InvalidArgument
from dockyard.formatting import render, render_list
from dockyard.formatting.containers import (
    HEADERS,
    ContainerRow,
    displayable_ports,
    human_duration,
    human_size,
    ps_format,
)

MIN, HOUR, DAY = 60, 3600, 86400


@pytest.mark.parametrize("seconds,want", [
    (0.45, "Less than a second"), (1, "1 second"), (47, "47 seconds"), (60, "About a minute"),
    (3 * MIN, "3 minutes"), (35 * MIN + 40, "35 minutes"), (HOUR, "About an hour"),
    (HOUR + 29 * MIN, "About an hour"), (HOUR + 31 * MIN, "2 hours"), (3 * HOUR + 31 * MIN, "4 hours"),
    (DAY, "24 hours"), (DAY + 12 * HOUR, "36 hours"), (2 * DAY, "2 days"), (13 * DAY + 5 * HOUR, "13 days"),
    (14 * DAY, "2 weeks"), (30 * DAY, "4 weeks"), (44 * DAY, "6 weeks"), (60 * DAY, "2 months"),
    (13 * 30 * DAY, "13 months"), (24 * 30 * DAY + 14 * DAY, "2 years"), (3 * 365 * DAY + 60 * DAY, "3 years"),
])
def test_human_duration_matches_go_units(seconds, want):
    # The examples of go-units' HumanDuration, which Docker's "CREATED" column uses.
    assert human_duration(seconds) == want


@pytest.mark.parametrize("size,want", [
    (0, "0B"), (1093, "1.09kB"), (48_300_000, "48.3MB"), (7_800_000, "7.8MB"), (999, "999B"),
    (123_456_789, "123MB"), (1_000_000_000, "1GB"),
])
def test_human_size(size, want):
    assert human_size(size) == want


def test_port_column_groups_ranges_and_lists_mappings():
    ports = [
        {"PrivatePort": 9090, "Type": "tcp"}, {"PrivatePort": 9091, "Type": "tcp"},
        {"PrivatePort": 9092, "Type": "tcp"}, {"PrivatePort": 53, "Type": "udp"},
        {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        {"IP": "0.0.0.0", "PrivatePort": 443, "PublicPort": 443, "Type": "tcp"},
    ]
    assert displayable_ports(ports) == (
        "53/udp, 0.0.0.0:443->443/tcp, 9090-9092/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp")
    assert displayable_ports([]) == ""


SUMMARY = {"Id": "4f66ad9a0b2e5f3c7d8e9a1b2c3d4e5f", "Names": ["/web", "/other/alias"],
           "Image": "docker.io/library/nginx:1-alpine@sha256:abcd", "ImageID": "sha256:1f5d",
           "Command": "nginx -g 'daemon off;'", "Created": 1_000_000, "State": "running",
           "Status": "Up 5 seconds", "Labels": {"b": "2", "com.example.tier": "web"},
           "Mounts": [{"Name": "a-very-long-volume-name-indeed", "Driver": "local"}, {"Source": "/srv"}],
           "NetworkSettings": {"Networks": {"frontend": {}, "bridge": {}}}}


def test_placeholders_truncated_and_not():
    row = ContainerRow(SUMMARY, now=1_000_005)
    full = ContainerRow(SUMMARY, trunc=False, now=1_000_005)
    fmt = "{{.ID}}|{{.Names}}|{{.Image}}|{{.Command}}|{{.RunningFor}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Networks}}"
    # A command longer than 20 columns is cut to 19 and an ellipsis.
    assert render(fmt, row) == ('4f66ad9a0b2e|web|nginx:1-alpine|"nginx -g \'daemon of…"|5 seconds ago|'
                                "a-very-long-vo…,/srv|1|bridge,frontend\n")
    assert render(fmt, full) == ("4f66ad9a0b2e5f3c7d8e9a1b2c3d4e5f|web,other/alias|"
                                 "docker.io/library/nginx:1-alpine@sha256:abcd|\"nginx -g 'daemon off;'\"|"
                                 "5 seconds ago|a-very-long-volume-name-indeed,/srv|1|bridge,frontend\n")
    assert render('{{.Labels}}|{{.Label "com.example.tier"}}|{{.Label "x"}}|{{.State}}', row) == \
        "b=2,com.example.tier=web|web||running\n"


def test_json_row_has_every_placeholder_by_name():
    out = render_list("json", [ContainerRow(SUMMARY, now=1_000_005)], ps_format(None), HEADERS)
    obj = json.loads(out)
    assert list(obj) == sorted(obj)
    assert {"ID", "Names", "Image", "Command", "CreatedAt", "RunningFor", "Ports", "State", "Status", "Size",
            "Labels", "Mounts", "Networks", "LocalVolumes"} <= set(obj)
    assert obj["ID"] == "4f66ad9a0b2e" and obj["Size"] == "0B"


def test_unknown_placeholder_names_field_and_type_like_docker():
    with pytest.raises(InvalidArgument) as e:
        render_list("{{.Foo}}", [ContainerRow(SUMMARY)], ps_format(None), HEADERS)
    assert str(e.value) == ('template parsing error: template: :1:2: executing "" at <.Foo>: '
                            "can't evaluate field Foo in type *formatter.ContainerContext")


def test_label_header_and_size_flag():
    out = render_list('table {{.Names}}\\t{{.Label "com.example.tier"}}', [ContainerRow(SUMMARY)],
                      ps_format(None), HEADERS)
    assert out == "NAMES     tier\nweb       web\n"
    assert ps_format(None, size=True).endswith("\\t{{.Size}}")
