"""``POST /build``: the legacy builder's endpoint (what ``DOCKER_BUILDKIT=0 docker build`` and docker-py
use) over the engine's BuildService.  The body is the context tar (or a Dockerfile's text); progress and
RUN output stream back as Docker's ``{"stream": ...}`` lines, the image ID as ``{"aux": {"ID": ...}}``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
from typing import Any

from aiohttp import web

from dockyard.api.server import backend, qbool
from dockyard.errors import DockyardError, InvalidArgument


def _json_map(request: web.Request, name: str) -> dict[str, str]:
    raw = request.query.get(name)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid {name}: {raw!r}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid {name}: {raw!r}")
    # build args given without a value (null) take the value from the environment in Docker's CLI;
    # the CLI has resolved them before they get here
    return {str(k): "" if v is None else str(v) for k, v in data.items()}


async def build(request: web.Request) -> web.StreamResponse:
    from dockyard.engine.build import BuildOptions, BuildService

    b = backend(request)
    context = await request.read()
    if not context:
        raise InvalidArgument("the build context (a tar, or a Dockerfile's text) is the request body")
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def put(msg: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, msg)

    tags = request.query.getall("t", [])
    pull = "always" if qbool(request, "pull") else "missing"
    memory = int(request.query.get("memory") or 0)
    read_fd, write_fd = os.pipe()  # RUN steps' output

    def copy_run_output() -> None:
        with os.fdopen(read_fd, "rb") as f:
            while chunk := f.read1(65536):  # type: ignore[attr-defined]
                put({"stream": chunk.decode(errors="replace")})

    opts = BuildOptions(
        context_tar=context, dockerfile=request.query.get("dockerfile") or None, tags=tags,
        build_args=_json_map(request, "buildargs"), labels=_json_map(request, "labels"),
        target=request.query.get("target") or None, no_cache=qbool(request, "nocache"), pull=pull,
        platform=request.query.get("platform") or None, network=request.query.get("networkmode") or "default",
        memory=memory, squash="new" if qbool(request, "squash") else "none", quiet=qbool(request, "q"),
        report=lambda line: put({"stream": line + "\n"}), warn=lambda line: put({"stream": f"WARNING: {line}\n"}),
        run_stdout=write_fd)

    def run(engine: Any) -> str:
        copier = threading.Thread(target=copy_run_output, daemon=True)
        copier.start()
        try:
            return BuildService(engine).build(opts)
        finally:
            os.close(write_fd)
            copier.join()
            loop.call_soon_threadsafe(queue.put_nowait, None)

    fut = loop.run_in_executor(b.executor, lambda: run(b.engine()))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    gone = False
    while (msg := await queue.get()) is not None:
        if not gone:
            try:
                await resp.write((json.dumps(msg) + "\r\n").encode())
            except ConnectionError:
                gone = True
    try:
        image_id = await fut
        # (the engine's report already said which tags it set)
        tail: list[dict[str, Any]] = [{"aux": {"ID": image_id}},
                                      {"stream": f"Successfully built {image_id.split(':', 1)[-1][:12]}\n"}]
    except (DockyardError, OSError) as e:
        tail = [{"errorDetail": {"message": str(e)}, "error": str(e)}]
    with contextlib.suppress(ConnectionError):
        for msg in tail:
            await resp.write((json.dumps(msg) + "\r\n").encode())
        await resp.write_eof()
    return resp


ROUTES = [("POST", "/build", build)]
