"""WebSocket output against real WebSocket servers on 127.0.0.1 (the websockets library),
including one that never reads and one that never answers the handshake."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edgepose.outputs import make_output
from tests.edgepose.outputs.helpers import as_json_line, assert_config_error, free_port, real_results, wait_for

server_mod = pytest.importorskip("websockets.sync.server", reason="websockets is not installed (extra net)")


class Server:
    """A WebSocket server collecting the text messages it receives (or, with
    ``read=False``, accepting connections and never reading from them)."""

    def __init__(self, port: int = 0, *, read: bool = True) -> None:
        self.messages: list[str] = []
        self.offers: list[str | None] = []  # each handshake's extensions (compression)
        self.read = read
        self._release = threading.Event()
        self.server = server_mod.serve(self._handle, "127.0.0.1", port, max_queue=1,
                                       compression=None)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, ws: Any) -> None:
        self.offers.append(ws.request.headers.get("Sec-WebSocket-Extensions"))
        if not self.read:
            self._release.wait(30)
            return
        for message in ws:
            self.messages.append(message)

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.mark.parametrize("spec, message", [
    ("ws://", "no host"),
    ("ws://host:0/x", "port 0"),
    ("ws://host:70000/x", "port"),
    ("wss://:8080/x", "no host"),
])
def test_bad_urls_are_one_line_config_errors(spec: str, message: str) -> None:
    assert_config_error(spec, message)


@pytest.mark.parametrize("spec, address", [
    ("ws://pi.lan/poses", ("pi.lan", 80)),
    ("wss://pi.lan/poses", ("pi.lan", 443)),
    ("WSS://pi.lan/poses", ("pi.lan", 443)),
    ("wss://pi.lan:8443/poses", ("pi.lan", 8443)),
])
def test_the_port_a_url_without_one_connects_to(spec: str, address: tuple[str, int]) -> None:
    assert make_output(spec)._address == address


def test_each_record_arrives_as_its_json_line(server: Server) -> None:
    results = real_results(30)
    out = make_output(f"ws://127.0.0.1:{server.port}/poses")
    out.check()
    out.open()
    try:
        wait_for(lambda: out.connected_at, 10, "the connection")
        for r in results:
            out.write(r)
            time.sleep(0.08)  # a pace the output keeps up with even on a busy machine
    finally:
        out.close()
    wait_for(lambda: len(server.messages) == len(results), 5, "all records")
    assert [json.loads(m) for m in server.messages] == [as_json_line(r.record) for r in results]
    assert out.written == len(results) and out.dropped == 0
    assert out.summary() == f"ws://127.0.0.1:{server.port}/poses: {len(results)} frame(s)"
    assert server.offers == [None]  # one connection, no compression offered (CPU for poses)


def test_what_the_websockets_library_says_goes_to_the_debug_log_only(caplog: pytest.LogCaptureFixture) -> None:
    from edgepose.outputs.websocket import QuietPeerLog

    peer_log = QuietPeerLog("edgepose.ws.peer")
    with caplog.at_level(logging.INFO, logger="edgepose.ws.peer"):
        peer_log.error("unexpected internal error %s", "x")
    assert caplog.records == []  # not even at ERROR while the debug log is off
    with caplog.at_level(logging.DEBUG, logger="edgepose.ws.peer"):
        try:
            raise ValueError("garbage")
        except ValueError:
            peer_log.exception("unexpected internal error %s", "y")
        peer_log.debug("< frame %d", 3)
    assert [(r.name, r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        ("edgepose.ws.peer", "DEBUG", "unexpected internal error y", True),
        ("edgepose.ws.peer", "DEBUG", "< frame 3", False)]


def test_server_absent_at_start_one_warning_then_connects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edgepose")
    results = real_results(40)
    port = free_port()
    spec = f"ws://127.0.0.1:{port}/"
    out = make_output(spec)
    out.open()
    server = None
    try:
        for r in results[:20]:  # 1.5 s: several attempts refused
            out.write(r)
            time.sleep(0.075)
        assert out.written == 0
        server = Server(port)
        wait_for(lambda: out.connected_at, 10, "the connection once the server is up")
        for r in results[20:]:
            out.write(r)
            time.sleep(0.03)
    finally:
        out.close()
        if server is not None:
            server.close()
    frames = [json.loads(m)["frame"] for m in server.messages]
    assert frames[-1] == results[-1].record["frame"]
    assert frames == sorted(frames) and len(frames) >= 20
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"{spec}: connection refused; the run goes on, retrying in the background"]
    assert any(r.getMessage() == f"{spec}: connected again" for r in caplog.records)
    assert out.outages == 1


def test_a_server_that_never_reads_costs_the_writer_nothing() -> None:
    server = Server(read=False)
    results = real_results(30)
    out = make_output(f"ws://127.0.0.1:{server.port}/")
    out.open()
    try:
        wait_for(lambda: out.connected_at, 10, "the connection")
        longest = 0.0
        for i in range(3000):  # ~10 MB of records: more than the socket buffers hold
            t0 = time.monotonic()
            out.write(results[i % len(results)])
            longest = max(longest, time.monotonic() - t0)
            if i % 50 == 0:
                time.sleep(0.001)
        assert out.dropped > 0  # the thread is stuck in send(): newest wins meanwhile
        assert longest < 0.1
    finally:
        t0 = time.monotonic()
        out.close()
        closing = time.monotonic() - t0
        server.close()
    assert closing < 1.5


def test_close_is_bounded_when_the_peer_never_answers_the_handshake(caplog: pytest.LogCaptureFixture) -> None:
    """close() ends the handshake at once: the thread is gone within the close, with
    no warning (neither "left behind" nor an outage) and no socket left open."""
    caplog.set_level(logging.INFO)
    with socket.socket() as listener:  # accepts TCP, never says a word
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        out = make_output(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
        out.open()
        out.write(real_results(1)[0])
        conn, _ = listener.accept()
        time.sleep(0.2)
        t0 = time.monotonic()
        out.close()
        assert time.monotonic() - t0 < 1.5
        assert not [t for t in threading.enumerate() if t.name == "edgepose-ws"]
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        conn.settimeout(5)
        assert conn.recv(4096).startswith(b"GET / HTTP/1.1") and conn.recv(4096) == b""  # closed
        conn.close()
        conn.close()
    assert out.written == 0
