"""The tutorial's container sections, verbatim, with CR=dockyard.

Images are local stand-ins under the tutorial's names (no network): `alpine`, `debian:stable-slim`
and `busybox` are busybox with an /etc/os-release, `docker.io/nginx:1-alpine` is busybox httpd
serving /usr/share/nginx/html on port 80 with a HEALTHCHECK.  Lines the tutorial writes with a
literal `docker`/`podman` instead of `$CR` use `$CR`; everything else is character for character.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from tests.containers.conftest import IMAGE, RUNTIME, needs_runtime
from tests.containers.ptyrun import run_on_pty
from tests.helpers import REPO, dockyard_cmd, wait_for

pytestmark = [needs_runtime, pytest.mark.skipif(os.geteuid() != 0, reason="publishes port 8080")]


def _standin(ctr, tag, script, *args, cmd=None):
    ctr("run", "--name", "standin", *args, IMAGE, "sh", "-c", script, check=True)
    commit = ["commit"] + (["-c", "CMD " + json.dumps(cmd)] if cmd else []) + ["standin", tag]
    ctr(*commit, check=True)
    ctr("rm", "standin", check=True)


@pytest.fixture
def tutorial(ctr):
    s = socket.socket()
    try:
        s.bind(("0.0.0.0", 8080))
    except OSError:
        pytest.skip("port 8080 is in use on this host")
    finally:
        s.close()
    osr = 'printf "NAME=\\"%s\\"\\nID=%s\\n" > /etc/os-release'
    _standin(ctr, "alpine", osr % ("busybox stand-in for alpine", "alpine"))
    _standin(ctr, "debian:stable-slim", osr % ("busybox stand-in for debian", "debian"))
    ctr("tag", IMAGE, "busybox", check=True)
    _standin(ctr, "docker.io/nginx:1-alpine",
             "mkdir -p /usr/share/nginx/html && echo '<h1>Welcome to nginx!</h1>' > /usr/share/nginx/html/index.html"
             # Debian's busybox has no printenv applet; nginx:alpine's busybox does
             " && printf '#!/bin/sh\\nexec env\\n' > /usr/bin/printenv && chmod 755 /usr/bin/printenv",
             "--health-cmd", "wget -qO- http://127.0.0.1/ >/dev/null || exit 1", "--health-interval", "1s",
             cmd=["httpd", "-f", "-p", "80", "-h", "/usr/share/nginx/html"])
    cr = " ".join(dockyard_cmd(ctr.root) + ["--runroot", str(ctr.runroot)])
    env = {**os.environ, "CR": cr, "DOCKYARD_RUNTIME": RUNTIME,
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}

    def sh(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=300,
                           cwd=str(ctr.root))
        if check:
            assert p.returncode == 0, f"{script}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        return p

    sh.env = env  # type: ignore[attr-defined]
    return sh


def test_basic_commands(tutorial, ctr):
    p = tutorial("""
# Run the "hostname" command with an alpine linux based container
$CR container run alpine hostname
# List all running container
$CR container ls
# List all container
$CR container ls --all
# Remove the last started container
$CR container rm $($CR container ls -lq)
""")
    lines = p.stdout.splitlines()
    hostname = lines[0]
    assert len(hostname) == 12
    assert lines[1].startswith("CONTAINER ID")
    assert hostname in p.stdout.split("CONTAINER ID")[2]  # listed by --all
    assert lines[-1] == hostname
    assert ctr("ps", "-aq").stdout == ""

    p = tutorial("""
# Adding the "--rm" option, when the container stops/exits, removes it automatically
$CR container run --rm alpine ip a s
""")
    assert "127.0.0.1" in p.stdout and "inet " in p.stdout

    p = tutorial("""
# For an alpine linux container
$CR run --rm --name alpine-container alpine cat /etc/os-release
# For a debian container
$CR run --rm --name debian-container debian:stable-slim cat /etc/os-release
""")
    assert "ID=alpine" in p.stdout and "ID=debian" in p.stdout
    assert ctr("ps", "-aq").stdout == ""


def test_stopping_and_removing(tutorial, ctr):
    p = tutorial("""
# A container can't be removed unless stopped
$CR run -d --name alpine-container alpine sleep 600
# "-d" for running the container in the background
$CR container rm alpine-container  # Should throw an error
$CR container stop alpine-container
# Alternatively list running container, filter by name and only return the ID:
# $CR container stop $($CR container ls --filter name=alpine-container --quiet)
""")
    assert "container is running: stop the container before removing or force remove" in p.stderr
    assert p.stdout.splitlines()[-1] == "alpine-container"
    assert ctr("ps", "-q").stdout == ""
    p = tutorial("$CR container stop $($CR container ls -a --filter name=alpine-container --quiet)")
    assert p.returncode == 0


def test_advanced_and_interacting(tutorial, ctr):
    tutorial("""
$CR container run -d --rm --name webserver --publish 8080:80 docker.io/nginx:1-alpine
""")
    p = tutorial("""
$CR container ls --format "{{.ID}}: {{.Names}}"
$CR container ls --format "table {{.ID}}\\t{{.Names}}"
$CR container ls --format "table {{.ID}}\\t{{.Names}}\\t{{.State}}\\t{{.Status}}\\t{{.Size}}"
""")
    cid = ctr("ps", "-q").stdout.strip()
    out = p.stdout.splitlines()
    assert out[0] == f"{cid}: webserver"
    assert out[1].split() == ["CONTAINER", "ID", "NAMES"] and out[2].split() == [cid, "webserver"]
    assert out[3].split()[:5] == ["CONTAINER", "ID", "NAMES", "STATE", "STATUS"] and "SIZE" in out[3]
    assert out[4].split()[:3] == [cid, "webserver", "running"]

    assert tutorial("$CR container ls -lq").stdout.strip() == cid
    assert tutorial("$CR container ls --filter name=webserver --quiet").stdout.strip() == cid
    p = tutorial("$CR diff $($CR container ls --filter name=webserver --quiet)")
    assert p.returncode == 0
    p = tutorial("""
$CR container inspect --format \\
  '{{.NetworkSettings.Networks.bridge.IPAddress}}' \\
  $($CR container ls --filter name=webserver --quiet)
""")
    ip = p.stdout.strip()
    assert ip.count(".") == 3
    p = tutorial("$CR container inspect $($CR container ls --filter name=webserver --quiet) "
                 "--format='{{range .Config.Env}}{{println .}}{{end}}'")
    assert p.stdout.startswith("PATH=")
    p = tutorial("$CR exec $($CR container ls --filter name=webserver --quiet) printenv")
    assert "HOSTNAME=" in p.stdout
    p = tutorial("$CR inspect $($CR container ls --filter name=webserver --quiet) -f "
                 "'{{range $k, $v := .NetworkSettings.Networks}}{{printf \"%s\\n\" $k}}{{end}}'")
    assert p.stdout.strip() == "bridge"
    p = tutorial("sudo ls -alh $($CR inspect $($CR container ls --filter name=webserver --quiet) -f '{{.LogPath}}')"
                 if os.path.exists("/usr/bin/sudo") else
                 "ls -alh $($CR inspect $($CR container ls --filter name=webserver --quiet) -f '{{.LogPath}}')")
    assert "-json.log" in p.stdout
    wait_for(lambda: "Welcome to nginx" in tutorial("curl -s http://localhost:8080", check=False).stdout,
             timeout=15, what="the web page on port 8080")
    obj = json.loads(tutorial("$CR container inspect webserver").stdout)[0]
    assert obj["Name"] == "/webserver" and obj["ImageName"] == "docker.io/nginx:1-alpine"
    assert tutorial("$CR container inspect --format='{{.Id}}' webserver").stdout.strip() == obj["Id"]
    p = tutorial("$CR container exec $($CR container ls --filter name=webserver --quiet) cat /etc/os-release",
                 check=False)
    assert p.returncode == 1 and "os-release" in p.stderr  # the stand-in has none; nginx:alpine would
    code, out = run_on_pty(["bash", "-c", "$CR container exec -it $($CR container ls --filter name=webserver "
                                           "--quiet) /bin/sh"], b"ls -al\nps\nexit\n", env=tutorial.env)
    assert code == 0 and b"httpd" in out, out

    # Healthchecks: the image's HEALTHCHECK, read the tutorial's way
    wait_for(lambda: json.loads(ctr("inspect", "webserver", "-f", "{{json .State.Health}}").stdout)["Status"]
             == "healthy", timeout=30, what="healthy")
    p = tutorial("""
$CR inspect $($CR container ls --filter name=webserver --quiet) --format "{{json .State.Health }}" |
grep -Eo '"[^"]*" *(: *([0-9]*|"[^"]*")[^{}\\["]*|,)?|[^"\\]\\[\\}\\{]*|\\{|\\},?|\\[|\\],?|[0-9 ]*,?' |
awk '{if ($0 ~ /^[}\\]]/ ) offset-=4; printf "%*c%s\\n", offset, " ", $0; if ($0 ~ /^[{\\[]/) offset+=4}'
""")
    assert '"Status"' in p.stdout and '"healthy"' in p.stdout and '"FailingStreak"' in p.stdout
    assert tutorial("$CR container stop webserver").stdout.strip() == "webserver"
    wait_for(lambda: ctr("ps", "-aq").stdout == "", timeout=10, what="--rm removal")


def test_sharing_namespaces(tutorial, ctr):
    os.makedirs(os.path.join(ctr.root, "data"), exist_ok=True)
    with open(os.path.join(ctr.root, "data", "index.html"), "w") as f:
        f.write("shared page\n")
    p = tutorial("""
# Start nginx
$CR container run --rm -d --name webserver -v ./data:/usr/share/nginx/html:ro docker.io/nginx:1-alpine

# Start BusyBox, sharing nginx's network namespace
$CR container run --rm --network container:$($CR container ls --filter name=webserver --quiet) busybox wget -qO- http://127.0.0.1

# Start BusyBox, sharing nginx's PID namespace
$CR container run --rm --pid container:$($CR container ls --filter name=webserver --quiet) busybox ps aux
""")
    assert "shared page" in p.stdout
    assert "httpd -f -p 80" in p.stdout
    code, out = run_on_pty(["bash", "-c", "$CR container run  -it --rm --pid container:$($CR container ls --filter "
                                           "name=webserver --quiet) busybox cat /proc/1/environ"], b"",
                           env=tutorial.env)
    assert code == 0 and b"PATH=" in out, out
    p = tutorial("""
# Start BusyBox, sharing nginx's volumes
$CR container run --rm --volumes-from webserver busybox ls -al /usr/share/nginx

$CR container stop $($CR container ls --filter name=webserver --quiet)
""")
    assert "html" in p.stdout
    wait_for(lambda: ctr("ps", "-aq").stdout == "", timeout=10, what="--rm removal")


def test_custom_network_section(tutorial, ctr):
    p = tutorial("""
$CR network create mynet
$CR container run --rm -d --name webserver --network mynet docker.io/nginx:1-alpine
WEB_SERVER_IP=$($CR inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' $($CR container ls --filter name=webserver --quiet))
echo "IP=${WEB_SERVER_IP}"
$CR run --rm --cap-add=NET_RAW --network mynet busybox ping -c 1 ${WEB_SERVER_IP}
$CR run --rm --cap-add=NET_RAW --network mynet busybox ping -c 1 webserver
$CR container stop webserver
$CR network rm mynet
""")
    assert "IP=10." in p.stdout or "IP=172." in p.stdout
    assert p.stdout.count("1 packets received") == 2
