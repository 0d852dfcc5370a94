"""The Raspberry Pi camera through picamera2 (imported only when this source is opened).

Configured from how picamera2 handles its buffers (its request queue, picamera2#46):

- ``BUFFER_COUNT`` buffers with ``queue=True``. picamera2 keeps the newest finished frame
  queued for the next capture, and by the time a frame is finished the camera is
  already writing the next one, so it needs a free buffer at that instant, else that
  frame is never made. With two (picamera2#46) one sits in the queue and one is being
  written: a reader that is late, even once, costs the camera frames (up to every
  other one). Three cover the queued one, the one being written and the one
  ``capture_array`` is copying out of; four also cover a copy that lasts longer than a
  frame (a big frame on a busy Pi). tests/edgepose/sources/test_picamera.py models this.
- ``"BGR888"``, which picamera2 stores R, G, B in memory (its PIL mode "RGB"; "RGB888" is
  B, G, R): the frame is RGB as captured, so ``capture_array``'s one copy (which gives the
  buffer straight back to the camera) is the only one; "RGB888" needed a channel flip
  and a second copy of every frame.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from edgepose.core.errors import SourceError
from edgepose.sources.base import Frame, Source

log = logging.getLogger(__name__)

MISSING_MODULE = (
    "picamera2 is not installed: run `sudo apt install python3-picamera2` and use a venv "
    "made with `python3 -m venv --system-site-packages` so that it can see the apt package"
)
NUMPY_MISMATCH = (
    "picamera2 is installed but its apt-built simplejpeg does not match this venv's numpy "
    "({err}); run `pip install --force-reinstall simplejpeg` in the venv (deploy/install-pi.sh does)"
)
NO_CAMERA = (
    "no Raspberry Pi camera found: check the ribbon cable (contacts facing the right way, "
    "latch closed) and that `rpicam-hello --list-cameras` lists it"
)


def import_picamera2() -> Any:
    """The ``picamera2`` module, or ``SourceError`` naming the apt package to install."""
    try:
        import picamera2
    except ModuleNotFoundError as err:
        if err.name != "picamera2":  # picamera2 is there, one of its imports is not
            raise SourceError(f"picamera2 cannot be imported: {err}") from None
        raise SourceError(MISSING_MODULE) from None
    except (ImportError, ValueError) as err:
        # numpy 2 in the venv against Debian's numpy-1 builds: "numpy.dtype size changed"
        # (ValueError) or "numpy.core.multiarray failed to import" (ImportError).
        raise SourceError(NUMPY_MISMATCH.format(err=str(err).splitlines()[0])) from None
    return picamera2


def camera_count(module: Any) -> int:
    """How many cameras libcamera reports (0 when the query itself fails)."""
    try:
        return len(module.Picamera2.global_camera_info())
    except Exception as err:  # libcamera raises various errors when no camera stack exists
        log.debug("global_camera_info failed: %s", err)
        return 0


BUFFER_COUNT = 4
PIXEL_FORMAT = "BGR888"  # R, G, B bytes: what the pipeline takes, as it comes


class PiCameraSource(Source):
    """Camera ``camera_num``'s main stream, RGB at ``width`` x ``height`` and ``fps``."""

    is_live = True

    def __init__(self, *, width: int = 640, height: int = 480, fps: float = 30.0,
                 camera_num: int = 0) -> None:
        super().__init__()
        self.width, self.height, self.fps, self.camera_num = width, height, fps, camera_num
        self.name = f"picamera:{camera_num}"
        self._cam: Any = None

    def open(self) -> None:
        module = import_picamera2()
        count = camera_count(module)
        if count <= self.camera_num:
            raise SourceError(NO_CAMERA if count == 0 else
                              f"Pi camera {self.camera_num} not found ({count} camera(s) present): "
                              f"pass --source picamera:0 to picamera:{count - 1}")
        try:
            cam = module.Picamera2(self.camera_num)
        except (RuntimeError, IndexError) as err:
            raise SourceError(f"cannot open Pi camera {self.camera_num}: {err}; "
                              "is another program (rpicam-*, a second edgepose) using it?") from None
        try:
            config = cam.create_video_configuration(
                main={"size": (int(self.width), int(self.height)), "format": PIXEL_FORMAT},
                controls={"FrameRate": float(self.fps)},
                buffer_count=BUFFER_COUNT, queue=True,
            )
            cam.configure(config)
            cam.start()
        except Exception as err:
            cam.close()
            raise SourceError(f"cannot start Pi camera {self.camera_num} at "
                              f"{self.width}x{self.height} @ {self.fps} fps: {err}") from None
        self._cam = cam
        log.info("opened Pi camera %d at %dx%d @ %.1f fps", self.camera_num, self.width,
                 self.height, self.fps)

    def read(self) -> Frame | None:
        if self._cam is None:
            raise SourceError(f"{self.name} is not open: call open() first")
        try:
            array = self._cam.capture_array("main")
        except Exception as err:
            raise SourceError(f"{self.name} stopped delivering frames: {err}") from None
        timestamp = time.monotonic()
        # "BGR888" is R, G, B in memory, and capture_array already copied it out of the
        # camera's buffer: the frame as it is, no second copy.
        return self._frame(array, timestamp)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()
