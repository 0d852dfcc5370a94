"""The renderer interface, and the headless renderer behind ``--display none``.

Every renderer records and snapshots the same way: annotated *source* frames
(source resolution, skeleton drawn by ``annotate()``, no overlay text), so a
recording looks the same whether or not a screen is attached.
"""

from __future__ import annotations

from types import TracebackType

import numpy as np
import numpy.typing as npt

from edgepose.pose import Poses
from edgepose.render.draw import annotate
from edgepose.render.record import SnapshotWriter, VideoRecorder


class Renderer:
    """Shows frames with their poses; also feeds the recorder and snapshot writer.

    ``draw`` returns False when the user asked to quit (q, Esc, window closed).
    ``close`` finalises the recording and releases the display; it is idempotent.
    This base class has no screen: it is the headless renderer.
    """

    display = "none"

    def __init__(
        self,
        *,
        keypoint_threshold: float = 0.3,
        recorder: VideoRecorder | None = None,
        snapshots: SnapshotWriter | None = None,
    ) -> None:
        self.keypoint_threshold = keypoint_threshold
        self.recorder = recorder
        self.snapshots = snapshots
        self.frames = 0
        self.closed = False

    def draw(
        self,
        image: npt.NDArray[np.uint8],
        poses: Poses,
        overlay: dict[str, str] | None = None,
    ) -> bool:
        """Render one RGB uint8 source frame with ``poses`` (in source pixels)."""
        self.frames += 1
        annotated: npt.NDArray[np.uint8] | None = None
        if self.recorder is not None:
            annotated = annotate(image, poses, self.keypoint_threshold)
            self.recorder.write(annotated)
        if self.snapshots is not None:
            done = annotated
            self.snapshots.offer(
                lambda: done if done is not None else annotate(image, poses, self.keypoint_threshold)
            )
        return self._show(image, poses, overlay or {})

    def _show(self, image: npt.NDArray[np.uint8], poses: Poses, overlay: dict[str, str]) -> bool:
        return True

    def _release_display(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            if self.recorder is not None:
                self.recorder.close()
        finally:
            self._release_display()

    def __enter__(self) -> Renderer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
