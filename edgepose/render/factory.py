"""``make_renderer``: one call from ``--display`` and the recording flags to a renderer."""

from __future__ import annotations

import logging
from pathlib import Path

from edgepose.errors import ConfigError, RenderError
from edgepose.render.base import Renderer
from edgepose.render.driver import choose_driver
from edgepose.render.record import SnapshotWriter, VideoRecorder

log = logging.getLogger(__name__)


def make_renderer(
    display: str = "auto",
    *,
    keypoint_threshold: float = 0.3,
    record: Path | None = None,
    snapshot_every: int = 0,
    snapshot_dir: Path | None = None,
    fps: float = 30.0,
    size: tuple[int, int] | None = None,
) -> Renderer:
    """A renderer for ``display`` ("auto", "tv", "window", "none").

    ``auto`` falls back to headless with one warning when no screen can be opened;
    ``tv`` and ``window`` raise ``RenderError`` instead. ``record`` (an .mp4 path) and
    ``snapshot_every`` N with ``snapshot_dir`` save annotated source frames whatever the
    display. ``fps`` is the recording's frame rate; ``size`` (width, height) the window's.
    """
    plan = choose_driver(display)
    if not 0.0 <= keypoint_threshold <= 1.0:
        raise ConfigError(
            f"keypoint_threshold {keypoint_threshold!r} must be between 0 and 1"
        )
    if snapshot_every < 0 or (snapshot_every and snapshot_dir is None):
        raise ConfigError(
            f"snapshot_every {snapshot_every!r} needs a whole number >= 1 and a snapshot_dir "
            "(--snapshot-every N DIR)"
        )
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ConfigError(f"window size {size!r}: expected (width, height) in pixels")
    recorder = VideoRecorder(record, fps) if record is not None else None
    snapshots = (SnapshotWriter(snapshot_dir, snapshot_every)
                 if snapshot_every and snapshot_dir is not None else None)
    opts = dict(keypoint_threshold=keypoint_threshold, recorder=recorder, snapshots=snapshots)
    if plan.headless:
        return Renderer(**opts)  # type: ignore[arg-type]
    from edgepose.render.pygame_renderer import PygameRenderer

    try:
        return PygameRenderer(plan, size=size, **opts)  # type: ignore[arg-type]
    except RenderError as err:
        if display != "auto":
            raise
        log.warning("no screen, running headless: %s", err)
        return Renderer(**opts)  # type: ignore[arg-type]
