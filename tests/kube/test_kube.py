"""kube play / down and generate kube: Kubernetes manifests in, real pods out, and back to manifests
that the Kubernetes JSON schemas accept (kubernetes-validate, strict) and that kube play reproduces."""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.request

import pytest
import yaml

from tests.containers.conftest import IMAGE, needs_runtime
from tests.helpers import wait_for

pytestmark = [needs_runtime, pytest.mark.skipif(os.geteuid() != 0, reason="pod networks use the bridge: root")]
K8S_VERSION = "1.30"


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


def _deployment(port: int, www: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: webserver
  labels:
    app: webserver
spec:
  replicas: 2
  selector:
    matchLabels:
      app: webserver
  template:
    metadata:
      labels:
        app: webserver
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: {IMAGE}
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
        env:
        - name: GREETING
          value: hello
        ports:
        - containerPort: 8080
          hostPort: {port}
          hostIP: 127.0.0.1
        volumeMounts:
        - name: www
          mountPath: /www
          readOnly: true
        - name: scratch
          mountPath: /scratch
        resources:
          limits:
            memory: 64Mi
            cpu: 500m
        securityContext:
          capabilities:
            drop: ["MKNOD"]
        livenessProbe:
          exec:
            command: ["/bin/sh", "-c", "true"]
          periodSeconds: 5
      - name: sidecar
        image: {IMAGE}
        command: ["sleep", "3600"]
        volumeMounts:
        - name: scratch
          mountPath: /scratch
      volumes:
      - name: www
        hostPath:
          path: {www}
          type: DirectoryOrCreate
      - name: scratch
        emptyDir: {{}}
---
apiVersion: v1
kind: Service
metadata:
  name: webserver
spec:
  selector:
    app: webserver
  ports:
  - port: 80
"""


def _report(out: str) -> list[tuple[str, list[str]]]:
    """Podman's play report: 'Pod:' ID, then 'Container:'/'Containers:' IDs, blank line between pods."""
    pods = []
    for block in out.strip().split("\n\n"):
        lines = block.splitlines()
        assert lines[0] == "Pod:" and re.fullmatch(r"[0-9a-f]{64}", lines[1]), out
        assert lines[2] == ("Container:" if len(lines) == 4 else "Containers:"), out
        pods.append((lines[1], lines[3:]))
    return pods


def test_deployment_replicas_hostport_replace_and_down(pod_ctr, tmp_path):
    port = _free_port()
    www = tmp_path / "www"
    manifest = tmp_path / "webserver-k8s.yaml"
    manifest.write_text(_deployment(port, str(www)))
    p = pod_ctr("kube", "play", "--replace", str(manifest), check=True)
    report = _report(p.stdout)
    assert len(report) == 2 and all(len(ctrs) == 2 for _, ctrs in report)
    assert "kind Service (webserver) is not supported" in p.stderr
    assert "hostPort" in p.stderr and "replica 0 only" in p.stderr
    assert www.is_dir()  # DirectoryOrCreate
    (www / "index.html").write_text("hello from kube\n")

    pods = pod_ctr("pod", "ps", "--format", "{{.Name}} {{.Status}} {{.NumberOfContainers}}").stdout.splitlines()
    assert sorted(pods) == ["webserver-pod-0 Running 3", "webserver-pod-1 Running 3"]
    names = set(pod_ctr("ps", "--format", "{{.Names}}").stdout.split())
    assert {"webserver-pod-0-web", "webserver-pod-0-sidecar", "webserver-pod-1-web", "webserver-pod-1-sidecar"} <= names
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/index.html") == "hello from kube\n", timeout=20, what="hostPort")
    # the sidecar reaches its own pod's server on loopback; emptyDir is shared in a pod, not across pods
    assert pod_ctr("exec", "webserver-pod-1-sidecar", "wget", "-qO-", "127.0.0.1:8080/index.html",
                   check=True).stdout == "hello from kube\n"
    pod_ctr("exec", "webserver-pod-0-sidecar", "sh", "-c", "echo shared > /scratch/f", check=True)
    assert pod_ctr("exec", "webserver-pod-0-web", "cat", "/scratch/f", check=True).stdout == "shared\n"
    assert pod_ctr("exec", "webserver-pod-1-web", "cat", "/scratch/f").returncode != 0
    assert pod_ctr("exec", "webserver-pod-0-web", "sh", "-c", "echo $GREETING; touch /www/x").stdout == "hello\n"
    info = json.loads(pod_ctr("inspect", "webserver-pod-0-web", check=True).stdout)[0]
    hc = info["HostConfig"]
    assert hc["Memory"] == 64 << 20 and hc["NanoCpus"] == 500_000_000 and hc["CapDrop"] == ["MKNOD"]
    assert hc["RestartPolicy"]["Name"] == "always"
    assert info["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    assert info["Config"]["Entrypoint"] == ["httpd"] and info["Config"]["StopTimeout"] == 1

    # without --replace an existing pod is refused, nothing changes
    p = pod_ctr("kube", "play", str(manifest))
    assert p.returncode == 125 and "pod webserver-pod-0 already exists" in p.stderr
    old = {pid for pid, _ in report}
    new = {pid for pid, _ in _report(pod_ctr("kube", "play", "--replace", str(manifest), check=True).stdout)}
    assert not old & new
    assert len(pod_ctr("pod", "ps", "-q").stdout.split()) == 2
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/index.html") == "hello from kube\n", timeout=20, what="replaced")

    p = pod_ctr("kube", "play", "--down", str(manifest), check=True)
    lines = p.stdout.splitlines()
    assert lines[0] == "Pods stopped:" and lines[3] == "Pods removed:" and set(lines[1:3]) == set(lines[4:6]) == new
    assert pod_ctr("pod", "ps", "-q").stdout == ""
    assert pod_ctr("ps", "-aq").stdout == ""
    assert pod_ctr("volume", "ls", "-q").stdout == ""  # the emptyDir volumes went with their pods
    assert _get(f"http://127.0.0.1:{port}/index.html") == ""


def test_tutorial_older_spellings(pod_ctr, tmp_path):
    """Podman 3.4's `play kube`, `pod stop NAME-pod-0`, `pod rm`, and `kube down`."""
    manifest = tmp_path / "webserver-k8s.yaml"
    manifest.write_text(_deployment(_free_port(), str(tmp_path / "www")).replace("replicas: 2", "replicas: 1"))
    assert len(_report(pod_ctr("play", "kube", str(manifest), check=True).stdout)) == 1
    pod_ctr("pod", "stop", "webserver-pod-0", check=True)
    assert pod_ctr("pod", "ps", "--format", "{{.Status}}").stdout == "Exited\n"
    pod_ctr("pod", "rm", "webserver-pod-0", check=True)
    assert pod_ctr("ps", "-aq").stdout == ""
    assert len(_report(pod_ctr("kube", "play", str(manifest), check=True).stdout)) == 1
    assert pod_ctr("kube", "down", str(manifest), check=True).stdout.startswith("Pods stopped:\n")
    assert pod_ctr("pod", "ps", "-q").stdout == "" and pod_ctr("ps", "-aq").stdout == ""


POD = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: roundtrip
  labels:
    app: roundtrip
    tier: backend
spec:
  hostname: rt-host
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {IMAGE}
    command: ["sh", "-c"]
    args: ["echo started; exec sleep 3600"]
    workingDir: /tmp
    env:
    - name: MODE
      value: test
    - name: EMPTY
      value: ""
    ports:
    - containerPort: 9000
      hostPort: HOSTPORT
    resources:
      limits:
        memory: 32Mi
        cpu: 250m
      requests:
        memory: 16Mi
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities:
        add: ["NET_ADMIN"]
        drop: ["CHOWN"]
    livenessProbe:
      exec:
        command: ["cat", "/etc/hostname"]
      periodSeconds: 10
      timeoutSeconds: 3
      failureThreshold: 4
    volumeMounts:
    - name: data
      mountPath: /data
    - name: cache
      mountPath: /cache
    - name: host
      mountPath: /host
      readOnly: true
  - name: helper
    image: {IMAGE}
    args: ["sleep", "3600"]
    securityContext:
      privileged: true
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: rt-data
  - name: cache
    emptyDir: {{}}
  - name: host
    hostPath:
      path: HOSTDIR
      type: Directory
"""

COMPARED = ("Config.Entrypoint", "Config.Cmd", "Config.Env", "Config.User", "Config.WorkingDir", "Config.Hostname",
            "Config.Healthcheck", "Config.StopTimeout", "HostConfig.Memory", "HostConfig.MemoryReservation",
            "HostConfig.NanoCpus", "HostConfig.CapAdd", "HostConfig.CapDrop", "HostConfig.Privileged",
            "HostConfig.ReadonlyRootfs", "HostConfig.SecurityOpt", "HostConfig.RestartPolicy", "Name", "ImageName")


def _facts(pod_ctr, name: str) -> dict:
    info = json.loads(pod_ctr("inspect", name, check=True).stdout)[0]
    out = {}
    for path in COMPARED:
        v = info
        for part in path.split("."):
            v = v.get(part) if isinstance(v, dict) else None
        out[path] = v
    out["Mounts"] = sorted((m["Type"], m.get("Name") or m["Source"], m["Destination"], m["RW"])
                           for m in info["Mounts"])
    return out


def _validate(text: str) -> list[dict]:
    import kubernetes_validate

    docs = [d for d in yaml.safe_load_all(text) if d]
    for d in docs:
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    return docs


def test_generate_kube_round_trip(pod_ctr, tmp_path):
    port = _free_port()
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    (hostdir / "file").write_text("from host\n")
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD.replace("HOSTPORT", str(port)).replace("HOSTDIR", str(hostdir)))
    pod_ctr("kube", "play", str(manifest), check=True)
    assert pod_ctr("exec", "roundtrip-main", "sh", "-c", "id -u; hostname; cat /host/file; pwd").stdout == \
        "1000\nrt-host\nfrom host\n/tmp\n"
    before = {n: _facts(pod_ctr, f"roundtrip-{n}") for n in ("main", "helper")}
    assert before["main"]["HostConfig.SecurityOpt"] == ["no-new-privileges"]
    assert before["helper"]["HostConfig.Privileged"] is True

    out = tmp_path / "generated.yaml"
    pod_ctr("generate", "kube", "roundtrip", "-f", str(out), check=True)
    text = out.read_text()
    assert text.startswith("# Save the output of this file and use kubectl create -f")
    (doc,) = _validate(text)
    assert doc["kind"] == "Pod" and doc["metadata"]["name"] == "roundtrip"
    assert doc["metadata"]["labels"] == {"app": "roundtrip", "tier": "backend"}
    spec = doc["spec"]
    assert spec["hostname"] == "rt-host" and spec["restartPolicy"] == "OnFailure"
    main = spec["containers"][0]
    assert main["ports"] == [{"containerPort": 9000, "hostPort": port}]
    assert main["securityContext"]["runAsUser"] == 1000 and main["resources"]["limits"] == {"memory": "32Mi",
                                                                                           "cpu": "250m"}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["cache"] == {"emptyDir": {}, "name": "cache"}
    assert any(v.get("persistentVolumeClaim", {}).get("claimName") == "rt-data" for v in vols.values())
    assert any(v.get("hostPath", {}).get("path") == str(hostdir) for v in vols.values())
    # the same file as `generate kube` prints it
    assert pod_ctr("kube", "generate", "roundtrip", check=True).stdout == text

    pod_ctr("kube", "down", str(manifest), check=True)
    assert pod_ctr("ps", "-aq").stdout == ""
    assert pod_ctr("volume", "ls", "-q").stdout.split() == ["rt-data"]  # a claim outlives the pod, as in Podman
    pod_ctr("kube", "play", str(out), check=True)
    after = {n: _facts(pod_ctr, f"roundtrip-{n}") for n in ("main", "helper")}
    for n in before:
        for key in before[n]:
            assert after[n][key] == before[n][key], (n, key)
    wait_for(lambda: "started" in pod_ctr("logs", "roundtrip-main").stdout, timeout=15, what="main")
    pod_ctr("kube", "down", str(out), check=True)
    assert pod_ctr("pod", "ps", "-q").stdout == "" and pod_ctr("ps", "-aq").stdout == ""


def test_generate_kube_container_deployment_and_service(pod_ctr):
    pod_ctr("volume", "create", "appdata", check=True)
    pod_ctr("create", "--name", "app_1", "-p", "127.0.0.1:18555:80", "-v", "appdata:/data", "-e", "X=1",
            "-m", "128m", "--restart", "always", IMAGE, "httpd", "-f", "-p", "80", check=True)
    docs = _validate(pod_ctr("generate", "kube", "--service", "app_1", check=True).stdout)
    assert [d["kind"] for d in docs] == ["Service", "Pod"]  # Podman's order
    svc, pod = docs
    assert pod["metadata"]["name"] == "app1-pod" and pod["spec"]["containers"][0]["name"] == "app1"
    c = pod["spec"]["containers"][0]
    assert c["args"] == ["httpd", "-f", "-p", "80"] and "command" not in c
    assert c["env"] == [{"name": "X", "value": "1"}] and c["resources"]["limits"]["memory"] == "128Mi"
    assert pod["spec"]["volumes"] == [{"name": "appdata-pvc", "persistentVolumeClaim": {"claimName": "appdata"}}]
    assert svc["spec"]["ports"] == [{"name": "80", "port": 80, "targetPort": 80}]
    assert svc["spec"]["selector"] == {"app": "app1-pod"} and svc["spec"]["type"] == "NodePort"

    docs = _validate(pod_ctr("generate", "kube", "--type", "deployment", "--replicas", "3", "app_1",
                             check=True).stdout)
    assert docs[0]["kind"] == "Deployment" and docs[0]["spec"]["replicas"] == 3
    assert docs[0]["spec"]["template"]["metadata"]["labels"] == docs[0]["spec"]["selector"]["matchLabels"]

    p = pod_ctr("generate", "kube", "nosuch")
    assert p.returncode == 125 and "No such container: nosuch" in p.stderr
    p = pod_ctr("generate", "kube", "--service", "app_1", "-t", "pod", "--replicas", "2")
    assert p.returncode == 125 and "--replicas" in p.stderr


@pytest.mark.parametrize(("body", "message"), [
    ("kind: Pod\nmetadata: {name: p\n", "invalid YAML (line"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: ok}\nspec:\n  containers:\n  - name: c\n    image: IMG\n"
     "---\napiVersion: v1\nkind: Pod\nmetadata: {name: broken}\nspec:\n  containers:\n  - name: c\n",
     "pod broken: container c: image is missing"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: IMG}]}\n",
     "metadata.name 'Bad_Name'"),
    ("- just\n- a list\n", "document 1 is not a Kubernetes object"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: hp}\nspec:\n  containers: [{name: c, image: IMG, "
     "volumeMounts: [{name: h, mountPath: /h}]}]\n  volumes: [{name: h, hostPath: {path: /nonexistent-dy, "
     "type: Directory}}]\n", "hostPath /nonexistent-dy is not an existing Directory"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: nim}\nspec: {containers: [{name: c, image: localhost/nosuch-dy}]}\n",
     "image localhost/nosuch-dy is not present"),
])
def test_bad_manifests_create_nothing(pod_ctr, tmp_path, body, message):
    f = tmp_path / "bad.yaml"
    f.write_text(body.replace("IMG", IMAGE))
    p = pod_ctr("kube", "play", str(f))
    assert p.returncode != 0 and message in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("Error: ")
    assert pod_ctr("pod", "ps", "-q").stdout == ""
    assert pod_ctr("ps", "-aq").stdout == ""


def test_unsupported_fields_are_named(pod_ctr, tmp_path):
    f = tmp_path / "warn.yaml"
    f.write_text(f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
---
apiVersion: v1
kind: Pod
metadata: {{name: warnpod}}
spec:
  nodeSelector: {{disk: ssd}}
  containers:
  - name: c
    image: {IMAGE}
    command: ["sleep", "600"]
    readinessProbe: {{exec: {{command: ["true"]}}}}
    env:
    - name: FROM_SECRET
      valueFrom: {{secretKeyRef: {{name: s, key: k}}}}
""")
    p = pod_ctr("kube", "play", str(f), check=True)
    for text in ("kind ConfigMap (cfg) is not supported", "pod warnpod: spec.nodeSelector is not supported",
                 "pod warnpod: container c: readinessProbe is not supported",
                 "pod warnpod: container c: env FROM_SECRET: valueFrom is not supported"):
        assert f"WARNING: {text}" in p.stderr, p.stderr
    assert pod_ctr("pod", "ps", "--format", "{{.Name}} {{.Status}}").stdout == "warnpod Running\n"
    pod_ctr("kube", "down", str(f), check=True)
    assert pod_ctr("ps", "-aq").stdout == ""


HELM = f"""\
---
# Source: webserver/templates/serviceaccount.yaml
apiVersion: v1
kind: ServiceAccount
metadata:
  name: webserver
  labels:
    helm.sh/chart: webserver-0.1.0
    app.kubernetes.io/name: webserver
automountServiceAccountToken: true
---
# Source: webserver/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: webserver
spec:
  type: ClusterIP
  ports:
    - port: 80
      targetPort: http
      protocol: TCP
      name: http
---
# Source: webserver/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: webserver
  labels:
    helm.sh/chart: webserver-0.1.0
    app.kubernetes.io/name: webserver
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: webserver
  template:
    metadata:
      labels:
        helm.sh/chart: webserver-0.1.0
        app.kubernetes.io/name: webserver
    spec:
      serviceAccountName: webserver
      securityContext:
        {{}}
      terminationGracePeriodSeconds: 1
      containers:
        - name: webserver
          securityContext:
            {{}}
          image: "{IMAGE}"
          imagePullPolicy: IfNotPresent
          command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
          ports:
            - name: http
              containerPort: 80
              hostPort: HOSTPORT
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /
              port: http
          readinessProbe:
            httpGet:
              path: /
              port: http
          resources:
            {{}}
"""


def test_helm_template_output(pod_ctr, tmp_path):
    """What `helm template` of a `helm create` chart gives (the tutorial's data/webserver-k8s.yaml)."""
    port = _free_port()
    f = tmp_path / "webserver-k8s.yaml"
    f.write_text(HELM.replace("HOSTPORT", str(port)))
    p = pod_ctr("kube", "play", "--replace", str(f), check=True)
    assert len(_report(p.stdout)) == 1
    for text in ("kind ServiceAccount (webserver) is not supported", "kind Service (webserver) is not supported",
                 "pod webserver-pod-0: spec.serviceAccountName is not supported",
                 "container webserver: livenessProbe httpGet is not supported",
                 "container webserver: readinessProbe is not supported"):
        assert text in p.stderr, p.stderr
    assert pod_ctr("pod", "ps", "--format", "{{.Name}} {{.Status}}").stdout == "webserver-pod-0 Running\n"
    assert pod_ctr("ps", "--format", "{{.Names}}", "--filter", "name=webserver-pod-0-webserver").stdout == \
        "webserver-pod-0-webserver\n"
    wait_for(lambda: _get(f"http://127.0.0.1:{port}/hostname") == "webserver-pod-0\n", timeout=20, what="helm pod")
    pod_ctr("kube", "play", "--down", str(f), check=True)
    assert pod_ctr("pod", "ps", "-q").stdout == "" and pod_ctr("ps", "-aq").stdout == ""


@pytest.mark.peer("podman")
def test_generate_kube_matches_podman(pod_ctr, tmp_path):
    """Podman is the reference: the same container gives the same names, command, env, ports, limits,
    security settings and Service in both generators (podman only creates, so nothing runs)."""
    import shutil
    import subprocess
    import tempfile

    runroot = tempfile.mkdtemp(prefix="dy-podman-")  # podman wants a runroot under 50 characters
    podman = ["podman", "--root", str(tmp_path / "proot"), "--runroot", runroot,
              "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    pod_ctr("save", "-o", str(tmp_path / "bb.tar"), IMAGE, check=True)
    args = ["--name", "app_1", "-p", "127.0.0.1:18556:80", "-e", "X=1", "-m", "128m", "--read-only",
            "-u", "1000:1000", IMAGE, "httpd", "-f", "-p", "80"]
    try:
        for cmd in (["load", "-i", str(tmp_path / "bb.tar")], ["create", *args]):
            p = subprocess.run(podman + cmd, capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
        theirs = [d for d in yaml.safe_load_all(subprocess.run(
            podman + ["generate", "kube", "--service", "app_1"], check=True, capture_output=True,
            text=True).stdout) if d]
    finally:
        subprocess.run(podman + ["rm", "-af"], capture_output=True)
        subprocess.run(podman + ["rmi", "-af"], capture_output=True)
        shutil.rmtree(runroot, ignore_errors=True)
    pod_ctr("create", *args, check=True)
    ours = _validate(pod_ctr("generate", "kube", "--service", "app_1", check=True).stdout)

    def essentials(docs: list[dict]) -> dict:
        svc, pod = docs
        c = pod["spec"]["containers"][0]
        sc = c["securityContext"]
        return {"kinds": [d["kind"] for d in docs], "pod": pod["metadata"]["name"],
                "labels": pod["metadata"]["labels"], "name": c["name"],
                "image": c["image"].removesuffix(":latest"), "argv": c.get("command", []) + c.get("args", []),
                "env": c["env"], "ports": c["ports"], "limits": c["resources"]["limits"],
                "security": (sc["readOnlyRootFilesystem"], sc["runAsUser"], sc["runAsGroup"]),
                "service": (svc["metadata"]["name"], svc["spec"]["selector"], svc["spec"]["type"],
                            [{k: v for k, v in p.items() if k != "nodePort"} for p in svc["spec"]["ports"]])}

    assert essentials(ours) == essentials(theirs)
