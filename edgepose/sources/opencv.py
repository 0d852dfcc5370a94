"""Webcams (V4L2 ``/dev/videoN`` or an index), video files and RTSP/HTTP streams through OpenCV.

Live sources (cameras, streams) are opened and read on a helper thread, so that
``interrupt()`` ends a blocked ``open()`` or ``read()`` within a poll interval (a stream
that never answers, a camera unplugged mid-read): the caller returns, and the helper
finishes the abandoned call on its own (streams are bounded by their timeouts) and then
releases the capture. Video files are read directly and checked at their end (see
``OpenCVSource._check_complete``). Frames come out as a player shows them: a rotation tag
(the display matrix of phone videos) is applied, whatever OpenCV's own default is.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgepose.core.errors import SourceError
from edgepose.core.limits import check_pixels
from edgepose.core.opencv import import_cv2
from edgepose.sources.base import Frame, Source
from edgepose.sources.spec import STREAM_SCHEMES

log = logging.getLogger(__name__)

#: seconds a network stream may take to answer when opened, and to deliver a frame
STREAM_TIMEOUT_S = 5.0
#: how often a caller waiting on the helper thread looks at the interrupt flag
POLL_S = 0.02
#: a file may decode this share of its declared frame count less before it counts as
#: truncated (containers that only estimate the count from the duration)
COUNT_SLACK = 0.01
#: ... and its last frame may start this long (or 2 % of the duration) before the end the
#: container declares: a variable frame rate (MKV, WebM) makes the count an estimate
TIME_SLACK_S = 0.5


def _quiet_opencv(cv2: Any) -> None:
    """Keep OpenCV's and its FFmpeg's messages (``partial file``, decoder errors, stream
    timeouts) off stderr: our own warning says what happened. Left alone at DEBUG level
    or when the user set OpenCV's variables."""
    if log.isEnabledFor(logging.DEBUG):
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read when OpenCV starts FFmpeg
    if "OPENCV_LOG_LEVEL" not in os.environ:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def is_stream_url(spec: str) -> bool:
    scheme, sep, _ = spec.partition("://")
    return bool(sep) and scheme.lower() in STREAM_SCHEMES


class _Job:
    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as err:  # handed to the caller
            self.error = err
        finally:
            self.done.set()


class _Helper:
    """One daemon thread running blocking calls one at a time, so a caller can give up
    waiting. A daemon, unlike a ``ThreadPoolExecutor``'s worker: the interpreter does
    not wait for an abandoned call at exit."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()
        self.busy = False

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.run()

    def call(self, fn: Callable[[], Any], interrupt: threading.Event) -> tuple[bool, Any]:
        """``(True, fn())`` run on the helper (its exception re-raised here), or
        ``(False, None)`` as soon as ``interrupt`` is set; the call then goes on alone."""
        if interrupt.is_set():
            return False, None
        job = _Job(fn)
        self.busy = True
        self._jobs.put(job)
        while not job.done.wait(POLL_S):
            if interrupt.is_set():
                return False, None
        self.busy = False
        if job.error is not None:
            raise job.error
        return True, job.result

    def stop(self, last: Callable[[], Any], wait: float) -> None:
        """Run ``last`` after the call in progress, then end the thread; wait up to
        ``wait`` s for it unless a call was abandoned (it may be blocked for long)."""
        job = _Job(last)
        self._jobs.put(job)
        self._jobs.put(None)
        if not self.busy:
            job.done.wait(wait)


class OpenCVSource(Source):
    """A camera, video file or network stream read with ``cv2.VideoCapture``.

    ``target`` is a camera index, a ``/dev/videoN`` path, a URL or a video file path.
    Cameras and URLs are live; for cameras ``width``, ``height`` and ``fps`` are requested
    from the driver (it may pick the nearest mode). A stream must answer within
    ``timeout`` seconds when opened and deliver each frame within as long. Video files
    keep their own size; ``loop`` restarts them at the end and ``realtime`` plays them at
    their frame rate instead of as fast as possible. A file that ends before the frame
    count its container declares (truncated, or a frame the decoder gave up on) raises
    ``SourceError`` after its last good frame, or with ``allow_truncated`` ends (or loops)
    with one warning.
    """

    def __init__(self, target: int | str | Path, *, width: int | None = None,
                 height: int | None = None, fps: float | None = None, loop: bool = False,
                 realtime: bool = False, live: bool | None = None,
                 allow_truncated: bool = False, timeout: float = STREAM_TIMEOUT_S) -> None:
        super().__init__()
        self.target = target
        self.width, self.height, self.fps = width, height, fps
        self.loop, self.realtime = loop, realtime
        self.allow_truncated, self.timeout = allow_truncated, timeout
        spec = str(target)
        self.is_live = live if live is not None else (
            isinstance(target, int) or spec.startswith("/dev/video") or is_stream_url(spec))
        self.name = spec
        self.truncated = False  # the file ended short (see allow_truncated)
        self._cap: Any = None   # live sources: only touched on the helper thread
        self._cv2: Any = None
        self._helper: _Helper | None = None
        self._opened = False
        self._file_fps = 0.0
        self._declared = 0  # frames the file's container declares (0: unknown)
        self._last_ms = 0.0  # timestamp of the last frame read from the file
        self._rotate: int | None = None  # cv2.rotate code for a rotation tag we apply
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
        cv2 = self._cv2 = import_cv2(SourceError)
        spec = str(self.target)
        if not self.is_live and not Path(spec).is_file():
            raise SourceError(f"video file {spec} not found: pass an existing file, a camera "
                              "index, /dev/videoN or a URL with --source")
        _quiet_opencv(cv2)
        if self.is_live:
            self._helper = _Helper(f"edgepose-capture-io {spec}")
            try:
                done, _ = self._helper.call(self._open_capture, self._interrupt)
            except BaseException:
                self.close()
                raise
            if not done:
                self.close()
                raise SourceError(f"opening {spec} was interrupted (stop requested)")
        else:
            self._open_capture()
        self._opened = True
        self._restart_clock()

    def _open_capture(self) -> None:
        """Open and configure the capture (on the helper thread for live sources)."""
        cv2, spec = self._cv2, str(self.target)
        if is_stream_url(spec):
            ms = int(self.timeout * 1000)
            cap = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms,
                                                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            if isinstance(self.target, int) or spec.startswith("/dev/video"):
                hint = ("check that the webcam is plugged in, that `v4l2-ctl --list-devices` "
                        "shows it and that you are in the 'video' group")
            elif is_stream_url(spec):
                hint = (f"no stream within {self.timeout:g} s; check the URL, the network "
                        "and the stream credentials")
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
        else:
            self._declared = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
        self._rotate = _rotation(cv2, cap)
        try:
            check_pixels(int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                         f"video source {spec}", SourceError,
                         "pick a smaller camera mode or scale the video down first")
        except SourceError:
            cap.release()
            raise
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._file_fps = fps if 0 < fps < 1e4 else 0.0  # a container's nonsense is 'unknown'
        self._cap = cap
        log.info("opened %s (%dx%d @ %.1f fps)", spec, int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), self._file_fps)

    def _restart_clock(self) -> None:
        self._t0 = time.monotonic()
        self._pos = 0

    def read(self) -> Frame | None:
        if self._interrupt.is_set():
            return None
        if not self._opened:
            raise SourceError(f"video source {self.name} is not open: call open() first")
        if self._helper is not None:
            done, bgr = self._helper.call(self._grab, self._interrupt)
            if not done:
                return None
        else:
            bgr = self._grab()
        if bgr is None:
            return None
        if self.realtime and not self.is_live and self._file_fps > 0:
            due = self._t0 + self._pos / self._file_fps
            delay = due - time.monotonic()
            if delay > 0 and self._interrupt.wait(delay):
                return None
        self._pos += 1
        if self._rotate is not None:
            bgr = self._cv2.rotate(bgr, self._rotate)
        rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
        return self._frame(rgb, time.monotonic())

    def _grab(self) -> Any:
        """The next BGR image, or None at the end of a file (on the helper if live)."""
        ok, bgr = self._cap.read()
        if ok:
            if not self.is_live:
                self._last_ms = float(self._cap.get(self._cv2.CAP_PROP_POS_MSEC) or 0.0)
            return bgr
        if self.is_live:
            raise SourceError(f"video source {self.name} stopped delivering frames")
        self._check_complete()
        if self.loop and self._pos > 0:
            self._cap.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            self._restart_clock()
            ok, bgr = self._cap.read()
            if ok:
                return bgr
        return None

    def _check_complete(self) -> None:
        """At a file's end: did it deliver the frames its container declares? A count
        that falls short is evidence only when the last frame is also short of the
        duration the container declares: MKV and WebM declare no count, OpenCV estimates
        it from the duration and the nominal rate, too high for a variable frame rate."""
        got, declared = self._pos, self._declared
        if not declared or declared - got <= max(1, int(declared * COUNT_SLACK)):
            return
        if got and self._file_fps > 0:
            duration = declared / self._file_fps
            if self._last_ms / 1e3 >= duration - max(TIME_SLACK_S, 0.02 * duration):
                return
        if got:
            at = f" at {self._last_ms / 1e3:.2f} s"
            last = f"frame {got - 1}{at}"
        else:
            last = "none"
        text = (f"video {self.name} is truncated or damaged: it ended after {got} of the "
                f"{declared} frames it declares (last good frame: {last})")
        if not self.allow_truncated:
            raise SourceError(f"{text}; the frames before it were processed; pass "
                              "--allow-truncated to accept a partial video")
        if not self.truncated:
            log.warning("%s; going on as --allow-truncated asks", text)
        self.truncated = True

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def close(self) -> None:
        self._opened = False
        helper, self._helper = self._helper, None
        if helper is not None:  # the capture belongs to the helper thread
            helper.stop(self._release, wait=1.0)
        else:
            self._release()


def _rotation(cv2: Any, cap: Any) -> int | None:
    """The ``cv2.rotate`` code that shows ``cap``'s frames upright (its rotation tag), or
    None. OpenCV's own rotation (on by default only in some versions) is switched off
    so that it happens exactly once, here; where it cannot be switched off it is kept."""
    meta = int(cap.get(cv2.CAP_PROP_ORIENTATION_META) or 0) % 360
    codes = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}
    if meta not in codes:
        return None
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)
    if cap.get(cv2.CAP_PROP_ORIENTATION_AUTO):
        return None  # OpenCV rotates, and will not stop
    return codes[meta]
