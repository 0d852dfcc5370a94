"""The live view: pygame on the TV (KMS/DRM), in a desktop window, or under SDL's dummy
driver in tests. The frame is scaled to the screen keeping its aspect ratio and the
skeleton is drawn at screen resolution, so lines stay crisp on a 1080p TV."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

from edgepose.core.errors import RenderError
from edgepose.core.opencv import optional_cv2
from edgepose.core.pose import Poses
from edgepose.core.preprocess import Transform
from edgepose.render.base import Renderer
from edgepose.render.draw import default_thickness, skeleton_segments
from edgepose.render.driver import GROUPS_HINT, DriverPlan

DEFAULT_WINDOW = (1280, 720)


def import_pygame() -> Any:
    """pygame without its banner, or a one-line error naming the extra to install."""
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        raise RenderError(
            "pygame is not installed: pip install pygame-ce (on the Pi deploy/install-pi.sh picks "
            "one whose SDL drives the TV), or pip install 'edgepose[desktop]'; or use --display none"
        ) from None
    return pygame


def open_screen(pg: Any, plan: DriverPlan, size: tuple[int, int] | None) -> Any:
    """Initialise SDL with ``plan.driver`` and open the screen; RenderError if it can't."""
    assert plan.driver is not None
    old = os.environ.get("SDL_VIDEODRIVER")
    os.environ["SDL_VIDEODRIVER"] = plan.driver  # SDL reads it once, in display.init()
    try:
        pg.display.init()
        if plan.fullscreen:
            screen = pg.display.set_mode((0, 0), pg.FULLSCREEN)
        else:
            screen = pg.display.set_mode(size or DEFAULT_WINDOW, pg.RESIZABLE)
    except pg.error as err:
        pg.display.quit()
        if plan.driver == "kmsdrm":
            raise RenderError(
                f"display {plan.display!r}: SDL driver kmsdrm cannot open the TV ({err}); "
                f"{GROUPS_HINT}"
            ) from None
        raise RenderError(
            f"display {plan.display!r}: SDL driver {plan.driver} cannot open a screen ({err}); "
            "run inside a desktop or VNC session (DISPLAY set) or use --display tv / none"
        ) from None
    finally:
        if old is None:
            os.environ.pop("SDL_VIDEODRIVER", None)
        else:
            os.environ["SDL_VIDEODRIVER"] = old
    pg.display.set_caption("edgepose")
    if plan.fullscreen:
        pg.mouse.set_visible(False)
    return screen


class PygameRenderer(Renderer):
    """Full-screen or windowed pygame view. Keys: q / Esc quit, f toggles full-screen."""

    def __init__(
        self,
        plan: DriverPlan,
        *,
        size: tuple[int, int] | None = None,
        keypoint_threshold: float = 0.3,
    ) -> None:
        super().__init__(keypoint_threshold=keypoint_threshold)
        self.pg = import_pygame()
        self.display = plan.display
        self.plan = plan
        self.fullscreen = plan.fullscreen
        self.window_size = size or DEFAULT_WINDOW
        self.screen = open_screen(self.pg, plan, size)
        self.pg.font.init()
        self._font: Any = None
        self._font_px = 0
        self.transform = Transform()

    @property
    def driver(self) -> str:
        return str(self.pg.display.get_driver())

    @property
    def mapping(self) -> tuple[float, tuple[float, float]]:
        """(scale, (offset_x, offset_y)) of the last frame: screen = source * scale + offset."""
        t = self.transform
        return t.scale_x, (t.offset_x, t.offset_y)

    def to_screen(self, xy: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """Source pixels -> screen pixels for the last drawn frame."""
        return self.transform.to_model(xy)

    def last_screen(self) -> npt.NDArray[np.uint8]:
        """The screen as last drawn, as an RGB (height, width, 3) array."""
        return np.ascontiguousarray(self.pg.surfarray.array3d(self.screen).transpose(1, 0, 2))

    def _events(self) -> bool:
        pg = self.pg
        for event in pg.event.get():
            if event.type == pg.QUIT:
                return False
            if event.type == pg.KEYDOWN:
                if event.key in (pg.K_q, pg.K_ESCAPE):
                    return False
                if event.key == pg.K_f:
                    self.toggle_fullscreen()
        return True

    def toggle_fullscreen(self) -> None:
        pg = self.pg
        self.fullscreen = not self.fullscreen
        if self.fullscreen:
            self.screen = pg.display.set_mode((0, 0), pg.FULLSCREEN)
        else:
            self.screen = pg.display.set_mode(self.window_size, pg.RESIZABLE)
        pg.mouse.set_visible(not self.fullscreen)

    def _fit(self, h: int, w: int) -> Transform:
        sw, sh = self.screen.get_size()
        scale = min(sw / w, sh / h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        return Transform(nw / w, nh / h, (sw - nw) // 2, (sh - nh) // 2, (h, w), (sh, sw))

    def _scaled(self, image: npt.NDArray[np.uint8], nw: int, nh: int) -> Any:
        pg = self.pg
        cv2 = optional_cv2()
        if cv2 is None:
            surf = pg.image.frombuffer(np.ascontiguousarray(image).tobytes(),
                                       image.shape[1::-1], "RGB")
            return pg.transform.smoothscale(surf, (nw, nh))
        scaled = np.ascontiguousarray(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR))
        return pg.image.frombuffer(scaled, (nw, nh), "RGB")  # no copy; blitted at once

    def _show(self, image: npt.NDArray[np.uint8], poses: Poses, overlay: dict[str, str]) -> bool:
        if not self._events():
            return False
        pg = self.pg
        h, w = image.shape[:2]
        t = self.transform = self._fit(h, w)
        nh, nw = round(h * t.scale_y), round(w * t.scale_x)
        self.screen.fill((0, 0, 0))
        self.screen.blit(self._scaled(image, nw, nh), (t.offset_x, t.offset_y))
        self._skeleton(poses)
        self._overlay(overlay)
        pg.display.flip()
        return True

    def _skeleton(self, poses: Poses) -> None:
        pg = self.pg
        sw, sh = self.screen.get_size()
        width = default_thickness(sh, sw)
        radius = max(3, round(width * 1.5))
        for kind, colour, a, b in skeleton_segments(poses, self.keypoint_threshold):
            pa = self.to_screen(a)
            if kind == "edge" and b is not None:
                pb = self.to_screen(b)
                pg.draw.line(self.screen, colour, (float(pa[0]), float(pa[1])),
                             (float(pb[0]), float(pb[1])), width)
            else:
                pg.draw.circle(self.screen, colour, (float(pa[0]), float(pa[1])), radius)

    def _overlay(self, overlay: dict[str, str]) -> None:
        """``key: value`` lines, top-left on a dark box, sized to be read from a sofa."""
        if not overlay:
            return
        pg = self.pg
        px = max(18, self.screen.get_size()[1] // 22)
        if self._font is None or px != self._font_px:
            self._font, self._font_px = pg.font.Font(None, px), px
        texts = [self._font.render(f"{k}: {v}", True, (255, 255, 255)) for k, v in overlay.items()]
        pad = px // 3
        box = pg.Surface((max(s.get_width() for s in texts) + 2 * pad,
                          sum(s.get_height() for s in texts) + 2 * pad), pg.SRCALPHA)
        box.fill((0, 0, 0, 170))
        self.screen.blit(box, (0, 0))
        y = pad
        for s in texts:
            self.screen.blit(s, (pad, y))
            y += s.get_height()

    def _release_display(self) -> None:
        self.pg.display.quit()
        self.pg.quit()
