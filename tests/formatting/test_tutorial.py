"""Every --format / -f example of the container tutorial, rendered the way its command renders it:
`container ls` rows through render_list with Docker's ps placeholders, `inspect` objects through render."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dockyard.formatting import render, render_list
from dockyard.formatting.containers import HEADERS, ContainerRow, ps_format
from tests.formatting.cases import INSPECT

NOW = 1_714_557_720.0  # two minutes after the webserver was created
SUMMARIES = [
    {"Id": INSPECT["Id"], "Names": ["/webserver"], "Image": "docker.io/nginx:1-alpine",
     "ImageID": "sha256:1f5d2b5c8b3e9d", "Command": "/docker-entrypoint.sh nginx -g 'daemon off;'",
     "Created": 1_714_557_600, "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
     "Labels": {"maintainer": "NGINX Docker Maintainers"}, "State": "running", "Status": "Up 2 minutes",
     "SizeRw": 1093, "SizeRootFs": 48_300_000, "Mounts": [],
     "NetworkSettings": {"Networks": {"bridge": {}}}},
    {"Id": "9b1c2d3e4f5061728394a5b6c7d8e9f0", "Names": ["/alpine-container"], "Image": "alpine",
     "ImageID": "sha256:aa11", "Command": "sleep 600", "Created": 1_714_557_000, "Ports": [], "Labels": {},
     "State": "running", "Status": "Up 12 minutes", "SizeRw": 0, "SizeRootFs": 7_800_000, "Mounts": [],
     "NetworkSettings": {"Networks": {"bridge": {}}}},
]


def ls(fmt: str | None, quiet: bool = False) -> str:
    rows = [ContainerRow(s, now=NOW) for s in SUMMARIES]
    return render_list(ps_format(fmt, quiet=quiet), rows, ps_format(None), HEADERS)


# (format as the shell passes it, expected output); the tutorial's line numbers in comments.
LS_EXAMPLES = [
    # 326
    ("{{.ID}}: {{.Names}}", "4f66ad9a0b2e: webserver\n9b1c2d3e4f50: alpine-container\n"),
    # 327
    ("table {{.ID}}\\t{{.Names}}",
     "CONTAINER ID   NAMES\n"
     "4f66ad9a0b2e   webserver\n"
     "9b1c2d3e4f50   alpine-container\n"),
    # 328
    ("table {{.ID}}\\t{{.Names}}\\t{{.State}}\\t{{.Status}}\\t{{.Size}}",
     "CONTAINER ID   NAMES              STATE     STATUS          SIZE\n"
     "4f66ad9a0b2e   webserver          running   Up 2 minutes    1.09kB (virtual 48.3MB)\n"
     "9b1c2d3e4f50   alpine-container   running   Up 12 minutes   0B (virtual 7.8MB)\n"),
]


@pytest.mark.parametrize("fmt,want", LS_EXAMPLES)
def test_container_ls_format(fmt, want):
    assert ls(fmt) == want


def test_psformat_from_config_file():
    # 334: the config file is JSON, so "\\t" there is the two characters backslash-t once decoded.
    fmt = json.loads('{"psFormat": "table {{.ID}}\\\\t{{.Image}}\\\\t{{.Status}}\\\\t{{.Names}}"}')["psFormat"]
    assert ls(fmt) == ("CONTAINER ID   IMAGE            STATUS          NAMES\n"
                       "4f66ad9a0b2e   nginx:1-alpine   Up 2 minutes    webserver\n"
                       "9b1c2d3e4f50   alpine           Up 12 minutes   alpine-container\n")


def test_default_ls_and_quiet():
    assert ls(None) == (
        "CONTAINER ID   IMAGE            COMMAND                  CREATED          STATUS          "
        "PORTS                  NAMES\n"
        '4f66ad9a0b2e   nginx:1-alpine   "/docker-entrypoint.…"   2 minutes ago    Up 2 minutes    '
        "0.0.0.0:8080->80/tcp   webserver\n"
        '9b1c2d3e4f50   alpine           "sleep 600"              12 minutes ago   Up 12 minutes   '
        "                       alpine-container\n")
    # 337, 342: `ls -q` / `--quiet` print the short IDs only, even with a --format.
    assert ls(None, quiet=True) == "4f66ad9a0b2e\n9b1c2d3e4f50\n"
    assert ls("table {{.Names}}", quiet=True) == "4f66ad9a0b2e\n9b1c2d3e4f50\n"


INSPECT_EXAMPLES = [
    # 355-357
    ("{{.NetworkSettings.Networks.bridge.IPAddress}}", "172.17.0.2\n"),
    # 362
    ("{{range .Config.Env}}{{println .}}{{end}}",
     "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nNGINX_VERSION=1.27.3\n\n"),
    # 374
    ('{{range $k, $v := .NetworkSettings.Networks}}{{printf "%s\\n" $k}}{{end}}', "bridge\nfrontend\n\n"),
    # 379, 414
    ("{{.Id}}", INSPECT["Id"] + "\n"),
    # 380
    ("{{.LogPath}}", INSPECT["LogPath"] + "\n"),
    # 684, 711: every network's address, run together
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "172.17.0.210.89.0.5\n"),
    # 1622
    ("{{json .State.Health }}", '{"FailingStreak":0,"Log":[{"ExitCode":0,"Output":"ok"}],"Status":"healthy"}\n'),
]


@pytest.mark.parametrize("fmt,want", INSPECT_EXAMPLES)
def test_inspect_format(fmt, want):
    assert render(fmt, INSPECT) == want


def test_health_json_feeds_the_tutorials_pipeline():
    # The tutorial pipes the health JSON through grep/awk (or jq): it must be one valid JSON line.
    out = render("{{json .State.Health }}", INSPECT)
    assert out.count("\n") == 1 and json.loads(out)["Status"] == "healthy"


def test_stack_ps_style_table():
    # 1739: other list commands share the renderer; titles default from the field names.
    rows = [{"ID": "x1y2z3", "Name": "web.1", "CurrentState": "Running 2 minutes ago", "Node": "node-1"}]
    out = render_list("table {{.ID}}\\t{{.Name}}\\t{{.CurrentState}}\\t{{.Node}}", rows, "table {{.ID}}")
    assert out == ("ID        NAME      CURRENT STATE           NODE\n"
                   "x1y2z3    web.1     Running 2 minutes ago   node-1\n")


TUTORIAL = Path(os.environ.get("DOCKYARD_TUTORIAL", "/work/shared/reference/container-tutorial.md"))


@pytest.mark.skipif(not TUTORIAL.exists(), reason="the tutorial is not on this machine")
def test_every_tutorial_format_example_is_covered():
    text = TUTORIAL.read_text()
    found = set()
    for m in re.finditer(r"""(?:--format[= ]|-f )\\?\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)')""", text):
        fmt = m.group(1) if m.group(1) is not None else m.group(2)
        if m.group(1) is not None:
            fmt = fmt.replace('\\"', '"')  # a double-quoted shell word unescapes \"
        found.add(fmt)
    found.add(re.search(r'"psFormat": "(.*)"', text).group(1).replace("\\\\", "\\"))
    assert len(found) >= 11
    covered = {f for f, _ in LS_EXAMPLES + INSPECT_EXAMPLES}
    covered |= {"table {{.ID}}\\t{{.Image}}\\t{{.Status}}\\t{{.Names}}",
                "table {{.ID}}\\t{{.Name}}\\t{{.CurrentState}}\\t{{.Node}}"}
    assert found - covered == set()
