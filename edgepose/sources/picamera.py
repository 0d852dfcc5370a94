"""The Raspberry Pi camera through picamera2 (imported only when this source is opened)."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edgepose.errors import SourceError
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


class PiCameraSource(Source):
    """Camera ``camera_num``'s main stream, RGB888 at ``width`` x ``height`` and ``fps``."""

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
                main={"size": (int(self.width), int(self.height)), "format": "RGB888"},
                controls={"FrameRate": float(self.fps)},
                buffer_count=2,  # few buffers: frames stay fresh instead of queueing up
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
        # picamera2's "RGB888" is stored B, G, R in memory (OpenCV order): flip to RGB.
        rgb = np.ascontiguousarray(np.asarray(array)[..., 2::-1], dtype=np.uint8)
        return self._frame(rgb, timestamp)

    def close(self) -> None:
        cam, self._cam = self._cam, None
        if cam is not None:
            try:
                cam.stop()
            finally:
                cam.close()
