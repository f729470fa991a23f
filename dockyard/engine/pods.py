"""Pods, as Podman has them: containers that share one infra container's network, IPC and host name.

The infra container runs ``catatonit -P`` (Podman's pause process) from ``localhost/dockyard-pause``,
an image built here offline from the host's static catatonit the first time a pod needs it.  It
holds the namespaces and the pod's published ports; members join them through the engine's
``--network container:`` and ``--ipc container:`` modes, and take the pod's host name.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dockyard.errors import Conflict, DockyardError, InvalidArgument, NotFound, Unsupported

if TYPE_CHECKING:
    from dockyard.engine import Engine
    from dockyard.engine.containers import CreateOptions

PAUSE_IMAGE = "localhost/dockyard-pause:latest"
CATATONIT_CANDIDATES = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/local/bin/catatonit")
SHAREABLE = ("ipc", "net", "uts")
DEFAULT_SHARE = ["ipc", "net", "uts"]  # Podman's default
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def pod_status(states: list[str]) -> str:
    """Podman's pod state from its containers' states (infra included)."""
    n = len(states)
    if n == 0 or states.count("created") == n:
        return "Created"
    for state, word in (("running", "Running"), ("paused", "Paused"), ("stopped", "Stopped"), ("exited", "Exited")):
        if states.count(state) == n:
            return word
    if "dead" in states:
        return "Error"
    return "Degraded"


class PodService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def db(self) -> Any:
        return self.engine.db

    # -- lookup -----------------------------------------------------------------------------------
    def row(self, ref: str) -> Any:
        r = self.db.query_one("SELECT * FROM pods WHERE id=? OR name=?", (ref, ref))
        if r is not None:
            return r
        if re.fullmatch(r"[0-9a-f]{1,64}", ref):
            rows = self.db.query("SELECT * FROM pods WHERE id LIKE ?", (ref + "%",))
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise Conflict(f"more than one result for pod ID {ref}")
        raise NotFound(f"no pod with name or ID {ref} found: no such pod")

    def exists(self, ref: str) -> bool:
        try:
            self.row(ref)
            return True
        except NotFound:
            return False

    def members(self, pod_id: str) -> list[str]:
        """IDs of the pod's containers other than the infra, in creation order (removed ones drop out)."""
        return [str(r[0]) for r in self.db.query(
            "SELECT pc.container_id FROM pod_containers pc JOIN containers c ON c.id = pc.container_id "
            "WHERE pc.pod_id=? ORDER BY pc.position", (pod_id,))]

    def pod_of(self, container_id: str) -> str | None:
        r = self.db.query_one("SELECT pod_id FROM pod_containers WHERE container_id=?", (container_id,))
        if r is None:
            r = self.db.query_one("SELECT id FROM pods WHERE infra_id=?", (container_id,))
        return str(r[0]) if r is not None else None

    def _infra(self, r: Any) -> str | None:
        infra = str(r["infra_id"])
        if infra and self.engine.containers.exists(infra):
            return infra
        return None

    def _state(self, cid: str) -> str:
        return str(self.engine.containers.inspect(cid)["State"]["Status"])

    # -- create -----------------------------------------------------------------------------------
    def create(self, name: str | None = None, *, publish: list[str] | None = None, labels: dict[str, str] | None = None,
               hostname: str | None = None, share: list[str] | None = None, network: list[str] | None = None,
               infra: bool = True, infra_image: str | None = None, extra: dict[str, Any] | None = None) -> str:
        """Create a pod and (unless ``infra`` is false) its infra container; returns the pod ID."""
        from dockyard.engine.containers import CreateOptions, generate_name

        share = DEFAULT_SHARE if share is None else share
        for ns in share:
            if ns not in SHAREABLE:
                raise InvalidArgument(f"invalid namespace {ns!r} to share: dockyard pods share {', '.join(SHAREABLE)}")
        if name is not None and not NAME_RE.match(name):
            raise InvalidArgument(f"invalid pod name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-]* is allowed")
        if hostname:
            from dockyard.network.files import check_hostname

            check_hostname(hostname)
        if (publish or network) and not (infra and "net" in share):
            raise InvalidArgument("published ports and networks need a pod with an infra container sharing net")
        pod_id = os.urandom(32).hex()
        with self.db.write() as c:
            if name is None:
                taken = {r[0] for r in c.execute("SELECT name FROM pods")}
                name = generate_name()
                while name in taken:
                    name = generate_name()
            elif c.execute("SELECT 1 FROM pods WHERE name=?", (name,)).fetchone():
                raise Conflict(f"{name}: pod already exists")
            config = {"Hostname": hostname or name, "Labels": dict(labels or {}), "SharedNamespaces": list(share),
                      "Publish": list(publish or []), "Networks": list(network or []), "CreateInfra": infra,
                      **(extra or {})}
            c.execute("INSERT INTO pods (id, name, created, config) VALUES (?,?,?,?)",
                      (pod_id, name, time.time(), json.dumps(config)))
        if not infra:
            return pod_id
        try:
            image = infra_image or self.pause_image()
            opts = CreateOptions(image=image, name=f"{pod_id[:12]}-infra", hostname=config["Hostname"],
                                 publish=list(publish or []), network=list(network or []) or None,
                                 attach_streams=False)
            infra_id = self.engine.containers.create(opts)
        except BaseException:
            with self.db.write() as c:
                c.execute("DELETE FROM pods WHERE id=?", (pod_id,))
            raise
        with self.db.write() as c:
            c.execute("UPDATE pods SET infra_id=? WHERE id=?", (infra_id, pod_id))
        return pod_id

    def pause_image(self) -> str:
        """The infra image, built from the host's static catatonit on first use (as Podman builds podman-pause)."""
        images = self.engine.images
        if images.exists(PAUSE_IMAGE):
            return PAUSE_IMAGE
        import io
        import tarfile
        import tempfile

        binary = next((p for p in CATATONIT_CANDIDATES if os.path.isfile(p)), None)
        if binary is None:
            raise Unsupported("pods need catatonit for their infra container: install catatonit")
        tmp_root = self.engine.roots.tmp
        tmp_root.mkdir(parents=True, exist_ok=True)
        mtime = int(os.stat(binary).st_mtime)
        with tempfile.TemporaryFile(dir=tmp_root, prefix="pause-") as f:
            with tarfile.open(fileobj=f, mode="w") as tf:
                for d in ("dev", "etc", "proc", "run", "sys", "tmp"):
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, mtime
                    tf.addfile(ti)
                with open(binary, "rb") as b:
                    data = b.read()
                ti = tarfile.TarInfo("catatonit")
                ti.mode, ti.mtime, ti.size = 0o755, mtime, len(data)
                tf.addfile(ti, io.BytesIO(data))
            f.seek(0)
            images.create_from_tar(f, tags=[PAUSE_IMAGE], created=mtime,
                                   container_config={"Entrypoint": ["/catatonit", "-P"], "StopSignal": "SIGTERM"},
                                   created_by=f"dockyard pod infra image from {binary}")
        return PAUSE_IMAGE

    def member_options(self, ref: str, opts: CreateOptions) -> CreateOptions:
        """``opts`` for a container joining the pod: its namespaces and host name come from the infra."""
        r = self.row(ref)
        cfg = json.loads(r["config"])
        infra = self._infra(r)
        share = cfg.get("SharedNamespaces") or []
        if infra is None:
            return opts
        if "net" in share:
            if opts.publish or opts.publish_all:
                raise InvalidArgument("published ports must be defined when the pod is created: "
                                      "the network is shared with the pod")
            if opts.network:
                raise InvalidArgument("a container in a pod that shares the network cannot set --network")
            opts = replace(opts, network=[f"container:{infra}"])
        if "ipc" in share and not opts.ipc:
            opts = replace(opts, ipc=f"container:{infra}")
        if "uts" in share and not opts.hostname:
            opts = replace(opts, hostname=cfg.get("Hostname") or r["name"])
        return opts

    def create_container(self, ref: str, opts: CreateOptions) -> str:
        """``create --pod``: the container, joined to the pod's namespaces and recorded as a member."""
        r = self.row(ref)
        opts = self.member_options(ref, opts)
        cid = self.engine.containers.create(opts)
        try:
            with self.db.write() as c:
                pos = c.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM pod_containers WHERE pod_id=?",
                                (r["id"],)).fetchone()[0]
                c.execute("INSERT INTO pod_containers (container_id, pod_id, position) VALUES (?,?,?)",
                          (cid, r["id"], pos))
        except BaseException:
            self.engine.containers.remove(cid, force=True)
            raise
        return cid

    # -- lifecycle --------------------------------------------------------------------------------
    def start_infra(self, ref: str) -> None:
        r = self.row(ref)
        infra = self._infra(r)
        if infra is not None and self._state(infra) not in ("running", "paused"):
            self.engine.containers.start(infra)

    def start(self, ref: str) -> str:
        r = self.row(ref)
        self.start_infra(r["id"])
        errors = []
        for cid in self.members(r["id"]):
            if self._state(cid) in ("running", "paused"):
                continue
            try:
                self.engine.containers.start(cid)
            except DockyardError as e:
                errors.append(str(e))
        if errors:
            raise DockyardError(f"starting some containers of pod {r['name']} failed: {'; '.join(errors)}")
        return str(r["id"])

    def stop(self, ref: str, timeout: int | None = None) -> str:
        r = self.row(ref)
        infra = self._infra(r)
        members = self.members(r["id"])[::-1]
        self._stop_together([cid for cid in members if self._state(cid) in ("running", "paused")], timeout)
        if infra and self._state(infra) in ("running", "paused"):
            self.engine.containers.stop(infra, timeout=timeout)  # last: the members live in its namespaces
        return str(r["id"])

    def _stop_together(self, cids: list[str], timeout: int | None) -> None:
        """Signal every member first, then wait for each within its own grace period counted from that
        signal, so a pod stops in its longest timeout rather than the sum of them."""
        from dockyard.engine.containers import DEFAULT_STOP_TIMEOUT

        svc = self.engine.containers
        began = time.monotonic()
        grace: dict[str, int] = {}
        for cid in cids:
            config = svc.inspect(cid)["Config"]
            grace[cid] = timeout if timeout is not None else int(config.get("StopTimeout", DEFAULT_STOP_TIMEOUT))
            if self._state(cid) == "running":
                try:
                    svc.kill(cid, str(config.get("StopSignal") or "SIGTERM"))
                except DockyardError:
                    pass  # it ended meanwhile; stop below sees that
        for cid in cids:
            left = grace[cid] - int(time.monotonic() - began)
            svc.stop(cid, timeout=max(0, left))

    def kill(self, ref: str, signal: str = "KILL") -> str:
        r = self.row(ref)
        infra = self._infra(r)
        killed = 0
        for cid in self.members(r["id"]) + ([infra] if infra else []):
            if self._state(cid) == "running":
                self.engine.containers.kill(cid, signal)
                killed += 1
        if not killed:
            raise Conflict(f"pod {r['name']} has no running containers to kill")
        return str(r["id"])

    def restart(self, ref: str, timeout: int | None = None) -> str:
        self.stop(ref, timeout)
        return self.start(ref)

    def remove(self, ref: str, force: bool = False, timeout: int | None = None) -> str:
        """Remove the pod with its containers; running ones only with ``force`` (stopped first, as Podman)."""
        r = self.row(ref)
        infra = self._infra(r)
        members = self.members(r["id"])
        running = [cid for cid in members + ([infra] if infra else []) if self._state(cid) in ("running", "paused")]
        if running and not force:
            raise Conflict(f"pod {r['name']} has running containers: stop the pod first or use --force")
        if running and timeout is not None:
            self.stop(r["id"], timeout)  # else killed, as `rm -f` does
        for cid in members:
            self.engine.containers.remove(cid, force=True)
        if infra:
            with self.db.write() as c:  # lets the containers service remove it
                c.execute("UPDATE pods SET infra_id='' WHERE id=?", (r["id"],))
            self.engine.containers.remove(infra, force=True)
        cfg = json.loads(r["config"])
        with self.db.write() as c:
            c.execute("DELETE FROM pods WHERE id=?", (r["id"],))
        for vol in cfg.get("OwnedVolumes") or []:
            try:
                self.engine.volumes.remove(vol, force=True)
            except NotFound:
                pass
        return str(r["id"])

    def prune(self) -> list[str]:
        """Remove the pods none of whose containers runs."""
        gone = []
        for r in self.db.query("SELECT id FROM pods ORDER BY created"):
            if self.inspect(str(r[0]))["State"] not in ("Running", "Paused", "Degraded"):
                gone.append(self.remove(str(r[0])))
        return gone

    # -- reading ----------------------------------------------------------------------------------
    def inspect(self, ref: str) -> dict[str, Any]:
        from dockyard.engine.containers import now_rfc3339

        r = self.row(ref)
        cfg = json.loads(r["config"])
        infra = self._infra(r)
        ctrs = []
        states = []
        for cid in ([infra] if infra else []) + self.members(r["id"]):
            info = self.engine.containers.inspect(cid)
            state = str(info["State"]["Status"])
            states.append(state)
            ctrs.append({"Id": cid, "Name": str(info["Name"]).lstrip("/"), "State": state})
        infra_config: dict[str, Any] = {}
        if infra:
            infra_config = {"PortBindings": port_bindings(cfg.get("Publish") or []),
                            "HostNetwork": False, "StaticIP": "", "Networks": cfg.get("Networks") or []}
        return {
            "Id": r["id"], "Name": r["name"], "Created": now_rfc3339(float(r["created"])),
            "State": pod_status(states), "Hostname": cfg.get("Hostname") or "", "Labels": cfg.get("Labels") or {},
            "CreateInfra": bool(cfg.get("CreateInfra", True)), "InfraContainerID": infra or "",
            "InfraConfig": infra_config, "SharedNamespaces": cfg.get("SharedNamespaces") or [],
            "NumContainers": len(ctrs), "Containers": ctrs,
        }

    def list_pods(self, filters: list[str] | None = None) -> list[dict[str, Any]]:
        flt: dict[str, list[str]] = {}
        for f in filters or []:
            k, sep, v = f.partition("=")
            if not sep or k not in ("name", "id", "label", "status"):
                raise InvalidArgument(f"invalid filter {f!r}: expected name=, id=, label= or status=")
            flt.setdefault(k, []).append(v)
        out = []
        for r in self.db.query("SELECT id FROM pods ORDER BY created DESC"):
            info = self.inspect(str(r[0]))
            if "name" in flt and not any(re.search(v, info["Name"]) for v in flt["name"]):
                continue
            if "id" in flt and not any(info["Id"].startswith(v) for v in flt["id"]):
                continue
            if "status" in flt and info["State"].lower() not in [v.lower() for v in flt["status"]]:
                continue
            if "label" in flt and not all(_label_match(info["Labels"], v) for v in flt["label"]):
                continue
            out.append(info)
        return out

    def top(self, ref: str, ps_args: list[str]) -> tuple[list[str], list[list[str]]]:
        """``pod top``: the processes of every running container of the pod, one table."""
        r = self.row(ref)
        infra = self._infra(r)
        headers: list[str] = []
        rows: list[list[str]] = []
        for cid in ([infra] if infra else []) + self.members(r["id"]):
            if self._state(cid) != "running":
                continue
            h, procs = self.engine.containers.top(cid, ps_args)
            headers = headers or h
            rows.extend(procs)
        if not headers:
            raise Conflict(f"pod {r['name']} has no running containers")
        return headers, rows


def port_bindings(publish: list[str]) -> dict[str, list[dict[str, str]]]:
    """``-p`` specs as Docker's HostConfig.PortBindings."""
    from dockyard.network.ports import parse_publish

    out: dict[str, list[dict[str, str]]] = {}
    for spec in publish:
        for m in parse_publish(spec):
            out.setdefault(m.key(), []).append({"HostIp": m.host_ip, "HostPort": str(m.host_port or "")})
    return out


def _label_match(labels: dict[str, str], spec: str) -> bool:
    k, sep, v = spec.partition("=")
    return k in labels and (not sep or labels[k] == v)
