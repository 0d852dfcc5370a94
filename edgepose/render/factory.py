"""``make_renderer``: one call from ``--display`` to a renderer."""

from __future__ import annotations

import logging

from edgepose.core.errors import ConfigError, RenderError
from edgepose.render.base import Renderer
from edgepose.render.driver import choose_driver

log = logging.getLogger(__name__)


def make_renderer(
    display: str = "auto",
    *,
    keypoint_threshold: float = 0.3,
    size: tuple[int, int] | None = None,
) -> Renderer:
    """A renderer for ``display`` ("auto", "tv", "window", "none").

    ``auto`` falls back to headless with one warning when no screen can be opened;
    ``tv`` and ``window`` raise ``RenderError`` instead. ``size`` (width, height) is the
    window's.
    """
    plan = choose_driver(display)
    if not 0.0 <= keypoint_threshold <= 1.0:
        raise ConfigError(
            f"keypoint_threshold {keypoint_threshold!r} must be between 0 and 1"
        )
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ConfigError(f"window size {size!r}: expected (width, height) in pixels")
    if plan.headless:
        return Renderer(keypoint_threshold=keypoint_threshold)
    from edgepose.render.pygame_renderer import PygameRenderer

    try:
        return PygameRenderer(plan, size=size, keypoint_threshold=keypoint_threshold)
    except RenderError as err:
        if display != "auto":
            raise
        log.warning("no screen, running headless: %s", err)
        return Renderer(keypoint_threshold=keypoint_threshold)
