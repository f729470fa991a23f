"""Containers and exec: Docker's /containers/... and /exec/... endpoints over ``engine.containers``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from aiohttp import web

from dockyard.api.attach import MUX_STREAM, RAW_STREAM, STDERR, STDOUT, AttachClient, Hijacked, mux
from dockyard.api.server import (
    backend,
    body_json,
    filter_list,
    json_response,
    no_content,
    qbool,
    qfilters,
    qint,
    send_file,
)
from dockyard.errors import DockyardError, InvalidArgument, NotFound


# -- create ---------------------------------------------------------------------------------------
def _str_list(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    return [str(x) for x in v]


def _ns_duration(ns: Any) -> str | None:
    """Docker's nanosecond durations as the Go duration text the engine parses."""
    if not ns:
        return None
    return f"{int(ns)}ns"


def _mount_arg(m: dict[str, Any]) -> str:
    """A HostConfig.Mounts entry as the ``--mount`` text the engine parses."""
    parts = [f"type={m.get('Type') or 'volume'}"]
    if m.get("Source"):
        parts.append(f"source={m['Source']}")
    if not m.get("Target"):
        raise InvalidArgument("invalid mount config: Target must not be empty")
    parts.append(f"target={m['Target']}")
    if m.get("ReadOnly"):
        parts.append("readonly")
    bind = m.get("BindOptions") or {}
    if bind.get("Propagation"):
        parts.append(f"bind-propagation={bind['Propagation']}")
    vol = m.get("VolumeOptions") or {}
    if vol.get("NoCopy"):
        parts.append("volume-nocopy")
    tmpfs = m.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        parts.append(f"tmpfs-size={tmpfs['SizeBytes']}")
    if tmpfs.get("Mode"):
        parts.append(f"tmpfs-mode={tmpfs['Mode']:o}")
    return ",".join(parts)


def _publish_args(bindings: dict[str, Any] | None) -> list[str]:
    """HostConfig.PortBindings as ``-p`` texts: [HOSTIP:][HOSTPORT:]PORT/PROTO."""
    out = []
    for port, hosts in (bindings or {}).items():
        ctr = port if "/" in port else port + "/tcp"
        for h in hosts or [{}]:
            ip, hp = (h or {}).get("HostIp") or "", (h or {}).get("HostPort") or ""
            if ip:
                out.append(f"{ip}:{hp}:{ctr}")
            elif hp:
                out.append(f"{hp}:{ctr}")
            else:
                out.append(ctr)
    return out


def create_options(body: dict[str, Any], name: str | None, platform: str | None) -> Any:
    """Docker's ContainerCreate body as the engine's CreateOptions (the CLI's flags, in effect)."""
    from dockyard.engine.containers import CreateOptions

    image = body.get("Image")
    if not image:
        raise InvalidArgument("Config cannot be empty in order to create a container")
    hc: dict[str, Any] = body.get("HostConfig") or {}
    cmd = _str_list(body.get("Cmd"))
    entrypoint = None
    ep = body.get("Entrypoint")
    if ep is not None:
        ep = _str_list(ep)
        # The engine takes one entrypoint word, like --entrypoint; the rest leads the command.
        entrypoint = ep[0] if ep else ""
        cmd = ep[1:] + cmd
    restart = hc.get("RestartPolicy") or {}
    rname = restart.get("Name") or "no"
    if rname == "on-failure" and restart.get("MaximumRetryCount"):
        rname += f":{restart['MaximumRetryCount']}"
    network = hc.get("NetworkMode") or None
    if network == "default":
        network = None
    endpoints: dict[str, Any] = {k: v for k, v in
                                 ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).items()
                                 if k != "default"}
    if network is None and len(endpoints) == 1:
        network = next(iter(endpoints))
    aliases: list[str] = []
    ip = mac = None
    for net, ep_cfg in endpoints.items():
        if ep_cfg is None or (network and net not in network.split(",")):
            continue
        aliases += _str_list(ep_cfg.get("Aliases"))
        ip = ((ep_cfg.get("IPAMConfig") or {}).get("IPv4Address")) or ip
        mac = ep_cfg.get("MacAddress") or mac
    health = body.get("Healthcheck") or {}
    test = _str_list(health.get("Test"))
    health_cmd = None
    no_health = False
    if test and test[0] == "NONE":
        no_health = True
    elif test and test[0] == "CMD-SHELL":
        health_cmd = " ".join(test[1:])
    elif test and test[0] == "CMD":
        import shlex

        health_cmd = shlex.join(test[1:])
    log_cfg = hc.get("LogConfig") or {}
    pids = hc.get("PidsLimit")
    tmpfs = [f"{k}:{v}" if v else k for k, v in (hc.get("Tmpfs") or {}).items()]
    ulimits = [f"{u['Name']}={u['Soft']}:{u['Hard']}" for u in hc.get("Ulimits") or []]
    return CreateOptions(
        image=image, command=cmd, entrypoint=entrypoint, name=name or None,
        env=_str_list(body.get("Env")), workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        hostname=body.get("Hostname") or None,
        labels=[f"{k}={v}" for k, v in (body.get("Labels") or {}).items()],
        tty=bool(body.get("Tty")), interactive=bool(body.get("OpenStdin")),
        attach_streams=bool(body.get("AttachStdout") or body.get("AttachStderr")),
        auto_remove=bool(hc.get("AutoRemove")), init=bool(hc.get("Init")), restart=rname,
        health_cmd=health_cmd, health_interval=_ns_duration(health.get("Interval")),
        health_timeout=_ns_duration(health.get("Timeout")), health_retries=health.get("Retries") or None,
        health_start_period=_ns_duration(health.get("StartPeriod")), no_healthcheck=no_health,
        memory=str(hc["Memory"]) if hc.get("Memory") else None,
        memory_reservation=str(hc["MemoryReservation"]) if hc.get("MemoryReservation") else None,
        memory_swap=str(hc["MemorySwap"]) if hc.get("MemorySwap") else None,
        cpus=str(hc["NanoCpus"] / 1e9) if hc.get("NanoCpus") else None,
        cpu_shares=hc.get("CpuShares") or None,
        pids_limit=pids if pids and pids > 0 else None,
        ulimits=ulimits, cap_add=_str_list(hc.get("CapAdd")), cap_drop=_str_list(hc.get("CapDrop")),
        privileged=bool(hc.get("Privileged")), read_only=bool(hc.get("ReadonlyRootfs")),
        security_opt=_str_list(hc.get("SecurityOpt")), stop_signal=body.get("StopSignal") or None,
        stop_timeout=body.get("StopTimeout"), runtime=hc.get("Runtime") or None,
        log_driver=log_cfg.get("Type") or None,
        log_opts=[f"{k}={v}" for k, v in (log_cfg.get("Config") or {}).items()],
        platform=platform or None, network=network, publish=_publish_args(hc.get("PortBindings")),
        volumes=_str_list(hc.get("Binds")), dns=_str_list(hc.get("Dns")), add_host=_str_list(hc.get("ExtraHosts")),
        pid=hc.get("PidMode") or None, ipc=hc.get("IpcMode") or None,
        volumes_from=_str_list(hc.get("VolumesFrom")), mounts=[_mount_arg(m) for m in hc.get("Mounts") or []],
        tmpfs=tmpfs, shm_size=str(hc["ShmSize"]) if hc.get("ShmSize") else None,
        network_aliases=aliases, ip=ip, mac_address=mac, dns_search=_str_list(hc.get("DnsSearch")),
        dns_options=_str_list(hc.get("DnsOptions")), publish_all=bool(hc.get("PublishAllPorts")))


async def create(request: web.Request) -> web.Response:
    b = backend(request)
    opts = create_options(await body_json(request), request.query.get("name"), request.query.get("platform"))
    cid = await b.call(lambda e: e.containers.create(opts))
    return json_response({"Id": cid, "Warnings": []}, 201)


# -- read models ----------------------------------------------------------------------------------
async def list_(request: web.Request) -> web.Response:
    b = backend(request)
    flt = filter_list(qfilters(request))
    limit = max(qint(request, "limit", 0) or 0, 0)  # docker-py sends -1 for "no limit"
    rows = await b.concurrent(lambda e: e.containers.list_containers(
        all_=qbool(request, "all"), filters=flt, last=limit, size=qbool(request, "size")))
    return json_response(rows)


async def inspect(request: web.Request) -> web.Response:
    b = backend(request)
    ref = request.match_info["id"]
    return json_response(await b.concurrent(lambda e: e.containers.inspect(ref, size=qbool(request, "size"))))


async def _state(request: web.Request, ref: str) -> dict[str, Any]:
    r = await backend(request).concurrent(lambda e: e.containers.inspect(ref))
    return {"Id": r["Id"], "Running": r["State"]["Running"], "Paused": r["State"]["Paused"],
            "Status": r["State"]["Status"], "Tty": bool(r["Config"].get("Tty")),
            "OpenStdin": bool(r["Config"].get("OpenStdin"))}


# -- lifecycle ------------------------------------------------------------------------------------
async def start(request: web.Request) -> web.Response:
    b = backend(request)
    st = await _state(request, request.match_info["id"])
    if st["Running"]:
        return no_content(304)
    if not await b.attach.start(st["Id"]):
        await b.call(lambda e: e.containers.start(st["Id"]))
    return no_content()


async def stop(request: web.Request) -> web.Response:
    b = backend(request)
    st = await _state(request, request.match_info["id"])
    if not st["Running"]:
        return no_content(304)
    timeout = qint(request, "t")
    sig = request.query.get("signal") or None
    await b.call(lambda e: e.containers.stop(st["Id"], timeout, sig))
    return no_content()


async def restart(request: web.Request) -> web.Response:
    b = backend(request)
    ref = request.match_info["id"]
    timeout = qint(request, "t")
    await b.call(lambda e: e.containers.restart(ref, timeout))
    return no_content()


async def kill(request: web.Request) -> web.Response:
    b = backend(request)
    ref = request.match_info["id"]
    sig = request.query.get("signal") or "KILL"
    await b.call(lambda e: e.containers.kill(ref, sig))
    return no_content()


async def pause(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await backend(request).call(lambda e: e.containers.pause(ref))
    return no_content()


async def unpause(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await backend(request).call(lambda e: e.containers.unpause(ref))
    return no_content()


async def rename(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    name = request.query.get("name")
    if not name:
        raise InvalidArgument("name cannot be empty")
    await backend(request).call(lambda e: e.containers.rename(ref, name))
    return no_content()


async def remove(request: web.Request) -> web.Response:
    b = backend(request)
    ref = request.match_info["id"]
    force, volumes = qbool(request, "force"), qbool(request, "v")
    cid = await b.call(lambda e: e.containers.remove(ref, force=force, volumes=volumes))
    b.execs.forget_container(cid)
    return no_content()


async def prune(request: web.Request) -> web.Response:
    removed, space = await backend(request).call(lambda e: e.containers.prune())
    return json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": space})


async def _exists(request: web.Request, cid: str) -> dict[str, Any] | None:
    try:
        return await _state(request, cid)
    except NotFound:
        return None


async def wait(request: web.Request) -> web.StreamResponse:
    """``condition``: not-running (default), next-exit, removed.  A run this server attached to
    reports its exit code through the attach hub (a --rm container has no row to read it from).

    The headers go out at once, as dockerd sends them: the Docker CLI waits for them before it
    sends the ``start`` the wait is for."""
    import json

    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition: {condition!r}")
    st = await _state(request, request.match_info["id"])
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    try:
        code = await _wait_code(request, st["Id"], condition)
        result: dict[str, Any] = {"StatusCode": code, "Error": None}
    except DockyardError as e:
        result = {"StatusCode": -1, "Error": {"Message": str(e)}}
    with contextlib.suppress(ConnectionError):
        await resp.write(json.dumps(result).encode() + b"\n")
        await resp.write_eof()
    return resp


async def _wait_code(request: web.Request, cid: str, condition: str) -> int:
    b = backend(request)
    hub = b.attach
    before = hub.exits.get(cid)
    code: int | None = None
    while code is None:
        fut = hub.exits.get(cid)
        if fut is not None and (fut is not before or not fut.done()):
            code = await asyncio.shield(fut)
            break
        if cid not in hub.starting:
            cur = await _exists(request, cid)
            if cur is None:
                code = 0
                break
            if cur["Running"] or (condition == "not-running" and cur["Status"] != "restarting"):
                code = await b.concurrent(lambda e: e.containers.wait(cid))
                break
        await asyncio.sleep(0.05)
    if condition == "removed":
        while await _exists(request, cid) is not None:
            await asyncio.sleep(0.05)
    return code


# -- attach / logs --------------------------------------------------------------------------------
async def attach(request: web.Request) -> web.StreamResponse:
    b = backend(request)
    st = await _state(request, request.match_info["id"])
    if not qbool(request, "stream") and not qbool(request, "logs"):
        raise InvalidArgument("either stream or logs must be true")
    conn = await Hijacked.open(request, RAW_STREAM if st["Tty"] else MUX_STREAM)
    client = AttachClient(conn, stdin=qbool(request, "stdin") and st["OpenStdin"], stdout=qbool(request, "stdout"),
                          stderr=qbool(request, "stderr"), tty=st["Tty"])
    if qbool(request, "logs"):
        await _send_logs(request, st["Id"], client, follow=False, tail=None, timestamps=False)
    if qbool(request, "stream"):
        await b.attach.attach(st["Id"], client, st["Running"])
    await conn.close()
    return conn.resp


async def _send_logs(request: web.Request, cid: str, client: AttachClient, *, follow: bool, tail: int | None,
                     timestamps: bool, since: float | None = None, until: float | None = None) -> None:
    """Copy log entries to the client; a thread reads the files and hands entries over a queue."""
    b = backend(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
    stop = False
    done = object()

    def produce(engine: Any) -> None:
        from dockyard.engine import logs

        try:
            for ent in logs.read(engine, cid, follow=follow, tail=tail, keep_going=lambda: not stop):
                asyncio.run_coroutine_threadsafe(queue.put(ent), loop).result()
                if stop:
                    return
        except BaseException as e:  # handed to the event loop, which answers the client
            asyncio.run_coroutine_threadsafe(queue.put(e), loop).result()
        asyncio.run_coroutine_threadsafe(queue.put(done), loop).result()

    from dockyard.engine.logs import LogEntry

    fut = loop.run_in_executor(b.executor, lambda: produce(b.engine()))
    try:
        while True:
            ent = await queue.get()
            if ent is done:
                break
            if isinstance(ent, BaseException):
                raise ent
            assert isinstance(ent, LogEntry)
            if since is not None or until is not None:
                from dockyard.engine.images import parse_created

                t = parse_created(ent.time)
                if (since is not None and t < since) or (until is not None and t > until):
                    continue
            kind = STDERR if ent.stream == "stderr" else STDOUT
            if not client.wants(kind):
                continue
            data = (ent.time.encode() + b" " + ent.data) if timestamps else ent.data
            await client.conn.write(data if client.tty else mux(kind, data))
    finally:
        stop = True
        while not fut.done():  # let the producer see `stop` and leave
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            await asyncio.sleep(0.01)


async def logs(request: web.Request) -> web.StreamResponse:
    st = await _state(request, request.match_info["id"])
    stdout, stderr = qbool(request, "stdout"), qbool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidArgument("you must choose at least one stream")
    tail_s = request.query.get("tail", "all")
    if tail_s not in ("all", "") and not tail_s.lstrip("-").isdigit():
        raise InvalidArgument(f"invalid value for tail: {tail_s!r}")
    tail = None if tail_s in ("all", "") or int(tail_s) < 0 else int(tail_s)
    since = float(request.query["since"]) if request.query.get("since") not in (None, "", "0") else None
    until = float(request.query["until"]) if request.query.get("until") not in (None, "", "0") else None
    # Fail before the 200 goes out (unreadable driver, ...).
    await backend(request).concurrent(lambda e: e.containers.logs_files(st["Id"]))
    resp = web.StreamResponse(headers={"Content-Type": RAW_STREAM if st["Tty"] else MUX_STREAM})
    await resp.prepare(request)

    class _Body:
        closed = False

        async def write(self, data: bytes) -> None:
            await resp.write(data)

    client = AttachClient(_Body(), stdin=False, stdout=stdout, stderr=stderr, tty=st["Tty"])  # type: ignore[arg-type]
    with contextlib.suppress(ConnectionError):
        await _send_logs(request, st["Id"], client, follow=qbool(request, "follow"), tail=tail,
                         timestamps=qbool(request, "timestamps"), since=since, until=until)
        await resp.write_eof()
    return resp


async def resize(request: web.Request) -> web.Response:
    """The container's terminal size, passed to its monitor like the CLI's attach does on SIGWINCH."""
    from dockyard.monitor.protocol import F_RESIZE, connect, frame

    b = backend(request)
    st = await _state(request, request.match_info["id"])
    h, w = qint(request, "h", 0) or 0, qint(request, "w", 0) or 0
    if not st["Running"]:
        from dockyard.errors import Conflict

        raise Conflict(f"container {st['Id']} is not running")
    if h <= 0 or w <= 0 or not st["Tty"] or await b.attach.resize(st["Id"], h, w):
        return web.Response(status=200)
    path = await b.concurrent(lambda e: e.containers.run_dir(st["Id"]) / "attach")

    def send() -> None:
        with connect(path) as s:
            s.sendall(frame(F_RESIZE, f"{h} {w}".encode()))

    try:
        await b.run(send)
    except OSError as e:
        raise DockyardError(f"cannot resize the terminal of {st['Id'][:12]}: {e.strerror}") from None
    return web.Response(status=200)


async def changes(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    kinds = {"C": 0, "A": 1, "D": 2}
    diff = await backend(request).concurrent(lambda e: e.containers.diff(ref))
    return json_response([{"Path": path, "Kind": kinds[kind]} for kind, path in diff] or None)


async def commit(request: web.Request) -> web.Response:
    """``POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=``."""
    ref = request.query.get("container")
    if not ref:
        raise InvalidArgument("container is required")
    repo = request.query.get("repo") or None
    if repo and request.query.get("tag"):
        repo += ":" + request.query["tag"]
    author, comment = request.query.get("author", ""), request.query.get("comment", "")
    changes_ = request.query.getall("changes", [])
    pause_ = qbool(request, "pause", True)
    image_id = await backend(request).call(lambda e: e.containers.commit(
        ref, repo, author=author, message=comment, changes=changes_, pause=pause_))
    return json_response({"Id": image_id}, 201)


# -- top / stats ----------------------------------------------------------------------------------
async def top(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    args = (request.query.get("ps_args") or "").split()
    titles, procs = await backend(request).concurrent(lambda e: e.containers.top(ref, args))
    return json_response({"Titles": titles, "Processes": procs})


def _stats_json(s: dict[str, Any], prev: dict[str, Any] | None, read: float, preread: float) -> dict[str, Any]:
    import os

    from dockyard.engine.containers import now_rfc3339

    def cpu(x: dict[str, Any] | None, t: float) -> dict[str, Any]:
        return {"cpu_usage": {"total_usage": (x or {}).get("cpu_ns", 0), "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0},
                "system_cpu_usage": int(t * 1e9) * (os.cpu_count() or 1), "online_cpus": os.cpu_count() or 1,
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}

    return {
        "read": now_rfc3339(read), "preread": now_rfc3339(preread) if prev else "0001-01-01T00:00:00Z",
        "id": s["ID"], "name": "/" + s["Name"],
        "pids_stats": {"current": s["pids"]},
        "cpu_stats": cpu(s, read), "precpu_stats": cpu(prev, preread) if prev else cpu(None, 0),
        "memory_stats": {"usage": s["mem_usage"], "limit": s["mem_limit"], "stats": {}},
        "networks": {"eth0": {"rx_bytes": s["net_rx"], "tx_bytes": s["net_tx"], "rx_packets": 0, "tx_packets": 0,
                              "rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}},
        "blkio_stats": {"io_service_bytes_recursive": [{"major": 0, "minor": 0, "op": "read", "value": s["blk_read"]},
                                                       {"major": 0, "minor": 0, "op": "write",
                                                        "value": s["blk_write"]}]},
        "num_procs": 0, "storage_stats": {},
    }


async def stats(request: web.Request) -> web.StreamResponse:
    import json

    b = backend(request)
    ref = request.match_info["id"]
    cid = await b.concurrent(lambda e: e.containers.resolve(ref))
    stream = qbool(request, "stream", True) and not qbool(request, "one-shot")
    first = await b.concurrent(lambda e: e.containers.stats(cid))
    t0 = time.time()
    if not stream:
        if qbool(request, "one-shot"):
            return json_response(_stats_json(first, None, t0, 0))
        # Docker waits one interval so the CPU percentage has a previous sample to compare with.
        await asyncio.sleep(1.0)
        s = await b.concurrent(lambda e: e.containers.stats(cid))
        return json_response(_stats_json(s, first, time.time(), t0))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    prev, prev_t = None, 0.0
    cur, cur_t = first, t0
    with contextlib.suppress(ConnectionError):
        while True:
            await resp.write((json.dumps(_stats_json(cur, prev, cur_t, prev_t)) + "\n").encode())
            if not cur["running"]:
                break
            await asyncio.sleep(1.0)
            prev, prev_t = cur, cur_t
            cur = await b.concurrent(lambda e: e.containers.stats(cid))
            cur_t = time.time()
        await resp.write_eof()
    return resp


# -- archive --------------------------------------------------------------------------------------
async def _path_stat_header(request: web.Request, ref: str, path: str) -> str:
    import base64
    import json

    from dockyard.engine.archive import stat_path

    st = await backend(request).concurrent(lambda e: stat_path(e, ref, path))
    return base64.b64encode(json.dumps(st).encode()).decode()


async def archive_head(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    path = request.query.get("path")
    if not path:
        raise InvalidArgument("path is required")
    return web.Response(status=200, headers={"X-Docker-Container-Path-Stat": await _path_stat_header(request, ref,
                                                                                                     path)})


async def archive_get(request: web.Request) -> web.StreamResponse:
    import tempfile

    b = backend(request)
    ref = request.match_info["id"]
    path = request.query.get("path")
    if not path:
        raise InvalidArgument("path is required")
    header = await _path_stat_header(request, ref, path)
    with tempfile.TemporaryFile() as tmp:
        await b.concurrent(lambda e: e.containers.copy_from_container_tar(ref, path, tmp))
        return await send_file(request, tmp, {"Content-Type": "application/x-tar",
                                              "X-Docker-Container-Path-Stat": header})


async def export(request: web.Request) -> web.StreamResponse:
    """``docker export``: the container's filesystem as a tar, packed like the CLI's export."""
    import tempfile

    b = backend(request)
    ref = request.match_info["id"]

    def pack(engine: Any, out: Any) -> None:
        from dockyard.image.layers import pack_directory

        with engine.containers.mounted_rootfs(ref) as rootfs:
            pack_directory(rootfs, out)

    with tempfile.TemporaryFile() as tmp:
        await b.concurrent(pack, tmp)
        return await send_file(request, tmp, {"Content-Type": "application/x-tar"})


async def archive_put(request: web.Request) -> web.Response:
    import tempfile

    b = backend(request)
    ref = request.match_info["id"]
    path = request.query.get("path")
    if not path:
        raise InvalidArgument("path is required")
    with tempfile.TemporaryFile() as tmp:
        async for chunk in request.content.iter_chunked(1 << 20):
            tmp.write(chunk)
        tmp.seek(0)
        await b.call(lambda e: e.containers.copy_tar_to_container(tmp, ref, path))
    return web.Response(status=200)


# -- exec -----------------------------------------------------------------------------------------
async def exec_create(request: web.Request) -> web.Response:
    from dockyard.engine.execs import ExecConfig

    b = backend(request)
    body = await body_json(request)
    cfg = ExecConfig(container=request.match_info["id"], cmd=_str_list(body.get("Cmd")), tty=bool(body.get("Tty")),
                     stdin=bool(body.get("AttachStdin")), env=_str_list(body.get("Env")),
                     user=body.get("User") or None, workdir=body.get("WorkingDir") or None,
                     privileged=bool(body.get("Privileged")))
    sid = await b.concurrent(lambda e: b.execs.create(e, cfg))
    return json_response({"Id": sid}, 201)


async def exec_inspect(request: web.Request) -> web.Response:
    return json_response(backend(request).execs.get(request.match_info["id"]).inspect())


async def exec_start(request: web.Request) -> web.StreamResponse:
    b = backend(request)
    sid = request.match_info["id"]
    body = await body_json(request)
    session = b.execs.get(sid)
    if body.get("Detach"):
        proc = await b.concurrent(lambda e: b.execs.start(e, sid, detach=True))
        code = await b.run(proc.wait)
        if code != 0:
            b.execs.finished(sid, code)
        return web.Response(status=200)
    tty = session.config.tty
    proc = await b.concurrent(lambda e: b.execs.start(e, sid))
    conn = await Hijacked.open(request, RAW_STREAM if tty else MUX_STREAM)

    async def copy_out(f: Any, kind: int) -> None:
        while True:
            data = await b.run(f.read1, 65536)
            if not data:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await conn.write(data if tty else mux(kind, data))

    async def copy_in() -> None:
        with contextlib.suppress(OSError, ValueError):
            while True:
                data = await conn.read()
                if not data:
                    break
                await b.run(_write_all, proc.proc.stdin, data)
        with contextlib.suppress(OSError):
            proc.proc.stdin.close()  # type: ignore[union-attr]

    outs = [asyncio.create_task(copy_out(proc.proc.stdout, STDOUT))]
    if proc.proc.stderr is not None:
        outs.append(asyncio.create_task(copy_out(proc.proc.stderr, STDERR)))
    feeder = asyncio.create_task(copy_in()) if proc.proc.stdin is not None else None
    try:
        await asyncio.gather(*outs)
        code = await b.run(proc.wait)
    finally:
        if feeder is not None:
            feeder.cancel()
        for f in (proc.proc.stdout, proc.proc.stderr):
            if f is not None:
                f.close()
    b.execs.finished(sid, code)
    await conn.close()
    return conn.resp


def _write_all(f: Any, data: bytes) -> None:
    f.write(data)
    f.flush()


ROUTES = [
    ("GET", "/containers/json", list_),
    ("POST", "/containers/create", create),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/wait", wait),
    ("POST", "/containers/{id}/attach", attach),
    ("GET", "/containers/{id}/logs", logs),
    ("POST", "/containers/{id}/resize", resize),
    ("GET", "/containers/{id}/top", top),
    ("GET", "/containers/{id}/changes", changes),
    ("GET", "/containers/{id}/export", export),
    ("POST", "/commit", commit),
    ("GET", "/containers/{id}/stats", stats),
    ("GET", "/containers/{id}/archive", archive_get),
    ("HEAD", "/containers/{id}/archive", archive_head),
    ("PUT", "/containers/{id}/archive", archive_put),
    ("DELETE", "/containers/{id}", remove),
    ("POST", "/containers/{id}/exec", exec_create),
    ("POST", "/exec/{id}/start", exec_start),
    ("GET", "/exec/{id}/json", exec_inspect),
]
