"""Hijacked connections (attach, exec start) and the bridge from a container's monitor to API clients.

Docker clients attach *before* they start a container (``docker run``: create, attach, wait, start),
so an attach to a container that does not run yet waits here until a ``start`` through this server
starts it with the monitor holding the process until this server has connected to it.  The server
then plays the part the foreground ``dockyard run`` plays: it claims the cleanup after the exit,
learns the exit code from the monitor and hands it to ``wait`` (a ``--rm`` container is gone from
the store by then, with its exit code).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from dockyard.api.server import Backend

STDIN, STDOUT, STDERR = 0, 1, 2
RAW_STREAM = "application/vnd.docker.raw-stream"
MUX_STREAM = "application/vnd.docker.multiplexed-stream"


def mux(stream: int, data: bytes) -> bytes:
    """Docker's stream framing when there is no tty: type, three zero bytes, big-endian length, data."""
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class _Feed:
    """Takes the client's bytes once the HTTP parser is out of the way (aiohttp's ``set_parser``)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(b"")


class _HijackProtocol(asyncio.Protocol):
    """Takes over the connection's transport from aiohttp after the 101.

    Docker clients half-close their side when they send no input; aiohttp's protocol would let the
    transport close on that EOF, losing the output still to come, so this one keeps it open."""

    def __init__(self, inner: Any, feed: _Feed) -> None:
        self.inner = inner
        self.feed = feed
        self.paused = False
        self.lost = False
        self.resumed = asyncio.Event()
        self.gone = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.feed.feed_data(data)

    def eof_received(self) -> bool:
        self.feed.feed_eof()
        return True

    def pause_writing(self) -> None:
        self.paused = True
        self.resumed.clear()

    def resume_writing(self) -> None:
        self.paused = False
        self.resumed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.feed.feed_eof()
        self.resumed.set()
        self.gone.set()
        self.inner.connection_lost(exc)

    async def drain(self) -> None:
        while self.paused and not self.lost:
            await self.resumed.wait()
        if self.lost:
            raise ConnectionResetError("client gone")


class Hijacked:
    """The client's connection as a raw byte stream both ways, as Docker's daemon hijacks it.

    Clients that ask for ``Upgrade: tcp`` get ``101 UPGRADED`` and a bare stream; others (curl) get a
    200 whose chunked body is the output, and no input.
    """

    def __init__(self, request: web.Request, resp: web.StreamResponse, upgraded: bool) -> None:
        self.request = request
        self.resp = resp
        self.upgraded = upgraded
        self.feed = _Feed()
        self.closed = False
        self.proto: _HijackProtocol | None = None
        if upgraded:
            # Bytes that came with the request go to the feed first, then the feed takes the rest.
            request.protocol.set_parser(self.feed)  # type: ignore[arg-type]
            tr = request.transport
            assert tr is not None
            self.proto = _HijackProtocol(request.protocol, self.feed)
            tr.set_protocol(self.proto)
        else:
            self.feed.feed_eof()

    @classmethod
    async def open(cls, request: web.Request, content_type: str) -> Hijacked:
        upgraded = request.headers.get("Upgrade", "").lower() == "tcp" or \
            "upgrade" in request.headers.get("Connection", "").lower()
        resp = web.StreamResponse(status=101 if upgraded else 200, headers={"Content-Type": content_type})
        if upgraded:
            resp.headers["Connection"] = "Upgrade"
            resp.headers["Upgrade"] = "tcp"
        from dockyard import API_VERSION

        resp.headers["Api-Version"] = API_VERSION
        await resp.prepare(request)
        return cls(request, resp, upgraded)

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("client gone")
        if not self.upgraded:
            await self.resp.write(data)
            return
        tr = self.request.transport
        if tr is None or tr.is_closing():
            self.closed = True
            raise ConnectionResetError("client gone")
        tr.write(data)
        assert self.proto is not None
        await self.proto.drain()

    async def read(self) -> bytes:
        """The client's next bytes; b"" once it half-closed or went away."""
        return await self.feed.queue.get()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.upgraded:
            with contextlib.suppress(ConnectionError):
                await self.resp.write_eof()
            return
        tr = self.request.transport
        if tr is not None and not tr.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                if tr.can_write_eof():
                    tr.write_eof()
            tr.close()


@dataclass
class AttachClient:
    conn: Hijacked
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, kind: int) -> bool:
        return self.stdout if kind == STDOUT else self.stderr if kind == STDERR else False


class AttachHub:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.pending: dict[str, list[AttachClient]] = {}
        self.starting: set[str] = set()
        self.exits: dict[str, asyncio.Future[int]] = {}  # the latest attached run of each container
        self.tasks: set[asyncio.Task[Any]] = set()
        self.monitors: dict[str, asyncio.StreamWriter] = {}  # open monitor connections, for resizes

    def idle(self) -> bool:
        return not self.tasks and not any(self.pending.values())

    async def attach(self, cid: str, client: AttachClient, running: bool) -> None:
        """Serve one attach request until the container's output ends or the client leaves."""
        if running:
            await self._attach_running(cid, [client])
            return
        self.pending.setdefault(cid, []).append(client)
        waits = [asyncio.ensure_future(client.done.wait())]
        if client.conn.proto is not None:
            # a client that went away before the start must not hold the service (and its idle timer)
            waits.append(asyncio.ensure_future(client.conn.proto.gone.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            waiting = self.pending.get(cid)
            if waiting and client in waiting:
                waiting.remove(client)

    async def start(self, cid: str) -> bool:
        """Start ``cid`` for the attach requests waiting on it; False when none wait."""
        clients = self.pending.pop(cid, [])
        if not clients:
            return False
        self.starting.add(cid)
        try:
            return await self._start_attached(cid, clients)
        finally:
            self.starting.discard(cid)

    async def _start_attached(self, cid: str, clients: list[AttachClient]) -> bool:
        from dockyard.monitor.protocol import F_CLAIM_CLEANUP, connect, frame

        b = self.backend
        try:
            handle = await b.call(lambda e: e.containers.start(cid, attach=True))
        except BaseException:
            await self._release(clients)
            raise
        if handle is None:  # it was running after all: attach as to any running container
            task = asyncio.create_task(self._attach_running(cid, clients))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return False
        try:
            sock = await b.run(connect, handle.attach_path)
        except OSError:
            await b.run(handle.wait_started)
            await self._release(clients)
            raise
        try:
            sock.sendall(frame(F_CLAIM_CLEANUP))
            await b.run(handle.wait_started)
        except BaseException:
            sock.close()
            await self._release(clients)
            await b.call(lambda e: e.containers.cleanup(cid))
            raise
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.exits[cid] = fut
        task = asyncio.create_task(self._pump(cid, sock, clients, fut))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def resize(self, cid: str, rows: int, cols: int) -> bool:
        """Resize through a monitor connection this server holds, as the CLI's attach does; False if none."""
        from dockyard.monitor.protocol import F_RESIZE, frame

        writer = self.monitors.get(cid)
        if writer is None or writer.is_closing():
            return False
        writer.write(frame(F_RESIZE, f"{rows} {cols}".encode()))
        await writer.drain()
        return True

    async def _attach_running(self, cid: str, clients: list[AttachClient]) -> None:
        from dockyard.monitor.protocol import connect

        path = await self.backend.concurrent(lambda e: e.containers.run_dir(cid) / "attach")
        try:
            sock = await self.backend.run(connect, path)
        except OSError:
            await self._release(clients)
            return
        await self._pump(cid, sock, clients, None)

    async def _release(self, clients: list[AttachClient]) -> None:
        for c in clients:
            await c.conn.close()
            c.done.set()

    async def _pump(self, cid: str, sock: Any, clients: list[AttachClient], fut: asyncio.Future[int] | None) -> None:
        """Copy the monitor's output frames to the clients and their input to the monitor.  With
        ``fut`` this server claimed the cleanup: it runs it and then reports the exit code."""
        from dockyard.monitor.protocol import F_EXIT, F_STDIN, F_STDIN_EOF, frame

        reader, writer = await asyncio.open_unix_connection(sock=sock)
        self.monitors.setdefault(cid, writer)
        feeders = [asyncio.create_task(self._feed_stdin(c, writer, frame, F_STDIN, F_STDIN_EOF))
                   for c in clients if c.stdin]
        code: int | None = None
        live = list(clients)
        try:
            while True:
                try:
                    head = await reader.readexactly(5)
                    payload = await reader.readexactly(int.from_bytes(head[1:5], "big"))
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                kind = head[0]
                if kind == F_EXIT:
                    with contextlib.suppress(ValueError):
                        code = int(payload)
                    break
                for c in list(live):
                    if not c.wants(kind):
                        continue
                    try:
                        await c.conn.write(payload if c.tty else mux(kind, payload))
                    except (ConnectionError, RuntimeError):
                        live.remove(c)
        finally:
            for t in feeders:
                t.cancel()
            if fut is not None:
                with contextlib.suppress(Exception):
                    await self.backend.call(lambda e: e.containers.cleanup(cid))
                if not fut.done():
                    fut.set_result(code if code is not None else -1)
            if self.monitors.get(cid) is writer:
                del self.monitors[cid]
            writer.close()
            await self._release(clients)

    @staticmethod
    async def _feed_stdin(c: AttachClient, writer: asyncio.StreamWriter, frame: Any, f_stdin: int,
                          f_eof: int) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                data = await c.conn.read()
                if not data:
                    writer.write(frame(f_eof))
                    await writer.drain()
                    return
                writer.write(frame(f_stdin, data))
                await writer.drain()

    async def close(self) -> None:
        for clients in list(self.pending.values()):
            await self._release(clients)
        self.pending.clear()
        for t in list(self.tasks):
            t.cancel()
