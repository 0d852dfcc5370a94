"""Network peers that misbehave cost one log line, never a traceback: a WebSocket
"server" on 127.0.0.1 that answers the upgrade with garbage (or upgrades, then sends
garbage), an MQTT topic longer than MQTT allows, and a bug in an output's own thread."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from edgepose.core.errors import ConfigError
from edgepose.outputs import make_output
from edgepose.outputs.background import BackgroundOutput
from edgepose.outputs.base import FrameResult
from tests.edgepose.outputs.helpers import real_results

pytest.importorskip("websockets.sync.client", reason="websockets is not installed (extra net)")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class GarbagePeer:
    """A TCP server on 127.0.0.1 that reads the WebSocket upgrade and answers ``mode``:
    ``bytes`` (random bytes), ``text`` (a line that is not HTTP) or ``upgrade`` (a valid
    101 answer, then random bytes as frames)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = conn.recv(65536)
                if self.mode == "bytes":
                    conn.sendall(os.urandom(512))
                elif self.mode == "text":
                    conn.sendall(b"hello, this is not HTTP\r\n\r\n")
                else:
                    key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                               if line.lower().startswith(b"sec-websocket-key"))
                    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                    conn.sendall(os.urandom(4096))
                conn.settimeout(2)
                conn.recv(65536)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["bytes", "text", "upgrade"])
def peer(request: pytest.FixtureRequest) -> Iterator[GarbagePeer]:
    p = GarbagePeer(request.param)
    yield p
    p.close()


def test_a_websocket_peer_answering_garbage_is_one_warning(peer: GarbagePeer,
                                                          caplog: pytest.LogCaptureFixture,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    spec = f"ws://127.0.0.1:{peer.port}/poses"
    out = make_output(spec)
    out.open()
    try:
        for r in real_results(60):  # 3 s: several reconnections
            out.write(r)
            time.sleep(0.05)
    finally:
        out.close()
    assert peer.accepted >= 2  # it kept trying, with backoff
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in loud] == ["edgepose.outputs.background"], [r.getMessage() for r in loud]
    assert loud[0].getMessage().startswith(f"{spec}: ") and "\n" not in loud[0].getMessage()
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "unexpected internal error" not in err
    assert out.outages == 1


@pytest.mark.parametrize("topic, ok", [
    ("t" * 70_000, False),
    ("é" * 40_000, False),                          # 40,000 characters, 80,000 bytes
    ("t" * (65535 - len("/status")), True),         # the longest allowed, with its status twin
    ("t" * (65536 - len("/status")), False),
    ("edgepose/\0poses", False),
])
def test_mqtt_topics_beyond_what_mqtt_allows_are_refused_at_check_time(topic: str, ok: bool) -> None:
    spec = f"mqtt://127.0.0.1:1/{topic}"
    if ok:
        make_output(spec).check()
        return
    with pytest.raises(ConfigError) as info:
        make_output(spec).check()
    message = str(info.value)
    assert "\n" not in message and len(message) < 300
    assert "65535" in message or "NUL" in message


class _BuggyOutput(BackgroundOutput):
    """Connects, then a hook of its own raises (a bug, not a peer failure)."""

    kind = "buggy"

    def _connected(self) -> None:
        raise RuntimeError("a bug in a hook")

    def _send(self, result: FrameResult) -> None:
        pass


def test_an_exception_in_an_output_thread_is_one_log_line(caplog: pytest.LogCaptureFixture,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.INFO)
    out = _BuggyOutput("buggy://x")
    out.open()
    out.write(real_results(1)[0])
    time.sleep(0.3)
    out.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == ["buggy://x: the output stopped (a bug in a hook); the run goes on without it"]
    assert "Traceback" not in capfd.readouterr().err
