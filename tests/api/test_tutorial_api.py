"""The tutorial's "Using the API" section, verbatim but for the socket path and the image: busybox's
httpd stands in for nginx (no network to pull from), and the container lookup runs the docker CLI
against the same socket (or dockyard's own `container ls` where the docker CLI is missing)."""

from __future__ import annotations

import json
import os
import subprocess

from tests.api.conftest import DOCKER, IMAGE
from tests.helpers import dockyard_cmd

SCRIPT = r"""
set -e
SOCK="$1"
BODY='{"Image":"%(image)s","Cmd":["httpd","-f","-p","8080"]}'

echo "== create"
curl -XPOST --unix-socket $SOCK -d "$BODY" \
  -H 'Content-Type: application/json' \
  http://localhost/containers/create?name=webserver
echo

echo "== start"
curl -XPOST --unix-socket $SOCK \
  -H 'Content-Type: application/json' \
  http://localhost/containers/$(docker container ls --all --filter name=webserver --quiet)/start

echo "== jq"
curl -qs --unix-socket $SOCK http://localhost/containers/json | jq .
echo "== json.tool"
curl -qs --unix-socket $SOCK http://localhost/containers/json | python3 -mjson.tool
echo "== ps"
docker ps

echo "== stop"
curl -XPOST --unix-socket $SOCK \
  -H 'Content-Type: application/json' \
  http://localhost/containers/$(docker container ls --all --filter name=webserver --quiet)/stop
docker ps --all

echo "== delete"
curl -XDELETE --unix-socket $SOCK \
  -H 'Content-Type: application/json' \
  http://localhost/containers/$(docker container ls --all --filter name=webserver --quiet)
echo "== after"
docker ps --all
"""


def test_tutorial_curl_calls(api, tmp_path):
    env = api.env()
    if not os.path.exists(DOCKER):
        # `docker container ls ...` answered by dockyard itself, on the same store.
        shim = tmp_path / "bin" / "docker"
        shim.parent.mkdir()
        cmd = " ".join(dockyard_cmd(api.root)) + f" --runroot {api.runroot}"
        shim.write_text(f"#!/bin/sh\nexec {cmd} \"$@\"\n")
        shim.chmod(0o755)
        env["PATH"] = f"{shim.parent}:{env['PATH']}"
    p = subprocess.run(["bash", "-c", SCRIPT % {"image": IMAGE}, "tutorial", str(api.sock)], capture_output=True,
                       text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout
    sections = dict(s.split("\n", 1) for s in out.split("== ")[1:])
    created = json.loads(sections["create"])
    assert len(created["Id"]) == 64 and created["Warnings"] == []
    assert sections["start"] == ""  # 204, no body
    for key in ("jq", "json.tool"):
        rows = json.loads(sections[key])
        assert [r["Names"] for r in rows] == [["/webserver"]]
        assert rows[0]["State"] == "running" and rows[0]["Command"] == "httpd -f -p 8080"
        assert rows[0]["Id"] == created["Id"]
    assert "webserver" in sections["ps"]
    assert sections["stop"].splitlines()[1].split()[-1] == "webserver"
    assert "Exited" in sections["stop"]
    assert "webserver" not in sections["after"]
    assert not api.cli("ps", "-aq").stdout.strip()


def test_curl_errors_and_statuses(api):
    miss = api.curl("-w", "\n%{http_code}", "http://localhost/v1.51/containers/nosuch/json")
    body, code = miss.stdout.rsplit("\n", 1)
    assert code == "404" and json.loads(body) == {"message": "No such container: nosuch"}
    ping = api.curl("-i", "http://localhost/_ping")
    assert "200" in ping.stdout.splitlines()[0] and ping.stdout.endswith("OK")
    assert "Api-Version:" in ping.stdout
    created = json.loads(api.curl("-XPOST", "-H", "Content-Type: application/json",
                                  "-d", json.dumps({"Image": IMAGE, "Cmd": ["sleep", "300"]}),
                                  "http://localhost/containers/create?name=st").stdout)
    cid = created["Id"]
    try:
        status = ["-o", "/dev/null", "-w", "%{http_code}"]
        dup = api.curl("-XPOST", "-H", "Content-Type: application/json", "-d", json.dumps({"Image": IMAGE}),
                       "http://localhost/containers/create?name=st")
        assert "already in use" in json.loads(dup.stdout)["message"]
        assert api.curl(*status, "-XPOST", f"http://localhost/containers/{cid}/start").stdout == "204"
        assert api.curl(*status, "-XPOST", f"http://localhost/v1.41/containers/{cid}/start").stdout == "304"
        assert api.curl(*status, "-XDELETE", f"http://localhost/containers/{cid}").stdout == "409"
        top = json.loads(api.curl(f"http://localhost/containers/{cid}/top").stdout)
        assert "PID" in top["Titles"] and any("sleep" in " ".join(p) for p in top["Processes"])
        stats = json.loads(api.curl(f"http://localhost/containers/{cid}/stats?stream=false").stdout)
        assert stats["pids_stats"]["current"] >= 1 and stats["memory_stats"]["usage"] > 0
        assert api.curl(*status, "-XPOST", f"http://localhost/containers/{cid}/stop?t=1").stdout == "204"
        assert api.curl(*status, "-XPOST", f"http://localhost/containers/{cid}/stop").stdout == "304"
        wait = json.loads(api.curl("-XPOST", f"http://localhost/containers/{cid}/wait").stdout)
        assert wait["StatusCode"] in (137, 143)
    finally:
        assert api.curl("-o", "/dev/null", "-w", "%{http_code}", "-XDELETE",
                        f"http://localhost/containers/{cid}?force=1").stdout == "204"
    assert api.curl("-o", "/dev/null", "-w", "%{http_code}", "-XDELETE",
                    f"http://localhost/containers/{cid}").stdout == "404"
