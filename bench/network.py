"""Networking costs (root): attaching a fresh network namespace to a bridge, and HTTP through a
published port.

- attach+detach: what networking adds to a container's start and removal (veth pair, address,
  route, IPAM row), against the same plumbing done with five `ip` commands as a floor.
- run --rm: a whole `dockyard run --rm busybox true` with --network none, the default bridge and a
  custom network (which also starts/stops its DNS server): the differences are what networking
  adds to a container's life.
- 200 GETs: busybox httpd in a namespace on the default bridge, client on the host; through the
  published port on 127.0.0.1 (DNAT + masquerade) and straight to the container's address.
  requests/s = 200 / median.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import time

from bench.harness import Case, dockyard

STATE: dict = {}
N_REQ = 200


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _get_many(host: str, port: int) -> None:
    for _ in range(N_REQ):
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        c.close()


def prepare(workdir: str) -> list[Case]:
    if os.geteuid() != 0:
        raise SystemExit("bench network needs root")
    from dockyard.engine import Engine
    from dockyard.network import netns as N
    from dockyard.network.ports import parse_publish

    eng = Engine(os.path.join(workdir, "root"))
    STATE["eng"] = eng
    # A long-lived "container" keeps the default bridge up, so attach measures only the endpoint.
    anchor = "ab" * 32
    www = os.path.join(workdir, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("x" * 612)  # the size of nginx's welcome page
    out = eng.networks.setup(anchor, "bench-web", "bridge")
    ip = out["NetworkSettings"]["IPAddress"]
    port = _free_port()
    eng.networks.publish(anchor, parse_publish(f"127.0.0.1:{port}:80"), ip)
    STATE["httpd"] = subprocess.Popen(["ip", "netns", "exec", N.name_for(anchor), shutil.which("busybox") or "busybox",
                                       "httpd", "-f", "-p", "80", "-h", www])
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError):
            socket.create_connection((ip, 80), timeout=1).close()
            break
        if time.monotonic() > deadline:
            raise RuntimeError("httpd did not come up")
        time.sleep(0.05)
    br = eng.networks.inspect("bridge")["Options"]["com.docker.network.bridge.name"]
    STATE["n"] = 0

    def new_ns() -> None:
        STATE["n"] += 1
        STATE["ns"] = f"dybench{STATE['n']}"
        _sh("ip", "netns", "add", STATE["ns"])

    def del_ns() -> None:
        _sh("ip", "netns", "del", STATE["ns"])

    def attach_detach() -> None:
        cid = f"{STATE['n']:064x}"
        eng.networks.attach(cid, f"b{STATE['n']}", f"/run/netns/{STATE['ns']}", "bridge")
        eng.networks.detach(cid)

    def ip_commands() -> None:
        ns = STATE["ns"]
        _sh("ip", "link", "add", "dybv" + str(STATE["n"]), "type", "veth", "peer", "name", "eth0", "netns", ns)
        _sh("ip", "link", "set", "dybv" + str(STATE["n"]), "master", br, "up")
        _sh("ip", "-n", ns, "addr", "add", "10.88.250.250/16", "dev", "eth0")
        _sh("ip", "-n", ns, "link", "set", "eth0", "up")
        _sh("ip", "link", "del", "dybv" + str(STATE["n"]))

    root = os.path.join(workdir, "root")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(dockyard("--root", root, "image", "bootstrap", "busybox"), check=True, capture_output=True,
                   env=env)
    subprocess.run(dockyard("--root", root, "network", "create", "benchnet"), check=True, capture_output=True,
                   env=env)

    def run_case(net: str) -> Case:
        return Case(f"run --rm --network {net}",
                    dockyard("--root", root, "run", "--rm", "--network", net, "localhost/busybox", "true"))

    return [
        run_case("none"),
        run_case("bridge"),
        run_case("benchnet"),
        Case("dockyard attach+detach (netlink)", func=attach_detach, before=new_ns, after=del_ns),
        Case("same plumbing via 5 `ip` commands", func=ip_commands, before=new_ns, after=del_ns),
        Case(f"{N_REQ} GETs via 127.0.0.1:{port} (DNAT)", func=lambda: _get_many("127.0.0.1", port)),
        Case(f"{N_REQ} GETs to container IP directly", func=lambda: _get_many(ip, 80)),
    ]


def cleanup(workdir: str) -> None:
    p = STATE.get("httpd")
    if p is not None:
        p.terminate()
        p.wait()
    eng = STATE.get("eng")
    if eng is not None:
        eng.networks.teardown("ab" * 32)
        eng.networks.remove("benchnet")
        eng.close()
