"""The renderer interface, and the headless renderer behind ``--display none``.

A renderer only shows frames. Recordings and snapshots are outputs
(``edgepose.outputs.recording``, ``edgepose.outputs.snapshots``), written from the
annotated source frames whatever the display.
"""

from __future__ import annotations

from types import TracebackType

import numpy as np
import numpy.typing as npt

from edgepose.core.pose import Poses


class Renderer:
    """Shows frames with their poses.

    ``draw`` returns False when the user asked to quit (q, Esc, window closed).
    ``close`` releases the display; it is idempotent.
    This base class has no screen: it is the headless renderer.
    """

    display = "none"

    def __init__(self, *, keypoint_threshold: float = 0.3) -> None:
        self.keypoint_threshold = keypoint_threshold
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
        return self._show(image, poses, overlay or {})

    def _show(self, image: npt.NDArray[np.uint8], poses: Poses, overlay: dict[str, str]) -> bool:
        return True

    def _release_display(self) -> None:
        pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
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
