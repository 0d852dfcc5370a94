"""Sources on real videos and images; damaged files made from them; network streams
served from 127.0.0.1 by the test (one that never answers, one that stalls after real
MJPEG frames); the Pi camera through a fake picamera2 module."""

from __future__ import annotations

import json
import logging
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import ImageSource, OpenCVSource, ReconnectingSource, make_source, open_source
from edgepose.sources.picamera import MISSING_MODULE, PiCameraSource
from tests.conftest import REPO, load_rgb, shared_path

cv2 = pytest.importorskip("cv2")


def _cv2_frames(path: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    for _ in range(n):
        ok, bgr = cap.read()
        assert ok
        out.append(bgr)
    cap.release()
    return out


# --- video files and the webcam path (OpenCV) ---------------------------------------

def test_video_file_yields_rgb_frames_with_increasing_index_and_time() -> None:
    path = shared_path("videos", "mmpose_demo.mp4")
    with open_source(str(path)) as src:
        frames = list(src)
    assert not src.is_live and not src.paced
    bgr = _cv2_frames(path, len(frames))
    assert len(frames) == 5  # the clip's frame count
    assert [f.index for f in frames] == list(range(5))
    assert all(b.timestamp >= a.timestamp for a, b in zip(frames, frames[1:]))
    for f, ref in zip(frames, bgr):
        assert f.image.dtype == np.uint8 and f.image.shape == ref.shape
        np.testing.assert_array_equal(f.image, ref[..., ::-1])  # RGB, not OpenCV's BGR


def test_video_loop_restarts_at_the_first_frame() -> None:
    path = shared_path("videos", "mmpose_demo.mp4")
    with open_source(str(path), loop=True) as src:
        frames = [src.read() for _ in range(12)]
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(12))
    np.testing.assert_array_equal(frames[5].image, frames[0].image)
    np.testing.assert_array_equal(frames[11].image, frames[1].image)


def test_realtime_paces_a_video_at_its_frame_rate() -> None:
    path = shared_path("videos", "sports2d_demo.mp4")  # 30 fps
    n = 10
    for realtime in (False, True):
        with open_source(str(path), realtime=realtime) as src:
            t0 = time.monotonic()
            for _ in range(n):
                assert src.read() is not None
            took = time.monotonic() - t0
        if realtime:
            assert src.paced
            assert took >= (n - 1) / 30.0 - 0.01
        else:
            fast = took
    assert fast < took


def test_webcam_path_reads_a_video_file_standing_in_for_the_device() -> None:
    path = shared_path("videos", "mmpose_demo.mp4")
    src = OpenCVSource(str(path), width=960, height=540, fps=5, live=True)
    with src:
        assert src.is_live and src.paced
        frames = [src.read() for _ in range(5)]
        # a webcam that stops delivering frames is a failure, not an end of stream
        with pytest.raises(SourceError, match="stopped delivering frames"):
            src.read()
    ref = _cv2_frames(path, 1)[0]
    np.testing.assert_array_equal(frames[0].image, ref[..., ::-1])


def _decodable(path: Path) -> int:
    """How many frames OpenCV itself decodes from ``path`` (the reference)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def _truncated_copy(tmp_path: Path) -> Path:
    """The first 1.5 MB of the 230-frame, 4 MB sports2d clip, as `head -c` would cut it."""
    out = tmp_path / "truncated.mp4"
    with open(out, "wb") as f:
        subprocess.run(["head", "-c", "1500000", str(shared_path("videos", "sports2d_demo.mp4"))],
                       stdout=f, check=True)
    return out


def _damaged_copy(tmp_path: Path) -> Path:
    """The sports2d clip with 200 kB of (seeded) noise written over its middle."""
    data = bytearray(shared_path("videos", "sports2d_demo.mp4").read_bytes())
    noise = random.Random(10).randbytes(200_000)
    data[1_800_000:2_000_000] = noise
    out = tmp_path / "damaged.mp4"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("make", [_truncated_copy, _damaged_copy], ids=["truncated", "damaged"])
def test_a_short_video_raises_after_its_last_good_frame(tmp_path: Path, make) -> None:
    path = make(tmp_path)
    good = _decodable(path)
    assert 0 < good < 230  # what OpenCV decodes of the damaged file
    frames = []
    with open_source(str(path)) as src:
        with pytest.raises(SourceError) as info:
            while (frame := src.read()) is not None:
                frames.append(frame)
    assert len(frames) == good  # every good frame came out before the error
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{path} is truncated or damaged" in msg
    assert f"ended after {good} of the 230 frames" in msg
    assert f"last good frame: frame {good - 1} at {(good - 1) / 30:.2f} s" in msg
    assert "--allow-truncated" in msg


def test_allow_truncated_ends_or_loops_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = _truncated_copy(tmp_path)
    good = _decodable(path)
    with caplog.at_level(logging.WARNING, logger="edgepose.sources"):
        with open_source(str(path), allow_truncated=True) as src:
            assert len(list(src)) == good
        assert src.truncated
        with open_source(str(path), allow_truncated=True, loop=True) as src:
            frames = [src.read() for _ in range(2 * good + 3)]  # round the file twice
    assert all(f is not None for f in frames)
    np.testing.assert_array_equal(frames[good].image, frames[0].image)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 2  # one per source, not one per round
    assert all(f"last good frame: frame {good - 1}" in w and "--allow-truncated" in w
               for w in warnings)


def test_a_complete_video_is_not_called_truncated() -> None:
    path = shared_path("videos", "pose2sim_singleperson_cam01.mp4")  # 100 frames, 60 fps
    with open_source(str(path)) as src:
        assert sum(1 for _ in src) == 100
    assert not src.truncated


@pytest.mark.parametrize("allow", [False, True], ids=["refused", "allowed"])
def test_edgepose_run_on_a_truncated_video_names_the_last_good_frame(
        tmp_path: Path, allow: bool) -> None:
    path = _truncated_copy(tmp_path)
    good = _decodable(path)
    out = tmp_path / "out.jsonl"
    proc = subprocess.run([sys.executable, "-m", "edgepose.cli.run", "--source", str(path),
                           "--display", "none", "--device", "cpu", "--json", str(out),
                           "--log-level", "WARNING"] + (["--allow-truncated"] if allow else []),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == (0 if allow else 1), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"last good frame: frame {good - 1}" in lines[0], proc.stderr
    assert lines[0].startswith("WARNING" if allow else "ERROR")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(good))  # the frames before, all of them


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


# --- images --------------------------------------------------------------------------

def test_image_folder_in_name_order_and_single_image_loop(tmp_path: Path) -> None:
    squat = shared_path("images", "coral_squat.bmp")
    couple = shared_path("images", "posenet_test_couple.jpg")
    (tmp_path / "b.jpg").symlink_to(couple)
    (tmp_path / "a.bmp").symlink_to(squat)
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(str(tmp_path)) as src:
        frames = list(src)
    assert len(frames) == 2
    np.testing.assert_array_equal(frames[0].image, load_rgb(squat))
    np.testing.assert_array_equal(frames[1].image, load_rgb(couple))
    with ImageSource(squat, loop=True) as src:
        a, b = src.read(), src.read()
    assert a is not None and b is not None and (a.index, b.index) == (0, 1)
    np.testing.assert_array_equal(a.image, b.image)
    a.image[:] = 0  # a renderer drawing on one frame must not change the next
    assert b.image.any()


def test_bad_image_in_a_folder_is_skipped_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    squat = shared_path("images", "coral_squat.bmp")
    couple = shared_path("images", "posenet_test_couple.jpg")
    (tmp_path / "a.bmp").symlink_to(squat)
    (tmp_path / "b.jpg").write_bytes(couple.read_bytes()[:200])  # a truncated JPEG
    (tmp_path / "c.jpg").symlink_to(couple)
    with caplog.at_level(logging.WARNING, logger="edgepose.sources"):
        with ImageSource(tmp_path, loop=True) as src:
            frames = [src.read() for _ in range(6)]  # twice round the folder
    assert all(f is not None for f in frames)
    assert [f.name for f in frames] == ["a.bmp", "b.jpg", "c.jpg"] * 2
    assert [f.index for f in frames] == list(range(6))
    good = [f for f in frames if not f.error]
    assert len(good) == 4
    np.testing.assert_array_equal(frames[0].image, load_rgb(squat))
    np.testing.assert_array_equal(frames[2].image, load_rgb(couple))  # later images go on
    bad = frames[1]
    assert bad.image.shape == (1, 1, 3) and bad.image.dtype == np.uint8
    assert "b.jpg is not a readable image" in bad.error and "\n" not in bad.error
    assert frames[4].error == bad.error
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "b.jpg" in warnings[0]  # once, not once per round


@pytest.mark.parametrize("make, match", [
    (lambda d: ImageSource(d / "missing.jpg"), "not found"),
    (lambda d: ImageSource(d), "has no images"),
    (lambda d: ImageSource((d / "x.jpg").write_bytes(b"\xff\xd8 junk") and d / "x.jpg"),
     "x.jpg is not a readable image"),  # one image: checked at open, not mid-run
    (lambda d: OpenCVSource(d / "missing.mp4"), "not found"),
    (lambda d: OpenCVSource((d / "x.mp4").write_text("junk") and d / "x.mp4"), "cannot open"),
])
def test_bad_files_raise_one_line_source_errors(tmp_path: Path, make, match: str) -> None:
    with pytest.raises(SourceError, match=match) as info:
        make(tmp_path).open()
    assert "\n" not in str(info.value)


# --- open_source dispatch ------------------------------------------------------------

@pytest.mark.parametrize("spec, kind", [
    ("videos/sports2d_demo.mp4", OpenCVSource),
    ("images/coral_squat.bmp", ImageSource),
    ("images", ImageSource),
    ("0", ReconnectingSource),
    ("rtsp://127.0.0.1:8554/cam", ReconnectingSource),
    ("picamera", ReconnectingSource),
])
def test_make_source_picks_the_backend(spec: str, kind: type) -> None:
    if not spec[0].isdigit() and "://" not in spec and spec != "picamera":
        spec = str(shared_path(*spec.split("/")))
    src = make_source(spec)
    assert isinstance(src, kind)
    assert src.is_live == (kind is ReconnectingSource)


@pytest.mark.parametrize("spec, match", [
    ("no/such/video.mp4", "not found"),
    ("/dev/video97", "webcam /dev/video97 not found"),
])
def test_make_source_bad_specs(spec: str, match: str) -> None:
    with pytest.raises(SourceError, match=match):
        make_source(spec)


def test_auto_without_any_camera_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    monkeypatch.setattr("edgepose.sources.find_webcams", lambda: [])
    with pytest.raises(SourceError, match="rpicam-hello --list-cameras"):
        make_source("auto")


# --- Pi camera through a fake picamera2 ----------------------------------------------

class FakePicamera2:
    """Stands in for picamera2.Picamera2, with the life cycle of its buffers on a virtual
    clock (deterministic: time moves only through ``capture_array`` and ``advance``).

    As picamera2 with libcamera: the sensor finishes a frame every ``period`` seconds, and
    at that instant it is already writing the next one, so it needs a free buffer then,
    else that frame is lost (``dropped``). Finished frames go to picamera2's queue, which
    keeps the newest one when ``queue`` is on and there is more than one buffer (none
    otherwise) and gives older ones back. ``capture_array`` takes the oldest queued frame
    (or waits for the next), holds its buffer for ``copy_time`` while copying it out,
    then gives it back: a buffer the caller holds is one the camera cannot fill.

    Images are a real photo in the memory order of the configured format ("RGB888" is
    B, G, R in memory, "BGR888" R, G, B: picamera2's PIL modes "BGR" and "RGB").
    """

    cameras: list[dict] = [{"Model": "imx708", "Num": 0}]
    image: np.ndarray
    instances: list[FakePicamera2] = []
    MEMORY_ORDER = {"RGB888": "bgr", "BGR888": "rgb"}

    def __init__(self, camera_num: int = 0, period: float = 1 / 30, copy_time: float = 0.004) -> None:
        self.calls: list[tuple] = [("init", camera_num)]
        self.period, self.copy_time = period, copy_time
        self.started = False
        self.now = 0.0
        self.dropped = 0        # sensor frames lost for want of a free buffer
        self.delivered: list[int] = []  # sequence numbers handed out by capture_array
        self.last_array: np.ndarray | None = None
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return FakePicamera2.cameras

    def create_video_configuration(self, main: dict, controls: dict, buffer_count: int = 6,
                                   queue: bool = True, **kw) -> dict:
        self.calls.append(("create_video_configuration", main, controls))
        return {"main": main, "controls": controls, "buffer_count": buffer_count, "queue": queue, **kw}

    def configure(self, config: dict) -> None:
        self.calls.append(("configure", config))
        self.config = config
        self.format = config["main"]["format"]
        assert self.format in self.MEMORY_ORDER, self.format
        self.max_queue = 1 if config["queue"] and config["buffer_count"] > 1 else 0

    def start(self) -> None:
        self.started = True
        self.calls.append(("start",))
        self.free = list(range(self.config["buffer_count"]))  # buffer ids the camera may fill
        self.queued: list[tuple[int, int]] = []  # (buffer, frame) finished, held by picamera2
        self.sequence = 0
        self.filling: int | None = self.free.pop()
        self.next_done = self.period

    def _finish_frame(self) -> None:
        if self.filling is not None:
            self.queued.append((self.filling, self.sequence))
        self.sequence += 1
        self.filling = self.free.pop() if self.free else None  # the next frame needs one now
        if self.filling is None:
            self.dropped += 1
        self.next_done += self.period

    def _trim(self) -> None:
        while len(self.queued) > self.max_queue:
            self.free.append(self.queued.pop(0)[0])

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass (the application working elsewhere)."""
        end = self.now + seconds
        while self.next_done <= end:
            self.now = self.next_done
            self._finish_frame()
            self._trim()
        self.now = end

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started, "capture before start"
        self.advance(0.0)
        while not self.queued:  # wait for the next frame; it is ours before the trim
            self.now = self.next_done
            self._finish_frame()
        buffer, frame = self.queued.pop(0)
        self._trim()
        self.advance(self.copy_time)  # copying out: the camera cannot use this buffer
        self.free.append(buffer)
        self.delivered.append(frame)
        order = self.MEMORY_ORDER[self.format]
        self.last_array = np.ascontiguousarray(self.image if order == "rgb" else self.image[..., ::-1])
        return self.last_array

    def stop(self) -> None:
        self.started = False
        self.calls.append(("stop",))

    def close(self) -> None:
        self.calls.append(("close",))


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.cameras = [{"Model": "imx708", "Num": 0}]
    FakePicamera2.image = load_rgb(shared_path("images", "coral_squat.bmp"))
    FakePicamera2.instances = []
    return FakePicamera2


def test_picamera_takes_rgb_frames_as_captured(fake_picamera2: type[FakePicamera2]) -> None:
    src = PiCameraSource(width=640, height=480, fps=25)
    with src:
        frames = []
        for _ in range(3):
            frames.append(src.read())
            assert frames[-1].image is fake_picamera2.instances[0].last_array  # no second copy
    cam = fake_picamera2.instances[0]
    names = [c[0] for c in cam.calls]
    assert names == ["init", "create_video_configuration", "configure", "start", "stop", "close"]
    _, main, controls = cam.calls[1]
    assert main == {"size": (640, 480), "format": "BGR888"} and controls == {"FrameRate": 25.0}
    assert [f.index for f in frames] == [0, 1, 2]
    np.testing.assert_array_equal(frames[0].image, fake_picamera2.image)  # R, G, B as stored


def _read(cam: FakePicamera2, read, frames: int, copy: tuple[float, float],  # type: ignore[no-untyped-def]
          work: tuple[float, float], seed: int = 7) -> None:
    """``frames`` reads, each copy taking ``copy`` s and followed by ``work`` s (uniform
    ranges, seeded): a capture thread on a busy Pi."""
    rng = random.Random(seed)
    for _ in range(frames):
        cam.copy_time = rng.uniform(*copy)
        read()
        cam.advance(rng.uniform(*work))


def _fake_camera(buffers: int, queue: bool = True) -> FakePicamera2:
    cam = FakePicamera2(period=1 / 30)
    cam.configure(cam.create_video_configuration({"size": (640, 480), "format": "BGR888"}, {},
                                                 buffer_count=buffers, queue=queue))
    cam.start()
    return cam


@pytest.mark.parametrize("copy, work", [
    ((0.001, 0.003), (0.025, 0.029)),  # a reader that keeps up with 30 fps
    ((0.001, 0.012), (0.005, 0.045)),  # an irregular one, sometimes slower than the camera
    ((0.036, 0.036), (0.005, 0.020)),  # copies longer than a frame (big frames, slow memory)
])
def test_picamera_configuration_keeps_the_camera_fed(fake_picamera2: type[FakePicamera2],
                                                     copy: tuple[float, float],
                                                     work: tuple[float, float]) -> None:
    """However the reader behaves, the camera always has a free buffer for its next frame
    (none lost), and a reader that keeps up gets every frame the camera makes."""
    src = PiCameraSource(width=640, height=480, fps=30)
    with src:
        cam = fake_picamera2.instances[0]
        _read(cam, src.read, 400, copy, work)
    assert cam.dropped == 0
    if copy[1] + work[1] < cam.period:
        first = cam.delivered[0]
        assert cam.delivered == list(range(first, first + 400))  # every frame, in order


@pytest.mark.parametrize("buffers, queue, copy, work", [
    (1, False, (0.001, 0.003), (0.025, 0.029)),  # one buffer: every other frame (picamera2#46)
    (2, True, (0.001, 0.012), (0.005, 0.045)),   # the old configuration, an irregular reader
    (2, True, (0.036, 0.036), (0.005, 0.020)),
    (3, True, (0.036, 0.036), (0.005, 0.020)),   # three: short while a long copy holds one
])
def test_the_fake_camera_loses_frames_with_fewer_buffers(
        fake_picamera2: type[FakePicamera2], buffers: int, queue: bool,
        copy: tuple[float, float], work: tuple[float, float]) -> None:
    """The model behind the test above can fail: fewer buffers starve the camera (frames
    it never makes), and the reader gets fewer frames per second than with four."""
    starved, fed = _fake_camera(buffers, queue), _fake_camera(4)
    for cam in (starved, fed):
        _read(cam, cam.capture_array, 400, copy, work)
    assert starved.dropped > 0.04 * starved.sequence and fed.dropped == 0
    assert len(starved.delivered) / starved.now < len(fed.delivered) / fed.now


def test_auto_prefers_the_pi_camera(fake_picamera2: type[FakePicamera2]) -> None:
    with open_source("auto", width=320, height=240, fps=30) as src:
        frame = src.read()
    assert src.is_live and src.name == "picamera:0"
    assert frame is not None and frame.image.shape == fake_picamera2.image.shape


def test_picamera_missing_module_names_apt_package_and_venv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError) as info:
        PiCameraSource().open()
    msg = str(info.value)
    assert msg == MISSING_MODULE
    assert "sudo apt install python3-picamera2" in msg and "--system-site-packages" in msg


def test_picamera_no_camera_hints_at_cable_and_rpicam(fake_picamera2: type[FakePicamera2]) -> None:
    fake_picamera2.cameras = []
    with pytest.raises(SourceError, match="ribbon cable.*rpicam-hello --list-cameras"):
        PiCameraSource().open()
    assert fake_picamera2.instances == []  # never tried to open a camera


@pytest.mark.picamera
def test_real_pi_camera_delivers_frames() -> None:
    pytest.importorskip("picamera2")
    with PiCameraSource(width=640, height=480, fps=30) as src:
        frames = [src.read() for _ in range(5)]
    assert all(f is not None and f.image.shape == (480, 640, 3) for f in frames)


# --- reconnect with backoff ----------------------------------------------------------

def test_reconnect_reopens_a_failed_camera_with_exponential_backoff(tmp_path: Path) -> None:
    video = shared_path("videos", "mmpose_demo.mp4")  # 5 frames, then the "camera" fails
    device = tmp_path / "cam0.mp4"
    device.symlink_to(video)
    src = ReconnectingSource(lambda: OpenCVSource(str(device), live=True),
                             initial_delay=0.02, max_delay=0.5, factor=2.0)
    src.open()
    device.unlink()  # unplugged: reopening fails until it is back
    replug = threading.Timer(0.25, lambda: device.symlink_to(video))
    replug.start()
    try:
        frames = [src.read() for _ in range(8)]
    finally:
        replug.cancel()
        src.close()
    assert all(f is not None for f in frames)
    assert [f.index for f in frames] == list(range(8))
    assert src.reconnects == 1
    waits = list(src.backoffs)
    assert len(waits) >= 3 and waits[:3] == [0.02, 0.04, 0.08]
    assert sum(waits) >= 0.25 - 0.02
    np.testing.assert_array_equal(frames[5].image, frames[0].image)  # the reopened stream


def test_interrupt_ends_a_backoff_wait_at_once(tmp_path: Path) -> None:
    device = tmp_path / "cam0.mp4"
    device.symlink_to(shared_path("videos", "mmpose_demo.mp4"))
    src = ReconnectingSource(lambda: OpenCVSource(str(device), live=True),
                             initial_delay=5.0, max_delay=5.0)
    src.open()
    device.unlink()
    for _ in range(5):
        assert src.read() is not None
    threading.Timer(0.1, src.interrupt).start()
    t0 = time.monotonic()
    assert src.read() is None
    assert time.monotonic() - t0 < 1.0
    src.close()


def test_first_open_failure_is_reported_not_retried(tmp_path: Path) -> None:
    src = ReconnectingSource(lambda: OpenCVSource(str(tmp_path / "gone.mp4"), live=True))
    with pytest.raises(SourceError, match="cannot open video source"):
        src.open()


@pytest.mark.parametrize("body,expected", [
    ("raise ValueError('numpy.dtype size changed, may indicate binary incompatibility')",
     "pip install --force-reinstall simplejpeg"),
    ("raise ImportError('numpy.core.multiarray failed to import')", "pip install --force-reinstall simplejpeg"),
    ("import libcamera_not_here", "picamera2 cannot be imported: No module named 'libcamera_not_here'"),
])
def test_picamera_broken_install_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          body: str, expected: str) -> None:
    """A picamera2 that is present but fails to import (the numpy 1/2 clash of Debian's
    simplejpeg in a venv, or a missing libcamera binding) gets its own fix, not 'install it'."""
    pkg = tmp_path / "picamera2"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(body + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    with pytest.raises(SourceError) as info:
        PiCameraSource().open()
    assert expected in str(info.value) and "\n" not in str(info.value)
