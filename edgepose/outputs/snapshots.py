"""``--snapshot-every N --snapshot-dir DIR``: every Nth annotated frame as a JPEG.

Each snapshot is written to a hidden temporary name and renamed into place, so a kill
or a full disk never leaves a half-written image; a write error removes the partial
file and raises ``OutputError`` naming it. The folder is created at the first snapshot.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from edgepose.core.errors import ConfigError, OutputError, RenderError, describe_error
from edgepose.core.imageio import encode_image
from edgepose.core.opencv import import_cv2
from edgepose.outputs.base import FrameResult, Output
from edgepose.outputs.files import check_writable_folder

SNAPSHOT_FORMATS = ("jpg", "png")


class SnapshotOutput(Output):
    """Saves the N-th, 2N-th, ... frame it is given (frames that could not be read are
    not counted) as ``snapshot_<frame index>.<fmt>`` in the folder ``spec``."""

    kind = "snapshots"
    blocking = True

    def __init__(self, spec: str, *, every: int = 1, keypoint_threshold: float = 0.3,
                 fmt: str = "jpg", quality: int = 90, **_: Any) -> None:
        super().__init__(spec)
        self.folder = Path(spec).expanduser()
        self.every, self.keypoint_threshold = every, keypoint_threshold
        self.fmt, self.quality = fmt, quality
        self.seen = 0
        self.saved: list[Path] = []

    def check(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"snapshot_every {self.every!r} must be a whole number of "
                              "frames >= 1")
        if self.fmt not in SNAPSHOT_FORMATS:
            raise ConfigError(f"snapshot format {self.fmt!r}: expected one of "
                              f"{', '.join(SNAPSHOT_FORMATS)}")
        if not 0.0 <= self.keypoint_threshold <= 1.0:
            raise ConfigError(f"keypoint_threshold {self.keypoint_threshold!r} must be "
                              "between 0 and 1")
        existing = self.folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise ConfigError(f"snapshot folder {self.folder}: {existing} is not a folder; "
                              "pass a folder with --snapshot-dir")
        check_writable_folder(existing, f"snapshot folder {self.folder}")

    def open(self) -> None:
        """Nothing held open (the folder is made at the first snapshot); OpenCV, which
        ``annotate`` draws with, must be there now rather than at the first snapshot."""
        import_cv2(RenderError)

    def write(self, result: FrameResult) -> None:
        if self.error:
            raise OutputError(self.error)
        if result.record.get("error"):
            return
        self.seen += 1
        if self.seen % self.every:
            return
        from edgepose.render.draw import annotate

        index = int(result.record.get("frame", self.seen - 1))
        image = annotate(result.image, result.poses, self.keypoint_threshold)
        self.save(image, self.folder / f"snapshot_{index:06d}.{self.fmt}")

    def save(self, image: Any, path: Path) -> None:
        """Encode ``image`` (RGB) and put it at ``path`` atomically."""
        data = encode_image(image, self.fmt, self.quality)
        tmp = path.with_name(f".{path.name}.part")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as err:
            with contextlib.suppress(OSError):  # not there, or its folder could not be made
                tmp.unlink()
            self.error = f"snapshot {path}: {describe_error(err)} after {self.written} snapshot(s)"
            raise OutputError(f"{self.error}; the earlier ones are complete") from None
        self.saved.append(path)
        self.written += 1

    def close(self) -> None:
        """Nothing is held open between snapshots."""
