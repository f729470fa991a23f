"""The tutorial's networking section, with CR=dockyard and real containers."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request

import pytest

from tests.helpers import wait_for
from tests.network.conftest import dns_pids, links, nft_table
from tests.network.test_firewall import free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def wait_http(url: str) -> None:
    """`run -d` returns once the container started, not once its server listens: poll, as a
    loaded machine may take seconds to get httpd to its listen()."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(answers, timeout=30, interval=0.2, what=f"{url} to answer")


@pytest.fixture
def ctrs(dy, eng):
    dy("image", "bootstrap", "busybox", check=True)
    names: list[str] = []
    yield names
    for n in names:
        dy("rm", "-f", n)


def test_custom_network_dns_and_isolation(dy, eng, ctrs):
    net_id = dy("network", "create", "mynet", check=True).stdout.strip()
    ctrs.append("webserver")
    dy("run", "-d", "--name", "webserver", "--network", "mynet", "localhost/busybox",
       "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
    ip = dy("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "webserver",
            check=True).stdout.strip()
    wait_http(f"http://{ip}/hostname")
    # Not reachable from the default network ...
    p = dy("run", "--rm", "localhost/busybox", "ping", "-c", "1", "-W", "2", ip)
    assert p.returncode != 0
    # ... reachable by address and by name on the same custom network.
    p = dy("run", "--rm", "--network", "mynet", "localhost/busybox", "ping", "-c", "1", "-W", "3", ip)
    assert p.returncode == 0, p.stdout + p.stderr
    p = dy("run", "--rm", "--network", "mynet", "localhost/busybox", "ping", "-c", "1", "-W", "3", "webserver")
    assert p.returncode == 0 and ip in p.stdout, p.stdout + p.stderr
    p = dy("run", "--rm", "--network", "mynet", "localhost/busybox", "wget", "-q", "-O", "-",
           "http://webserver/hostname")
    assert p.returncode == 0, p.stderr

    bridge = json.loads(dy("network", "inspect", "mynet", check=True).stdout)[0]["Options"][
        "com.docker.network.bridge.name"]
    dy("stop", "-t", "1", "webserver", check=True)
    dy("rm", "webserver", check=True)
    ctrs.clear()
    dy("network", "rm", "mynet", check=True)
    assert bridge not in links()
    assert f"nw:{net_id[:12]}" not in nft_table()
    assert dns_pids(eng.roots.root) == []
    assert bridge not in subprocess.run(["ip", "route"], capture_output=True, text=True).stdout


def test_publish_and_default_bridge_by_ip(dy, eng, ctrs):
    port = free_port()
    ctrs.append("webserver")
    dy("run", "-d", "--name", "webserver", "--network", "podman", "-p", f"{port}:80", "localhost/busybox",
       "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
    wait_http(f"http://127.0.0.1:{port}/hostname")
    assert dy("port", "webserver", check=True).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    ip = dy("inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", "webserver", check=True).stdout.strip()
    p = dy("run", "--rm", "--network", "podman", "localhost/busybox", "wget", "-q", "-O", "-", f"http://{ip}/hostname")
    assert p.returncode == 0, p.stderr
    # The same host port for a second container is refused before it starts.
    p = dy("run", "-d", "--name", "second", "-p", f"{port}:80", "localhost/busybox", "sleep", "60")
    ctrs.append("second")
    assert p.returncode != 0 and "port is already allocated" in p.stderr
    dy("rm", "-f", "webserver", check=True)
    ctrs.remove("webserver")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/hostname", timeout=3)
