"""The aiohttp application behind ``--serve``, on its own thread with its own event loop.

Routes (every one behind the token when there is one):

- ``/``: the live page (``static/index.html``): picture and skeleton, drawn in the
  browser from the same record, with FPS, latency, people, device and stage medians;
- ``/live``: WebSocket for the page: per frame a JSON text message
  ``{"fps", "picture", "record"}``, followed by the JPEG as a binary message when
  ``picture`` is true;
- ``/poses``: WebSocket with each record as JSON text, as the JSON Lines output has it;
- ``/snapshot.jpg``: the newest frame at full size with the skeleton (``?raw=1``: without);
- ``/stream.mjpeg``: the live picture as MJPEG (VLC, Home Assistant's MJPEG camera);
- ``/meta.json``: the keypoint schemas (names, edges, colours) and the keypoint threshold;
- ``/healthz``: JSON ``status``, ``frames``, ``last_frame_age_s``, ``device``, ``fps``,
  ``viewers``; HTTP 503 while no frame came for ``STALE_S`` seconds (or none yet).

Each client is served the newest frame only: a slow client skips frames, a client that
never reads stalls only its own connection (its send waits, bounded buffers), and the
pipeline never waits for any of them.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from edgepose.core.errors import ConfigError
from edgepose.outputs.background import NICENESS, lower_priority

log = logging.getLogger(__name__)

STALE_S = 5.0
BOUNDARY = "edgeposeframe"
# What a request may hold: every route is a GET with a short URL and a browser's few
# headers; a client beyond these gets a 400 and costs one debug line, not a traceback.
MAX_LINE = 8190      # request line and URL (bytes)
MAX_FIELD = 8190     # one header (bytes)
MAX_HEADERS = 64     # header count
MAX_BODY = 64 * 1024


class HttpLog(logging.LoggerAdapter):
    """The logger handed to aiohttp's request handler. A malformed request (a 200 KB
    header, 5,000 headers, an unknown method, a garbage request line) is the client's
    fault: one debug line. Any other failure while handling a request is one ERROR line
    naming the exception; its traceback goes to the debug log."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("edgepose.outputs.serve.http"), {})

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        import sys

        from aiohttp.http_exceptions import HttpProcessingError

        err = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        text = (str(msg) % args) if args else str(msg)
        if isinstance(err, HttpProcessingError):
            reason = str(err.message).strip().splitlines()[0][:120] if err.message else type(err).__name__
            self.logger.debug("%s: %s %s", text, err.code, reason)
            return
        self.logger.error("%s: %s", text, f"{type(err).__name__}: {err}"[:200].replace("\n", " "))
        self.logger.debug("traceback", exc_info=err)


@dataclass(frozen=True)
class Published:
    """One frame as the server hands it out, made once on the output's thread."""

    record: dict[str, Any]
    text: str              # the record as JSON, as a JSON Lines line
    live: str              # the /live envelope
    jpeg: bytes | None     # the live picture, when someone watched at encoding time
    result: Any            # the FrameResult, for /snapshot.jpg
    at: float              # time.monotonic() when published


class Hub:
    """The newest frame, on the event loop; viewers wait for a newer one."""

    def __init__(self) -> None:
        self.version = 0
        self.latest: Published | None = None
        self._event = asyncio.Event()

    def publish(self, item: Published) -> None:
        self.latest, self.version = item, self.version + 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def newer(self, seen: int) -> tuple[int, Published]:
        while self.version == seen or self.latest is None:
            await self._event.wait()
        return self.version, self.latest


Stats = Callable[[], dict[str, Any]]
Snapshot = Callable[[Published, bool], bytes]


class LiveServer:
    """Serves the routes of the module docstring on ``host:port`` until ``stop()``."""

    def __init__(self, host: str, port: int, *, token: str | None, meta: dict[str, Any],
                 stats: Stats, snapshot: Snapshot) -> None:
        self.host, self.port, self.token = host, port, token
        self.meta, self.stats, self.snapshot = meta, stats, snapshot
        self.viewers = 0          # clients of the picture (/live, /stream.mjpeg)
        self.clients = 0          # all WebSocket and stream clients
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hub: Hub | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- from other threads ---------------------------------------------------------

    def start(self) -> None:
        """Listen, or raise ``ConfigError`` (port in use, address not on this machine)."""
        started = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            lower_priority(NICENESS)  # the pipeline comes first; executor threads inherit it
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as err:
                failure.append(err)
                started.set()
                loop.close()
                return
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="edgepose-serve-http", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            self._thread.join(1)
            err = failure[0]
            reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
            raise ConfigError(f"--serve {self.host}:{self.port}: cannot listen there ({reason}); "
                              "pick another port or host, or stop what uses it")

    def publish(self, item: Published) -> None:
        loop, hub = self._loop, self._hub
        if loop is not None and hub is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(hub.publish, item)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def latest(self) -> Published | None:
        return self._hub.latest if self._hub is not None else None

    def stop(self, timeout: float = 0.5) -> None:
        """Close every connection and the listening socket; bounded by ``timeout``."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or loop.is_closed():
            return
        future = asyncio.run_coroutine_threadsafe(self._stop(), loop)
        try:
            future.result(timeout)
        except Exception as err:  # timeout or a failing cleanup: stop the loop anyway
            log.debug("serve: cleanup did not finish: %s", err)
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            pass
        thread.join(timeout)
        self._thread = None

    # -- on the loop ----------------------------------------------------------------

    async def _start(self) -> None:
        self._hub = Hub()
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_BODY)
        app.add_routes([
            web.get("/", self._page), web.get("/meta.json", self._meta),
            web.get("/live", self._live), web.get("/poses", self._poses),
            web.get("/snapshot.jpg", self._snapshot), web.get("/stream.mjpeg", self._mjpeg),
            web.get("/healthz", self._healthz),
        ])
        # no access log: URLs carry the token, and the journal is no place for it
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2,
                                     logger=HttpLog(), max_line_size=MAX_LINE,
                                     max_field_size=MAX_FIELD, max_headers=MAX_HEADERS,
                                     # a client that leaves ends its handler at once (else a
                                     # half-sent request's task is left pending, then
                                     # collected: "Task was destroyed but it is pending!")
                                     handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()

    async def _stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if self.token is not None:
            given = request.query.get("token", "")
            header = request.headers.get("Authorization", "")
            if header.lower().startswith("bearer "):
                given = header[7:].strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return web.Response(status=401, text="401: missing or wrong token; add ?token=TOKEN "
                                    "to the URL or send Authorization: Bearer TOKEN\n",
                                    headers={"WWW-Authenticate": 'Bearer realm="edgepose"'})
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        page = resources.files("edgepose.outputs.serve").joinpath("static/index.html").read_text("utf-8")
        return web.Response(text=page, content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    async def _meta(self, request: web.Request) -> web.Response:
        return web.json_response(self.meta)

    async def _healthz(self, request: web.Request) -> web.Response:
        body = self.stats()
        latest = self.latest()
        age = None if latest is None else round(time.monotonic() - latest.at, 3)
        status = "starting" if latest is None else ("ok" if age is not None and age < STALE_S else "stale")
        body.update(status=status, last_frame_age_s=age, viewers=self.viewers,
                    device=latest.record.get("device", "") if latest else "")
        return web.json_response(body, status=200 if status == "ok" else 503)

    async def _snapshot(self, request: web.Request) -> web.Response:
        latest = self.latest()
        if latest is None:
            return web.Response(status=503, text="503: no frame yet\n")
        raw = request.query.get("raw", "") not in ("", "0", "false")
        jpeg = await asyncio.get_running_loop().run_in_executor(None, self.snapshot, latest, raw)
        return web.Response(body=jpeg, content_type="image/jpeg",
                            headers={"Cache-Control": "no-store",
                                     "X-Edgepose-Frame": str(latest.record["frame"])})

    def _follow(self, handler: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[Any]]:
        """Run a streaming handler as a task that ``stop()`` can cancel."""
        async def run(*args: Any) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._tasks.add(task)
            self.clients += 1
            try:
                await handler(*args)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                self.clients -= 1
                self._tasks.discard(task)
        return run

    async def _websocket(self, request: web.Request, picture: bool) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=30, compress=False, max_msg_size=4096)
        await ws.prepare(request)

        async def stream() -> None:
            assert self._hub is not None
            reader = asyncio.ensure_future(self._drain(ws))
            seen = 0
            try:
                while not ws.closed:
                    waiter = asyncio.ensure_future(self._hub.newer(seen))
                    done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                    if waiter not in done:
                        waiter.cancel()
                        break
                    seen, item = waiter.result()
                    if picture:
                        await ws.send_str(item.live)
                        if item.jpeg is not None:
                            await ws.send_bytes(item.jpeg)
                    else:
                        await ws.send_str(item.text)
            finally:
                reader.cancel()

        if picture:
            self.viewers += 1
        try:
            await self._follow(stream)()
        finally:
            if picture:
                self.viewers -= 1
        return ws

    @staticmethod
    async def _drain(ws: web.WebSocketResponse) -> None:
        """Read (and ignore) what the client sends, so that its close is noticed."""
        async for msg in ws:
            if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                break

    async def _live(self, request: web.Request) -> web.WebSocketResponse:
        return await self._websocket(request, picture=True)

    async def _poses(self, request: web.Request) -> web.WebSocketResponse:
        return await self._websocket(request, picture=False)

    async def _mjpeg(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={BOUNDARY}",
            "Cache-Control": "no-store"})
        await response.prepare(request)

        async def stream() -> None:
            assert self._hub is not None
            seen = 0
            while True:
                seen, item = await self._hub.newer(seen)
                if item.jpeg is None:
                    continue
                await response.write(b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                                     + f"Content-Length: {len(item.jpeg)}\r\n\r\n".encode()
                                     + item.jpeg + b"\r\n")

        self.viewers += 1
        try:
            await self._follow(stream)()
        finally:
            self.viewers -= 1
        return response


def meta_document(keypoint_threshold: float) -> dict[str, Any]:
    """What the page needs to draw any schema: names, edges and colours, and the threshold."""
    from edgepose.core.schemas import SCHEMAS

    return {
        "keypoint_threshold": keypoint_threshold,
        "schemas": {name: {"names": list(s.names), "edges": [list(e) for e in s.edges],
                           "edge_colors": [list(c) for c in s.edge_colors],
                           "keypoint_colors": [list(c) for c in s.keypoint_colors]}
                    for name, s in SCHEMAS.items()},
    }


def envelope(record_text: str, fps: float, picture: bool) -> str:
    """The /live text message around an already serialised record."""
    return f'{{"fps":{json.dumps(round(fps, 2))},"picture":{"true" if picture else "false"},"record":{record_text}}}'
