"""Images: Docker's /images/... endpoints over ``engine.images`` and ``engine.registry``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from dockyard.api.server import backend, filter_list, json_response, qbool, qfilters, send_file
from dockyard.errors import DockyardError, InvalidArgument


def summary(img: Any) -> dict[str, Any]:
    """Docker's ImageSummary (GET /images/json) of an engine ImageRecord."""
    from dockyard.engine.images import familiar, parse_created

    return {
        "Id": img.id,
        "ParentId": "",
        "RepoTags": [familiar(t) for t in img.repo_tags],
        "RepoDigests": list(img.repo_digests),
        "Created": int(parse_created(img.created)),
        "Size": img.size,
        "SharedSize": -1,
        "VirtualSize": img.size,
        "Labels": img.labels or None,
        "Containers": -1,
    }


async def list_(request: web.Request) -> web.Response:
    from dockyard.engine.images import parse_created

    flt = filter_list(qfilters(request))
    imgs = await backend(request).concurrent(lambda e: e.images.list_images(all_images=qbool(request, "all"), filters=flt))
    imgs.sort(key=lambda i: (parse_created(i.created), i.added), reverse=True)
    return json_response([summary(i) for i in imgs])


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(await backend(request).concurrent(lambda e: e.images.inspect(name)))


async def history(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return json_response(await backend(request).concurrent(lambda e: e.images.history(name)))


async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = qbool(request, "force")
    return json_response(await backend(request).call(lambda e: e.images.remove(name, force=force)))


async def tag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    repo = request.query.get("repo")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    target = repo + (":" + request.query["tag"] if request.query.get("tag") else "")
    await backend(request).call(lambda e: e.images.tag(name, target))
    return web.Response(status=201)


async def prune(request: web.Request) -> web.Response:
    flt = qfilters(request)
    all_images = (flt.pop("dangling", ["true"]) or ["true"])[0].lower() in ("false", "0")
    deleted, space = await backend(request).call(lambda e: e.images.prune(all_images=all_images,
                                                                          filters=filter_list(flt)))
    return json_response({"ImagesDeleted": deleted or None, "SpaceReclaimed": space})


def registry_creds(request: web.Request) -> tuple[str, str] | None:
    """X-Registry-Auth: base64url JSON {"username", "password"} (or an identity token, unsupported)."""
    raw = request.headers.get("X-Registry-Auth")
    if not raw:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError):
        raise InvalidArgument("invalid X-Registry-Auth header") from None
    if not isinstance(data, dict) or not data.get("username"):
        return None
    return str(data["username"]), str(data.get("password") or "")


async def _progress_stream(request: web.Request, work: Callable[[Any, Callable[[Any], None]], list[dict[str, Any]]]
                           ) -> web.StreamResponse:
    """Run ``work(engine, emit)`` in a thread, streaming its progress as Docker's JSON message lines;
    a failure after the 200 went out is the last line, as ``{"error": ..., "errorDetail": ...}``."""
    b = backend(request)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(ev: Any) -> None:
        msg: dict[str, Any] = {"status": ev.status}
        if ev.id:
            msg["id"] = ev.id
        if ev.total:
            msg["progressDetail"] = {"current": ev.current, "total": ev.total}
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    def run(engine: Any) -> list[dict[str, Any]]:
        try:
            return work(engine, emit)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    fut = loop.run_in_executor(b.executor, lambda: run(b.engine()))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    gone = False  # a client that hangs up does not stop the pull: the image still lands in the store
    while (msg := await queue.get()) is not None:
        if not gone:
            try:
                await resp.write((json.dumps(msg) + "\r\n").encode())
            except ConnectionError:
                gone = True
    try:
        tail = await fut
    except DockyardError as e:
        tail = [{"errorDetail": {"message": str(e)}, "error": str(e)}]
    with contextlib.suppress(ConnectionError):
        for msg in tail:
            await resp.write((json.dumps(msg) + "\r\n").encode())
        await resp.write_eof()
    return resp


async def create(request: web.Request) -> web.StreamResponse:
    """Pull (``fromImage`` + ``tag``).  Importing from ``fromSrc`` is not served."""
    if request.query.get("fromSrc") == "-":
        return await _import(request)
    from_image = request.query.get("fromImage")
    if not from_image:
        raise InvalidArgument("fromImage (pull) or fromSrc=- (import of the request body) is required")
    tag_ = request.query.get("tag")
    name = from_image
    if tag_:
        name += ("@" if tag_.startswith("sha256:") else ":") + tag_
    platform = request.query.get("platform") or None
    creds = registry_creds(request)

    def work(engine: Any, emit: Callable[[Any], None]) -> list[dict[str, Any]]:
        from dockyard.image.reference import parse

        res = engine.registry.pull(name, platform=platform, creds=creds, progress=emit)
        shown = parse(res.reference).familiar()
        word = "Image is up to date for" if res.up_to_date else "Downloaded newer image for"
        return [{"status": f"Digest: {res.digest}"}, {"status": f"Status: {word} {shown}"}]

    return await _progress_stream(request, work)


async def _import(request: web.Request) -> web.Response:
    """``docker import``: a root filesystem tar in the body becomes a one-layer image."""
    import tempfile

    b = backend(request)
    ref = request.query.get("repo") or None
    if ref and request.query.get("tag"):
        ref += ":" + request.query["tag"]
    changes = request.query.getall("changes", [])
    message = request.query.get("message", "")
    with tempfile.TemporaryFile() as tmp:
        async for chunk in request.content.iter_chunked(1 << 20):
            tmp.write(chunk)
        tmp.seek(0)
        image_id = await b.call(lambda e: e.images.import_tar(tmp, ref, changes, message).id)
    return web.Response(text=json.dumps({"status": image_id}) + "\r\n", content_type="application/json")


async def push(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if request.query.get("tag"):
        name += ":" + request.query["tag"]
    creds = registry_creds(request)

    def work(engine: Any, emit: Callable[[Any], None]) -> list[dict[str, Any]]:
        res = engine.registry.push(name, creds=creds, progress=emit)
        return [{"status": f"{res.tag}: digest: {res.digest} size: {res.size}"},
                {"progressDetail": {}, "aux": {"Tag": res.tag, "Digest": res.digest, "Size": res.size}}]

    return await _progress_stream(request, work)


async def get(request: web.Request) -> web.StreamResponse:
    """``docker save``: a docker-archive tar of ``names`` (or of the one image in the path)."""
    import tempfile

    b = backend(request)
    names = request.query.getall("names", []) or ([request.match_info["name"]] if "name" in request.match_info
                                                    else [])
    if not names:
        raise InvalidArgument("no images named")
    with tempfile.TemporaryFile() as tmp:
        await b.concurrent(lambda e: e.images.save(names, fmt="docker-archive", stream=tmp))
        return await send_file(request, tmp, {"Content-Type": "application/x-tar"})


async def load(request: web.Request) -> web.Response:
    import tempfile

    b = backend(request)
    with tempfile.TemporaryFile() as tmp:
        async for chunk in request.content.iter_chunked(1 << 20):
            tmp.write(chunk)
        tmp.seek(0)
        names = await b.call(lambda e: e.images.load(src=tmp))
    lines = "".join(json.dumps({"stream": f"Loaded image: {n}\n" if ":" in n else f"Loaded image ID: {n}\n"}) + "\r\n"
                    for n in names)
    return web.Response(text=lines, content_type="application/json")


ROUTES = [
    ("GET", "/images/json", list_),
    ("POST", "/images/create", create),
    ("POST", "/images/prune", prune),
    ("GET", "/images/get", get),
    ("POST", "/images/load", load),
    ("GET", "/images/{name:.+}/json", inspect),
    ("GET", "/images/{name:.+}/history", history),
    ("GET", "/images/{name:.+}/get", get),
    ("POST", "/images/{name:.+}/tag", tag),
    ("POST", "/images/{name:.+}/push", push),
    ("DELETE", "/images/{name:.+}", remove),
]
