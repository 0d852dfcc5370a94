"""``probe_output`` / ``probe_serve`` (for ``edgepose doctor``) against real peers."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from edgepose.outputs.probe import probe_output, probe_serve
from tests.edgepose.outputs.helpers import Mosquitto, free_port

pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed (extra net)")


def test_mqtt_broker_up_and_down(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)
    spec = f"mqtt://127.0.0.1:{broker.port}/edgepose/poses"
    ok, detail = probe_output(spec)
    assert not ok and "connection refused" in detail and spec in detail
    broker.start()
    try:
        assert probe_output(spec) == (True, f"{spec}: the broker accepted a connection")
    finally:
        broker.stop()


def test_websocket_server(tmp_path: Path) -> None:
    from tests.edgepose.outputs.test_websocket import Server

    server = Server()
    try:
        ok, detail = probe_output(f"ws://127.0.0.1:{server.port}/poses")
        assert ok and "accepted" in detail
    finally:
        server.close()
    ok, detail = probe_output(f"ws://127.0.0.1:{free_port()}/")
    assert not ok and "connection refused" in detail


def test_a_peer_that_never_answers_is_reported_within_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        for spec in (f"ws://127.0.0.1:{port}/", f"mqtt://127.0.0.1:{port}/t"):
            t0 = time.monotonic()
            ok, detail = probe_output(spec, timeout=0.5)
            assert not ok and spec in detail
            assert time.monotonic() - t0 < 3.0


@pytest.mark.parametrize("spec, ok, words", [
    ("osc://127.0.0.1:9000/td", True, "cannot be checked"),
    ("mqtt://broker", False, "no topic"),
    ("gopher://x/y", False, "not an output edgepose knows"),
])
def test_specs(spec: str, ok: bool, words: str) -> None:
    got_ok, detail = probe_output(spec)
    assert got_ok is ok and words in detail


def test_files(tmp_path: Path) -> None:
    assert probe_output(str(tmp_path / "poses.jsonl"))[0]
    ok, detail = probe_output(str(tmp_path / "missing" / "poses.jsonl"))
    assert not ok and "does not exist" in detail


def test_serve() -> None:
    port = free_port()
    assert probe_serve(f"127.0.0.1:{port}", None) == (
        True, f"--serve 127.0.0.1:{port}: port {port} is free on 127.0.0.1")
    ok, detail = probe_serve(f"0.0.0.0:{port}", None)
    assert not ok and "needs a token" in detail
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ok, detail = probe_serve(f"127.0.0.1:{busy.getsockname()[1]}", None)
        assert not ok and "cannot listen there" in detail


def test_mqtt_credentials_go_with_the_probe(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, users={"pi": "s3cret"})
    broker.start()
    try:
        good = f"mqtt://pi:s3cret@127.0.0.1:{broker.port}/edgepose/poses"
        assert probe_output(good) == (True, f"{good}: the broker accepted a connection")
        for bad in (f"mqtt://pi:wrong@127.0.0.1:{broker.port}/t", f"mqtt://127.0.0.1:{broker.port}/t"):
            ok, detail = probe_output(bad)
            assert not ok and detail.startswith(f"{bad}: the broker refused the connection (")
            assert detail.endswith("); check user and password")
    finally:
        broker.stop()
    ok, detail = probe_output(good)
    assert (ok, detail) == (False, f"{good}: connection refused at 127.0.0.1:{broker.port}; is the broker "
                                   "running (sudo systemctl status mosquitto)?")


def test_a_web_server_that_is_no_websocket_is_named_by_its_http_status() -> None:
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # what a WebSocket client reads

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        spec = f"ws://127.0.0.1:{httpd.server_address[1]}/nothing"
        assert probe_output(spec, timeout=2.0) == (
            False, f"{spec}: the server answered HTTP 404, not a WebSocket; check the path")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_osc_is_resolved_and_an_unknown_host_is_reported() -> None:
    assert probe_output("osc://127.0.0.1:9000/td") == (
        True, "UDP to 127.0.0.1:9000 (127.0.0.1); OSC sends no reply, so whether something listens cannot "
              "be checked")
    ok, detail = probe_output("osc://nosuch.invalid:9000/td")
    assert not ok and detail.startswith("osc://nosuch.invalid:9000/td: ") and "None" not in detail


def test_serve_on_ipv6_and_a_busy_port_with_its_reason() -> None:
    port = free_port()
    assert probe_serve(f"[::1]:{port}", None) == (True, f"--serve [::1]:{port}: port {port} is free on ::1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        bind = f"127.0.0.1:{busy.getsockname()[1]}"
        assert probe_serve(bind, None) == (False, f"--serve {bind}: cannot listen there (Address already in use "
                                                  "(EADDRINUSE)); pick another port, or stop what uses it")
