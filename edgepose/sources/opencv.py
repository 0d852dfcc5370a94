"""Webcams (V4L2 ``/dev/videoN`` or an index), video files and RTSP/HTTP streams through OpenCV."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from edgepose.errors import SourceError
from edgepose.sources.base import Frame, Source
from edgepose.sources.spec import STREAM_SCHEMES

log = logging.getLogger(__name__)



def _import_cv2() -> Any:
    try:
        import cv2
    except ImportError as err:
        raise SourceError(
            f"OpenCV is not installed ({err}); install it with "
            "`pip install 'edgepose[pi]'` (or opencv-python-headless)"
        ) from None
    return cv2


def is_stream_url(spec: str) -> bool:
    scheme, sep, _ = spec.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


class OpenCVSource(Source):
    """A camera, video file or network stream read with ``cv2.VideoCapture``.

    ``target`` is a camera index, a ``/dev/videoN`` path, a URL or a video file path.
    Cameras and URLs are live; for cameras ``width``, ``height`` and ``fps`` are requested
    from the driver (it may pick the nearest mode). Video files keep their own size;
    ``loop`` restarts them at the end and ``realtime`` plays them at their frame rate
    instead of as fast as possible.
    """

    def __init__(self, target: int | str | Path, *, width: int | None = None,
                 height: int | None = None, fps: float | None = None, loop: bool = False,
                 realtime: bool = False, live: bool | None = None) -> None:
        super().__init__()
        self.target = target
        self.width, self.height, self.fps = width, height, fps
        self.loop, self.realtime = loop, realtime
        spec = str(target)
        self.is_live = live if live is not None else (
            isinstance(target, int) or spec.startswith("/dev/video") or is_stream_url(spec))
        self.name = spec
        self._cap: Any = None
        self._cv2: Any = None
        self._file_fps = 0.0
        self._t0 = 0.0      # monotonic time when file frame 0 is due (realtime pacing)
        self._pos = 0       # frames read from the file since the last (re)start

    @property
    def paced(self) -> bool:
        return self.is_live or self.realtime

    @property
    def frame_rate(self) -> float:
        """The stream's own frame rate as OpenCV reports it (0 when unknown or not open)."""
        return self._file_fps

    def open(self) -> None:
        cv2 = self._cv2 = _import_cv2()
        spec = str(self.target)
        if not self.is_live and not Path(spec).is_file():
            raise SourceError(f"video file {spec} not found: pass an existing file, a camera "
                              "index, /dev/videoN or a URL with --source")
        self._interrupt.clear()
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if isinstance(self.target, int) or spec.startswith("/dev/video"):
                hint = ("check that the webcam is plugged in, that `v4l2-ctl --list-devices` "
                        "shows it and that you are in the 'video' group")
            elif is_stream_url(spec):
                hint = "check the URL, the network and the stream credentials"
            else:
                hint = "the file is not a video OpenCV can decode (try an .mp4 with H.264)"
            raise SourceError(f"cannot open video source {spec}: {hint}")
        if self.is_live:
            if self.width and self.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing stale frames
        self._file_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._cap = cap
        self._restart_clock()
        log.info("opened %s (%dx%d @ %.1f fps)", spec, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), self._file_fps)

    def _restart_clock(self) -> None:
        self._t0 = time.monotonic()
        self._pos = 0

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceError(f"video source {self.name} is not open: call open() first")
        cv2 = self._cv2
        ok, bgr = self._cap.read()
        if not ok and not self.is_live and self.loop and self._pos > 0:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._restart_clock()
            ok, bgr = self._cap.read()
        if not ok:
            if self.is_live:
                raise SourceError(f"video source {self.name} stopped delivering frames")
            return None
        if self.realtime and not self.is_live and self._file_fps > 0:
            due = self._t0 + self._pos / self._file_fps
            delay = due - time.monotonic()
            if delay > 0 and self._interrupt.wait(delay):
                return None
        self._pos += 1
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return self._frame(rgb, time.monotonic())

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
