"""Pods: an infra container holds the network, IPC and host name its members share; pod lifecycle verbs."""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request

import pytest

from tests.containers.conftest import IMAGE, needs_runtime
from tests.helpers import wait_for

pytestmark = [needs_runtime, pytest.mark.skipif(os.geteuid() != 0, reason="pod networks use the bridge: root")]


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _get(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def test_pod_members_share_network_and_hostname(pod_ctr):
    port = _free_port()
    pod_id = pod_ctr("pod", "create", "--name", "webpod", "-p", f"127.0.0.1:{port}:80", "--label", "tier=web",
                     check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", pod_id)
    assert pod_ctr("pod", "ps", "--format", "{{.Name}} {{.Status}} {{.NumberOfContainers}}").stdout == \
        "webpod Created 1\n"
    pod_ctr("run", "-d", "--pod", "webpod", "--name", "web", IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc",
            check=True)
    # the sidecar reaches the server on the pod's loopback and sees the pod's host name
    p = pod_ctr("run", "--rm", "--pod", "webpod", IMAGE, "sh", "-c", "hostname; wget -qO- 127.0.0.1:80/hostname",
                check=True)
    assert p.stdout == "webpod\nwebpod\n"
    # the pod's published port reaches the member through the infra container
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/hostname") == "webpod\n", timeout=15, what="pod port")

    ps = pod_ctr("pod", "ps").stdout.splitlines()
    assert ps[0].split() == ["POD", "ID", "NAME", "STATUS", "CREATED", "INFRA", "ID", "#", "OF", "CONTAINERS"]
    assert ps[1].split()[:3] == [pod_id[:12], "webpod", "Running"] and ps[1].split()[-1] == "2"
    assert pod_ctr("pod", "ls", "-q").stdout == pod_id[:12] + "\n"
    assert pod_ctr("pod", "ps", "-q", "--filter", "name=nomatch").stdout == ""
    assert pod_ctr("pod", "ps", "-q", "--filter", "name=webp", "--filter", "label=tier=web").stdout == \
        pod_id[:12] + "\n"
    info = json.loads(pod_ctr("pod", "inspect", "webpod", check=True).stdout)[0]
    assert info["Id"] == pod_id and info["State"] == "Running" and info["Hostname"] == "webpod"
    assert info["Labels"] == {"tier": "web"} and info["SharedNamespaces"] == ["ipc", "net", "uts"]
    assert info["InfraConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    names = {c["Name"]: c["State"] for c in info["Containers"]}
    assert names == {f"{pod_id[:12]}-infra": "running", "web": "running"}
    assert pod_ctr("pod", "inspect", "-f", "{{.NumContainers}}", "webpod").stdout.strip() == "2"
    # the infra container is an ordinary container in `ps`, running the pause image
    assert f"{pod_id[:12]}-infra" in pod_ctr("ps").stdout

    # a running pod is removed only with --force
    p = pod_ctr("pod", "rm", "webpod")
    assert p.returncode == 125 and "running containers" in p.stderr
    assert pod_ctr("pod", "stop", "-t", "1", "webpod", check=True).stdout.strip() == pod_id
    assert pod_ctr("pod", "ps", "--format", "{{.Status}}").stdout == "Exited\n"
    assert _get(f"http://127.0.0.1:{port}/hostname") == ""
    assert pod_ctr("pod", "start", "webpod", check=True).stdout.strip() == pod_id
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/hostname") == "webpod\n", timeout=15, what="restarted pod")
    # a hand-made pod exports like a kube-played one: its ports on the first member, infra left out
    import kubernetes_validate
    import yaml

    (doc,) = [d for d in yaml.safe_load_all(pod_ctr("generate", "kube", "webpod", check=True).stdout) if d]
    kubernetes_validate.validate(doc, "1.30", strict=True)
    assert doc["metadata"] == {"labels": {"tier": "web", "app": "webpod"}, "name": "webpod"}
    (web,) = doc["spec"]["containers"]
    assert web["name"] == "web" and web["args"] == ["httpd", "-f", "-p", "80", "-h", "/etc"]
    assert web["ports"] == [{"containerPort": 80, "hostIP": "127.0.0.1", "hostPort": port}]
    top = pod_ctr("pod", "top", "webpod", check=True).stdout
    assert "httpd" in top and "catatonit" in top
    assert pod_ctr("pod", "rm", "-f", "webpod", check=True).stdout.strip() == pod_id
    assert pod_ctr("ps", "-aq").stdout == ""
    assert pod_ctr("pod", "ps", "-q").stdout == ""


def test_pod_shares_ipc_and_net_namespaces_only_inside(pod_ctr):
    pod_ctr("pod", "create", "--name", "nspod", check=True)
    for name in ("ca", "cb"):
        pod_ctr("run", "-d", "--pod", "nspod", "--name", name, IMAGE, "sleep", "600", check=True)
    pod_ctr("run", "-d", "--name", "outside", IMAGE, "sleep", "600", check=True)

    def ns(ctr_name: str, kind: str) -> str:
        return pod_ctr("exec", ctr_name, "readlink", f"/proc/self/ns/{kind}", check=True).stdout.strip()

    for kind in ("net", "ipc"):
        assert ns("ca", kind) == ns("cb", kind) != ns("outside", kind)
    assert ns("ca", "pid") != ns("cb", "pid")  # pid is not shared by default, as in Podman
    pod_ctr("pod", "kill", "nspod", check=True)
    wait_for(lambda: pod_ctr("pod", "ps", "--format", "{{.Status}}").stdout == "Exited\n", timeout=30,
             what="killed pod")
    pod_ctr("pod", "restart", "nspod", check=True)
    assert pod_ctr("pod", "ps", "--format", "{{.Status}}").stdout == "Running\n"
    assert ns("ca", "net") == ns("cb", "net")
    pod_ctr("pod", "rm", "-f", "nspod", check=True)
    assert pod_ctr("ps", "-a", "--format", "{{.Names}}").stdout == "outside\n"


def test_pod_bad_input(pod_ctr):
    p = pod_ctr("pod", "create", "--share", "pid", "--name", "x")
    assert p.returncode == 125 and "pid" in p.stderr and len(p.stderr.splitlines()) == 1
    p = pod_ctr("pod", "create", "--name", "bad name")
    assert p.returncode == 125 and "invalid pod name" in p.stderr
    p = pod_ctr("run", "--pod", "nosuchpod", IMAGE, "true")
    assert p.returncode == 125 and "no pod with name or ID nosuchpod" in p.stderr
    assert pod_ctr("ps", "-aq").stdout == ""
    pod_ctr("pod", "create", "--name", "p1", check=True)
    p = pod_ctr("pod", "create", "--name", "p1")
    assert p.returncode == 125 and "already exists" in p.stderr
    p = pod_ctr("create", "--pod", "p1", "-p", "8080:80", IMAGE, "true")
    assert p.returncode == 125 and "published ports must be defined when the pod is created" in p.stderr
    p = pod_ctr("pod", "kill", "p1")
    assert p.returncode == 125 and "no running containers" in p.stderr
    p = pod_ctr("pod", "rm", "nosuchpod")
    assert p.returncode == 125 and "no such pod" in p.stderr
    assert pod_ctr("pod", "rm", "-i", "nosuchpod").returncode == 0
    # only the infra container exists: nothing half-made by the refused commands
    (infra,) = pod_ctr("ps", "-aq").stdout.split()
    # the infra container goes only with its pod, also with -f and on prune (Podman's rule)
    p = pod_ctr("rm", "-f", infra)
    assert p.returncode != 0 and "is the infra container of pod p1" in p.stderr
    pod_ctr("container", "prune", "-f", check=True)
    assert pod_ctr("ps", "-aq").stdout.split() == [infra]
    pod_ctr("pod", "rm", "p1", check=True)
    assert pod_ctr("ps", "-aq").stdout == ""


def test_pod_all_flags_exists_and_prune(pod_ctr):
    for name in ("pa", "pb"):
        pod_ctr("pod", "create", "--name", name, "--hostname", f"host-{name}", check=True)
        pod_ctr("create", "--pod", name, "--name", f"{name}-c", IMAGE, "sleep", "600", check=True)
    assert pod_ctr("pod", "exists", "pa").returncode == 0
    assert pod_ctr("pod", "exists", "nosuch").returncode == 1
    assert len(pod_ctr("pod", "start", "--all", check=True).stdout.split()) == 2
    assert pod_ctr("exec", "pb-c", "hostname", check=True).stdout == "host-pb\n"
    p = pod_ctr("pod", "stop", "-a", "pa")
    assert p.returncode == 125 and "--all" in p.stderr
    pod_ctr("pod", "stop", "-t", "0", "pa", check=True)
    # prune takes the stopped pod with its containers, leaves the running one
    pa_id = pod_ctr("pod", "inspect", "-f", "{{.Id}}", "pa").stdout.strip()
    assert pod_ctr("pod", "prune", "-f", check=True).stdout.split() == [pa_id]
    assert pod_ctr("pod", "ps", "--format", "{{.Name}}").stdout == "pb\n"
    assert "pa-c" not in pod_ctr("ps", "-a", "--format", "{{.Names}}").stdout
    pod_ctr("pod", "rm", "-a", "-f", check=True)
    assert pod_ctr("pod", "ps", "-q").stdout == "" and pod_ctr("ps", "-aq").stdout == ""
