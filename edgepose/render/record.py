"""Write annotated frames to an MP4 file (``--record``) or to numbered images
(``--snapshot-every N DIR``). Both take RGB uint8 frames at source resolution."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from edgepose.errors import ConfigError, RenderError
from edgepose.render.draw import import_cv2

SNAPSHOT_FORMATS = ("jpg", "png")


class VideoRecorder:
    """MP4 (``mp4v``) writer; opened on the first frame, whose size fixes the video's."""

    def __init__(self, path: Path | str, fps: float = 30.0) -> None:
        self.path = Path(path)
        if not fps > 0:
            raise ConfigError(f"record fps {fps!r} must be a positive number of frames per second")
        if self.path.suffix.lower() != ".mp4":
            raise ConfigError(f"record file {self.path}: expected a .mp4 file name")
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"record file {self.path}: folder {self.path.parent} does not exist; create it first"
            )
        if self.path.is_dir():
            raise ConfigError(f"record file {self.path} is a directory; pass a .mp4 file name")
        try:  # fail now, not at the first frame after a long start-up
            tempfile.TemporaryFile(dir=self.path.parent).close()
        except OSError as err:
            raise ConfigError(f"record file {self.path}: cannot write into {self.path.parent} "
                              f"({err.strerror}); pass a writable folder") from None
        self.fps = float(fps)
        self.frames = 0
        self.size: tuple[int, int] | None = None  # (width, height)
        self._writer: Any = None

    def write(self, frame: npt.NDArray[np.uint8]) -> None:
        """Append one RGB frame; frames of another size are resized to the first one's."""
        cv2 = import_cv2()
        h, w = frame.shape[:2]
        if self._writer is None:
            writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not writer.isOpened():
                raise RenderError(
                    f"record file {self.path}: OpenCV cannot write an mp4v video there; "
                    "check the folder is writable and OpenCV has video support"
                )
            self._writer, self.size = writer, (w, h)
        if self.size != (w, h):
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        """Finalise the file (safe to call twice)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class SnapshotWriter:
    """Saves every ``every``-th frame it is given (the N-th, 2N-th, ...) into ``folder``
    as ``snapshot_<index>.<fmt>``, index counting frames from 0."""

    def __init__(self, folder: Path | str, every: int, fmt: str = "jpg") -> None:
        if not isinstance(every, int) or every < 1:
            raise ConfigError(f"snapshot_every {every!r} must be a whole number of frames >= 1")
        if fmt not in SNAPSHOT_FORMATS:
            raise ConfigError(f"snapshot format {fmt!r}: expected one of {', '.join(SNAPSHOT_FORMATS)}")
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(f"snapshot folder {self.folder}: cannot create it ({err.strerror})") from None
        self.every, self.fmt = every, fmt
        self.seen = 0
        self.saved: list[Path] = []

    def offer(self, frame: Callable[[], npt.NDArray[np.uint8]]) -> Path | None:
        """Count a frame; when its turn has come, build it (``frame()``, so unsaved frames
        are never annotated) and save it. Returns the path written, if any."""
        self.seen += 1
        if self.seen % self.every:
            return None
        return self.save(frame(), self.seen - 1)

    def save(self, frame: npt.NDArray[np.uint8], index: int) -> Path:
        cv2 = import_cv2()
        path = self.folder / f"snapshot_{index:06d}.{self.fmt}"
        if not cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise RenderError(f"snapshot {path}: could not write the image; check the folder is writable")
        self.saved.append(path)
        return path
