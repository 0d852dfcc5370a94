"""One parser for ``--source`` values, used by the sources, the config checks and doctor."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgepose.core.errors import SourceError
from edgepose.core.imageio import IMAGE_SUFFIXES
from edgepose.core.limits import check_file

SourceKind = Literal["auto", "picamera", "webcam", "stream", "video", "images"]
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp")
SOURCE_HELP = ("auto (Pi camera, else the first webcam), picamera[:N], a webcam index or "
               "/dev/videoN, an rtsp:// or http:// URL, a video file (or file:// URL), or an "
               "image file/folder")
_PICAM = re.compile(r"^(?:picamera|picam|libcamera)(?::(\d+))?$")


@dataclass(frozen=True)
class SourceSpec:
    """What a ``--source`` value names.

    ``target``: the camera number (picamera), the index or device path (webcam), the URL
    (stream) or the local path (video, images; a ``file://`` URL becomes its path).
    """

    kind: SourceKind
    target: int | str
    text: str

    @property
    def is_file(self) -> bool:
        return self.kind in ("video", "images")

    @property
    def is_live(self) -> bool:
        return self.kind in ("auto", "picamera", "webcam", "stream")

    @property
    def path(self) -> Path:
        if not self.is_file:
            raise ValueError(f"source {self.text} is not a file")
        return Path(str(self.target)).expanduser()

    def check_exists(self) -> None:
        """SourceError when a file source or a /dev/video node is missing."""
        if self.is_file:
            p = self.path
            if not p.exists():
                raise SourceError(f"source file {self.text} not found: pass an existing video, "
                                  f"image or folder, or {SOURCE_HELP}")
            if p.is_dir():
                return
            st = check_file(p, "source file", SourceError, fix="pass a video, image or folder")
            if st.st_size == 0:
                raise SourceError(f"source file {self.text} is empty: pass a video, image or folder")
        elif self.kind == "webcam" and isinstance(self.target, str) and not Path(self.target).exists():
            raise SourceError(f"webcam {self.target} not found: plug it in, check `ls /dev/video*`, "
                              "or pass another --source")


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def parse_source(spec: str | int) -> SourceSpec:
    """Classify a ``--source`` value (see ``SOURCE_HELP``); SourceError when it cannot be one."""
    text = str(spec).strip()
    if not text:
        raise SourceError(f"source is empty: pass {SOURCE_HELP}")
    if text == "auto":
        return SourceSpec("auto", text, text)
    m = _PICAM.match(text)
    if m:
        return SourceSpec("picamera", int(m.group(1) or 0), text)
    if text.isdigit():
        return SourceSpec("webcam", int(text), text)
    if text.startswith("/dev/video"):
        return SourceSpec("webcam", text, text)
    scheme, sep, _ = text.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme == "file":
            path = urllib.parse.unquote(urllib.parse.urlparse(text).path)
            return _file_spec(path, text)
        if scheme in STREAM_SCHEMES:
            return SourceSpec("stream", text, text)
        raise SourceError(f"source {text}: scheme {scheme}:// is not supported; use one of "
                          f"{', '.join(s + '://' for s in STREAM_SCHEMES)} or file://")
    return _file_spec(text, text)


def _file_spec(path: str, text: str) -> SourceSpec:
    p = Path(path).expanduser()
    kind: SourceKind = "images" if p.is_dir() or is_image_path(p) else "video"
    return SourceSpec(kind, str(p), text)
