"""Frame sources: Pi camera, webcams, video files, streams and images behind one interface.

``open_source(spec)`` picks the backend from a ``--source`` value and returns it opened.
"""

from __future__ import annotations

import glob
import logging
import re
from pathlib import Path

from edgepose.errors import SourceError
from edgepose.sources.base import Frame, Source
from edgepose.sources.images import ImageSource, is_image_file
from edgepose.sources.opencv import OpenCVSource, is_stream_url
from edgepose.sources.reconnect import ReconnectingSource

__all__ = ["Frame", "Source", "ImageSource", "OpenCVSource", "ReconnectingSource",
           "make_source", "open_source", "find_webcams", "SOURCE_HELP"]

log = logging.getLogger(__name__)

SOURCE_HELP = ("auto (Pi camera, else the first webcam), picamera[:N], a webcam index or "
               "/dev/videoN, an rtsp:// or http:// URL, a video file, or an image file/folder")
_PICAM = re.compile(r"^(?:picamera|picam|libcamera)(?::(\d+))?$")


def find_webcams() -> list[str]:
    """The V4L2 capture nodes present, in number order (``/dev/video0`` first)."""
    nodes = glob.glob("/dev/video[0-9]*")
    return sorted(nodes, key=lambda p: int(re.sub(r"\D", "", p) or 0))


def _picamera_present() -> bool:
    try:
        import picamera2  # noqa: F401
    except ImportError:
        return False
    from edgepose.sources.picamera import camera_count, import_picamera2

    return camera_count(import_picamera2()) > 0


def make_source(spec: str, *, width: int = 640, height: int = 480, fps: float = 30.0,
                loop: bool = False, realtime: bool = False,
                allow_truncated: bool = False) -> Source:
    """The (unopened) source for ``spec`` (see ``SOURCE_HELP``). Live cameras and streams
    come wrapped in ``ReconnectingSource`` so that a failure mid-run is retried; a video
    file that ends short of its declared frame count raises ``SourceError`` after its
    last good frame unless ``allow_truncated`` (then one warning)."""
    spec = str(spec).strip()
    if spec == "auto":
        if _picamera_present():
            spec = "picamera"
        else:
            cams = find_webcams()
            if not cams:
                raise SourceError(
                    "--source auto found no camera: no Pi camera (check the ribbon cable and "
                    "`rpicam-hello --list-cameras`) and no /dev/video* webcam; plug one in "
                    "or pass a video file with --source")
            spec = cams[0]
        log.info("--source auto picked %s", spec)
    m = _PICAM.match(spec)
    if m:
        from edgepose.sources.picamera import PiCameraSource

        num = int(m.group(1) or 0)
        return ReconnectingSource(
            lambda: PiCameraSource(width=width, height=height, fps=fps, camera_num=num))
    if spec.isdigit() or spec.startswith("/dev/video") or is_stream_url(spec):
        target: int | str = int(spec) if spec.isdigit() else spec
        if isinstance(target, str) and target.startswith("/dev/") and not Path(target).exists():
            raise SourceError(f"webcam {target} not found: plug it in or pick one of "
                              f"{', '.join(find_webcams()) or '(none present)'}")
        return ReconnectingSource(
            lambda: OpenCVSource(target, width=width, height=height, fps=fps, live=True))
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"source {spec} not found: pass {SOURCE_HELP}")
    if path.is_dir() or is_image_file(path):
        return ImageSource(path, loop=loop, fps=fps, realtime=realtime)
    return OpenCVSource(path, loop=loop, realtime=realtime, live=False,
                        allow_truncated=allow_truncated)


def open_source(spec: str, *, width: int = 640, height: int = 480, fps: float = 30.0,
                loop: bool = False, realtime: bool = False,
                allow_truncated: bool = False) -> Source:
    """``make_source(...)`` opened: ready for ``read()``; raises ``SourceError`` with a fix."""
    source = make_source(spec, width=width, height=height, fps=fps, loop=loop,
                         realtime=realtime, allow_truncated=allow_truncated)
    source.open()
    return source
