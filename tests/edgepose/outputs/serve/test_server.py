"""The --serve routes over real HTTP and WebSocket connections on 127.0.0.1."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from edgepose.core.errors import ConfigError
from edgepose.outputs.serve import ServeOutput, check_bind, is_loopback
from edgepose.outputs.serve.output import parse_bind
from tests.edgepose.outputs.helpers import Feeder, as_json_line, free_port, real_results, wait_for

pytest.importorskip("aiohttp", reason="aiohttp is not installed (extra net)")
from websockets.exceptions import InvalidStatus  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

TOKEN = "s3cret-token-for-the-tests"


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def ws_connect(url: str, **kwargs: Any) -> Any:
    return connect(url, proxy=None, open_timeout=5, **kwargs).__enter__()


@pytest.fixture
def served() -> Iterator[tuple[ServeOutput, list]]:
    results = real_results(40)
    out = ServeOutput(f"127.0.0.1:{free_port()}")
    out.check()
    out.open()
    yield out, results
    out.close()


def base(out: ServeOutput) -> str:
    return f"http://127.0.0.1:{out.port}"


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.1.1", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("192.168.1.20", False), ("::", False), ("pi.local", False),
])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("bind", ["0.0.0.0:8080", "[::]:8080", "192.168.1.20:80"])
def test_beyond_loopback_without_a_token_is_refused_in_one_line(bind: str) -> None:
    with pytest.raises(ConfigError, match="needs a token") as err:
        ServeOutput(bind).check()
    assert "\n" not in str(err.value) and bind in str(err.value)
    assert check_bind(bind, TOKEN) == (bind.rpartition(":")[0].strip("[]"), int(bind.rpartition(":")[2]))


@pytest.mark.parametrize("text, parsed", [
    ("8080", ("127.0.0.1", 8080)), ("1", ("127.0.0.1", 1)), ("65535", ("127.0.0.1", 65535)),
    ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:8080", ("::1", 8080)), (":8080", ("127.0.0.1", 8080)),
    ("0", None), ("65536", None), ("abc", None), ("-1", None), ("host:", None), ("", None),
])
def test_bind_addresses(text: str, parsed: tuple[str, int] | None) -> None:
    if parsed is None:
        with pytest.raises(ConfigError, match=r"expected \[HOST:\]PORT with a port 1\.\.65535"):
            parse_bind(text)
    else:
        assert parse_bind(text) == parsed


@pytest.mark.parametrize("bind, host", [
    ("127.0.0.1:8080", "127.0.0.1"), ("[::1]:8080", "[::1]"),
    ("0.0.0.0:8080", socket.gethostname()), ("[::]:8080", socket.gethostname()),
])
def test_the_url_names_a_host_a_browser_can_reach(bind: str, host: str) -> None:
    out = ServeOutput(bind, token=TOKEN)
    assert out.url == f"http://{host}:8080/?token={TOKEN}"
    assert ServeOutput("127.0.0.1:8080").url == "http://127.0.0.1:8080/"


@pytest.mark.parametrize("token", [None, TOKEN, "auto"])
def test_open_says_where_the_page_is_and_shows_only_a_generated_token(
        token: str | None, caplog: pytest.LogCaptureFixture) -> None:
    """A generated token is shown (a WARNING, so that it is seen: the user has no other
    way to learn it); a token the user gave is not echoed, the line says how to add it."""
    caplog.set_level(logging.INFO, logger="edgepose")
    out = ServeOutput(f"127.0.0.1:{free_port()}", token=token)
    out.open()
    out.close()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if "live view" in r.getMessage()]
    page = f"http://127.0.0.1:{out.port}/"
    expected = {None: ("INFO", f"live view on {page}"),
                TOKEN: ("INFO", f"live view on {page} (add ?token=YOUR_TOKEN)"),
                "auto": ("WARNING", f"live view on {page}?token={out.token} (token generated for this run)")}
    assert lines == [expected[token]]
    if token == "auto":
        assert out.token is not None and len(out.token) >= 16 and out.token != ServeOutput("8080", token="auto").token


def test_a_port_in_use_is_a_config_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = ServeOutput(f"127.0.0.1:{port}")
        with pytest.raises(ConfigError, match=f"--serve 127.0.0.1:{port}: cannot listen there "
                                               r"\(.*address already in use\)"):
            out.open()
        out.close()


def test_poses_websocket_streams_the_json_lines_records(served: tuple[ServeOutput, list]) -> None:
    out, results = served
    ws = ws_connect(f"ws://127.0.0.1:{out.port}/poses")
    wait_for(lambda: out._server.clients == 1, 5, "the client to be counted")
    got = []
    for r in results:
        out.write(r)
        got.append(json.loads(ws.recv(timeout=5)))
    ws.close()
    assert got == [as_json_line(r.record) for r in results]
    assert out.viewers == 0  # /poses is no picture viewer: no JPEG was encoded for it


def test_healthz_snapshot_and_meta(served: tuple[ServeOutput, list]) -> None:
    from PIL import Image

    out, results = served
    status, _, body = get(base(out) + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "starting"
    assert get(base(out) + "/snapshot.jpg")[0] == 503
    for r in results[:5]:
        out.write(r)
    wait_for(lambda: out._server.latest() and out._server.latest().record["frame"] == 4, 5, "frame 4")
    status, _, body = get(base(out) + "/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok"
    assert health["frames"] == 5 and health["device"] == "cpu" and health["viewers"] == 0
    assert 0 <= health["last_frame_age_s"] < 5
    status, headers, jpeg = get(base(out) + "/snapshot.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and headers["X-Edgepose-Frame"] == "4"
    shot = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    assert shot.shape == results[4].image.shape  # full size
    raw = np.asarray(Image.open(io.BytesIO(get(base(out) + "/snapshot.jpg?raw=1")[2])).convert("RGB"))
    assert np.abs(raw.astype(int) - results[4].image).mean() < 3  # the frame itself
    if any(k["score"] >= 0.3 for p in results[4].record["poses"] for k in p["keypoints"]):
        assert np.abs(shot.astype(int) - raw).max() > 100  # the skeleton drawn in
        # the frame itself is closer to raw=1 than to the drawn snapshot; raw=0 draws
        assert np.abs(raw.astype(int) - results[4].image).mean() < np.abs(shot.astype(int) - results[4].image).mean()
        drawn = np.asarray(Image.open(io.BytesIO(get(base(out) + "/snapshot.jpg?raw=0")[2])).convert("RGB"))
        assert np.abs(drawn.astype(int) - shot).mean() < 1
    meta = json.loads(get(base(out) + "/meta.json")[2])
    assert meta["keypoint_threshold"] == 0.3
    assert meta["schemas"]["coco17"]["names"][9] == "left_wrist"
    assert len(meta["schemas"]["coco17"]["edges"]) == len(meta["schemas"]["coco17"]["edge_colors"])


def test_the_page_is_html_never_cached_and_healthz_turns_stale(served: tuple[ServeOutput, list],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from edgepose.outputs.serve import server

    out, results = served
    status, headers, page = get(base(out) + "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Cache-Control"] == "no-store" and b"<html" in page
    monkeypatch.setattr(server, "STALE_S", 0.3)
    def fresh() -> bool:  # a new frame before each look, however slow the machine
        out.write(results[0])
        time.sleep(0.05)
        return get(base(out) + "/healthz")[0] == 200

    wait_for(fresh, 5, "a fresh frame")
    time.sleep(0.4)  # no frame for longer than STALE_S
    status, _, body = get(base(out) + "/healthz")
    assert status == 503 and json.loads(body)["status"] == "stale"
    assert json.loads(body)["last_frame_age_s"] >= 0.3


def test_live_sends_each_record_with_its_picture(served: tuple[ServeOutput, list]) -> None:
    from PIL import Image

    out, results = served
    ws = ws_connect(f"ws://127.0.0.1:{out.port}/live")
    wait_for(lambda: out.viewers == 1, 5, "the viewer to be counted")
    second = ws_connect(f"ws://127.0.0.1:{out.port}/live")
    wait_for(lambda: out.viewers == 2, 5, "the second viewer")
    assert out._server.clients == 2
    second.close()
    wait_for(lambda: out.viewers == 1, 5, "the second viewer to leave")
    wait_for(lambda: out._server.clients == 1, 5, "the second client to be gone")
    out.write(results[7])
    envelope = json.loads(ws.recv(timeout=5))
    assert envelope["picture"] is True and envelope["record"] == as_json_line(results[7].record)
    picture = np.asarray(Image.open(io.BytesIO(ws.recv(timeout=5))))
    h, w = results[7].image.shape[:2]
    assert picture.shape[1] <= 960 and abs(picture.shape[0] / picture.shape[1] - h / w) < 0.01
    ws.close()
    wait_for(lambda: out.viewers == 0, 5, "the viewer to leave")


def test_mjpeg_stream(served: tuple[ServeOutput, list]) -> None:
    out, results = served
    feeder = Feeder(out, results, fps=20)
    try:
        with urllib.request.urlopen(base(out) + "/stream.mjpeg", timeout=5) as r, \
                urllib.request.urlopen(base(out) + "/stream.mjpeg", timeout=5) as r2:
            assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            data = b""
            while data.count(b"\xff\xd9") < 2:  # two whole JPEGs
                data += r.read1(65536)
            assert r2.read1(65536).startswith(b"--edgeposeframe")
            assert out.viewers == 2
        assert data.startswith(b"--edgeposeframe\r\nContent-Type: image/jpeg\r\n")
        wait_for(lambda: out.viewers == 0, 5, "the viewers to leave")
    finally:
        feeder.stop()


def test_fps_is_the_arrival_rate_over_the_last_60_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read on a clock the test sets: frames 0.1 s apart are 10 frames/s; a frame alone,
    or frames all at one instant, are no rate yet; only the newest 60 frames count."""
    from edgepose.outputs.serve import output

    now = [100.0]
    monkeypatch.setattr(output, "time", type("Clock", (), {"monotonic": staticmethod(lambda: now[0])}))
    out = ServeOutput(f"127.0.0.1:{free_port()}")  # never opened: write() only queues
    frame = real_results(1)[0]
    assert out.fps() == 0.0
    out.write(frame)
    assert out.fps() == 0.0  # one frame: no rate yet
    out.write(frame)
    assert out.fps() == 0.0  # two frames, no time between them
    now[0] += 0.25
    out.write(frame)
    assert out.fps() == pytest.approx(2 / 0.25)
    out = ServeOutput(f"127.0.0.1:{free_port()}")
    out.write(frame)
    now[0] += 0.25
    out.write(frame)
    assert out.fps() == pytest.approx(1 / 0.25)  # two frames 0.25 s apart
    for _ in range(4):
        now[0] += 0.1
        out.write(frame)
    assert out.fps() == pytest.approx(5 / 0.65)
    for _ in range(60):
        now[0] += 0.05
        out.write(frame)
    assert out.fps() == pytest.approx(20.0)  # the newest 60 only
    assert out.frames == 66


def test_a_bad_request_is_one_debug_line_and_a_failure_one_error_line_without_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    """What aiohttp's request handler reports through ``HttpLog.exception``."""
    from aiohttp.http_exceptions import BadStatusLine, HttpProcessingError

    from edgepose.outputs.serve.server import HttpLog

    caplog.set_level(logging.DEBUG, logger="edgepose.outputs.serve.http")
    http_log = HttpLog()
    try:
        raise BadStatusLine("\x00garbage")
    except BadStatusLine:
        http_log.exception("Error handling request from %s", "127.0.0.1")
    long_line = "Got more than 8190 bytes when reading " + "y" * 200
    for message in (long_line + "\nthe next line", ""):
        try:
            raise HttpProcessingError(code=431, message=message)
        except HttpProcessingError:
            http_log.exception("Error handling request")
    bug = ValueError("first line\nsecond line " + "x" * 300)
    http_log.exception("Error handling request", exc_info=bug)  # outside the except block
    got = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert [(level, text) for level, text, _ in got[:3]] == [
        ("DEBUG", "Error handling request from 127.0.0.1: 400 Bad status line '\\x00garbage'"),
        ("DEBUG", "Error handling request: 431 " + long_line[:120]),  # its first line, cut
        ("DEBUG", "Error handling request: 431 HttpProcessingError")]  # no message: its kind
    assert got[3][0] == "ERROR" and got[3][2] is None
    assert got[3][1] == "Error handling request: " + f"ValueError: {bug}"[:200].replace("\n", " ")
    assert got[4][:2] == ("DEBUG", "traceback") and got[4][2] is not None and got[4][2][1] is bug
    assert len(got) == 5 and all(r.name == "edgepose.outputs.serve.http" for r in caplog.records)


@pytest.mark.parametrize("bind", ["127.0.0.1"])
def test_wrong_or_missing_token_is_401_and_nothing_streamed(bind: str) -> None:
    results = real_results(10)
    out = ServeOutput(f"{bind}:{free_port()}", token=TOKEN)
    out.open()
    feeder = Feeder(out, results, fps=20)
    url = f"http://{bind}:{out.port}"
    try:
        for path in ("/", "/healthz", "/snapshot.jpg", "/meta.json", "/stream.mjpeg"):
            for headers, query in [({}, ""), ({}, "?token=wrong"),
                                   ({"Authorization": "Bearer wrong"}, ""),
                                   ({"Authorization": f"Basic {TOKEN}"}, ""), ({}, "?token=")]:
                status, h, body = get(url + path + query, headers)
                assert status == 401, (path, headers, query)
                assert body.startswith(b"401: missing or wrong token") and b"\xff\xd8" not in body
                assert "WWW-Authenticate" in h
        for path in ("/live", "/poses"):
            for query in ("", "?token=wrong"):
                with pytest.raises(InvalidStatus) as err:
                    ws_connect(f"ws://{bind}:{out.port}{path}{query}")
                assert err.value.response.status_code == 401
                assert b"record" not in err.value.response.body
        # the right token, as the query or the header, is let in
        assert get(url + f"/healthz?token={TOKEN}")[0] == 200
        assert get(url + "/healthz", {"Authorization": f"Bearer {TOKEN}"})[0] == 200
        page = get(url + f"/?token={TOKEN}")[2].decode()
        assert 'get("token")' in page and '"/live" + query' in page  # the page passes it on
        ws = ws_connect(f"ws://{bind}:{out.port}/poses?token={TOKEN}")
        assert json.loads(ws.recv(timeout=5))["frame"] >= 0
        ws.close()
    finally:
        feeder.stop()
        out.close()


def test_a_client_that_never_reads_stalls_nobody(served: tuple[ServeOutput, list]) -> None:
    """A /live client that stops reading: the other client keeps getting every frame,
    write() never waits, and close() is bounded."""
    out, results = served
    stuck = socket.create_connection(("127.0.0.1", out.port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    wait_for(lambda: out.viewers == 1, 5, "the stuck viewer")
    reader = ws_connect(f"ws://127.0.0.1:{out.port}/poses")
    longest = 0.0
    got = []
    try:
        for i in range(120):  # ~150 KB pictures for the stuck one: far beyond its buffers
            r = results[i % len(results)]
            t0 = time.monotonic()
            out.write(r)
            longest = max(longest, time.monotonic() - t0)
            got.append(json.loads(reader.recv(timeout=5))["frame"])
        assert got == [results[i % len(results)].record["frame"] for i in range(120)]
        assert longest < 0.1
    finally:
        reader.close()
        t0 = time.monotonic()
        out.close()
        assert time.monotonic() - t0 < 2.0
        stuck.close()
