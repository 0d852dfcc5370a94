"""Sources on real videos and images; the Pi camera through a fake picamera2 module."""

from __future__ import annotations

import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest

from edgepose.errors import SourceError
from edgepose.sources import (ImageSource, OpenCVSource, ReconnectingSource, make_source,
                              open_source)
from edgepose.sources.picamera import MISSING_MODULE, PiCameraSource
from tests.conftest import load_rgb, shared_path

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
    """Stands in for picamera2.Picamera2: records calls, returns a real image in the
    B, G, R memory order picamera2 uses for "RGB888"."""

    cameras: list[dict] = [{"Model": "imx708", "Num": 0}]
    image: np.ndarray
    instances: list[FakePicamera2] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.calls: list[tuple] = [("init", camera_num)]
        self.started = False
        FakePicamera2.instances.append(self)

    @staticmethod
    def global_camera_info() -> list[dict]:
        return FakePicamera2.cameras

    def create_video_configuration(self, main: dict, controls: dict, **kw) -> dict:
        self.calls.append(("create_video_configuration", main, controls))
        return {"main": main, "controls": controls, **kw}

    def configure(self, config: dict) -> None:
        self.calls.append(("configure", config))

    def start(self) -> None:
        self.started = True
        self.calls.append(("start",))

    def capture_array(self, name: str = "main") -> np.ndarray:
        assert self.started, "capture before start"
        return np.ascontiguousarray(self.image[..., ::-1])

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


def test_picamera_configures_rgb888_and_returns_rgb(fake_picamera2: type[FakePicamera2]) -> None:
    src = PiCameraSource(width=640, height=480, fps=25)
    with src:
        frames = [src.read() for _ in range(3)]
    cam = fake_picamera2.instances[0]
    names = [c[0] for c in cam.calls]
    assert names == ["init", "create_video_configuration", "configure", "start", "stop", "close"]
    _, main, controls = cam.calls[1]
    assert main == {"size": (640, 480), "format": "RGB888"} and controls == {"FrameRate": 25.0}
    assert [f.index for f in frames] == [0, 1, 2]
    np.testing.assert_array_equal(frames[0].image, fake_picamera2.image)


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
