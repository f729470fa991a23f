"""Networking costs (root), against a private Docker engine where dockerd is installed.

Issue #6's targets: HTTP requests per second through a published port and container-to-container
on one network at least at parity with Docker, and under 30 ms added by a bridge network to
`run --rm` (the bridge case's median minus the --network none case's).

- run --rm: `run --rm busybox true` with --network none, the default bridge and a custom network
  (which also starts/stops its DNS server).  A long-lived endpoint keeps the default bridge up,
  as docker0 is always up for Docker.  Docker's own none/custom-network pair runs too.
- attach+detach: the endpoint alone (veth pair, addresses, route, IPAM row) on a fresh
  namespace, against the same plumbing done with five `ip` commands as a floor.
- 200 GETs: busybox httpd in a container on a custom network serving a 612-byte page (nginx's
  welcome page size); from the host through a port published on 127.0.0.1, and from a second
  container on the same network (a client entering that container's network namespace, the same
  program for both engines).  requests/s = 200 / median.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

from bench._containers import dy, run, setup_images
from bench.harness import Case

STATE: dict = {}
N_REQ = 200
CLIENT = """
import http.client, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(n):
    c = http.client.HTTPConnection(host, port, timeout=5)
    c.request("GET", "/index.html")
    r = c.getresponse()
    assert r.status == 200 and len(r.read()) == 612, r.status
    c.close()
"""


def _sh(*argv: str) -> None:
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _get_many(host: str, port: int) -> None:
    for _ in range(N_REQ):
        c = http.client.HTTPConnection(host, port, timeout=5)
        c.request("GET", "/index.html")
        r = c.getresponse()
        if r.status != 200 or len(r.read()) != 612:
            raise RuntimeError(f"GET http://{host}:{port}/index.html: {r.status}")
        c.close()


def _wait_http(host: str, port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            _get_many_once(host, port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answers on {host}:{port}") from None
            time.sleep(0.1)


def _get_many_once(host: str, port: int) -> None:
    c = http.client.HTTPConnection(host, port, timeout=2)
    c.request("GET", "/index.html")
    c.getresponse().read()
    c.close()


def _from_container(pid: int, ip: str) -> list[str]:
    return ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", CLIENT, ip, "80", str(N_REQ)]


def _web_pair(engine: list[str] | None, docker: object, network: str, www: str, port: int) -> tuple[str, int]:
    """Start web (httpd, published on 127.0.0.1:port) and client containers; returns the web
    container's address and the client's pid."""
    def cli(*args: str) -> str:
        if docker is not None:
            return docker.run(*args)  # type: ignore[attr-defined]
        assert engine is not None
        return run([*engine, *args]).stdout.strip()

    cli("run", "-d", "--name", "web", "--network", network, "-p", f"127.0.0.1:{port}:80", "-v", f"{www}:/www:ro",
        "localhost/busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    cli("run", "-d", "--name", "client", "--network", network, "localhost/busybox", "sleep", "3600")
    ip = cli("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}", "web")
    pid = int(cli("inspect", "-f", "{{.State.Pid}}", "client"))
    _wait_http("127.0.0.1", port)
    return ip, pid


def prepare(workdir: str) -> list[Case]:
    if os.geteuid() != 0:
        raise SystemExit("bench network needs root")
    from dockyard.engine import Engine

    setup_images(workdir)
    root = os.path.join(workdir, "dy")
    eng = Engine(root, runroot=os.path.join(root, "run"))
    STATE["eng"] = eng
    www = os.path.join(workdir, "www")
    os.makedirs(www)
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("x" * 612)
    # A long-lived endpoint keeps the default bridge up, so attach and run measure only their own work.
    anchor = "ab" * 32
    eng.networks.setup(anchor, "bench-anchor", "bridge")
    STATE["anchor"] = anchor
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

    run(dy(workdir, "network", "create", "benchnet"))
    port = _free_port()
    ip, client = _web_pair(dy(workdir), None, "benchnet", www, port)

    def run_case(net: str) -> Case:
        argv = dy(workdir, "run", "--rm", "--network", net, "localhost/busybox", "true")
        cpu = STATE.setdefault("cpu", {}).setdefault(net, [])

        def once() -> None:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            try:
                run(argv)
            except subprocess.CalledProcessError as e:
                raise RuntimeError(f"run --rm --network {net}: {e.stderr.strip()[-300:]}") from None
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)

        return Case(f"run --rm --network {net}", func=once)

    cases = [
        run_case("none"),
        run_case("bridge"),
        run_case("benchnet"),
        Case("dockyard attach+detach (netlink)", func=attach_detach, before=new_ns, after=del_ns),
        Case("same plumbing via 5 `ip` commands", func=ip_commands, before=new_ns, after=del_ns),
        Case(f"{N_REQ} GETs via published 127.0.0.1", func=lambda: _get_many("127.0.0.1", port)),
        Case(f"{N_REQ} GETs container to container", _from_container(client, ip)),
    ]
    from bench import _dockerd

    why = _dockerd.unavailable()
    if why:
        print(f"  skip docker: {why}")
        return cases
    stack = contextlib.ExitStack()
    STATE["stack"] = stack
    try:
        d = stack.enter_context(_dockerd.private_dockerd(workdir, os.path.join(workdir, "busybox.tar")))
        d.run("network", "create", "benchnet")
        dport = _free_port()
        dip, dclient = _web_pair(None, d, "benchnet", www, dport)
    except RuntimeError as e:
        stack.close()
        print(f"  skip docker: {e}")
        return cases
    cases += [
        Case("docker run --rm --network none", d.argv("run", "--rm", "--network", "none", "localhost/busybox", "true")),
        Case("docker run --rm --network benchnet",
             d.argv("run", "--rm", "--network", "benchnet", "localhost/busybox", "true")),
        Case(f"docker: {N_REQ} GETs via published 127.0.0.1", func=lambda: _get_many("127.0.0.1", dport)),
        Case(f"docker: {N_REQ} GETs container to container", _from_container(dclient, dip)),
    ]
    return cases


def cleanup(workdir: str) -> None:
    cpu = STATE.get("cpu") or {}
    if cpu.get("none") and cpu.get("bridge"):
        # The CPU the dockyard command itself used (its monitor and runtime are not its waited
        # children): what networking adds, free of the wall time's dependence on the host's load.
        med = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
        print("  CPU of the dockyard process, median ms: " + ", ".join(f"{k} {v:.1f}" for k, v in med.items())
              + f"; bridge - none = {med['bridge'] - med['none']:.1f}")
    stack = STATE.get("stack")
    if stack is not None:
        stack.close()
    with contextlib.suppress(subprocess.CalledProcessError):
        run(dy(workdir, "rm", "-f", "web", "client"))
    with contextlib.suppress(subprocess.CalledProcessError):
        run(dy(workdir, "network", "rm", "benchnet"))
    ns = STATE.get("ns")
    if ns and os.path.exists(f"/run/netns/{ns}"):  # a case that failed between before and after
        subprocess.run(["ip", "link", "del", f"dybv{STATE['n']}"], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    eng = STATE.get("eng")
    if eng is not None:
        eng.networks.teardown(STATE["anchor"])
        eng.close()
