"""An image file or a folder of images as a frame source (tests, demos, batch runs)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edgepose.core.errors import SourceError
from edgepose.core.imageio import IMAGE_SUFFIXES, list_images, probe_image, read_image
from edgepose.sources.base import Frame, Source

log = logging.getLogger(__name__)


#: the image of a frame that could not be read (see ``Frame.error``)
PLACEHOLDER = np.zeros((1, 1, 3), np.uint8)


class ImageSource(Source):
    """The images of ``path`` (one file, or a folder's image files in name order).

    ``loop`` repeats them forever; ``fps`` > 0 with ``realtime`` paces them like a camera.
    A folder's frames carry the file name (``Frame.name``). A folder image that cannot be
    read does not end the run: it is logged once and yields a frame with ``error`` set and
    a 1x1 placeholder image, so its record says why and the next images are processed.
    A single image file that cannot be read is an error at ``open()``, and so is a folder
    none of whose images can be read (``open()`` reads headers until one is good); a
    folder whose images all fail only when decoded ends with ``SourceError`` at its end.
    """

    def __init__(self, path: str | Path, *, loop: bool = False, fps: float = 0.0,
                 realtime: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.name = str(path)
        self.loop, self.fps, self.realtime = loop, fps, realtime
        self._files: list[Path] = []
        self._pos = 0
        self._next_due = 0.0
        self._cached: np.ndarray | None = None
        self._folder = False
        self._warned: set[Path] = set()
        self._good = 0  # frames read without error

    @property
    def paced(self) -> bool:
        return self.realtime and self.fps > 0

    def open(self) -> None:
        if self.path.is_dir():
            files = list_images(self.path)
            if not files:
                raise SourceError(f"image folder {self.path} has no images "
                                  f"({', '.join(IMAGE_SUFFIXES)}): pass another --source")
            _first_readable(self.path, files)
        elif self.path.exists():
            files = [self.path]
            self._cached = read_image(self.path)  # a bad image is an error now, not mid-run
        else:
            raise SourceError(f"image source {self.path} not found: pass an existing image "
                              "file or folder with --source")
        self._files, self._pos, self._folder = files, 0, self.path.is_dir()
        self._next_due = time.monotonic()

    def read(self) -> Frame | None:
        if self._pos >= len(self._files):
            if self._files and self._folder and not self._good:
                raise SourceError(f"image folder {self.path}: none of its {len(self._files)} "
                                  "images could be read (see the warnings); pass another --source")
            if not self.loop or not self._files:
                return None
            self._pos = 0
        path = self._files[self._pos]
        self._pos += 1
        if self.paced:
            delay = self._next_due - time.monotonic()
            if delay > 0 and self._interrupt.wait(delay):
                return None
            self._next_due = max(self._next_due + 1.0 / self.fps, time.monotonic())
        if not self._folder:  # one (looping) image: decoded at open, hand out copies
            assert self._cached is not None
            return self._frame(self._cached.copy(), time.monotonic())
        try:
            image = read_image(path)
        except SourceError as err:
            if path not in self._warned:
                self._warned.add(path)
                log.warning("skipped a bad image: %s", err)
            return self._frame(PLACEHOLDER.copy(), time.monotonic(), name=path.name,
                               error=str(err))
        self._good += 1
        return self._frame(image, time.monotonic(), name=path.name)

    def close(self) -> None:
        self._files = []
        self._cached = None


def _first_readable(folder: Path, files: list[Path]) -> Path:
    """The first of ``files`` whose header is readable; SourceError naming the first
    failure when none is."""
    first: SourceError | None = None
    for path in files:
        try:
            probe_image(path)
            return path
        except SourceError as err:
            first = first or err
    more = f" (and {len(files) - 1} more)" if len(files) > 1 else ""
    raise SourceError(f"image folder {folder} has no readable image: {first}{more}")
