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
    assert probe_serve(f"127.0.0.1:{port}", None) == (True, f"--serve 127.0.0.1:{port}: port {port} is free on 127.0.0.1")
    ok, detail = probe_serve(f"0.0.0.0:{port}", None)
    assert not ok and "needs a token" in detail
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ok, detail = probe_serve(f"127.0.0.1:{busy.getsockname()[1]}", None)
        assert not ok and "cannot listen there" in detail
