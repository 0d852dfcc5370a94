"""Network streams served from 127.0.0.1 by the test: one that never answers, one that stalls
after real MJPEG frames; interrupts and SIGTERM while a source waits on them."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import OpenCVSource, ReconnectingSource, make_source
from tests.conftest import REPO, shared_path

cv2 = pytest.importorskip("cv2")



# --- network streams that stall (a server on 127.0.0.1) ------------------------------

class StallingServer:
    """An HTTP server on 127.0.0.1 that accepts and then never answers (no frames), or
    sends an MJPEG stream of real JPEGs (``frames``, at ``fps``) and then stalls with the
    connection open. It serves at most a few connections and ends at ``close()``."""

    def __init__(self, jpegs: list[bytes], fps: float = 10.0) -> None:
        self.jpegs, self.fps = jpegs, fps
        self.accepted = threading.Event()
        self.sent_all = threading.Event()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/cam.mjpg"
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set() and len(self._conns) < 8:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._conns.append(conn)
            self.accepted.set()
            if self.jpegs:
                self._stream(conn)

    def _stream(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)  # the request
            conn.sendall(b"HTTP/1.0 200 OK\r\n"
                         b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n")
            for jpeg in self.jpegs:
                conn.sendall(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d"
                             b"\r\n\r\n%b\r\n" % (len(jpeg), jpeg))
                if self._stop.wait(1.0 / self.fps):
                    return
        except OSError:
            return
        self.sent_all.set()  # and then nothing more: the stream stalls

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._conns:
            conn.close()
        self._sock.close()


@pytest.fixture
def jpegs() -> list[bytes]:
    """20 real frames of the sports2d clip as 640x360 JPEGs."""
    cap = cv2.VideoCapture(str(shared_path("videos", "sports2d_demo.mp4")))
    out = []
    for _ in range(20):
        ok, bgr = cap.read()
        assert ok
        out.append(cv2.imencode(".jpg", cv2.resize(bgr, (640, 360)))[1].tobytes())
    cap.release()
    return out


@pytest.fixture
def silent_server() -> Iterator[StallingServer]:
    server = StallingServer([])
    yield server
    server.close()


@pytest.fixture
def mjpeg_server(jpegs: list[bytes]) -> Iterator[StallingServer]:
    server = StallingServer(jpegs)
    yield server
    server.close()


def _interrupt_after(src, seconds: float) -> list[float]:
    """Interrupt ``src`` from another thread after ``seconds``; the list gets the time."""
    when: list[float] = []

    def fire() -> None:
        when.append(time.monotonic())
        src.interrupt()

    threading.Timer(seconds, fire).start()
    return when


def test_a_stream_that_never_answers_fails_after_its_timeout(silent_server: StallingServer) -> None:
    src = OpenCVSource(silent_server.url, timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot open video source .*: no stream within 1 s"):
        src.open()
    assert silent_server.accepted.is_set()
    assert time.monotonic() - t0 < 10  # not OpenCV's default 30 s


@pytest.mark.parametrize("wrapped", [False, True], ids=["opencv", "reconnecting"])
def test_interrupt_ends_a_blocked_open(silent_server: StallingServer, wrapped: bool) -> None:
    src = make_source(silent_server.url) if wrapped else OpenCVSource(silent_server.url)
    when = _interrupt_after(src, 0.3)
    with pytest.raises(SourceError, match="interrupted"):
        src.open()
    assert time.monotonic() - when[0] < 0.5
    src.close()
    with pytest.raises(SourceError, match="interrupted"):  # an interrupt sticks
        src.open()


def test_interrupt_ends_a_read_blocked_on_a_stalled_stream(mjpeg_server: StallingServer,
                                                           jpegs: list[bytes]) -> None:
    src = make_source(mjpeg_server.url)  # live: wrapped for reconnects
    with src:
        frames = [src.read() for _ in range(len(jpegs))]
        assert mjpeg_server.sent_all.wait(10)
        when = _interrupt_after(src, 0.3)
        assert src.read() is None  # blocked on the 21st frame until interrupted
        assert time.monotonic() - when[0] < 0.5
    assert all(f is not None and f.image.shape == (360, 640, 3) for f in frames)
    refs = [cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR)[..., ::-1] for j in jpegs]
    for i, frame in enumerate(frames):  # FFmpeg's JPEG decoder vs libjpeg: ~1 level apart
        diffs = [np.abs(frame.image.astype(np.int16) - ref).mean() for ref in refs]
        assert diffs[i] < 3.0 and int(np.argmin(diffs)) == i  # each frame, in order
    assert isinstance(src, ReconnectingSource) and src.reconnects == 0


def _sigterm_run(url: str, tmp_path: Path, ready) -> tuple[subprocess.CompletedProcess, float]:
    """Start edgepose-run on ``url``, send SIGTERM once ``ready(out)`` holds, and return
    the finished process with the seconds from the signal to its exit."""
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgepose.cli.run", "--source", url, "--display", "none",
         "--device", "cpu", "--json", str(out), "--log-level", "INFO"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ready(out) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=10)
        took = time.monotonic() - t0
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr), took


def _complete_records(path: Path) -> list[dict]:
    text = path.read_text() if path.exists() else ""
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_sigterm_while_edgepose_run_opens_a_silent_stream(silent_server: StallingServer,
                                                          tmp_path: Path) -> None:
    def ready(out: Path) -> bool:
        if not silent_server.accepted.is_set():
            return False
        time.sleep(0.3)  # the run is now blocked opening the stream
        return True

    proc, took = _sigterm_run(silent_server.url, tmp_path, ready)
    assert proc.returncode == 0, proc.stderr
    assert took < 1.0, proc.stderr
    assert "stopped in" in proc.stderr and "Traceback" not in proc.stderr
    assert _complete_records(tmp_path / "out.jsonl") == []


def test_sigterm_while_edgepose_run_waits_on_a_stalled_stream(mjpeg_server: StallingServer,
                                                              tmp_path: Path) -> None:
    def ready(out: Path) -> bool:
        if not mjpeg_server.sent_all.is_set() or not out.exists():
            return False
        time.sleep(0.5)  # the run is now blocked on frame 21
        return True

    proc, took = _sigterm_run(mjpeg_server.url, tmp_path, ready)
    assert proc.returncode == 0, proc.stderr
    assert took < 1.0, proc.stderr
    assert "Traceback" not in proc.stderr
    records = _complete_records(tmp_path / "out.jsonl")  # every line complete JSON
    assert records and len(records) <= 20
    frames = [r["frame"] for r in records]
    assert frames == sorted(set(frames)) and frames[-1] <= 19
    assert all((r["width"], r["height"]) == (640, 360) for r in records)
