"""The Pi camera through a fake picamera2 module (the real one only on a Pi)."""

from __future__ import annotations

import random
import sys
import types

import numpy as np
import pytest

from edgepose.core.errors import SourceError
from edgepose.sources import open_source
from edgepose.sources.picamera import MISSING_MODULE, PiCameraSource
from tests.conftest import load_rgb, shared_path

cv2 = pytest.importorskip("cv2")

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
