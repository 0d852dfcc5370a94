"""The frame type and the ``Source`` interface every camera, video and image backend follows."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Frame:
    """One captured frame.

    - ``image``: (H, W, 3) uint8 RGB.
    - ``timestamp``: ``time.monotonic()`` seconds when the frame was captured, so that
      capture age and end-to-end latency can be measured against the same clock.
    - ``index``: 0-based count of frames this source produced.
    - ``name``: what the frame came from when that is more than the source (an image
      folder's file name), else "".
    - ``error``: non-empty when this frame could not be read (a damaged image in a
      folder): ``image`` is then a 1x1 placeholder, the pipeline infers nothing and the
      frame's record carries the error, so every input has a record.
    """

    image: npt.NDArray[np.uint8]
    timestamp: float
    index: int
    name: str = ""
    error: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.image.shape[0]), int(self.image.shape[1])


class Source(ABC):
    """A producer of frames: ``open()``, then ``read()`` until it returns None, then ``close()``.

    ``is_live`` sources (cameras, streams) run on their own clock and drop frames nobody
    reads; ``paced`` is true for them and for video files played back in real time, so
    the pipeline keeps only the newest frame. Unpaced sources (a video file read as fast
    as possible, an image folder) are read one frame per processed frame, with none lost.
    """

    name: str = "source"
    is_live: bool = False

    def __init__(self) -> None:
        self._interrupt = threading.Event()
        self._count = 0

    @property
    def paced(self) -> bool:
        return self.is_live

    @abstractmethod
    def open(self) -> None:
        """Acquire the device or file; raises ``SourceError`` with a fix when it cannot."""

    @abstractmethod
    def read(self) -> Frame | None:
        """The next frame, or None at the end of the stream. Raises ``SourceError`` on failure."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file. Safe to call twice."""

    def interrupt(self) -> None:
        """End a waiting ``open()`` or ``read()`` (pacing, reconnect backoff, a stream that
        does not answer) so a stop is fast; safe from a signal handler and other threads.

        It sticks: an interrupted ``read()`` returns None, an interrupted ``open()``
        raises ``SourceError``, and so does every later call.
        """
        self._interrupt.set()

    def _frame(self, image: npt.NDArray[np.uint8], timestamp: float, *, name: str = "",
               error: str = "") -> Frame:
        """Number a new frame; the index counts every frame this source produced."""
        frame = Frame(image=image, timestamp=timestamp, index=self._count, name=name, error=error)
        self._count += 1
        return frame

    def __enter__(self) -> Source:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
