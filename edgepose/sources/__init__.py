"""Frame sources: Pi camera, webcams, video files, streams and images behind one interface.

``open_source(spec)`` picks the backend from a ``--source`` value and returns it opened.
"""

from __future__ import annotations

import glob
import logging
import re
from pathlib import Path

from edgepose.core.errors import SourceError
from edgepose.sources.base import Frame, Source
from edgepose.sources.images import ImageSource
from edgepose.sources.opencv import OpenCVSource
from edgepose.sources.reconnect import ReconnectingSource
from edgepose.sources.spec import SOURCE_HELP, SourceSpec, parse_source

__all__ = ["Frame", "Source", "ImageSource", "OpenCVSource", "ReconnectingSource",
           "make_source", "open_source", "find_webcams", "parse_source", "SourceSpec", "SOURCE_HELP"]

log = logging.getLogger(__name__)



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
    parsed = parse_source(spec)
    if parsed.kind == "auto":
        if _picamera_present():
            parsed = parse_source("picamera")
        else:
            cams = find_webcams()
            if not cams:
                raise SourceError(
                    "--source auto found no camera: no Pi camera (check the ribbon cable and "
                    "`rpicam-hello --list-cameras`) and no /dev/video* webcam; plug one in "
                    "or pass a video file with --source")
            parsed = parse_source(cams[0])
        log.info("--source auto picked %s", parsed.text)
    if parsed.kind == "picamera":
        from edgepose.sources.picamera import PiCameraSource

        num = int(parsed.target)
        return ReconnectingSource(
            lambda: PiCameraSource(width=width, height=height, fps=fps, camera_num=num))
    if parsed.kind in ("webcam", "stream"):
        if parsed.kind == "webcam" and isinstance(parsed.target, str) and not Path(parsed.target).exists():
            raise SourceError(f"webcam {parsed.target} not found: plug it in or pick one of "
                              f"{', '.join(find_webcams()) or '(none present)'}")
        target = parsed.target
        return ReconnectingSource(
            lambda: OpenCVSource(target, width=width, height=height, fps=fps, live=True))
    parsed.check_exists()
    if parsed.kind == "images":
        return ImageSource(parsed.path, loop=loop, fps=fps, realtime=realtime)
    return OpenCVSource(parsed.path, loop=loop, realtime=realtime, live=False,
                        allow_truncated=allow_truncated)


def open_source(spec: str, *, width: int = 640, height: int = 480, fps: float = 30.0,
                loop: bool = False, realtime: bool = False,
                allow_truncated: bool = False) -> Source:
    """``make_source(...)`` opened: ready for ``read()``; raises ``SourceError`` with a fix."""
    source = make_source(spec, width=width, height=height, fps=fps, loop=loop,
                         realtime=realtime, allow_truncated=allow_truncated)
    source.open()
    return source
