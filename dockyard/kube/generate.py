"""``generate kube``: Kubernetes manifests (Pod or Deployment, optionally a Service) from what dockyard
knows of containers and pods, so a workload moves to a real cluster.  What ``kube play`` reads back
gives the same containers: names, images, commands, env, ports, mounts, limits and security settings.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any

from dockyard.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from dockyard.engine import Engine

HEADER = ("# Save the output of this file and use kubectl create -f to import it into Kubernetes.\n#\n"
          "# Created with dockyard-{version}\n")
RESTART = {"always": "Always", "unless-stopped": "Always", "on-failure": "OnFailure", "no": "Never", "": "Never"}
EMPTYDIR_LABEL = "io.dockyard.kube.emptydir"


def dns_name(name: str) -> str:
    """A Kubernetes object name (DNS label) from a dockyard name: underscores dropped, as Podman does."""
    out = re.sub(r"[^a-z0-9.-]+", "-", name.lower().replace("_", "")).strip("-.")
    return out[:63] or "x"


def generate(engine: Engine, names: list[str], kind: str = "pod", service: bool = False, replicas: int = 1) -> str:
    import yaml

    from dockyard import __version__
    from dockyard.engine.pods import PodService

    if kind not in ("pod", "deployment"):
        raise InvalidArgument(f"invalid --type {kind!r}: expected pod or deployment")
    if replicas < 0:
        raise InvalidArgument("--replicas cannot be negative")
    if replicas != 1 and kind != "deployment":
        raise InvalidArgument("--replicas applies to --type deployment only")
    pods = PodService(engine)
    gen = _Generator(engine, pods)
    groups: list[tuple[str, dict[str, str], list[str], list[str], dict[str, Any]]] = []
    loose: list[str] = []
    for name in names:
        if pods.exists(name):
            r = pods.row(name)
            cfg = json.loads(r["config"])
            groups.append((str(r["name"]), dict(cfg.get("Labels") or {}), pods.members(str(r["id"])),
                           list(cfg.get("Publish") or []), cfg))
            continue
        cid = engine.containers.resolve(name)  # NotFound names the container
        pod_id = pods.pod_of(cid)
        if pod_id is not None:
            raise InvalidArgument(f"container {name} is part of pod {pods.row(pod_id)['name']}: "
                                  "generate the pod instead")
        loose.append(cid)
    if loose:
        first = str(engine.containers.row(loose[0])["name"])
        publish = [p for cid in loose for p in json.loads(engine.containers.row(cid)["settings"]).get("publish") or []]
        groups.append((f"{first}-pod", {}, loose, publish, {}))
    docs: list[dict[str, Any]] = []
    for pod_name, labels, members, publish, cfg in groups:
        if not members:
            raise InvalidArgument(f"pod {pod_name} has no containers to generate")
        meta_name = dns_name(pod_name)
        labels = {**labels, "app": labels.get("app", meta_name)}
        spec = gen.pod_spec(pod_name, members, publish, cfg)
        meta = {"labels": labels, "name": meta_name}
        if kind == "pod":
            docs.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
        else:
            docs.append({"apiVersion": "apps/v1", "kind": "Deployment",
                         "metadata": {"labels": labels, "name": f"{meta_name}-deployment"},
                         "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": labels["app"]}},
                                  "template": {"metadata": meta, "spec": spec}}})
        if service:
            # Podman's shape: one port per published container port, named by its number; the
            # cluster picks the node ports.
            ports = []
            for c in spec["containers"]:
                for p in c.get("ports") or []:
                    sp: dict[str, Any] = {"name": str(p["containerPort"]), "port": p["containerPort"],
                                          "targetPort": p["containerPort"]}
                    if p.get("protocol"):
                        sp["name"] += "-" + p["protocol"].lower()
                        sp["protocol"] = p["protocol"]
                    ports.append(sp)
            if not ports:
                raise InvalidArgument(f"--service: {pod_name} publishes no ports")
            docs.insert(len(docs) - 1, {"apiVersion": "v1", "kind": "Service",
                                        "metadata": {"labels": labels, "name": meta_name},
                                        "spec": {"ports": ports, "selector": {"app": labels["app"]},
                                                 "type": "NodePort"}})
    body = "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)
    return HEADER.format(version=__version__) + body


class _Generator:
    def __init__(self, engine: Engine, pods: Any) -> None:
        self.engine = engine
        self.pods = pods

    def pod_spec(self, pod_name: str, members: list[str], publish: list[str], cfg: dict[str, Any]) -> dict[str, Any]:
        from dockyard.engine.pods import port_bindings

        volumes: dict[str, dict[str, Any]] = {}  # source -> volume object
        containers = []
        restart = "Always"
        grace: int | None = None
        for i, cid in enumerate(members):
            r = self.engine.containers.row(cid)
            info = self.engine.containers.inspect(cid)
            c = self._container(pod_name, str(r["name"]), info, volumes)
            if i == 0:
                restart = RESTART.get(str((info["HostConfig"].get("RestartPolicy") or {}).get("Name") or ""), "Always")
                stop_timeout = info["Config"].get("StopTimeout")
                grace = int(stop_timeout) if stop_timeout is not None else None
                ports = _ports(port_bindings(publish))
                if ports:
                    c["ports"] = ports
            containers.append(c)
        spec: dict[str, Any] = {"containers": containers}
        hostname = cfg.get("Hostname")
        if hostname and hostname != pod_name:
            spec["hostname"] = hostname
        spec["restartPolicy"] = restart
        if grace is not None:
            spec["terminationGracePeriodSeconds"] = grace
        if volumes:
            spec["volumes"] = list(volumes.values())
        return spec

    def _container(self, pod_name: str, name: str, info: dict[str, Any],
                   volumes: dict[str, dict[str, Any]]) -> dict[str, Any]:
        config, hc = info["Config"], info["HostConfig"]
        image = self.engine.images.get(str(info["Image"]))
        icfg = (image.config or {}).get("config") or {}
        short = name[len(pod_name) + 1:] if name.startswith(pod_name + "-") else name
        c: dict[str, Any] = {"name": dns_name(short), "image": str(config.get("Image") or info.get("ImageName"))}
        ep, cmd = config.get("Entrypoint") or None, config.get("Cmd") or None
        if ep != (icfg.get("Entrypoint") or None):
            if ep:
                c["command"] = list(ep)
            if cmd:
                c["args"] = list(cmd)
        elif cmd != (icfg.get("Cmd") or None) and cmd:
            c["args"] = list(cmd)
        image_env = set(icfg.get("Env") or [])
        env = [e.partition("=") for e in config.get("Env") or [] if e not in image_env]
        if env:
            c["env"] = [{"name": k, "value": v} for k, _, v in env]
        if config.get("WorkingDir") and config["WorkingDir"] != (icfg.get("WorkingDir") or ""):
            c["workingDir"] = config["WorkingDir"]
        resources = self._resources(hc)
        if resources:
            c["resources"] = resources
        sc = self._security(config, hc)
        if sc:
            c["securityContext"] = sc
        probe = _probe(config.get("Healthcheck"))
        if probe:
            c["livenessProbe"] = probe
        mounts = self._mounts(pod_name, info, volumes)
        if mounts:
            c["volumeMounts"] = mounts
        if config.get("Tty"):
            c["tty"] = True
        if config.get("OpenStdin"):
            c["stdin"] = True
        return c

    @staticmethod
    def _resources(hc: dict[str, Any]) -> dict[str, Any]:
        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        if hc.get("Memory"):
            limits["memory"] = _bytes(int(hc["Memory"]))
        if hc.get("NanoCpus"):
            limits["cpu"] = f"{int(hc['NanoCpus']) // 1_000_000}m"
        if hc.get("MemoryReservation"):
            requests["memory"] = _bytes(int(hc["MemoryReservation"]))
        out: dict[str, Any] = {}
        if limits:
            out["limits"] = limits
        if requests:
            out["requests"] = requests
        return out

    @staticmethod
    def _security(config: dict[str, Any], hc: dict[str, Any]) -> dict[str, Any]:
        sc: dict[str, Any] = {}
        caps: dict[str, list[str]] = {}
        if hc.get("CapAdd"):
            caps["add"] = [x.upper().removeprefix("CAP_") for x in hc["CapAdd"]]
        if hc.get("CapDrop"):
            caps["drop"] = [x.upper().removeprefix("CAP_") for x in hc["CapDrop"]]
        if caps:
            sc["capabilities"] = caps
        if hc.get("Privileged"):
            sc["privileged"] = True
        if hc.get("ReadonlyRootfs"):
            sc["readOnlyRootFilesystem"] = True
        if any(o.replace(":", "=").startswith("no-new-privileges") for o in hc.get("SecurityOpt") or []):
            sc["allowPrivilegeEscalation"] = False
        m = re.fullmatch(r"(\d+)(?::(\d+))?", str(config.get("User") or ""))
        if m:  # Kubernetes takes numeric ids only; a user name stays the image's business
            sc["runAsUser"] = int(m.group(1))
            if m.group(2) is not None:
                sc["runAsGroup"] = int(m.group(2))
        return sc

    def _mounts(self, pod_name: str, info: dict[str, Any], volumes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for m in info.get("Mounts") or []:
            typ = m.get("Type")
            if typ == "bind":
                key = "bind:" + m["Source"]
                if key not in volumes:
                    vname = dns_name(m["Source"].strip("/").replace("/", "-") or "root") + f"-host-{len(volumes)}"
                    volumes[key] = {"hostPath": {"path": m["Source"],
                                                 "type": "Directory" if os.path.isdir(m["Source"]) else "File"},
                                    "name": vname}
            elif typ == "volume" and m.get("Name"):
                key = "volume:" + m["Name"]
                if key not in volumes:
                    volumes[key] = self._volume(pod_name, str(m["Name"]), len(volumes))
            else:
                continue
            mount: dict[str, Any] = {"mountPath": m["Destination"], "name": volumes[key]["name"]}
            if not m.get("RW", True):
                mount["readOnly"] = True
            out.append(mount)
        return out

    def _volume(self, pod_name: str, vol: str, n: int) -> dict[str, Any]:
        try:
            labels = self.engine.volumes.inspect(vol).get("Labels") or {}
        except NotFound:
            labels = {}
        if labels.get(EMPTYDIR_LABEL) == pod_name and vol.startswith(pod_name + "-"):
            return {"emptyDir": {}, "name": dns_name(vol[len(pod_name) + 1:])}
        return {"name": dns_name(vol) + "-pvc", "persistentVolumeClaim": {"claimName": vol}}


def _ports(bindings: dict[str, list[dict[str, str]]]) -> list[dict[str, Any]]:
    out = []
    for key, binds in bindings.items():
        port, _, proto = key.partition("/")
        for b in binds:
            p: dict[str, Any] = {"containerPort": int(port)}
            if b.get("HostIp"):
                p["hostIP"] = b["HostIp"]
            if b.get("HostPort"):
                p["hostPort"] = int(b["HostPort"])
            if proto and proto != "tcp":
                p["protocol"] = proto.upper()
            out.append(p)
    return out


def _bytes(n: int) -> str:
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _probe(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    test = (hc or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        command = ["/bin/sh", "-c", " ".join(test[1:])]
    elif test[0] == "CMD":
        command = list(test[1:])
    else:
        command = ["/bin/sh", "-c", " ".join(test)]
    probe: dict[str, Any] = {"exec": {"command": command}}
    assert hc is not None
    for key, field in (("Interval", "periodSeconds"), ("Timeout", "timeoutSeconds"),
                       ("StartPeriod", "initialDelaySeconds")):
        if hc.get(key):
            probe[field] = max(1, int(hc[key]) // 1_000_000_000)
    if hc.get("Retries"):
        probe["failureThreshold"] = int(hc["Retries"])
    return probe
